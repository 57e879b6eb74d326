"""The BentoML service in process: the contract, parity with batch scoring, fallback, bad input."""

import os

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from features.contract import read_export
from features.snapshots import scoring_snapshots
from leadscore.cli import app as cli
from models.registry import use_tracking


def _client():
    from serving.service import LeadScoring

    return TestClient(LeadScoring.to_asgi())


@pytest.fixture(scope="module")
def client(trained):
    with _client() as c:
        yield c


def _records(frame: pd.DataFrame) -> list[dict]:
    out = []
    for row in frame.to_dict("records"):
        out.append({k: (v.isoformat() if isinstance(v, pd.Timestamp) else v) for k, v in row.items() if pd.notna(v)})
    return out


def request_for(export, lead_ids, as_of) -> dict:
    leads = export.leads.set_index("lead_id")
    body = []
    for lead_id in lead_ids:
        lead = _records(leads.loc[[lead_id]].reset_index())[0]
        acts = export.activities[export.activities["lead_id"] == lead_id].drop(columns="lead_id")
        body.append({"lead": lead, "activities": _records(acts)})
    return {"leads": body, "as_of": as_of.isoformat()}


def test_health_endpoints(client):
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").status_code == 200


def test_score_contract(client, demo_dir, trained):
    export = read_export(demo_dir)
    as_of = export.data_end - pd.Timedelta(days=30)
    ids = scoring_snapshots(export, as_of)["lead_id"].head(5).tolist()
    resp = client.post("/score", json=request_for(export, ids, as_of))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert [r["lead_id"] for r in body] == ids  # in request order
    for r in body:
        assert 0 < r["probability"] < 1 and 1 <= r["score"] <= 99 and r["grade"] in "ABCD"
        assert r["scorer"] == "model" and r["model_version"] == trained["registered"]["version"]
        assert r["fallback_reason"] is None
        assert 1 <= len(r["reasons"]) <= 6  # up to 3 raising and 3 lowering the score
        assert all({"feature", "value", "effect", "text", "group"} == set(x) for x in r["reasons"])
        effects = [x["effect"] for x in r["reasons"]]
        ups = [e for e in effects if e > 0]
        assert effects[:len(ups)] == sorted(ups, reverse=True) and len(ups) <= 3 and len(effects) - len(ups) <= 3
        assert r["fit_grade"] in "ABCD" and 1 <= r["interest_level"] <= 4
        assert r["matrix_cell"] == f"{r['fit_grade']}{r['interest_level']}"
        assert r["recommendation"] in ("hand_to_sales", "keep_nurturing", "nurture_as_recommender", "no_further_attention")


def test_language_and_what_if_per_request(client, demo_dir, trained):
    export = read_export(demo_dir)
    as_of = export.data_end - pd.Timedelta(days=30)
    ids = scoring_snapshots(export, as_of)["lead_id"].head(8).tolist()
    body = request_for(export, ids, as_of)
    en = client.post("/score", json=body).json()
    de = client.post("/score", json={**body, "language": "de", "what_if": True}).json()
    for a, b in zip(en, de):
        assert a["probability"] == b["probability"] and [x["effect"] for x in a["reasons"]] == [x["effect"] for x in b["reasons"]]
        assert a["recommendation"] == b["recommendation"] and a["recommendation_text"] != b["recommendation_text"]
        assert a["what_if"] is None  # only when asked
        assert (b["what_if"] is None) or (b["what_if"]["probability"] >= trained["model"].sales_ready > b["probability"])
    german = " ".join(x["text"] for r in de for x in r["reasons"])
    assert any(word in german for word in ("Tage", "Lead", "Unternehmensgröße", "Hierarchieebene", "Branche"))
    bad = client.post("/score", json={**body, "language": "fr"})
    assert bad.status_code == 400 and "language" in bad.text


def test_api_equals_batch_scoring(client, demo_dir, tmp_path):
    """One feature definition: /score and `leadscore score` agree to 1e-9 at the same as_of."""
    export = read_export(demo_dir)
    as_of = export.data_end - pd.Timedelta(days=45)
    out = tmp_path / "batch.csv"
    result = CliRunner().invoke(cli, ["score", "--data", str(demo_dir), "--as-of", as_of.isoformat(), "--out", str(out)])
    assert result.exit_code == 0, result.output
    batch = pd.read_csv(out).set_index("lead_id")
    # the most active leads, where a skew would show
    counts = export.activities[export.activities["lead_id"].isin(batch.index)]["lead_id"].value_counts()
    ids = counts.index[:60].tolist() + batch.index.difference(counts.index)[:5].tolist()
    resp = client.post("/score", json=request_for(export, ids, as_of))
    assert resp.status_code == 200, resp.text
    api = pd.DataFrame(resp.json()).set_index("lead_id")
    np.testing.assert_allclose(api["probability"], batch.loc[ids, "probability"], rtol=0, atol=1e-9)
    assert (api["grade"] == batch.loc[ids, "grade"]).all()


def test_activities_after_as_of_are_ignored(client, demo_dir):
    export = read_export(demo_dir)
    as_of = export.data_end - pd.Timedelta(days=30)
    ids = scoring_snapshots(export, as_of)["lead_id"].head(1).tolist()
    body = request_for(export, ids, as_of)
    first = client.post("/score", json=body).json()[0]["probability"]
    body["leads"][0]["activities"].append({"occurred_at": as_of.isoformat(), "activity_type": "demo_request"})
    body["leads"][0]["activities"].append({"occurred_at": (as_of + pd.Timedelta(days=1)).isoformat(), "activity_type": "trial_signup"})
    assert client.post("/score", json=body).json()[0]["probability"] == first


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda b: b["leads"][0]["lead"].pop("lead_id"), "lead_id"),
        (lambda b: b["leads"][0]["lead"].update(created_at="not a date"), "created_at"),
        (lambda b: b["leads"][0]["lead"].update(employees=-5), "employees"),
        (lambda b: b["leads"][0]["activities"].append({"occurred_at": "2025-01-01T00:00:00"}), "activity_type"),
        (lambda b: b.update(leads=[]), "leads"),
        (lambda b: b["leads"].append(dict(b["leads"][0])), "lead_id"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(client, mutate, field):
    body = {"leads": [{"lead": {"lead_id": "X1", "created_at": "2025-01-01T00:00:00"}, "activities": []}]}
    mutate(body)
    resp = client.post("/score", json=body)
    assert 400 <= resp.status_code < 500, resp.text
    assert field in resp.text


def test_rules_answer_when_the_registry_has_no_model(trained, tmp_path, demo_dir):
    # A second ASGI app in one process would register BentoML's metrics twice, so the
    # service object is called directly here; the HTTP path is covered above.
    from serving.schemas import LeadRequest
    from serving.service import LeadScoring

    saved = os.environ["MLFLOW_TRACKING_URI"]
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'empty.db'}"
    try:
        service = LeadScoring()
    finally:
        os.environ["MLFLOW_TRACKING_URI"] = saved
        use_tracking()  # MLflow keeps the last URI globally
    assert service.__is_ready__()
    export = read_export(demo_dir)
    as_of = export.data_end
    ids = scoring_snapshots(export, as_of)["lead_id"].head(3).tolist()
    body = request_for(export, ids, as_of)
    results = service.score(leads=[LeadRequest.model_validate(x) for x in body["leads"]], as_of=as_of.to_pydatetime())
    assert [r.lead_id for r in results] == ids
    for r in results:
        assert r.scorer == "rules" and r.model_version == "rules:1"
        assert "lead-scoring@champion" in r.fallback_reason
        assert r.reasons and all("points" in x.text for x in r.reasons)


def test_reload_picks_up_a_new_champion_and_keeps_the_model_if_it_cannot(trained, tmp_path):
    from serving.service import LeadScoring

    saved = os.environ["MLFLOW_TRACKING_URI"]
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'empty.db'}"
    try:
        service = LeadScoring()
        assert service.scorer.name == "rules"
        os.environ["MLFLOW_TRACKING_URI"] = saved  # the champion appears (promoted elsewhere)
        answer = service.reload()
        assert answer["changed"] and answer["scorer"] == "model"
        assert answer["model_version"] == trained["promotion"]["champion_after"]
        assert service.scorer.name == "model" and service.fallback_reason is None
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'empty.db'}"  # registry loses it
        kept = service.reload()
        assert not kept["changed"] and kept["model_version"] == answer["model_version"] and "champion" in kept["reason"]
        assert service.scorer.name == "model"
    finally:
        os.environ["MLFLOW_TRACKING_URI"] = saved
        use_tracking()  # MLflow keeps the last URI globally
