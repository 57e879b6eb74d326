"""Leaving columns out: a per-lead identifier in an event export is named as such (not as a leak),
``features.exclude`` keeps a column out of the features with its reason recorded in the training
summary, the model and the model card; a flat run records the spec's ``drop`` reasons."""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from leadscore.config.params import ParamsError, load_params
from leadscore.features.build import ExcludeWarning
from leadscore.features.contract import read_export
from leadscore.training.audit import LeakageError
from leadscore.training.dataset import SPEC_FILE, SUMMARY_FILE, build_dataset

SPECS = Path(__file__).resolve().parents[2] / "specs"
REASONS = {
    "contact_phone": "personal data: a phone number is never a feature",
    "email_2": "personal data: a second e-mail address",
    "region": "the team sells in every region alike",  # a feature made from an export column
    "no_such_column": "a typo: the export has no such column",
}


@pytest.fixture(scope="module")
def with_identifiers(demo_dir):
    """The demo export plus a phone number and a second e-mail column (unknown headers) per lead."""
    export = read_export(demo_dir)
    rng = np.random.default_rng(0)
    leads = export.leads.copy()
    leads["contact_phone"] = [f"+49 30 {v:08d}" for v in rng.choice(10**8, len(leads), replace=False)]
    leads["email_2"] = leads["email"].str.upper()
    export.leads = leads
    return export


def _excluding(params, reasons: dict):
    return params.model_copy(update={"features": params.features.model_copy(update={"exclude": reasons})})


def test_personal_data_under_any_header_is_left_out_before_the_audit(with_identifiers, params, tmp_path):
    """On main both columns reached the audit ("ranked the label with AUC 0.999"); now a phone number
    (by content) and a second e-mail column (by header) never become features, and the spec says why."""
    build_dataset(with_identifiers, params, tmp_path / "dataset")
    spec = json.loads((tmp_path / "dataset" / SPEC_FILE).read_text())
    assert spec["excluded"]["contact_phone"] == "personal data: phone numbers (by content)"
    assert spec["excluded"]["email_2"] == "personal data: e-mail addresses (by header)"
    assert not {f["name"] for f in spec["features"]} & {"contact_phone", "email_2"}


def test_a_per_lead_code_is_named_an_identifier_not_a_leak(with_identifiers, params, tmp_path):
    """A per-lead code that is not personal data still reaches the audit, which names it an identifier."""
    export = copy.copy(with_identifiers)
    export.leads = with_identifiers.leads.assign(ref_code=[f"R-{i:06d}" for i in range(len(with_identifiers.leads))])
    with pytest.raises(LeakageError) as err:
        build_dataset(export, params, tmp_path / "dataset")
    result = err.value.result
    assert result.columns() == {"ref_code"}
    assert result.columns("identifier") == {"ref_code"}
    assert result.columns("single_feature_auc") == set()
    assert result.single_feature_auc["ref_code"] < 0.6
    message = str(err.value)
    assert "ref_code [identifier]: looks like an identifier or personal data" in message
    assert "leads with a value" in message and "never a feature" in message
    assert "add them to `features.exclude` in params.yaml" in message.splitlines()[-1]
    audit = json.loads((tmp_path / "dataset" / "audit.json").read_text())
    assert {f["check"] for f in audit["findings"]} == {"identifier"}


@pytest.fixture(scope="module")
def excluded(with_identifiers, params, tmp_path_factory):
    out = tmp_path_factory.mktemp("excluded")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = build_dataset(with_identifiers, _excluding(params, REASONS), out / "dataset")
    return {"dir": out, "summary": summary, "warnings": [w for w in caught if issubclass(w.category, ExcludeWarning)]}


def test_excluded_columns_never_become_features_and_the_summary_says_why(excluded):
    spec = json.loads((excluded["dir"] / "dataset" / SPEC_FILE).read_text())
    names = {f["name"] for f in spec["features"]}
    assert not names & {"contact_phone", "email_2", "region"}
    assert "country" in names  # only the named feature went, not the column it comes from
    assert "contact_phone" not in spec["profile_columns"]
    found = {k: v for k, v in REASONS.items() if k != "no_such_column"}
    assert spec["excluded"] == found
    summary = json.loads((excluded["dir"] / "dataset" / SUMMARY_FILE).read_text())
    assert summary == excluded["summary"]
    assert summary["excluded_columns"] == found
    assert summary["exclude_not_found"] == ["no_such_column"]
    assert summary["leakage_audit"] == "passed"


def test_an_excluded_name_the_export_lacks_is_a_warning_naming_it(excluded):
    (warning,) = excluded["warnings"]
    assert "features.exclude: 'no_such_column' is neither a column of the leads table nor a feature" in str(warning.message)


def test_an_excluded_known_column_takes_its_features_along(demo_dir, params):
    from leadscore.features.build import infer_spec

    export = read_export(demo_dir)
    spec = infer_spec(export.leads, export.activities, _excluding(params, {"country": "not allowed to use"}).features)
    assert not {"country", "region"} & set(spec.names)
    assert spec.excluded == {"country": "not allowed to use"}
    assert "industry" in spec.names


def test_the_model_and_its_card_carry_the_reasons(excluded, params):
    from leadscore.models.lgbm import LeadModel
    from leadscore.training.card import model_card
    from leadscore.training.train import train_model

    train_model(excluded["dir"] / "dataset", params, excluded["dir"] / "model")
    model = LeadModel.load(excluded["dir"] / "model")
    found = {k: v for k, v in REASONS.items() if k != "no_such_column"}
    assert model.spec.excluded == found
    assert not set(found) & set(model.spec.names)
    card = model_card(model=model, summary=excluded["summary"], audit=None,
                      metrics={"test_rows": 0, "test_positives": 0, "model": {}},
                      registered={"model_name": "leadscore", "version": "1", "run_id": "r"})
    section = card.split("## Columns left out", 1)[1].split("\n## ", 1)[0]
    for col, why in found.items():
        assert f"- `{col}`: {why}" in section
    assert "no_such_column" not in card


def test_an_exclusion_without_a_reason_is_refused(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("features:\n  exclude: {phone_2: ''}\n")
    with pytest.raises(ParamsError, match=r"params.yaml: features: .*every column needs a reason.*phone_2"):
        load_params(path)


def test_a_flat_run_records_the_spec_drop_reasons(params, tracking, tmp_path):
    import mlflow

    from leadscore.features.flat import read_flat_spec
    from leadscore.training.flat_log import columns_left_out, log_flat_run

    spec = SPECS / "x_education.yaml"
    result = {"dataset": "x_education", "spec": str(spec), "rows": 1, "positives": 1, "settings": {"exclude": ["City"]},
              "time_ordered": {}, "cv": {"roc_auc": {}}, "notes": []}
    drops = {d.column: d.why for d in read_flat_spec(spec).drop}
    assert columns_left_out(result) == {**drops, "City": "left out of every scorer on request (exclude)"}
    (tmp_path / "evaluation").mkdir()
    run_id = log_flat_run(result, tmp_path / "evaluation", params)
    logged = mlflow.artifacts.load_dict(f"runs:/{run_id}/columns_left_out.json")
    assert logged["Tags"] == drops["Tags"] and logged["Lead Number"].startswith("identifier")
    assert mlflow.get_run(run_id).data.tags["columns_left_out"] == str(len(drops) + 1)
