"""The demo export: its contract, its time rules (no leak, nothing after the end) and its realism."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from leadscore.demo import (
    COMPETITOR_DOMAINS,
    FREE_MAIL_DOMAINS,
    HAND_RAISER_TYPES,
    MARKETING_ACTIVITY_TYPES,
    SALES_ACTIVITY_TYPES,
    make_demo_export,
    write_demo_export,
)

END = pd.Timestamp("2026-06-30")
COLUMNS = {
    "leads": ["lead_id", "created_at", "email", "company", "industry", "employees", "annual_revenue", "country",
              "job_title", "lead_source", "budget_confirmed", "purchase_timeframe", "crm_system"],
    "activities": ["lead_id", "occurred_at", "activity_type", "channel", "campaign"],
    "opportunities": ["opportunity_id", "lead_id", "created_at", "closed_at", "stage", "amount"],
}
TIMESTAMPS = {"leads": ["created_at"], "activities": ["occurred_at"], "opportunities": ["created_at", "closed_at"]}
NEGATIVE_TITLE = re.compile(r"student|praktikant|\bintern\b|freelanc|freiberuf|selbstst", re.IGNORECASE)


@pytest.fixture(scope="module")
def export() -> dict[str, pd.DataFrame]:
    return make_demo_export(n_leads=3000, seed=7)


@pytest.fixture(scope="module")
def won(export) -> pd.Series:
    """Per lead (aligned with the leads table): did the lead's deal end won?"""
    opps = export["opportunities"]
    return export["leads"]["lead_id"].isin(opps.loc[opps["stage"] == "won", "lead_id"])


def _domain(emails: pd.Series) -> pd.Series:
    return emails.str.rsplit("@", n=1).str[1].str.lower()


def _negative_persona(leads: pd.DataFrame) -> pd.Series:
    domain = _domain(leads["email"])
    return (
        leads["job_title"].fillna("").str.contains(NEGATIVE_TITLE)
        | domain.isin(FREE_MAIL_DOMAINS)
        | domain.isin(COMPETITOR_DOMAINS)
    )


# ---- determinism


def test_same_seed_gives_identical_frames_and_another_seed_differs():
    first, again, other = (make_demo_export(n_leads=400, seed=s) for s in (3, 3, 4))
    for name in COLUMNS:
        pd.testing.assert_frame_equal(first[name], again[name])
    assert not first["leads"].equals(other["leads"])
    assert not first["activities"].equals(other["activities"])


# ---- contract


def test_tables_have_the_contract_columns_and_dtypes(export):
    assert set(export) == set(COLUMNS)
    for name, columns in COLUMNS.items():
        frame = export[name]
        assert list(frame.columns) == columns, name
        for col in TIMESTAMPS[name]:
            assert frame[col].dtype == "datetime64[ns]", (name, col)  # naive: a tz-aware dtype differs
        text = [c for c in columns if c not in TIMESTAMPS[name] and c not in ("employees", "annual_revenue", "amount")]
        for col in text:
            assert pd.api.types.is_string_dtype(frame[col]), (name, col, frame[col].dtype)
    leads = export["leads"]
    assert pd.api.types.is_integer_dtype(leads["employees"]) and (leads["employees"] >= 1).all()
    assert leads["annual_revenue"].dtype == "float64" and 0 < leads["annual_revenue"].isna().mean() < 0.5
    assert export["opportunities"]["amount"].dtype == "float64"
    assert (export["opportunities"]["amount"] > 0).all()


def test_ids_are_unique_and_every_reference_exists(export):
    leads, acts, opps = export["leads"], export["activities"], export["opportunities"]
    assert leads["lead_id"].is_unique and leads["lead_id"].str.fullmatch(r"L\d{6}").all()
    assert opps["opportunity_id"].is_unique
    assert opps["lead_id"].is_unique  # at most one opportunity per lead
    known = set(leads["lead_id"])
    assert acts["lead_id"].isin(known).all()
    assert opps["lead_id"].isin(known).all()
    assert leads["email"].is_unique


def test_profile_values_speak_the_domain(export):
    leads, acts = export["leads"], export["activities"]
    assert leads["country"].dropna().str.fullmatch(r"[A-Z]{2}").all()
    assert {"DE", "AT", "CH", "FR", "NL", "US", "GB", "PL"} <= set(leads["country"].dropna())
    assert set(leads["budget_confirmed"].dropna()) == {"yes", "no"}
    assert leads["budget_confirmed"].isna().any()
    assert set(leads["purchase_timeframe"].dropna()) == {"<3 months", "3-6 months", "6-12 months", ">12 months"}
    assert set(leads["lead_source"]) == {"organic_search", "paid_search", "webinar", "trade_fair", "referral",
                                         "linkedin", "content_syndication"}
    titles = set(leads["job_title"].dropna())
    assert {"Geschäftsführer", "Werkstudent Vertrieb", "Praktikant", "Freiberufler"} <= titles  # German
    assert {"CEO", "Head of Sales", "VP Engineering", "Intern", "Freelancer", "Student"} <= titles  # English
    domains = set(_domain(leads["email"]))
    assert set(COMPETITOR_DOMAINS) <= domains and set(FREE_MAIL_DOMAINS) <= domains
    assert set(acts["activity_type"]) == set(MARKETING_ACTIVITY_TYPES) | set(SALES_ACTIVITY_TYPES)
    assert 15 <= len(acts) / len(leads) <= 45


def test_people_names_appear_only_in_email(export):
    from leadscore.demo import _FIRST_NAMES, _LAST_NAMES

    names = re.compile(r"\b(?:" + "|".join(map(re.escape, _FIRST_NAMES + _LAST_NAMES)) + r")\b")
    for name, frame in export.items():
        for col in frame.columns:
            if col != "email" and pd.api.types.is_string_dtype(frame[col]):
                hits = frame[col].dropna().str.contains(names)
                assert not hits.any(), (name, col, frame.loc[hits[hits].index, col].head(3).tolist())


# ---- time


def test_nothing_happens_after_the_end_and_leads_span_two_years(export):
    leads, acts, opps = export["leads"], export["activities"], export["opportunities"]
    for stamp in (leads["created_at"], acts["occurred_at"], opps["created_at"], opps["closed_at"].dropna()):
        assert stamp.max() <= END
    assert leads["created_at"].min() >= END - pd.Timedelta(days=731)
    assert leads["created_at"].max() - leads["created_at"].min() > pd.Timedelta(days=600)
    first = acts.merge(leads[["lead_id", "created_at"]], on="lead_id")
    assert (first["occurred_at"] >= first["created_at"]).all()


def test_a_custom_end_with_a_time_of_day_is_respected():
    end = pd.Timestamp("2025-03-31 15:30")
    frames = make_demo_export(n_leads=300, seed=5, end=str(end))
    assert frames["activities"]["occurred_at"].max() <= end
    assert frames["opportunities"]["closed_at"].max() <= end
    assert frames["leads"]["created_at"].max() <= end


def test_sales_activities_only_after_the_hand_over(export):
    acts, opps = export["activities"], export["opportunities"]
    sales = acts.loc[acts["activity_type"].isin(SALES_ACTIVITY_TYPES)]
    assert len(sales) > 0
    joined = sales.merge(opps[["lead_id", "created_at"]], on="lead_id", how="left")
    assert joined["created_at"].notna().all(), "sales activity for a lead without an opportunity"
    assert (joined["occurred_at"] >= joined["created_at"]).all()


def test_stages_are_valid_and_closed_at_is_empty_iff_open(export):
    opps = export["opportunities"]
    assert set(opps["stage"]) == {"open", "won", "lost"}
    assert (opps["closed_at"].isna() == (opps["stage"] == "open")).all()
    closed = opps.dropna(subset=["closed_at"])
    days = (closed["closed_at"] - closed["created_at"]).dt.days
    assert days.between(10, 90).all()  # 2-12 weeks, give or take a weekend


# ---- realism: what a model can learn


def test_outcome_rates_are_plausible(export, won):
    leads, opps = export["leads"], export["opportunities"]
    assert 0.10 <= len(opps) / len(leads) <= 0.30
    closed = opps.loc[opps["stage"] != "open"]
    assert 0.25 <= (closed["stage"] == "won").mean() <= 0.55
    assert 0.01 < won.mean() < 0.15


def test_negative_persona_is_common_but_almost_never_wins(export, won):
    negative = _negative_persona(export["leads"])
    assert 0.08 <= negative.mean() <= 0.18
    assert won[negative].mean() < 0.2 * won[~negative].mean()


def test_fit_is_a_real_signal(export, won):
    leads = export["leads"]
    good_fit = leads["country"].isin(["DE", "AT", "CH"]) & (leads["employees"] >= 200)
    assert won[good_fit].mean() > 1.3 * won.mean()
    assert won[leads["employees"] < 10].mean() < 0.5 * won.mean()


def test_hand_raisers_precede_deals(export, won):
    acts, leads = export["activities"], export["leads"]
    raised = leads["lead_id"].isin(acts.loc[acts["activity_type"].isin(HAND_RAISER_TYPES), "lead_id"])
    assert won[raised].mean() > 2 * won[~raised].mean()


def test_the_fit_interest_matrix_is_populated(export, won):
    """High-fit leads that stay quiet and low-fit leads that are busy both exist."""
    leads, acts = export["leads"], export["activities"]
    marketing = acts.loc[~acts["activity_type"].isin(SALES_ACTIVITY_TYPES)]
    busy = leads["lead_id"].map(marketing.groupby("lead_id").size()).fillna(0) >= 20
    fits = leads["country"].isin(["DE", "AT", "CH"]) & (leads["employees"] >= 100) & ~_negative_persona(leads)
    for cell in (fits & busy, fits & ~busy, ~fits & busy, ~fits & ~busy):
        assert cell.mean() > 0.05
    assert won[fits & busy].mean() > won[~fits & ~busy].mean()


# ---- writing


def _read_back(folder, fmt: str) -> dict[str, pd.DataFrame]:
    frames = {}
    for name, columns in COLUMNS.items():
        path = folder / f"{name}.{fmt}"
        if fmt == "csv":
            frame = pd.read_csv(path, keep_default_na=False, na_values=[""])
            for col in TIMESTAMPS[name]:
                frame[col] = pd.to_datetime(frame[col], format="ISO8601")
        else:
            frame = pd.read_parquet(path)
        for col in TIMESTAMPS[name]:
            frame[col] = frame[col].astype("datetime64[ns]")
        assert list(frame.columns) == columns
        frames[name] = frame
    return frames


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_write_round_trip(tmp_path, fmt):
    folder = tmp_path / "nested" / "export"
    counts = write_demo_export(folder, n_leads=300, seed=9, fmt=fmt)
    expected = make_demo_export(n_leads=300, seed=9)
    back = _read_back(folder, fmt)
    assert counts == {name: len(back[name]) for name in COLUMNS}
    for name in COLUMNS:
        pd.testing.assert_frame_equal(back[name], expected[name], check_dtype=False)


def test_csv_uses_iso_timestamps_and_empty_close_for_open_deals(tmp_path):
    write_demo_export(tmp_path, n_leads=2000, seed=9, fmt="csv")
    text = (tmp_path / "opportunities.csv").read_text().splitlines()
    header = text[0].split(",")
    rows = [line.split(",") for line in text[1:]]
    created, closed, stage = (header.index(c) for c in ("created_at", "closed_at", "stage"))
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", r[created]) for r in rows)
    assert any(r[stage] == "open" for r in rows)
    assert all((r[closed] == "") == (r[stage] == "open") for r in rows)


def test_writing_one_format_removes_the_other(tmp_path):
    """A stale copy in the other format must not shadow the fresh one for readers."""
    write_demo_export(tmp_path, n_leads=50, seed=1, fmt="parquet")
    write_demo_export(tmp_path, n_leads=60, seed=1, fmt="csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["activities.csv", "leads.csv", "opportunities.csv"]


def test_bad_arguments_get_a_clear_message(tmp_path):
    with pytest.raises(ValueError, match="fmt must be 'csv' or 'parquet'"):
        write_demo_export(tmp_path, n_leads=10, fmt="xlsx")
    with pytest.raises(ValueError, match="n_leads must be at least 1"):
        make_demo_export(n_leads=0)
    assert not any(tmp_path.iterdir())


# --- demo-data --start / --end: a demo that ends on a chosen day (issue 18)


def _demo_cli(tmp_path, *args):
    from typer.testing import CliRunner

    from leadscore.cli import app

    return CliRunner().invoke(app, ["demo-data", str(tmp_path / "demo"), "--leads", "400", *args])


def test_demo_data_ends_and_starts_where_asked(tmp_path):
    """On main `demo-data` always ended on 2026-06-30, two years after its start."""
    import pandas as pd

    from leadscore.features.contract import read_export

    done = _demo_cli(tmp_path, "--start", "2025-09-01", "--end", "2026-12-04")
    assert done.exit_code == 0, done.output
    export = read_export(tmp_path / "demo")
    assert export.leads["created_at"].min() >= pd.Timestamp("2025-09-01")
    assert pd.Timestamp("2026-11-01") < export.data_end <= pd.Timestamp("2026-12-04")
    assert export.activities["occurred_at"].max() <= pd.Timestamp("2026-12-04")
    assert "data end 2026-12-04" in done.output


def test_demo_data_can_end_today(tmp_path):
    import pandas as pd

    from leadscore.features.contract import read_export

    before = pd.Timestamp.now(tz="UTC").tz_localize(None)
    done = _demo_cli(tmp_path, "--end", "today")
    assert done.exit_code == 0, done.output
    end = read_export(tmp_path / "demo").data_end
    assert before - pd.Timedelta(days=14) < end <= pd.Timestamp.now(tz="UTC").tz_localize(None)


@pytest.mark.parametrize(("args", "said"), [
    (["--start", "2026-06-01", "--end", "2026-06-30"], "start: expected at least 60 days before end (2026-06-30), found 2026-06-01 (29 days)"),
    (["--end", "2026-13-01"], "--end"),
    (["--end", "12/04/2026"], "--end"),
])
def test_demo_data_refuses_impossible_dates(tmp_path, args, said):
    done = _demo_cli(tmp_path, *args)
    assert done.exit_code == 2 and said in " ".join(done.output.split()), done.output
    assert "Traceback" not in done.output and not (tmp_path / "demo").exists()
