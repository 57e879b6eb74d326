"""Multi-touch attribution: every credit of a small hand-made export computed by hand, plus the demo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leadscore.features.contract import read_export
from leadscore.training.attribution import MODELS, attribute, attribution_table, touch_weights, write_attribution

SALES = ("sales_call", "meeting", "proposal_sent")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DAY_US = 86_400 * 1_000_000


def _write_export(folder: Path) -> Path:
    """Four won deals (A, B: 2025Q1; C, D: 2025Q3), one lost deal (E).

    A (opp created 2025-02-01, amount 10,000): touches 28, 14 and 7 days before the hand-over;
      a sales call before it and a web visit after it are not touches.
    B (opp created 2025-03-01, amount 30,000): touches 14 and 7 days before; one exactly at the
      hand-over is not "before" it.
    C (opp created 2025-05-01, no amount): touches 28, 21, 14, 7 days before, the last without a
      channel; an e-mail after the hand-over is ignored.
    D (opp created 2025-06-01, amount 5,000): only a sales meeting and a touch after the hand-over,
      so no touch at all.
    E: a touch, then a lost deal: never credited.
    """
    folder.mkdir(parents=True, exist_ok=True)
    leads = pd.DataFrame({"lead_id": list("ABCDE"), "created_at": "2024-12-01T00:00:00"})
    acts = [
        # lead, occurred_at, type, channel, campaign
        ("A", "2025-01-04T00:00:00", "email_click", "email", "Newsletter Q1"),     # 28 days before
        ("A", "2025-01-18T00:00:00", "page_view", "web", "Google Ads"),            # 14 days before
        ("A", "2025-01-25T00:00:00", "webinar_attendance", "email", "Webinar Jan"),  # 7 days before
        ("A", "2025-01-28T00:00:00", "Sales_Call", "phone", "Outbound"),           # sales: ignored
        ("A", "2025-02-10T00:00:00", "page_view", "web", "Google Ads"),            # after hand-over: ignored
        ("B", "2025-02-15T00:00:00", "webinar_attendance", "event", "Messe 2025"),  # 14 days before
        ("B", "2025-02-22T00:00:00", "page_view", "web", ""),                      # 7 days, campaign (none)
        ("B", "2025-03-01T00:00:00", "pricing_page_view", "web", "Google Ads"),    # at hand-over: ignored
        ("C", "2025-04-03T00:00:00", "webinar_attendance", "event", "Messe 2025"),  # 28 days before
        ("C", "2025-04-10T00:00:00", "email_open", "email", "Newsletter Q1"),      # 21 days before
        ("C", "2025-04-17T00:00:00", "page_view", "web", "Google Ads"),            # 14 days before
        ("C", "2025-04-24T00:00:00", "email_click", "", "Newsletter Q1"),          # 7 days, channel (none)
        ("C", "2025-05-05T00:00:00", "email_open", "email", "Newsletter Q1"),      # after hand-over: ignored
        ("D", "2025-05-20T00:00:00", "meeting", "meeting", ""),                    # sales: ignored
        ("D", "2025-06-10T00:00:00", "email_open", "email", "Newsletter Q1"),      # after hand-over: ignored
        ("E", "2025-01-10T00:00:00", "email_click", "email", "Newsletter Q1"),     # lost deal
    ]
    activities = pd.DataFrame(acts, columns=["lead_id", "occurred_at", "activity_type", "channel", "campaign"])
    opportunities = pd.DataFrame([
        ("O1", "A", "2025-02-01T00:00:00", "2025-03-15T00:00:00", "won", 10000),
        ("O2", "B", "2025-03-01T00:00:00", "2025-03-31T12:00:00", "won", 30000),
        ("O3", "C", "2025-05-01T00:00:00", "2025-07-10T00:00:00", "won", None),
        ("O4", "D", "2025-06-01T00:00:00", "2025-08-01T00:00:00", "won", 5000),
        ("O5", "E", "2025-01-20T00:00:00", "2025-02-20T00:00:00", "lost", 8000),
    ], columns=["opportunity_id", "lead_id", "created_at", "closed_at", "stage", "amount"])
    leads.to_csv(folder / "leads.csv", index=False)
    activities.to_csv(folder / "activities.csv", index=False)
    opportunities.to_csv(folder / "opportunities.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    return read_export(_write_export(tmp_path_factory.mktemp("attribution") / "export"))


# Time decay, half-life 7 days: weight 2^(-days/7), normalised per deal.
#   A: 2^-4, 2^-2, 2^-1 = 1/16, 4/16, 8/16 (sum 13/16)      -> 1/13, 4/13, 8/13
#   B: 2^-2, 2^-1       = 1/4, 2/4 (sum 3/4)                 -> 1/3, 2/3
#   C: 2^-4, 2^-3, 2^-2, 2^-1 = 1/16, 2/16, 4/16, 8/16 (15/16) -> 1/15, 2/15, 4/15, 8/15
# Position based: A (3 touches) .4/.2/.4; B (2 touches) .5/.5; C (4 touches) .4/.1/.1/.4.
# Channels: A = email, web, email; B = event, web; C = event, email, web, (none). D: (no touch).
EXPECTED_CHANNEL = {
    ("2025Q1", "email"): {"first_touch": 1, "last_touch": 1, "linear": 2 / 3, "time_decay": 1 / 13 + 8 / 13,
                          "position_based": 0.4 + 0.4},
    ("2025Q1", "web"): {"first_touch": 0, "last_touch": 1, "linear": 1 / 3 + 1 / 2, "time_decay": 4 / 13 + 2 / 3,
                        "position_based": 0.2 + 0.5},
    ("2025Q1", "event"): {"first_touch": 1, "last_touch": 0, "linear": 1 / 2, "time_decay": 1 / 3,
                          "position_based": 0.5},
    ("2025Q3", "event"): {"first_touch": 1, "last_touch": 0, "linear": 1 / 4, "time_decay": 1 / 15,
                          "position_based": 0.4},
    ("2025Q3", "email"): {"first_touch": 0, "last_touch": 0, "linear": 1 / 4, "time_decay": 2 / 15,
                          "position_based": 0.1},
    ("2025Q3", "web"): {"first_touch": 0, "last_touch": 0, "linear": 1 / 4, "time_decay": 4 / 15,
                        "position_based": 0.1},
    ("2025Q3", "(none)"): {"first_touch": 0, "last_touch": 1, "linear": 1 / 4, "time_decay": 8 / 15,
                           "position_based": 0.4},
    ("2025Q3", "(no touch)"): dict.fromkeys(MODELS, 1),
}
# Campaigns: A = Newsletter Q1, Google Ads, Webinar Jan; B = Messe 2025, (none);
# C = Messe 2025, Newsletter Q1, Google Ads, Newsletter Q1.
EXPECTED_CAMPAIGN = {
    ("2025Q1", "Newsletter Q1"): {"first_touch": 1, "last_touch": 0, "linear": 1 / 3, "time_decay": 1 / 13,
                                  "position_based": 0.4},
    ("2025Q1", "Google Ads"): {"first_touch": 0, "last_touch": 0, "linear": 1 / 3, "time_decay": 4 / 13,
                               "position_based": 0.2},
    ("2025Q1", "Webinar Jan"): {"first_touch": 0, "last_touch": 1, "linear": 1 / 3, "time_decay": 8 / 13,
                                "position_based": 0.4},
    ("2025Q1", "Messe 2025"): {"first_touch": 1, "last_touch": 0, "linear": 1 / 2, "time_decay": 1 / 3,
                               "position_based": 0.5},
    ("2025Q1", "(none)"): {"first_touch": 0, "last_touch": 1, "linear": 1 / 2, "time_decay": 2 / 3,
                           "position_based": 0.5},
    ("2025Q3", "Messe 2025"): {"first_touch": 1, "last_touch": 0, "linear": 1 / 4, "time_decay": 1 / 15,
                               "position_based": 0.4},
    ("2025Q3", "Newsletter Q1"): {"first_touch": 0, "last_touch": 1, "linear": 1 / 4 + 1 / 4,
                                  "time_decay": 2 / 15 + 8 / 15, "position_based": 0.1 + 0.4},
    ("2025Q3", "Google Ads"): {"first_touch": 0, "last_touch": 0, "linear": 1 / 4, "time_decay": 4 / 15,
                               "position_based": 0.1},
    ("2025Q3", "(no touch)"): dict.fromkeys(MODELS, 1),
}


def _as_dict(wide: pd.DataFrame) -> dict:
    return {(r["quarter"], r["key"]): {m: r[m] for m in MODELS} for _, r in wide.iterrows()}


def _assert_credits(wide: pd.DataFrame, expected: dict) -> None:
    got = _as_dict(wide)
    assert set(got) == set(expected)
    for key, models in expected.items():
        for model, value in models.items():
            assert got[key][model] == pytest.approx(value, abs=1e-12), (key, model)


def test_touch_weights_by_hand():
    t = np.array([0, 14, 21], dtype="int64") * DAY_US  # conversion at day 28: ages 28, 14, 7 days
    conv = 28 * DAY_US
    assert touch_weights(t, conv, "first_touch").tolist() == [1, 0, 0]
    assert touch_weights(t, conv, "last_touch").tolist() == [0, 0, 1]
    assert touch_weights(t, conv, "linear") == pytest.approx([1 / 3] * 3)
    assert touch_weights(t, conv, "time_decay") == pytest.approx([1 / 13, 4 / 13, 8 / 13])
    # half-life 14 days: 2^-2, 2^-1, 2^-0.5 normalised
    raw = np.array([2 ** -2, 2 ** -1, 2 ** -0.5])
    assert touch_weights(t, conv, "time_decay", half_life_days=14) == pytest.approx(raw / raw.sum())
    assert touch_weights(t, conv, "position_based") == pytest.approx([0.4, 0.2, 0.4])
    five = np.arange(5, dtype="int64") * DAY_US
    assert touch_weights(five, 10 * DAY_US, "position_based") == pytest.approx([0.4, 0.2 / 3, 0.2 / 3, 0.2 / 3, 0.4])
    for model in MODELS:
        assert touch_weights(t[:1], conv, model) == pytest.approx([1.0]), model
        assert touch_weights(t[:2], conv, model).sum() == pytest.approx(1.0), model
    assert touch_weights(t[:2], conv, "position_based") == pytest.approx([0.5, 0.5])
    # Years before the conversion with a tiny half-life: still weights, not 0/0.
    far = np.array([0, 1], dtype="int64") * 3650 * DAY_US
    assert touch_weights(far, 7300 * DAY_US, "time_decay", half_life_days=0.5) == pytest.approx([0.0, 1.0])


def test_touch_weights_reject_bad_input():
    with pytest.raises(ValueError, match="model must be one of"):
        touch_weights(np.array([0]), 1, "u_shape")
    with pytest.raises(ValueError, match="half_life_days"):
        touch_weights(np.array([0]), 1, "time_decay", half_life_days=0)
    with pytest.raises(ValueError, match="sorted"):
        touch_weights(np.array([5, 1]), 10, "linear")


def test_channel_credit_by_hand(export):
    _assert_credits(attribution_table(attribute(export, SALES)), EXPECTED_CHANNEL)


def test_campaign_credit_by_hand(export):
    _assert_credits(attribution_table(attribute(export, SALES, by="campaign")), EXPECTED_CAMPAIGN)


def test_revenue_credit_by_hand(export):
    credits = attribute(export, SALES)
    rev = {(r.quarter, r.key, r.model): r.revenue for r in credits.itertuples()}
    # Q1: A's 10,000 and B's 30,000 split like the deal credit; C has no amount (revenue 0).
    assert rev[("2025Q1", "web", "linear")] == pytest.approx(10000 / 3 + 30000 / 2)
    assert rev[("2025Q1", "email", "time_decay")] == pytest.approx(10000 * 9 / 13)
    assert rev[("2025Q1", "event", "position_based")] == pytest.approx(30000 * 0.5)
    assert rev[("2025Q1", "web", "first_touch")] == 0
    for model in MODELS:
        assert rev[("2025Q3", "(none)", model)] == 0
        assert rev[("2025Q3", "(no touch)", model)] == pytest.approx(5000)
    per_quarter = credits.groupby(["quarter", "model"])["revenue"].sum()
    assert per_quarter.xs("2025Q1", level="quarter").tolist() == pytest.approx([40000] * len(MODELS))
    assert per_quarter.xs("2025Q3", level="quarter").tolist() == pytest.approx([5000] * len(MODELS))


def test_every_deal_gives_exactly_one_credit(export):
    for by in ("channel", "campaign"):
        credits = attribute(export, SALES, by=by, half_life_days=3.0)
        assert list(credits.columns) == ["quarter", "key", "model", "deals", "revenue"]
        per_quarter = credits.groupby(["quarter", "model"])["deals"].sum()
        # Q1: A and B; Q3: C and the untouched D. The lost deal E is nowhere.
        assert per_quarter.xs("2025Q1", level="quarter").tolist() == pytest.approx([2.0] * len(MODELS))
        assert per_quarter.xs("2025Q3", level="quarter").tolist() == pytest.approx([2.0] * len(MODELS))
        assert (credits["deals"] >= 0).all()


def test_sales_types_are_a_parameter(export):
    # Without the listed sales types, D's meeting (channel meeting, 12 days before) becomes its only
    # touch. A's sales call (channel phone) stays sales' by its name (features.spec.is_sales_type).
    wide = _as_dict(attribution_table(attribute(export, [])))
    assert wide[("2025Q3", "meeting")]["first_touch"] == 1
    assert ("2025Q3", "(no touch)") not in wide
    assert not any(channel == "phone" for _, channel in wide)


def test_each_won_opportunity_of_a_lead_is_attributed_on_its_own(tmp_path):
    folder = _write_export(tmp_path / "export")
    opps = pd.read_csv(folder / "opportunities.csv")
    # A second won deal of A, created 2025-03-01: A's touch of 2025-02-10 (after O1's creation) now
    # counts too, so O6 has 4 touches: email, web, email, web -> linear 1/2 email, 1/2 web; last touch web.
    opps.loc[len(opps)] = ["O6", "A", "2025-03-01T00:00:00", "2025-04-15T00:00:00", "won", 2000]
    opps.to_csv(folder / "opportunities.csv", index=False)
    wide = _as_dict(attribution_table(attribute(read_export(folder), SALES)))
    assert wide[("2025Q2", "email")]["linear"] == pytest.approx(0.5)
    assert wide[("2025Q2", "web")]["linear"] == pytest.approx(0.5)
    assert wide[("2025Q2", "web")]["last_touch"] == 1
    assert wide[("2025Q1", "email")]["linear"] == pytest.approx(2 / 3)  # O1 unchanged


def test_attribution_table_is_wide_and_sorted(export):
    wide = attribution_table(attribute(export, SALES))
    assert list(wide.columns) == ["quarter", "key", *MODELS]
    assert wide["quarter"].tolist() == sorted(wide["quarter"])
    for _, part in wide.groupby("quarter"):
        assert part["linear"].is_monotonic_decreasing


def test_write_attribution_on_hand_made_export(export, tmp_path):
    summary = write_attribution(export, SALES, tmp_path)
    assert summary == {"deals": 4, "deals_without_touch": 1, "deals_without_amount": 1, "touches": 9,
                       "quarters": ["2025Q1", "2025Q3"], "half_life_days": 7.0}
    campaign = pd.read_csv(tmp_path / "attribution_campaign.csv", keep_default_na=False)
    _assert_credits(attribution_table(campaign), EXPECTED_CAMPAIGN)


def test_write_attribution_on_demo(tmp_path):
    from leadscore.demo import write_demo_export

    folder = tmp_path / "demo"
    write_demo_export(folder, n_leads=1500, seed=3)
    export = read_export(folder)
    out = tmp_path / "out"
    summary = write_attribution(export, SALES, out)

    won = export.opportunities.loc[export.opportunities["stage"] == "won"]
    quarters = won["closed_at"].dt.to_period("Q").astype(str)
    acts = export.activities.loc[~export.activities["activity_type"].isin(SALES)]
    # Touches counted the slow way, one deal at a time.
    touches = sum(int(((acts["lead_id"] == o.lead_id) & (acts["occurred_at"] < o.created_at)).sum())
                  for o in won.itertuples())
    untouched = sum(not ((acts["lead_id"] == o.lead_id) & (acts["occurred_at"] < o.created_at)).any()
                    for o in won.itertuples())
    assert summary["deals"] == len(won) > 20
    assert summary["touches"] == touches
    assert summary["deals_without_touch"] == untouched
    assert summary["deals_without_amount"] == int(won["amount"].isna().sum())
    assert summary["quarters"] == sorted(quarters.unique())

    for by in ("channel", "campaign"):
        credits = pd.read_csv(out / f"attribution_{by}.csv", keep_default_na=False)
        assert list(credits.columns) == ["quarter", "key", "model", "deals", "revenue"]
        deals = credits.groupby(["quarter", "model"])["deals"].sum().unstack()
        revenue = credits.groupby(["quarter", "model"])["revenue"].sum().unstack()
        for model in MODELS:
            assert deals[model].to_dict() == pytest.approx(quarters.value_counts().to_dict()), (by, model)
            expected = won["amount"].fillna(0).groupby(quarters).sum().to_dict()
            assert revenue[model].to_dict() == pytest.approx(expected), (by, model)

    png = (out / "attribution_channel.png").read_bytes()
    assert png[:8] == PNG_MAGIC
    from PIL import Image

    with Image.open(out / "attribution_channel.png") as img:
        assert img.width > 600 and img.height > 400
        colours = img.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 10
