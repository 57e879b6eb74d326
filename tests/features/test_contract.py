from pathlib import Path

import pandas as pd
import pytest

from leadscore.features.contract import ContractError, read_export
from tests.helpers import tiny_export


def _rewrite(folder: Path, table: str, edit) -> None:
    path = folder / f"{table}.csv"
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    edit(df)
    df.to_csv(path, index=False)


def test_clean_export_reads_without_problems(tmp_path):
    export = read_export(tiny_export(tmp_path / "x"))
    assert export.problems == []
    assert export.dropped == {"leads": 0, "activities": 0, "opportunities": 0}
    assert len(export.leads) == 3 and len(export.activities) == 5 and len(export.opportunities) == 2
    assert str(export.leads["created_at"].dtype) == "datetime64[ns]"


def test_missing_table_is_fatal_and_named(tmp_path):
    folder = tiny_export(tmp_path / "x")
    (folder / "opportunities.csv").unlink()
    with pytest.raises(ContractError) as err:
        read_export(folder)
    assert "opportunities" in str(err.value) and "no such file" in str(err.value)


def test_missing_required_column_is_fatal_and_named(tmp_path):
    folder = tiny_export(tmp_path / "x")
    _rewrite(folder, "activities", lambda df: df.drop(columns=["occurred_at"], inplace=True))
    with pytest.raises(ContractError) as err:
        read_export(folder)
    assert "activities.csv" in str(err.value) and "'occurred_at'" in str(err.value)


def test_bad_lead_rows_are_reported_with_row_and_dropped(tmp_path):
    folder = tiny_export(tmp_path / "x")

    def edit(df):
        df.loc[1, "created_at"] = "yesterday"
        df.loc[2, "lead_id"] = "L1"  # duplicate
        df.loc[0, "employees"] = "many"

    _rewrite(folder, "leads", edit)
    export = read_export(folder)
    messages = [str(p) for p in export.problems]
    assert any("leads.csv row 2, column 'created_at'" in m and "'yesterday'" in m for m in messages)
    assert any("row 3, column 'lead_id'" in m and "unique" in m for m in messages)
    # A bad number blanks the cell but keeps the lead.
    assert any("row 1, column 'employees'" in m and "'many'" in m for m in messages)
    assert export.dropped["leads"] == 2
    assert export.leads["lead_id"].tolist() == ["L1"]
    assert pd.isna(export.leads.loc[0, "employees"])


def test_bad_activity_rows_are_counted(tmp_path):
    folder = tiny_export(tmp_path / "x")

    def edit(df):
        df.loc[0, "lead_id"] = "L999"
        df.loc[1, "occurred_at"] = "2025-13-45"
        df.loc[3, "activity_type"] = ""

    _rewrite(folder, "activities", edit)
    export = read_export(folder)
    assert export.dropped["activities"] == 3
    assert len(export.activities) == 2
    messages = [str(p) for p in export.problems]
    assert any("row 1, column 'lead_id'" in m and "'L999'" in m for m in messages)
    assert any("row 2, column 'occurred_at'" in m for m in messages)
    assert any("row 4, column 'activity_type'" in m and "empty" in m for m in messages)


def test_bad_opportunity_rows_are_counted(tmp_path):
    folder = tiny_export(tmp_path / "x")

    def edit(df):
        df.loc[0, "stage"] = "maybe"
        df.loc[1, "closed_at"] = ""  # lost without a close date

    _rewrite(folder, "opportunities", edit)
    export = read_export(folder)
    messages = [str(p) for p in export.problems]
    assert any("row 1, column 'stage'" in m and "open, won, lost" in m and "'maybe'" in m for m in messages)
    assert any("row 2, column 'closed_at'" in m and "close date" in m for m in messages)
    assert export.dropped["opportunities"] == 2 and export.opportunities.empty


def test_parquet_tables_are_read(tmp_path):
    folder = tiny_export(tmp_path / "x")
    for name in ("leads", "activities", "opportunities"):
        df = pd.read_csv(folder / f"{name}.csv")
        df.to_parquet(folder / f"{name}.parquet")
        (folder / f"{name}.csv").unlink()
    export = read_export(folder)
    assert len(export.leads) == 3 and export.problems == []


def test_future_timestamps_are_reported_and_dropped(tmp_path):
    folder = tiny_export(tmp_path / "x")
    _rewrite(folder, "activities", lambda df: df.__setitem__("occurred_at", df["occurred_at"].where(df.index != 2, "2099-01-01T00:00:00")))
    export = read_export(folder)
    assert export.dropped["activities"] == 1
    [problem] = export.problems
    assert problem.row == 3 and problem.column == "occurred_at" and "not in the future" in problem.expected
    # a date no clock can mean is a typo: reported as such, never a crash
    _rewrite(folder, "leads", lambda df: df.__setitem__("created_at", df["created_at"].where(df.index != 1, "2999-01-01T00:00:00")))
    typo = read_export(folder)
    assert any(p.row == 2 and p.column == "created_at" and "years 1678" in p.expected and "2999" in p.found for p in typo.problems)
    # judged against the reading time: an export read "in 2025" sees 2025-03-30 as the future
    early = read_export(folder, now=pd.Timestamp("2025-03-01"))
    assert early.dropped["opportunities"] == 2  # both deals close after 2025-03-01


def test_a_database_url_reads_like_the_files(tmp_path):
    import sqlalchemy as sa

    folder = tiny_export(tmp_path / "x")
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    engine = sa.create_engine(url)
    for name in ("leads", "activities", "opportunities"):
        pd.read_csv(folder / f"{name}.csv").to_sql(name, engine, index=False)
    engine.dispose()
    from_db, from_files = read_export(url), read_export(folder)
    for name in ("leads", "activities", "opportunities"):
        pd.testing.assert_frame_equal(getattr(from_db, name), getattr(from_files, name), check_dtype=False)
    assert from_db.files["leads"].endswith("table leads")


def test_a_database_without_a_table_names_it(tmp_path):
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'crm.db'}"
    engine = sa.create_engine(url)
    pd.DataFrame({"lead_id": ["L1"], "created_at": ["2025-01-01"]}).to_sql("leads", engine, index=False)
    engine.dispose()
    with pytest.raises(ContractError) as err:
        read_export(url)
    assert "table 'activities'" in str(err.value) and "table 'opportunities'" in str(err.value)
