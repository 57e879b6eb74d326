"""Why did the score change: data vs model version, on real LightGBM models and real ledger entries."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from leadscore.demo import write_demo_export
from leadscore.features.build import compute_features, encode, encode_matrix
from leadscore.features.contract import read_export
from leadscore.features.online import activity_lists, as_of_micros, profile_dicts
from leadscore.features.snapshots import scoring_snapshots
from leadscore.models.change import BASELINE, encode_raw, explain_change
from leadscore.models.decision import score_from_probability
from leadscore.models.lgbm import LeadModel
from tests.helpers import training_features

DAY_US = 86_400_000_000
ADDED = {"demo_request": 2, "pricing_page_view": 3}  # what the lead did between the two scores
DROPPED = "engagement"  # a feature model "5" does not know


def _model(spec, raw, label, version, rounds, calibrator=None, **params):
    settings = {"objective": "binary", "learning_rate": 0.1, "num_leaves": 6, "min_data_in_leaf": 20,
                "verbose": -1, "num_threads": 1, "deterministic": True, **params}
    booster = lgb.train(settings, lgb.Dataset(encode(raw[spec.names], spec), label=label), num_boost_round=rounds)
    return LeadModel(booster, spec, {"a": 0.5, "b": 0.3, "c": 0.1}, {}, version=version, calibrator=calibrator)


@pytest.fixture(scope="module")
def world(tmp_path_factory, params):
    """A small demo export, three model versions trained on it, and one lead's history."""
    folder = tmp_path_factory.mktemp("change") / "export"
    write_demo_export(folder, n_leads=800, seed=5)
    export = read_export(folder)
    snaps, spec, raw = training_features(export, params)
    small = copy.deepcopy(spec)
    small.features = [f for f in small.features if f.name != DROPPED]
    models = {
        # Weighted wins: scores across the whole 1–99 range, so both parts of a change show in points.
        "3": _model(spec, raw, snaps["label"], "3", 30, {"method": "platt", "a": 0.9, "b": 0.2}, seed=1,
                    is_unbalance=True),
        "4": _model(spec, raw, snaps["label"], "4", 50, None, seed=2, num_leaves=8, feature_fraction=0.8,
                    is_unbalance=True),
        "5": _model(small, raw, snaps["label"], "5", 40, None, seed=3, is_unbalance=True),
    }
    t_new = export.data_end - pd.Timedelta(days=5)
    t_old = t_new - pd.Timedelta(days=30)
    profiles = profile_dicts(export.leads)
    histories = activity_lists(export.activities)
    old_us, new_us = as_of_micros(t_old), as_of_micros(t_new)
    added = [(new_us - (k + 1) * DAY_US, t, "web") for t, n in ADDED.items() for k in range(n)]

    # The lead whose score moves most by data and by model (3 → 4): both parts should show in points.
    candidates = scoring_snapshots(export, t_old)["lead_id"].head(150).tolist()

    def scores(version, when_us, extra):
        model = models[version]
        X = np.array([model.online.features(profiles[i], histories.get(i, []) + extra, when_us)[1] for i in candidates])
        return score_from_probability(model.probability(model.margin(X)))

    s4_old = scores("4", old_us, [])
    moves = np.minimum(abs(scores("4", new_us, added) - s4_old), abs(s4_old - scores("3", old_us, [])))
    lead = candidates[int(np.argmax(moves))]
    assert moves.max() >= 2
    return {
        "spec": spec, "models": models, "profile": profiles[lead],
        "old": (histories.get(lead, []), old_us), "new": (histories.get(lead, []) + added, new_us),
        "raw": compute_features(scoring_snapshots(export, t_new).head(60), export.leads, export.activities, spec),
        "profiles": profiles, "histories": histories, "t_new": t_new,
    }


def stored(features):
    """Raw feature values as the ledger keeps them: NaN as None, through JSON."""
    kept = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in features.items()}
    return json.loads(json.dumps(kept))


def ledger(world, version, when):
    """The ledger entry the API records for a model score."""
    model = world["models"][version]
    activities, as_of_us = world[when]
    raw, _ = model.online.features(world["profile"], activities, as_of_us)
    result = model.score_one(world["profile"], activities, as_of_us)
    return {"scorer": "model", "model_version": version, "probability": result.probability, "score": result.score,
            "features": stored(raw)}


def loader(world, calls=None):
    def load(version):
        if calls is not None:
            calls.append(version)
        return world["models"].get(version)

    return load


def rows(model, *entries):
    return encode_raw([e["features"] for e in entries], model.spec)


def test_encode_raw_is_encode_matrix_and_the_online_row(world):
    spec, raw = world["spec"], world["raw"].copy()
    raw.loc[raw.index[0], "industry"] = "a level never trained on"
    X = encode_matrix(raw, spec)
    np.testing.assert_array_equal(encode_raw([stored(r) for r in raw.to_dict("records")], spec), X)
    assert np.isnan(X[0, spec.names.index("industry")]) and np.isnan(X).sum() > 1  # unseen and missing levels
    model = world["models"]["4"]
    for lead_id in list(world["histories"])[:10]:
        features, row = model.online.features(world["profiles"][lead_id], world["histories"][lead_id],
                                              as_of_micros(world["t_new"]))
        np.testing.assert_array_equal(encode_raw([stored(features)], spec)[0], row)


def test_same_version_is_all_data_and_shows_the_new_activity(world):
    old, new = ledger(world, "4", "old"), ledger(world, "4", "new")
    calls: list[str] = []
    out = explain_change(old, new, loader(world, calls), top_k=100)
    assert calls == ["4"]
    assert out.decomposed and out.model_change == 0 and out.model_drivers == []
    assert out.total == new["score"] - old["score"] and out.data_change == out.total
    assert out.notes == []
    demo = next(d for d in out.data_drivers if d.signal == "demo_request")
    assert demo.new_value == demo.old_value + ADDED["demo_request"]
    assert "Demo requests" in demo.text and " rose from " in demo.text
    assert "all from changes in the lead's data" in out.text


def test_data_drivers_add_up_to_the_new_models_margin_change(world):
    old, new = ledger(world, "3", "old"), ledger(world, "4", "new")
    model = world["models"]["4"]
    out = explain_change(old, new, loader(world), top_k=1000)
    margin = model.margin(rows(model, old, new))
    assert abs(sum(d.effect for d in out.data_drivers) - (margin[1] - margin[0])) < 1e-9
    efs = [abs(d.effect) for d in out.data_drivers]
    assert efs == sorted(efs, reverse=True)
    assert len(explain_change(old, new, loader(world), top_k=3).data_drivers) == 3


def test_two_versions_split_adds_up_to_the_total(world):
    old, new = ledger(world, "3", "old"), ledger(world, "4", "new")
    out = explain_change(old, new, loader(world), top_k=1000)
    assert out.decomposed and out.notes == []
    assert out.data_change + out.model_change == out.total == new["score"] - old["score"]
    # the new model on the old data, computed from the lead's history, not from the ledger
    s_new_old = world["models"]["4"].score_one(world["profile"], *world["old"])
    assert out.data_change == new["score"] - s_new_old.score
    assert out.model_change == s_new_old.score - old["score"]
    p_total = new["probability"] - old["probability"]
    assert out.data_probability + out.model_probability == pytest.approx(p_total, abs=1e-12)
    m3, m4 = world["models"]["3"], world["models"]["4"]
    diff = m4.margin(rows(m4, old))[0] - m3.margin(rows(m3, old))[0]
    assert abs(sum(d.effect for d in out.model_drivers) - diff) < 1e-9
    assert any(d.signal == BASELINE for d in out.model_drivers)
    assert "from the new model version (3 → 4)" in out.text


def test_a_feature_only_the_new_model_knows_is_missing_and_counts_on_its_side(world):
    old, new = ledger(world, "5", "old"), ledger(world, "4", "new")
    assert DROPPED not in old["features"]
    m4, m5 = world["models"]["4"], world["models"]["5"]
    assert m4.booster.feature_importance()[m4.spec.names.index(DROPPED)] > 0  # the new model uses it
    out = explain_change(old, new, loader(world), top_k=1000)
    assert any(DROPPED in n and "missing (NaN)" in n for n in out.notes)
    added = next(d for d in out.model_drivers if d.signal == DROPPED)
    assert "is new in model 4" in added.text and added.old_value is None
    diff = m4.margin(rows(m4, old))[0] - m5.margin(rows(m5, old))[0]
    assert abs(sum(d.effect for d in out.model_drivers) - diff) < 1e-9
    assert np.isnan(rows(m4, old)[0, m4.spec.names.index(DROPPED)])


def test_a_feature_the_new_model_dropped_counts_on_the_old_side(world):
    old, new = ledger(world, "4", "old"), ledger(world, "5", "new")
    out = explain_change(old, new, loader(world), top_k=1000)
    assert any(DROPPED in n and "does not use" in n for n in out.notes)
    dropped = next(d for d in out.model_drivers if d.signal == DROPPED)
    assert "no longer uses" in dropped.text and dropped.old_value == old["features"][DROPPED]
    assert out.data_change + out.model_change == out.total


@pytest.mark.parametrize("side", ["old", "new"])
def test_rules_on_either_side_is_not_decomposed(world, side):
    entries = {"old": ledger(world, "3", "old"), "new": ledger(world, "4", "new")}
    entries[side] = {**entries[side], "scorer": "rules", "model_version": "rules:1", "score": 40, "probability": 0.4,
                     "fallback_reason": "model registry unreachable"}
    calls: list[str] = []
    out = explain_change(entries["old"], entries["new"], loader(world, calls))
    assert calls == []
    assert not out.decomposed and out.data_change is None and out.model_change is None
    assert out.data_drivers == [] and out.model_drivers == []
    assert out.total == entries["new"]["score"] - entries["old"]["score"]
    assert "scorer changed" in out.text and "SLA rules" in out.text and "model registry unreachable" in out.text
    assert ("(model 3 → SLA rules version 1)" if side == "new" else "(SLA rules version 1 → model 4)") in out.text


def test_an_old_version_that_cannot_be_loaded_is_not_decomposed(world):
    old, new = ledger(world, "3", "old"), ledger(world, "4", "new")
    out = explain_change(old, new, lambda v: None if v == "3" else world["models"][v])
    assert not out.decomposed and out.data_change is None and out.model_change is None
    assert "model version 3 could not be loaded" in out.text
    broken = explain_change(old, new, lambda v: (_ for _ in ()).throw(KeyError(v)) if v == "3" else world["models"][v])
    assert not broken.decomposed and "KeyError" in broken.text


def test_a_stored_score_the_model_does_not_give_is_noted(world):
    old, new = ledger(world, "3", "old"), ledger(world, "4", "new")
    out = explain_change({**old, "score": old["score"] + 3}, new, loader(world))
    assert out.old_score == old["score"] + 3 and out.total == new["score"] - old["score"] - 3
    assert out.data_change + out.model_change == out.total + 3
    assert any("differs from what model 3 gives" in n for n in out.notes)


ENGLISH = re.compile(r"\b(rose|fell|from|changed|unchanged|points|weighs|starts|the|and|more|values|uses|model|"
                     r"missing|scorer|could|loaded|data|last|days)\b", re.IGNORECASE)


def test_german_has_its_own_words(world):
    old, new = ledger(world, "5", "old"), ledger(world, "4", "new")
    en = explain_change(old, new, loader(world), top_k=100)
    de = explain_change(old, new, loader(world), top_k=100, lang="de")
    assert de.text != en.text and de.notes and de.model_drivers and de.data_drivers
    texts = [de.text, *de.notes, *(d.text for d in de.data_drivers + de.model_drivers)]
    leaks = [(m.group(0), t) for t in texts for m in [ENGLISH.search(t)] if m]
    assert not leaks, leaks
    assert "Der Score ist" in de.text and "den Score" in de.text and "Log-Odds" not in de.text
    rules = explain_change(old, {**new, "scorer": "rules", "model_version": "rules:1"}, loader(world), lang="de")
    assert "SLA-Regeln" in rules.text and not ENGLISH.search(rules.text)


def test_a_value_of_the_wrong_type_counts_as_missing(world):
    old, new = ledger(world, "4", "old"), ledger(world, "4", "new")
    old["features"]["employees"] = "many"  # e.g. a profile column that was a category in an older version
    out = explain_change(old, new, loader(world))
    assert out.decomposed and any("employees" in n and "do not fit the type" in n for n in out.notes)


def test_a_ledger_dataclass_is_read_like_a_mapping(world):
    Entry = dataclasses.make_dataclass("Entry", ["scorer", "model_version", "probability", "score", "features"])
    old, new = ledger(world, "3", "old"), ledger(world, "4", "new")
    as_objects = explain_change(Entry(**old), Entry(**new), loader(world))
    assert as_objects == explain_change(old, new, loader(world))
