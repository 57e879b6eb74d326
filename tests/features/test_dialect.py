"""CSV as offices save it (``features/dialect.py``), issue 18.

On main a German Excel CSV (``;``, Windows-1252, decimal comma, ``dd.mm.yyyy``) was unreadable
with no hint what was wrong (one column holding whole lines), and a decimal-comma ``amount`` was
silently dropped to NaN.
"""

from __future__ import annotations

import pandas as pd
import pytest

from leadscore.features.contract import ContractError, read_export
from leadscore.features.dialect import CsvOptions, DialectError, read_office_csv


def save_as_german_excel(export_dir, out_dir, *, encoding="cp1252", bom=False, date_format="%d.%m.%Y %H:%M",
                         sep=";"):
    """The demo export as a German Excel saves it: ';', decimal comma, day-first dates, Windows-1252."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("leads", "activities", "opportunities"):
        frame = pd.read_csv(export_dir / f"{name}.csv", dtype=str, keep_default_na=False)
        for col in frame.columns:
            if col.endswith("_at"):
                stamps = pd.to_datetime(frame[col].replace("", None), format="ISO8601")
                frame[col] = stamps.dt.strftime(date_format).fillna("")
            elif col in ("annual_revenue", "amount"):
                numbers = pd.to_numeric(frame[col].replace("", None))
                # Excel shows thousands groups and a decimal comma: 1.234.567,5
                frame[col] = numbers.map(lambda v: "" if pd.isna(v) else f"{v:,.2f}".replace(",", "X")
                                         .replace(".", ",").replace("X", "."))
        text = frame.to_csv(index=False, sep=sep)
        data = text.encode(encoding, errors="strict")
        (out_dir / f"{name}.csv").write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return out_dir


def _table(tmp_path, name, text: str, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_german_excel_csv_builds_the_identical_training_set(demo_dir, params, tmp_path):
    """Round trip: the demo export saved as German Excel CSV gives the same tables and training set."""
    from leadscore.training.dataset import build_dataset

    german = save_as_german_excel(demo_dir, tmp_path / "de")
    assert ";" in (german / "leads.csv").read_bytes().decode("cp1252").splitlines()[0]
    plain, read = read_export(demo_dir), read_export(german)
    assert set(read.dialects) == {"leads", "activities", "opportunities"}
    assert "windows-1252" in read.dialects["leads"] and "semicolon" in read.dialects["leads"]
    assert "decimal comma" in read.dialects["opportunities"] and "amount" in read.dialects["opportunities"]
    for name in ("leads", "activities", "opportunities"):
        a, b = getattr(plain, name), getattr(read, name)
        pd.testing.assert_frame_equal(a.reset_index(drop=True), b[a.columns].reset_index(drop=True),
                                      check_exact=False, rtol=1e-9)
    assert read.dropped == plain.dropped and len(read.problems) == len(plain.problems)
    build_dataset(plain, params, tmp_path / "ds_plain")
    build_dataset(read, params, tmp_path / "ds_de")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "ds_plain" / "snapshots.parquet"),
                                  pd.read_parquet(tmp_path / "ds_de" / "snapshots.parquet"))


@pytest.mark.parametrize(("encoding", "bom"), [("utf-8", True), ("utf-8", False), ("cp1252", False)])
@pytest.mark.parametrize("sep", [";", "\t", ","])
def test_delimiter_and_encoding_are_detected_and_reported(tmp_path, encoding, bom, sep):
    rows = [["lead_id", "company", "annual_revenue", "created_at"],
            ["L1", "Müller & Söhne GmbH", "1.250.000,50" if sep != "," else "1250000.50", "04.12.2025 09:30"],
            ["L2", "Bäckerei Weiß", "980,00" if sep != "," else "980.00", "13.01.2026"]]
    text = "\n".join(sep.join(f'"{c}"' if sep in c else c for c in r) for r in rows) + "\n"
    path = tmp_path / "leads.csv"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode(encoding))
    frame, dialect = read_office_csv(path)
    assert dialect.delimiter == sep and dialect.bom is bom
    assert dialect.encoding == ("windows-1252" if encoding == "cp1252" else "utf-8")
    assert frame["company"].tolist() == ["Müller & Söhne GmbH", "Bäckerei Weiß"]
    assert pd.to_numeric(frame["annual_revenue"]).tolist() == [1250000.5, 980.0]
    assert frame["created_at"].tolist() == ["2025-12-04T09:30:00", "2026-01-13T00:00:00"]


def test_a_decimal_comma_amount_is_read_not_dropped(tmp_path):
    """On main `amount` '12.500,75' became NaN without a word."""
    path = _table(tmp_path, "opportunities.csv", "lead_id;amount\nL1;12.500,75\nL2;800\nL3;\n")
    frame, dialect = read_office_csv(path)
    assert dialect.decimal == "," and dialect.number_columns == ("amount",)
    assert frame["amount"].tolist()[:2] == ["12500.75", "800"] and pd.isna(frame["amount"].iloc[2])


def test_point_decimals_and_thousand_groups_are_not_mistaken_for_commas(tmp_path):
    path = _table(tmp_path, "leads.csv", "lead_id,annual_revenue,employees\nL1,1234.5,12\nL2,99.25,1200\n")
    frame, dialect = read_office_csv(path)
    assert dialect.decimal == "." and dialect.plain
    assert frame["annual_revenue"].tolist() == ["1234.5", "99.25"]


@pytest.mark.parametrize(("values", "order", "first"), [
    (["12/25/2025", "1/2/2026"], "mdy", "2025-12-25T00:00:00"),    # 25 can only be a day: US order
    (["25/12/2025", "1/2/2026"], "dmy", "2025-12-25T00:00:00"),    # day first
    (["1/31/2026 2:05 PM", "2/1/2026 9:00 AM"], "mdy", "2026-01-31T14:05:00"),
])
def test_slash_dates_are_read_only_in_the_order_the_values_prove(tmp_path, values, order, first):
    path = _table(tmp_path, "activities.csv", "lead_id,occurred_at\n" + "\n".join(f"L{i},{v}" for i, v in enumerate(values)))
    frame, dialect = read_office_csv(path)
    assert frame["occurred_at"].iloc[0] == first
    assert dialect.date_columns == (("occurred_at", "dd/mm/yyyy" if order == "dmy" else "m/d/yyyy"),)


def test_ambiguous_slash_dates_are_an_error_naming_the_column_and_the_setting(tmp_path):
    path = _table(tmp_path, "activities.csv", "lead_id,occurred_at\nL1,04/12/2026\nL2,03/11/2026\n")
    with pytest.raises(DialectError) as err:
        read_office_csv(path)
    assert err.value.column == "occurred_at" and "LEADSCORE_CSV_DATE_ORDER" in str(err.value)
    frame, _ = read_office_csv(path, CsvOptions(date_order="dmy"))
    assert frame["occurred_at"].tolist() == ["2026-12-04T00:00:00", "2026-11-03T00:00:00"]


def test_ambiguous_dates_in_an_export_are_a_contract_problem_not_a_traceback(demo_dir, tmp_path):
    folder = tmp_path / "export"
    folder.mkdir()
    for name in ("leads", "opportunities"):
        (folder / f"{name}.csv").write_bytes((demo_dir / f"{name}.csv").read_bytes())
    acts = pd.read_csv(demo_dir / "activities.csv", dtype=str).head(50)
    acts["occurred_at"] = "04/05/2026"
    acts.to_csv(folder / "activities.csv", index=False)
    with pytest.raises(ContractError) as err:
        read_export(folder)
    problem = err.value.problems[0]
    assert problem.column == "occurred_at" and problem.file.endswith("activities.csv")
    assert "LEADSCORE_CSV_DATE_ORDER" in problem.found


def test_settings_override_detection(tmp_path, monkeypatch):
    path = _table(tmp_path, "leads.csv", "lead_id|x\nL1|a\n")
    frame, dialect = read_office_csv(path, CsvOptions(delimiter="|"))  # not one it sniffs, but allowed when set
    assert list(frame.columns) == ["lead_id", "x"]
    bad = tmp_path / "latin.csv"
    bad.write_bytes("lead_id\nMüller\n".encode("cp1252"))
    with pytest.raises(DialectError) as err:
        read_office_csv(bad, CsvOptions(encoding="utf-8"))
    assert "LEADSCORE_CSV_ENCODING" in str(err.value)
