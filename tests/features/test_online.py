"""The one-lead live path (``features.online``) equals the batch path, bit for bit."""

import math
import random

import numpy as np
import pandas as pd
import pytest

from leadscore.features.build import _email_domain, compute_features, encode_matrix, infer_spec, learn_categories
from leadscore.features.contract import read_export
from leadscore.features.online import (
    OnlineFeatures,
    activity_lists,
    as_of_micros,
    email_domain,
    profile_dicts,
    to_number,
)
from leadscore.features.snapshots import scoring_snapshots
from leadscore.features.spec import DAY_US, decayed_name, layout
from tests.helpers import tiny_export, training_features


def _online(spec, leads, activities, snaps):
    """(raw records, matrix) of the online path for every (lead_id, as_of) row of ``snaps``."""
    online = OnlineFeatures(spec)
    profiles, acts = profile_dicts(leads), activity_lists(activities)
    raws, rows = [], []
    for lead_id, as_of in zip(snaps["lead_id"], snaps["as_of"]):
        raw, row = online.features(profiles[lead_id], acts.get(lead_id, []), as_of_micros(as_of))
        raws.append(raw)
        rows.append(row)
    return raws, np.vstack(rows)


def _same(a, b) -> bool:
    """Equal values of one raw feature: NaN equals NaN, text equals text, None equals None."""
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    if a is None or isinstance(a, str):
        return type(a) is type(b) and a == b
    return isinstance(b, float) and a == b


def _assert_parity(spec, leads, activities, snaps):
    batch_raw = compute_features(snaps, leads, activities, spec)
    batch = encode_matrix(batch_raw, spec)
    raws, online = _online(spec, leads, activities, snaps)
    assert online.shape == batch.shape == (len(snaps), len(spec.features))
    diff = ~((online == batch) | (np.isnan(online) & np.isnan(batch)))
    assert not diff.any(), [(int(i), spec.names[j], batch[i, j], online[i, j]) for i, j in np.argwhere(diff)[:5]]
    assert np.array_equal(online, batch, equal_nan=True)
    wrong = [
        (i, name, expected[name], got[name])
        for i, (expected, got) in enumerate(zip(batch_raw.to_dict("records"), raws))
        for name in spec.names
        if not _same(expected[name], got[name])
    ]
    assert not wrong, wrong[:5]
    assert all(list(r) == spec.names for r in raws)
    return batch_raw, online


def _asking_decayed_counts(spec, asked):
    """``spec`` with decayed counts asked for (as the SLA rules may), laid out again."""
    spec.decayed_counts = asked
    spec.features = layout(spec)
    return spec


# A window beyond the longest count window, and a type outside the vocabulary (always 0).
DECAYED = [["pricing_page_view", 30, 14], ["demo_request", 90, 30], ["page_view", 30, 7.5],
           ["email_open", 7, 30], ["podcast_listen", 30, 14]]


# --- the demo export: every open lead at one moment, and training snapshots at many moments


@pytest.fixture(scope="module")
def demo(demo_dir, params):
    export = read_export(demo_dir)
    spec = _asking_decayed_counts(infer_spec(export.leads, export.activities, params.features), DECAYED)
    snaps, spec, _ = training_features(export, params, spec)
    return export, snaps, spec


def test_online_equals_batch_on_the_demo_export(demo):
    export, training, spec = demo
    open_leads = scoring_snapshots(export, export.data_end - pd.Timedelta(days=20))
    # Training snapshots add other moments: as_of at creation, mid-nurture, after a lead went quiet.
    moments = training.sample(1500, random_state=3)[["lead_id", "as_of"]]
    snaps = pd.concat([open_leads, moments], ignore_index=True)
    assert open_leads["lead_id"].nunique() >= 1000
    raw, X = _assert_parity(spec, export.leads, export.activities, snaps)
    # The comparison covers what can go wrong: unseen levels, leads without activity, decayed sums.
    names = spec.names
    assert np.isnan(X[:, names.index("crm_system")]).any()
    assert (raw["activities_90d"] == 0).any() and (raw["activities_90d"] > 10).any()
    assert (raw["engagement"] % 1 != 0).any() and (raw["channels_90d"] > 1).any()
    assert (raw["has_unsubscribed"] == 1).any() and (raw["hand_raisers_90d"] > 0).any()
    assert raw["is_competitor"].eq(1).any() and raw["is_free_mail"].eq(1).any()
    for t, w, h in DECAYED[:-1]:
        assert (raw[decayed_name(t, w, h)] % 1 != 0).any()


# --- a small hand-made export with every edge case


AS_OF = pd.Timestamp("2025-02-10T12:00:00")


@pytest.fixture()
def edge(tmp_path, params):
    """The tiny export plus leads and activities made to hit each rule of the activity aggregation."""
    export = read_export(tiny_export(tmp_path / "x"))
    cfg = params.features.model_copy(update={"column_types": {"seats": "numeric"}})
    base = export.leads.assign(seats=["12", None, "3.5"])  # a numeric profile column, as text
    extra = pd.DataFrame([
        # no activities at all; a category never seen in training; odd but valid e-mail domains
        {"lead_id": "L4", "created_at": pd.Timestamp("2025-01-20"), "email": "x@mail.scorely.io", "industry": "aerospace",
         "employees": 20000.0, "country": "jp", "job_title": "VP Sales", "lead_source": "fair", "seats": " 42 "},
        # every other profile field missing; numeric text pandas cannot read
        {"lead_id": "L5", "created_at": pd.Timestamp("2025-02-01"), "email": "ops@web.de", "seats": "abc"},
        {"lead_id": "L6", "created_at": pd.Timestamp("2025-02-01"), "email": " A.B@GMAIL.COM ", "seats": True},
        {"lead_id": "L7", "created_at": pd.Timestamp("2025-02-01"), "email": "a@", "seats": "-0", "employees": 0.0},
        {"lead_id": "L8", "created_at": pd.Timestamp("2025-02-01"), "email": "x@b.c", "seats": "1e3"},
        {"lead_id": "L9", "created_at": pd.Timestamp("2025-02-01"), "email": "x@notscorely.io", "seats": 7},
        {"lead_id": "L10", "created_at": AS_OF, "email": "x@y@z.de", "seats": "inf"},
    ])
    leads = pd.concat([base, extra], ignore_index=True)

    def t(days, micro=0):
        return AS_OF - pd.Timedelta(days=days) + pd.Timedelta(microseconds=micro)

    extra_acts = pd.DataFrame([
        ("L1", AS_OF, "demo_request", "web"),  # exactly at as_of: not known yet
        ("L1", t(0, 1), "trial_signup", "web"),  # one µs later: ignored
        ("L1", t(0, -1), "contact_form", "event"),  # one µs before: counted
        ("L1", t(7), "podcast_listen", "web"),  # unknown type, exactly 7 days old: in activities_7d
        ("L1", t(7, -1), "email_open", "email"),  # one µs over 7 days: 30d only
        ("L1", t(90), "pricing_page_view", "fax"),  # unknown channel: not counted
        ("L1", t(90, -1), "webinar_attendance", "social"),  # over the longest window
        ("L1", t(200), "unsubscribe", "email"),  # old, but has_unsubscribed looks at all history
        ("L1", t(1), "sales_call", "phone"),  # sales' data: never a feature
        ("L1", t(2), "meeting", None),
        ("L5", t(3), "email_bounce", None),
        ("L5", t(3), "email_bounce", "email"),
        ("L6", t(40), "page_view", "web"),
        ("L6", t(10), "email_click", "email"),
        ("L10", AS_OF, "page_view", "web"),  # created at as_of, its only activity at as_of
    ], columns=["lead_id", "occurred_at", "activity_type", "channel"])
    activities = pd.concat([export.activities, extra_acts], ignore_index=True)
    # The vocabulary knows every type and channel above but "podcast_listen" and "fax".
    known = activities[(activities["activity_type"] != "podcast_listen") & (activities["channel"] != "fax")]
    spec = _asking_decayed_counts(infer_spec(base, known, cfg), DECAYED)
    learn = pd.DataFrame({"lead_id": base["lead_id"], "as_of": pd.Timestamp("2025-03-01")})
    spec = learn_categories(spec, compute_features(learn, base, export.activities, spec), 50)
    snaps = pd.DataFrame({"lead_id": leads["lead_id"], "as_of": AS_OF})
    return spec, leads, activities, snaps


def test_online_equals_batch_on_edge_cases(edge):
    spec, leads, activities, snaps = edge
    raw, X = _assert_parity(spec, leads, activities, snaps)
    row = dict(zip(snaps["lead_id"], raw.to_dict("records")))
    assert "podcast_listen" not in spec.activity_types and "fax" not in spec.channels and "phone" not in spec.channels
    assert {"unsubscribe", "email_bounce", "contact_form"} <= set(spec.activity_types) and "seats" in spec.profile_columns
    # What the cases are there for (so the parity above compares something):
    l1 = row["L1"]
    assert l1["contact_form_7d"] == 1 and l1["trial_signup_7d"] == 0 and l1["demo_request_90d"] == 1  # old one only
    assert l1["activities_7d"] == 2 and l1["activities_30d"] == 3 and l1["activities_90d"] == 6
    assert l1["has_unsubscribed"] == 1 and l1["channels_90d"] == 3  # web, event, email; not fax
    assert row["L4"]["activities_90d"] == 0 and row["L4"]["days_since_last_activity"] == 3650.0
    assert row["L4"]["industry"] == "aerospace" and np.isnan(X[3, spec.names.index("industry")])
    assert row["L4"]["is_competitor"] == 1 and row["L9"]["is_competitor"] == 0 and row["L6"]["is_free_mail"] == 1
    assert row["L5"]["has_bounced"] == 1 and row["L5"]["channels_90d"] == 1 and row["L5"]["seniority"] == "unknown"
    assert row["L7"]["is_free_mail"] == 0 and row["L7"]["is_competitor"] == 0
    assert [row[i]["seats"] for i in ("L4", "L6", "L7", "L8", "L9", "L10")] == [42.0, 1.0, 0.0, 1000.0, 7.0, math.inf]
    assert np.isnan(row["L5"]["seats"]) and row["L10"]["activities_90d"] == 0 and row["L10"]["lead_age_days"] == 0


def test_online_equals_batch_for_leads_without_an_email_domain(edge):
    spec, leads, activities, snaps = edge
    more = pd.DataFrame({"lead_id": ["L11", "L12"], "created_at": pd.Timestamp("2025-02-01"), "email": [None, "no address"]})
    leads = pd.concat([leads, more.astype({"email": object})], ignore_index=True)
    raws, _ = _online(spec, leads, activities, more.assign(as_of=AS_OF))
    assert all(np.isnan(r["is_free_mail"]) and np.isnan(r["is_competitor"]) for r in raws)  # online: unknown
    _assert_parity(spec, leads, activities, pd.DataFrame({"lead_id": leads["lead_id"], "as_of": AS_OF}))


def test_activities_at_or_after_as_of_and_sales_activities_change_nothing(edge):
    spec, leads, activities, snaps = edge
    online = OnlineFeatures(spec)
    profile = profile_dicts(leads)["L2"]
    as_of = as_of_micros(AS_OF)
    before = [(as_of - 3 * DAY_US, "email_click", "email")]
    _, base = online.features(profile, before, as_of)
    noise = [(as_of, "demo_request", "web"), (as_of + 1, "trial_signup", "web"), (as_of - DAY_US, "sales_call", "phone")]
    _, same = online.features(profile, before + noise, as_of)
    assert np.array_equal(base, same, equal_nan=True)
    _, changed = online.features(profile, before + [(as_of - 1, "demo_request", "web")], as_of)
    assert changed[spec.names.index("demo_request_7d")] == base[spec.names.index("demo_request_7d")] + 1


def test_a_missing_profile_key_is_a_missing_value(edge):
    spec, leads, _, _ = edge
    online = OnlineFeatures(spec)
    as_of = as_of_micros(AS_OF)
    created = pd.Timestamp("2025-02-01")
    full = {col: None for col in leads.columns} | {"lead_id": "L5", "created_at": created}
    _, row_full = online.features(full, [], as_of)
    raw_bare, row_bare = online.features({"created_at": created}, [], as_of)
    assert np.array_equal(row_full, row_bare, equal_nan=True)
    assert np.isnan(row_bare[spec.names.index("employees")]) and raw_bare["seniority"] == "unknown"
    assert np.isnan(raw_bare["is_free_mail"]) and np.isnan(raw_bare["is_competitor"]) and raw_bare["industry"] is None


# --- the scalar rules the online path restates or calls one value at a time


@pytest.mark.parametrize(
    "value",
    [" 42 ", "42", "abc", True, False, np.True_, None, np.nan, pd.NA, "", "  ", "-0", "-0.0", "+5", ".5", "5.",
     "1e3", "1E+05", "1e", "inf", " inf ", "-Infinity", "nan", "1_000", "\xa042", "\x1c42", "١٢", "0x10", "1,5",
     "12345678901234567", "0.1", "+460e99", "\t7\n", 7, -2**63 - 1, 2**64 - 1, np.int8(-3), np.float32(0.1),
     2.5, -0.0, b"42", pd.Timestamp("2025-01-01"), [1]],
)
def test_to_number_is_pandas_to_numeric_on_one_cell(value):
    expected = pd.to_numeric(pd.Series([value], dtype=object), errors="coerce").astype("float64").iloc[0]
    got = to_number(value)
    assert type(got) is float
    assert (math.isnan(got) and math.isnan(expected)) or (got == expected and math.copysign(1, got) == math.copysign(1, expected))


def test_to_number_on_random_text():
    rng = random.Random(7)
    alphabet = list("0123456789" * 3) + list("+-.eE_ \t\n") + ["\xa0", "\x1c", "i", "n", "f", "a"]
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 9))) for _ in range(3000)]
    texts += [f"{rng.choice('+- ')}{rng.randint(0, 10**rng.randint(1, 16))}.{rng.randint(0, 10**6)}" for _ in range(2000)]
    expected = pd.to_numeric(pd.Series(texts, dtype=object), errors="coerce").astype("float64").to_numpy()
    got = np.array([to_number(t) for t in texts])
    assert np.array_equal(got, expected, equal_nan=True)
    assert np.isfinite(got).sum() > 2000


@pytest.mark.parametrize(
    "email", ["a.b@acme.de", " A.B@Acme.DE ", "x@y@z.com", "no address", "@", "a@", None, np.nan, 5, "", "a@ gmx.de"]
)
def test_email_domain_is_the_batch_rule(email):
    assert email_domain(email) == _email_domain(pd.Series([email], dtype=object)).iloc[0]


def test_a_decayed_count_past_the_longest_window_is_refused(edge):
    import dataclasses

    spec = dataclasses.replace(edge[0])  # a copy: the fixture stays as it was
    with pytest.raises(ValueError, match="longest window"):
        _asking_decayed_counts(spec, [["email_open", spec.longest_window + 30, 30]])
