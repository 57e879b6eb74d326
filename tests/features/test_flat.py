"""Flat exports: the dataset spec is strict, and the three shipped specs read the real files as SOURCE.md describes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from leadscore.features.flat import SpecError, load_flat, read_flat_spec

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT / "specs"
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
needs_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"shared data not found at {SHARED_DATA}")


def _write(tmp_path: Path, spec: dict, rows: list[dict] | None = None, csv: str = "leads.csv") -> Path:
    if rows is None:
        rows = [
            {"id": "a", "won": "yes", "size": "12", "industry": "software", "visits": 3, "secret": 1, "day": "2025-01-01"},
            {"id": "b", "won": "no", "size": "n/a", "industry": "n/a", "visits": 0, "secret": 0, "day": "2025-01-02"},
            {"id": "c", "won": "no", "size": "400", "industry": "retail", "visits": 7, "secret": 0, "day": "2025-01-03"},
            {"id": "c", "won": "yes", "size": "5", "industry": "retail", "visits": 1, "secret": 1, "day": "2025-01-04"},
            {"id": "d", "won": "", "size": "50", "industry": "software", "visits": 2, "secret": 0, "day": "2025-01-05"},
            {"id": "e", "won": "no", "size": "7", "industry": "retail", "visits": 2, "secret": 0, "day": "someday"},
            {"id": "f", "won": "maybe", "size": "9", "industry": "retail", "visits": 4, "secret": 1, "day": "2025-01-07"},
        ]
    pd.DataFrame(rows).to_csv(tmp_path / csv, index=False)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _spec(**changes) -> dict:
    spec = {
        "name": "tiny",
        "file": "leads.csv",
        "id_column": "id",
        "label": {"column": "won", "positive": "yes", "negative": "no"},
        "time_column": "day",
        "missing_values": ["n/a"],
        "drop": [{"column": "secret", "why": "set by sales after the call"}],
        "fit": ["size", "industry"],
        "interest": ["visits"],
    }
    spec.update(changes)
    return spec


def test_a_valid_spec_gives_typed_features_and_counts_every_dropped_row(tmp_path):
    data = load_flat(_write(tmp_path, _spec()), data_root=tmp_path)
    assert list(data.features.columns) == ["size", "industry", "visits"]
    assert data.features["size"].dtype == "float64"  # text in the CSV, but every value parses as a number
    assert isinstance(data.features["industry"].dtype, pd.CategoricalDtype)
    assert data.features["visits"].dtype == "float64"
    assert data.label.dtype == "int8"
    # a: kept; b: kept with 'n/a' → missing; c: first kept, second a duplicate id;
    # d: empty label; e: unparseable date; f: label neither yes nor no.
    assert data.ids.tolist() == ["a", "b", "c"]
    assert data.label.tolist() == [1, 0, 0]
    assert data.features["size"].isna().tolist() == [False, True, False]
    assert data.features["industry"].isna().tolist() == [False, True, False]
    assert data.time.tolist() == list(pd.to_datetime(["2025-01-01", "2025-01-02", "2025-01-03"]))
    assert data.rows_dropped.count == 4
    assert data.rows_dropped.reasons == {
        "duplicate id (first kept)": 1,
        "empty label won": 1,
        "label won neither positive nor negative": 1,
        "empty or unparseable day": 1,
    }
    assert data.groups == {"size": "fit", "industry": "fit", "visits": "interest"}
    assert data.dropped == {"secret": "set by sales after the call"}


def test_without_negative_values_every_non_positive_label_is_a_negative(tmp_path):
    spec = _spec(label={"column": "won", "positive": ["yes", "maybe"]}, time_column="row_order",
                 drop=[{"column": "secret", "why": "sales"}, {"column": "day", "why": "not used"}])
    data = load_flat(_write(tmp_path, spec), data_root=tmp_path)
    assert data.ids.tolist() == ["a", "b", "c", "e", "f"]
    assert data.label.tolist() == [1, 0, 0, 0, 1]
    assert data.time.tolist() == [0, 1, 2, 5, 6]  # positions in the file, for time-ordered splits
    assert data.rows_dropped.reasons == {"duplicate id (first kept)": 1, "empty label won": 1}


def test_column_types_override_and_per_column_missing_values(tmp_path):
    spec = _spec(column_types={"visits": "category"}, missing_values={"size": ["n/a", 400]})
    data = load_flat(_write(tmp_path, spec), data_root=tmp_path)
    assert isinstance(data.features["visits"].dtype, pd.CategoricalDtype)
    assert data.features["size"].isna().tolist() == [False, True, True]
    assert data.features["industry"].tolist()[1] == "n/a"  # markers apply to the named column only


def test_a_join_label_marks_ids_found_in_the_second_file(tmp_path):
    pd.DataFrame({"lead": ["c", "a", "zz"], "won_at": ["x", "y", "z"]}).to_csv(tmp_path / "deals.csv", index=False)
    spec = _spec(label={"join": {"file": "deals.csv", "column": "lead"}}, drop=[
        {"column": "secret", "why": "sales"}, {"column": "won", "why": "replaced by the join"},
    ])
    data = load_flat(_write(tmp_path, spec), data_root=tmp_path)
    assert dict(zip(data.ids, data.label)) == {"a": 1, "b": 0, "c": 1, "d": 0, "f": 0}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"lable": {"column": "won", "positive": "yes"}}, ["lable", "Extra inputs are not permitted"]),
        ({"label": {"column": "won", "positve": "yes"}}, ["label.positve"]),
        ({"drop": [{"column": "secret"}]}, ["drop.0.why", "Field required"]),
        ({"interest": ["visits", "size"]}, ["'size'", "fit", "interest"]),
        ({"drop": [{"column": "secret", "why": "x"}, {"column": "visits", "why": "x"}]}, ["'visits'", "drop", "interest"]),
        ({"fit": ["size", "industry", "id"]}, ["'id'", "id_column", "fit"]),
        ({"column_types": {"size": "number"}}, ["column_types.size"]),
        ({"label": {"column": "won"}}, ["label", "positive"]),
    ],
)
def test_an_invalid_spec_fails_naming_the_file_and_the_key(tmp_path, change, expected):
    path = _write(tmp_path, _spec(**change))
    with pytest.raises(SpecError) as err:
        load_flat(path, data_root=tmp_path)
    message = str(err.value)
    assert str(path) in message
    for part in expected:
        assert part in message


def test_a_column_the_spec_does_not_list_is_an_error_naming_it(tmp_path):
    path = _write(tmp_path, _spec(interest=[]))
    with pytest.raises(SpecError, match=r"column 'visits' of leads.csv is not listed"):
        load_flat(path, data_root=tmp_path)


def test_a_listed_column_missing_from_the_file_is_an_error_naming_it(tmp_path):
    path = _write(tmp_path, _spec(fit=["size", "industry", "revenue"]))
    with pytest.raises(SpecError, match=r"fit: column 'revenue' is not in leads.csv"):
        load_flat(path, data_root=tmp_path)


def test_a_numeric_override_on_text_names_the_column_and_the_values(tmp_path):
    path = _write(tmp_path, _spec(column_types={"industry": "numeric"}))
    with pytest.raises(SpecError, match=r"column_types.industry: numeric, but .* e.g. 'software'"):
        load_flat(path, data_root=tmp_path)


def test_a_missing_data_file_names_the_spec_key(tmp_path):
    path = _write(tmp_path, _spec(file="nowhere.csv"))
    with pytest.raises(SpecError, match=r"file: file not found: .*nowhere.csv"):
        load_flat(path, data_root=tmp_path)


# ---- the shipped specs on the real files (SOURCE.md figures) -------------------------------------

REAL = {
    # spec: rows, positives, leaky columns that must never be features
    "x_education": (9240, 3561, {
        "Tags", "Lead Quality", "Lead Profile", "Asymmetrique Activity Index", "Asymmetrique Profile Index",
        "Asymmetrique Activity Score", "Asymmetrique Profile Score", "Last Notable Activity", "Last Activity",
        "Prospect ID", "Lead Number", "Converted",
    }),
    "olist_funnel": (8000, 842, {"mql_id", "first_contact_date"}),
    "bank_marketing": (41188, 4640, {"duration", "y"}),
}


@needs_data
@pytest.mark.parametrize("name", sorted(REAL))
def test_the_shipped_specs_read_the_real_files(name):
    rows, positives, never = REAL[name]
    data = load_flat(SPECS / f"{name}.yaml", data_root=SHARED_DATA)
    assert len(data.features) == len(data.label) == len(data.ids) == rows
    assert int(data.label.sum()) == positives
    assert data.rows_dropped.count == 0
    assert not never & set(data.features.columns)
    assert set(data.groups) == set(data.features.columns)
    assert set(data.groups.values()) == {"fit", "interest"}
    for col in data.features.columns:
        dtype = data.features[col].dtype
        assert dtype == "float64" or isinstance(dtype, pd.CategoricalDtype), (col, dtype)
        assert data.features[col].nunique() > 1, f"{col} is constant"
    assert all(why.strip() for why in data.dropped.values())


@needs_data
def test_x_education_spec_drops_the_leaky_columns_and_reads_select_as_missing():
    data = load_flat(SPECS / "x_education.yaml", data_root=SHARED_DATA)
    assert round(data.positive_rate * 100, 2) == 38.54
    for col in ("Tags", "Lead Quality", "Lead Profile", "Last Notable Activity", "Last Activity", "Magazine"):
        assert col in data.dropped
    assert "Select" not in data.features["Specialization"].cat.categories
    # SOURCE.md: Specialization is 'Select' in 1,942 rows and blank in 1,438
    assert int(data.features["Specialization"].isna().sum()) == 1942 + 1438
    assert data.time is None


@needs_data
def test_olist_spec_keeps_only_the_mql_columns_and_orders_by_first_contact():
    data = load_flat(SPECS / "olist_funnel.yaml", data_root=SHARED_DATA)
    assert round(data.positive_rate * 100, 2) == 10.53
    assert set(data.features.columns) == {"origin", "landing_page_id"}
    deals = pd.read_csv(SHARED_DATA / "olist_funnel" / "olist_closed_deals_dataset.csv", nrows=0)
    assert not set(deals.columns) & set(data.features.columns)
    assert data.features["landing_page_id"].nunique() == 495
    assert data.time.dtype.kind == "M"
    assert str(data.time.min().date()) == "2017-06-14" and str(data.time.max().date()) == "2018-05-31"


@needs_data
def test_bank_spec_drops_duration_and_orders_by_row():
    data = load_flat(SPECS / "bank_marketing.yaml", data_root=SHARED_DATA)
    assert round(data.positive_rate * 100, 2) == 11.27
    assert "duration" not in data.features.columns and "duration" in data.dropped
    assert "after the call" in data.dropped["duration"]
    assert data.time.tolist() == list(range(41188))
    # 'unknown' is missing (SOURCE.md counts), and pdays 999 is "never contacted", not 999 days
    assert int(data.features["default"].isna().sum()) == 8597
    assert int(data.features["job"].isna().sum()) == 330
    assert data.features["pdays"].max() < 999


def test_shipped_specs_are_valid_without_the_data():
    for name in REAL:
        spec = read_flat_spec(SPECS / f"{name}.yaml")
        assert spec.name == name
