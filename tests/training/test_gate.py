"""The baseline gate: no model serves, the first one included, unless over the backtest it beats the
SLA rules and is not significantly worse than logistic regression; the output says why with numbers."""

from __future__ import annotations

import json
import uuid

import mlflow
import pytest
from typer.testing import CliRunner

from leadscore.cli import app
from leadscore.training.gate import TAG, baseline_gate, version_gate
from leadscore.training.promote import promote
from leadscore.training.register import register_model


def _report(rules: tuple[float, float, float], logistic: tuple[float, float, float], windows: int = 4) -> dict:
    def diff(v):
        return {"roc_auc": {"value": v[0], "interval": [v[1], v[2]]}}

    return {"folds": [{"fold": i} for i in range(windows)],
            "overall": {"rows": 42_115, "positives": 1_164,
                        "difference": {"rules": diff(rules), "logistic": diff(logistic)}}}


def test_the_measured_demo_case_fails_it(params):
    """Issue 16: on the demo LightGBM was worse than logistic regression by 0.014 AUC (95 % −0.022 to
    −0.006) over four windows and was promoted anyway, because the first model had no gate."""
    verdict = baseline_gate(_report((0.042, 0.023, 0.065), (-0.014, -0.022, -0.006)), params.registry, "LightGBM")
    assert not verdict["passed"]
    assert verdict["checks"]["beats_rules"]["passed"] and not verdict["checks"]["not_worse_than_logistic"]["passed"]
    s = verdict["sentence"]
    assert "over 4 backtest windows (42,115 snapshots, 1,164 won)" in s
    assert "significantly worse than logistic regression: -0.014 ROC AUC (95 % interval -0.022 to -0.006)" in s
    assert "the interval must reach 0 (registry.max_auc_loss_to_logistic)" in s
    assert "SLA rules" not in s  # one sentence about what failed, not a list of everything


def test_a_model_that_does_not_clearly_beat_the_rules_fails_it(params):
    verdict = baseline_gate(_report((0.010, -0.004, 0.024), (0.001, -0.006, 0.008)), params.registry)
    assert not verdict["passed"]
    assert "does not beat the SLA rules: +0.010 ROC AUC (95 % interval -0.004 to +0.024)" in verdict["sentence"]
    assert "registry.min_auc_gain_over_rules" in verdict["sentence"]


def test_a_model_that_beats_both_passes_and_the_margins_come_from_params(params):
    good = _report((0.042, 0.023, 0.065), (-0.004, -0.011, 0.002))
    verdict = baseline_gate(good, params.registry)
    assert verdict["passed"], verdict
    assert "beats the SLA rules by +0.042" in verdict["sentence"]
    assert "not significantly worse than logistic regression (-0.004" in verdict["sentence"]
    stricter = params.registry.model_copy(update={"min_auc_gain_over_rules": 0.03})
    assert not baseline_gate(good, stricter)["passed"]  # the interval's lower end 0.023 is below 0.03
    looser = params.registry.model_copy(update={"max_auc_loss_to_logistic": 0.01})
    assert baseline_gate(_report((0.042, 0.023, 0.065), (-0.014, -0.022, -0.006)), looser)["passed"]


def test_skipped_windows_are_not_counted(params):
    report = _report((0.042, 0.023, 0.065), (0.0, -0.01, 0.01), windows=3)
    report["folds"].append({"fold": 4, "skipped": "the window has 0 won of 120 snapshots"})
    assert "over 3 backtest windows" in baseline_gate(report, params.registry)["sentence"]


def test_a_version_without_a_recorded_gate_has_not_passed():
    passed, why = version_gate({})
    assert not passed and "no baseline gate recorded" in why
    assert version_gate({TAG: "passed", "baseline_gate_reason": "over 4 …"}) == (True, "over 4 …")


def test_the_first_model_is_registered_but_not_promoted_when_it_fails(trained, params):
    """The trained demo model, held to a bar no model can clear (its AUC gain over the rules must be
    above 0.9): registered with the verdict on the version, never promoted, the rules keep serving."""
    name = f"gate-{uuid.uuid4().hex[:8]}"
    strict = params.model_copy(update={"registry": params.registry.model_copy(
        update={"model_name": name, "min_auc_gain_over_rules": 0.9})})
    metrics = {k: v for k, v in trained["metrics"].items() if k != "gate"}  # register judges with these params
    reg = register_model(trained["model_dir"], trained["dataset"], metrics, strict)
    assert reg["gate"] and not reg["gate"]["passed"]
    client = mlflow.MlflowClient()
    tags = client.get_model_version(name, reg["version"]).tags
    assert tags[TAG] == "failed" and "does not beat the SLA rules" in tags["baseline_gate_reason"]
    decision = promote(trained["dataset"], strict)
    assert not decision["promoted"] and decision["champion_after"] is None
    (reason,) = decision["reasons"]
    assert reason.startswith(f"version {reg['version']} is not promoted, the SLA rules keep serving: over ")
    assert "the interval must lie above 0.9" in reason
    with pytest.raises(mlflow.exceptions.MlflowException):
        client.get_model_version_by_alias(name, strict.registry.alias)
    assert client.get_model_version(name, reg["version"]).tags["promotion"] == "refused by the baseline gate"


def test_a_version_registered_without_a_backtest_is_not_promoted(trained, params):
    name = f"gate-{uuid.uuid4().hex[:8]}"
    named = params.model_copy(update={"registry": params.registry.model_copy(update={"model_name": name})})
    metrics = {k: v for k, v in trained["metrics"].items() if k not in ("gate", "backtest")}
    register_model(trained["model_dir"], trained["dataset"], metrics, named)
    decision = promote(trained["dataset"], named)
    assert not decision["promoted"] and "no baseline gate recorded" in decision["reasons"][0]


def test_the_cli_says_why_in_one_sentence(trained, params, tmp_path):
    name = f"gate-{uuid.uuid4().hex[:8]}"
    (tmp_path / "p.yaml").write_text(f"registry: {{model_name: {name}, min_auc_gain_over_rules: 0.9}}\n")
    strict = params.model_copy(update={"registry": params.registry.model_copy(
        update={"model_name": name, "min_auc_gain_over_rules": 0.9})})
    metrics = {k: v for k, v in trained["metrics"].items() if k != "gate"}
    register_model(trained["model_dir"], trained["dataset"], metrics, strict)
    result = CliRunner().invoke(app, ["promote", "--dataset", str(trained["dataset"]), "--params", str(tmp_path / "p.yaml"),
                                      "--out", str(tmp_path / "d.json")])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "not promoted: no @champion, the SLA rules keep serving" in text
    assert "does not beat the SLA rules: +" in text and "(95 % interval" in text
    assert f"parameters: {tmp_path / 'p.yaml'} (from --params)" in text
    assert json.loads((tmp_path / "d.json").read_text())["passed_gate"] is False


def test_the_demo_model_passes_it_and_its_run_records_it(trained):
    """The shipped recipe on the session's demo export: the gate passed and the run says so."""
    verdict = trained["metrics"]["gate"]
    assert verdict["passed"], verdict["sentence"]
    run = mlflow.get_run(trained["registered"]["run_id"])
    assert run.data.tags[TAG] == "passed"


def test_a_flat_export_is_judged_on_its_time_ordered_test_else_on_cv(params):
    from leadscore.training.gate import flat_gate

    def diff(rules, logistic):
        return {"rules": {"roc_auc": {"value": rules[0], "interval": list(rules[1:])}},
                "logistic": {"roc_auc": {"value": logistic[0], "interval": list(logistic[1:])}}}

    timed = {"rows": 12_356, "positives": 3_030, "difference": diff((-0.176, -0.19, -0.16), (-0.125, -0.14, -0.11))}
    cv = {"folds": 5, "pooled": {"rows": 41_188, "positives": 4_640, "difference": diff((0.1, 0.09, 0.11), (0.01, 0.0, 0.02))}}
    bank = flat_gate({"time_ordered": {"metrics": timed}, "cv": cv}, params.registry)
    assert bank["evidence"] == "time_ordered" and not bank["passed"]
    assert bank["sentence"].startswith("on the time-ordered test (12,356 rows, 3,030 positive), LightGBM does not beat "
                                       "the SLA rules: -0.176 ROC AUC")
    assert "and is significantly worse than logistic regression: -0.125" in bank["sentence"]
    untimed = flat_gate({"time_ordered": {}, "cv": cv}, params.registry)
    assert untimed["evidence"] == "cv" and untimed["passed"]
    assert untimed["sentence"].startswith("over 5-fold cross-validation (41,188 rows, 4,640 positive; no time order)")
    no_rules = {"folds": 5, "pooled": {**cv["pooled"], "difference": {"logistic": cv["pooled"]["difference"]["logistic"]}}}
    assert not flat_gate({"cv": no_rules}, params.registry)["passed"]
