"""The SLA rules' live path (the API's fallback): one lead from its online feature dict, without pandas.

Performance lives in ``bench/serve_speed.py``; these tests check the mechanism (no pandas object is
built per request) and that the live answer is the pandas path's, bit for bit.
"""

from __future__ import annotations

import pandas as pd
import pytest

from leadscore.config.params import load_params
from leadscore.features.online import OnlineFeatures
from leadscore.models.rules import RuleScorer, load_rules
from leadscore.serving.live import score_rules

FEATURES = load_params().features
AS_OF_US = 1_750_000_000_000_000  # 2025-06-15T15:06:40
DAY_US = 86_400_000_000


@pytest.fixture(scope="module")
def scorer() -> RuleScorer:
    return RuleScorer(load_rules(), FEATURES)


def _lead(lead_id: str = "X1", **profile) -> dict[str, object]:
    base = {"lead_id": lead_id, "created_at": pd.Timestamp("2025-01-01"), "email": "anna@acme.de",
            "company": "Acme", "industry": "software", "employees": 500.0, "annual_revenue": float("nan"),
            "country": "DE", "job_title": "Geschäftsführerin", "lead_source": "webinar", "budget_confirmed": "yes"}
    return base | profile


@pytest.fixture()
def no_pandas_objects(monkeypatch):
    """Building a DataFrame or a Series raises: what the live path must never need."""
    def refuse(self, *args, **kwargs):
        raise AssertionError(f"the live rules path built a pandas {type(self).__name__}")

    def apply():
        monkeypatch.setattr(pd.DataFrame, "__init__", refuse)
        monkeypatch.setattr(pd.Series, "__init__", refuse)

    return apply


def test_live_rules_build_no_pandas_objects(scorer, no_pandas_objects):
    online = OnlineFeatures(scorer.spec)
    activities = [(AS_OF_US - 3 * DAY_US, "demo_request", "web"), (AS_OF_US - 40 * DAY_US, "pricing_page_view", "web")]
    leads = [(_lead(), activities), (_lead("X2", job_title="Werkstudent", email="x@gmail.com"), [])]
    no_pandas_objects()
    results, raws = score_rules(scorer, online, leads, AS_OF_US, 3, "en")
    assert [r.lead_id for r in results] == ["X1", "X2"] and len(raws) == 2
    assert results[1].grade == "D"  # the student exclusion still fires
