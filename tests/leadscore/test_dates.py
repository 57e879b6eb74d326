"""One date parser: ISO 8601 always, dd.mm.yyyy only with LEADSCORE_DATE_FORMAT=de, never a guess;
and the CLI's date options and left-out leads."""

from datetime import datetime

import pandas as pd
import pytest
from typer.testing import CliRunner

from leadscore.cli import app
from leadscore.config.dates import DateError, parse_datetime
from leadscore.config.settings import Settings
from tests.helpers import tiny_export


@pytest.mark.parametrize("text, expected", [
    ("2026-06-03", datetime(2026, 6, 3)),
    ("2026-06-03T14:05", datetime(2026, 6, 3, 14, 5)),
    ("2026-06-03 14:05:09", datetime(2026, 6, 3, 14, 5, 9)),
    ("2026-06-03T14:05:09.25", datetime(2026, 6, 3, 14, 5, 9, 250_000)),
    ("2026-06-03T14:05:09.123456789", datetime(2026, 6, 3, 14, 5, 9, 123_456)),  # cut to µs, as pydantic did
    # offsets: converted to UTC, then dropped (the code's naive UTC)
    ("2026-06-03T14:05:00Z", datetime(2026, 6, 3, 14, 5)),
    ("2026-06-03T14:05:00+02:00", datetime(2026, 6, 3, 12, 5)),
    ("2026-06-03T01:30:00+0200", datetime(2026, 6, 2, 23, 30)),
    ("2026-06-03T22:00:00-05", datetime(2026, 6, 4, 3, 0)),
    ("  2026-06-03  ", datetime(2026, 6, 3)),
])
def test_iso_dates_and_offsets(text, expected):
    for date_format in ("iso", "de"):
        assert parse_datetime(text, date_format) == expected


def test_german_dates_only_under_de():
    assert parse_datetime("03.06.2026", "de") == datetime(2026, 6, 3)  # 3 June, not March 6
    assert parse_datetime("3.6.2026 14:05", "de") == datetime(2026, 6, 3, 14, 5)
    assert parse_datetime("03.06.2026 14:05:09", "de") == datetime(2026, 6, 3, 14, 5, 9)
    with pytest.raises(DateError) as err:
        parse_datetime("03.06.2026", "iso", "--as-of")
    message = str(err.value)
    assert "--as-of" in message and "'03.06.2026'" in message and "ISO 8601" in message
    assert "LEADSCORE_DATE_FORMAT=de" in message  # says the German format exists


@pytest.mark.parametrize("date_format", ["iso", "de"])
@pytest.mark.parametrize("text, why", [
    ("06/03/2026", "slashes"),
    ("2026/06/03", "slashes"),
    ("03.06.26", "two-digit year"),
    ("2026-13-01", "month must be in 1..12"),
    ("2025-02-30", "day is out of range"),
    ("2026-06-03T25:00", "hour must be in 0..23"),
    ("2026-06-03T10:00+25:00", "offset"),
    ("1714000000", "expected an ISO 8601"),  # a Unix timestamp: seconds or milliseconds?
    ("20260603", "expected an ISO 8601"),
    ("June 3, 2026", "expected an ISO 8601"),
    ("now", "expected an ISO 8601"),
    ("", "expected an ISO 8601"),
    ("1600-01-01", "between 1678 and 2261"),
])
def test_everything_else_is_refused_naming_input_and_expectation(text, why, date_format):
    with pytest.raises(DateError) as err:
        parse_datetime(text, date_format, "created_at")
    message = str(err.value)
    assert message.startswith("created_at: expected") and repr(text) in message and why in message, message
    if "expected an ISO" in message:
        assert ("dd.mm.yyyy, optionally" if date_format == "de" else "LEADSCORE_DATE_FORMAT=de") in message, message


def test_an_impossible_german_date_is_refused():
    with pytest.raises(DateError, match="day is out of range"):
        parse_datetime("31.02.2026", "de")


def test_the_setting_is_read_from_the_environment(monkeypatch):
    assert Settings().date_format == "iso"
    monkeypatch.setenv("LEADSCORE_DATE_FORMAT", "de")
    assert Settings().date_format == "de"
    monkeypatch.setenv("LEADSCORE_DATE_FORMAT", "us")
    with pytest.raises(ValueError):
        Settings()


# --- the CLI


def _score(tmp_path, as_of, *extra):
    export = tiny_export(tmp_path / "export")
    out = tmp_path / "scores.csv"
    # No model folder there: the rules answer, so no registry is touched.
    result = CliRunner().invoke(app, ["score", "--data", str(export), "--as-of", as_of, "--out", str(out),
                                      "--model-dir", str(tmp_path / "no-model"), *extra])
    return result, " ".join(result.output.split()), out


def test_cli_refuses_a_german_date_under_iso_and_reads_it_under_de(tmp_path, monkeypatch):
    monkeypatch.delenv("LEADSCORE_DATE_FORMAT", raising=False)
    result, output, out = _score(tmp_path, "20.01.2025")
    assert result.exit_code == 2 and "--as-of" in output and "'20.01.2025'" in output, output
    assert "LEADSCORE_DATE_FORMAT=de" in output and "Traceback" not in output and not out.exists()

    monkeypatch.setenv("LEADSCORE_DATE_FORMAT", "de")
    result, output, out = _score(tmp_path, "20.01.2025")
    assert result.exit_code == 0, output
    assert set(pd.read_csv(out)["as_of"]) == {"2025-01-20T00:00:00"}


@pytest.mark.parametrize("text", ["01/20/2025", "20.01.25", "2025-13-01", "tomorrow"])
def test_cli_refuses_ambiguous_or_impossible_dates(tmp_path, monkeypatch, text):
    monkeypatch.setenv("LEADSCORE_DATE_FORMAT", "de")
    result, output, _ = _score(tmp_path, text)
    assert result.exit_code == 2 and repr(text) in output and "expected" in output, output


def test_cli_as_of_offset_is_converted_to_utc(tmp_path):
    result, output, out = _score(tmp_path, "2025-01-20T01:00:00+02:00")
    assert result.exit_code == 0, output
    assert set(pd.read_csv(out)["as_of"]) == {"2025-01-19T23:00:00"}


def test_cli_counts_and_names_the_leads_it_leaves_out(tmp_path):
    # L3 is created on 2025-02-01, after this as_of: left out, and said so.
    result, output, out = _score(tmp_path, "2025-01-20")
    assert result.exit_code == 0, output
    assert sorted(pd.read_csv(out)["lead_id"]) == ["L1", "L2"]
    assert "1 lead(s) created after --as-of 2025-01-20T00:00:00 left out" in output
    # By 2025-02-20 L1 has an opportunity (2025-02-15): left out as already with sales.
    result, output, out = _score(tmp_path, "2025-02-20")
    assert result.exit_code == 0, output
    assert sorted(pd.read_csv(out)["lead_id"]) == ["L2", "L3"]
    assert "1 lead(s) with an opportunity before --as-of left out" in output and "created after" not in output


def test_cli_since_is_parsed_by_the_same_rules(tmp_path, monkeypatch):
    monkeypatch.delenv("LEADSCORE_DATE_FORMAT", raising=False)
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: x\n")
    result = CliRunner().invoke(app, ["retrain", "--spec", str(spec), "--since", "05.12.2017"])
    output = " ".join(result.output.split())
    assert result.exit_code == 2 and "--since" in output and "'05.12.2017'" in output, output
