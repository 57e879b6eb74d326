"""Flat exports: one CRM report, one row per lead, a label column and no activity log.

A small YAML spec says where the file is, how the label is made, which columns leak or say
nothing (``drop``, each with a ``why``), and which of the rest describe who the lead is
(``fit``) or what the lead did (``interest``). Every column of the file must be accounted
for, so a new column in next month's export is an error, not a silent new feature.

    name: x_education
    file: x_education/Leads.csv          # relative paths resolve against data_root
    id_column: Prospect ID
    label: {column: Converted, positive: 1}
    missing_values: [Select]             # or {column: [values]} per column
    drop:
      - {column: Tags, why: "set by sales after contact"}
    fit: [Country, City]
    interest: [TotalVisits]

Rows that cannot be used (no id, a duplicate id, no label, no usable time) are dropped and
counted in ``FlatDataset.rows_dropped``; nothing is lost silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Union

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Group = Literal["fit", "interest"]
Kind = Literal["numeric", "category"]
Scalar = Union[bool, int, float, str]
ROW_ORDER = "row_order"
DEFAULT_DATA_ROOT = Path("..") / "shared" / "data"


class SpecError(ValueError):
    """The dataset spec is invalid or does not match its file; the message names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DroppedColumn(_Strict):
    column: str
    why: str = Field(min_length=1)


class LabelJoin(_Strict):
    """Label = the row's id appears in ``column`` of a second ``file``."""

    file: Path
    column: str
    read: dict[str, object] = Field(default_factory=dict)


class LabelSpec(_Strict):
    """Either ``column`` with its ``positive`` value(s) (optionally ``negative``), or a ``join``."""

    column: str | None = None
    positive: list[Scalar] | None = None
    negative: list[Scalar] | None = None
    join: LabelJoin | None = None

    @model_validator(mode="before")
    @classmethod
    def _listify(cls, data):
        if isinstance(data, dict):
            data = dict(data)
            for key in ("positive", "negative"):
                if key in data and data[key] is not None and not isinstance(data[key], list):
                    data[key] = [data[key]]
        return data

    @model_validator(mode="after")
    def _one_way(self) -> "LabelSpec":
        if (self.column is None) == (self.join is None):
            raise ValueError("give either 'column' (with 'positive') or 'join', not both and not neither")
        if self.column is not None and not self.positive:
            raise ValueError("'column' needs 'positive': the value(s) that mean a win")
        if self.join is not None and (self.positive or self.negative):
            raise ValueError("'positive'/'negative' do not apply to a 'join' label")
        return self


class FlatSpec(_Strict):
    name: str
    file: Path
    read: dict[str, object] = Field(default_factory=dict)
    id_column: str | None = None
    label: LabelSpec
    time_column: str | None = None
    drop: list[DroppedColumn] = Field(default_factory=list)
    missing_values: list[Scalar] | dict[str, list[Scalar]] = Field(default_factory=list)
    fit: list[str] = Field(default_factory=list)
    interest: list[str] = Field(default_factory=list)
    column_types: dict[str, Kind] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _each_column_once(self) -> "FlatSpec":
        problems: list[str] = []
        seen: dict[str, str] = {}
        special = {
            "id_column": self.id_column,
            "label.column": self.label.column,
            "time_column": None if self.time_column == ROW_ORDER else self.time_column,
        }
        for key, col in special.items():
            if col is not None:
                seen.setdefault(col, key)
        listed = [("drop", d.column) for d in self.drop] + [("fit", c) for c in self.fit] + [
            ("interest", c) for c in self.interest
        ]
        for key, col in listed:
            if col in seen:
                problems.append(f"column '{col}' is in both {seen[col]} and {key}")
            else:
                seen[col] = key
        for col in self.column_types:
            if col not in self.fit and col not in self.interest:
                problems.append(f"column_types: '{col}' is not a feature (not in fit or interest)")
        if problems:
            raise ValueError("; ".join(problems))
        return self


@dataclass(frozen=True)
class RowsDropped:
    """Rows left out of the dataset: how many, and how many for each reason."""

    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return sum(self.reasons.values())

    def __str__(self) -> str:
        if not self.count:
            return "no rows dropped"
        return f"{self.count} rows dropped: " + ", ".join(f"{n} {why}" for why, n in self.reasons.items())


@dataclass
class FlatDataset:
    """A flat export ready for training: features aligned row by row with label, ids and time."""

    name: str
    features: pd.DataFrame
    label: pd.Series
    ids: pd.Series
    time: pd.Series | None
    groups: dict[str, Group]
    dropped: dict[str, str]
    rows_dropped: RowsDropped

    @property
    def positive_rate(self) -> float:
        return float(self.label.mean())


def read_flat_spec(spec_path: Path | str) -> FlatSpec:
    """Parse and validate a dataset spec; any problem raises ``SpecError`` naming the file and key."""
    path = Path(spec_path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"{path}: spec file not found") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: expected a mapping of keys (name, file, label, ...), found {type(raw).__name__}")
    try:
        return FlatSpec.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
            msg = err["msg"].removeprefix("Value error, ")
            found = "" if err["type"] == "value_error" else f" (found {err.get('input')!r})"
            lines.append(f"{path}: {loc}: {msg}{found}")
        raise SpecError("\n".join(lines)) from None


def load_flat(spec_path: Path | str, data_root: Path | str | None = None) -> FlatDataset:
    """Read the file a spec describes and return typed features, an int8 label, ids and time.

    Relative paths in the spec resolve against ``data_root`` (default ``../shared/data`` from
    the working directory). Numeric columns come back as float64, every other kept column as
    pandas ``category`` (what LightGBM needs); spec ``missing_values`` become NaN first.
    """
    spec_path = Path(spec_path)
    spec = read_flat_spec(spec_path)
    root = Path(data_root) if data_root is not None else Path.cwd() / DEFAULT_DATA_ROOT
    data_file = _resolve(spec.file, root)
    raw = _read_csv(data_file, spec.read, spec_path, "file")
    _check_columns(spec, spec_path, raw.columns, data_file)

    reasons: dict[str, int] = {}
    keep = np.ones(len(raw), dtype=bool)

    def drop_rows(mask: np.ndarray, why: str) -> None:
        new = mask & keep
        if new.any():
            reasons[why] = reasons.get(why, 0) + int(new.sum())
            keep[new] = False

    # ids: the spec's id column, else the row position (flat reports without an id)
    if spec.id_column is not None:
        ids = raw[spec.id_column]
        drop_rows(_blank(ids), f"empty {spec.id_column}")
        drop_rows((ids.duplicated(keep="first") & ~_blank(ids)).to_numpy(), f"duplicate {spec.id_column} (first kept)")
    else:
        ids = pd.Series(np.arange(len(raw)), name="row")

    label, label_bad = _make_label(spec, spec_path, raw, ids, root)
    for why, mask in label_bad.items():
        drop_rows(mask, why)

    time = None
    if spec.time_column == ROW_ORDER:
        time = pd.Series(np.arange(len(raw), dtype=np.int64), name=ROW_ORDER)
    elif spec.time_column is not None:
        time = pd.to_datetime(raw[spec.time_column], errors="coerce")
        drop_rows(time.isna().to_numpy(), f"empty or unparseable {spec.time_column}")

    groups: dict[str, Group] = {}
    for col in raw.columns:
        if col in spec.fit:
            groups[col] = "fit"
        elif col in spec.interest:
            groups[col] = "interest"
    features = pd.DataFrame(
        {col: _typed(raw[col], col, spec, spec_path, data_file) for col in groups}, index=raw.index
    )

    rows = np.flatnonzero(keep)
    features = features.iloc[rows].reset_index(drop=True)
    for col in features.columns:
        if isinstance(features[col].dtype, pd.CategoricalDtype):
            features[col] = features[col].cat.remove_unused_categories()
    return FlatDataset(
        name=spec.name,
        features=features,
        label=label.iloc[rows].reset_index(drop=True).astype("int8").rename("label"),
        ids=ids.iloc[rows].reset_index(drop=True),
        time=None if time is None else time.iloc[rows].reset_index(drop=True),
        groups=groups,
        dropped={d.column: d.why for d in spec.drop},
        rows_dropped=RowsDropped(reasons),
    )


def _resolve(path: Path, root: Path) -> Path:
    return path if path.is_absolute() else root / path


def _read_csv(path: Path, read: dict, spec_path: Path, key: str) -> pd.DataFrame:
    if not path.exists():
        raise SpecError(f"{spec_path}: {key}: file not found: {path}")
    # Only empty cells are missing by default: pandas' own list ("NA", "None", "n/a", ...) would
    # silently turn Namibia's country code or an answer "None" into NaN. Markers go in missing_values.
    options = {"keep_default_na": False, "na_values": [""], **read}
    try:
        return pd.read_csv(path, **options)
    except (TypeError, ValueError, pd.errors.ParserError) as exc:
        raise SpecError(f"{spec_path}: {key}: cannot read {path} with read options {options}: {exc}") from None


def _check_columns(spec: FlatSpec, spec_path: Path, columns: pd.Index, data_file: Path) -> None:
    """Every spec column exists in the file and every file column is named in the spec."""
    present = set(columns)
    problems = []
    named: list[tuple[str, str]] = [("id_column", spec.id_column), ("label.column", spec.label.column)]
    if spec.time_column != ROW_ORDER:
        named.append(("time_column", spec.time_column))
    named += [("drop", d.column) for d in spec.drop] + [("fit", c) for c in spec.fit]
    named += [("interest", c) for c in spec.interest]
    if isinstance(spec.missing_values, dict):
        named += [("missing_values", c) for c in spec.missing_values]
    for key, col in named:
        if col is not None and col not in present:
            problems.append(f"{spec_path}: {key}: column '{col}' is not in {data_file.name}")
    accounted = {col for _, col in named if col is not None}
    for col in columns:
        if col not in accounted:
            problems.append(
                f"{spec_path}: fit/interest/drop: column '{col}' of {data_file.name} is not listed; "
                "put it in fit or interest, or in drop with a why"
            )
    if problems:
        raise SpecError("\n".join(problems))


def _blank(values: pd.Series) -> np.ndarray:
    blank = values.isna()
    if not pd.api.types.is_numeric_dtype(values):
        blank |= values.astype("str").str.strip().eq("")
    return blank.to_numpy()


def _matches(values: pd.Series, wanted: list[Scalar]) -> pd.Series:
    """``values`` equal to any of ``wanted``, comparing numbers as numbers and text as text."""
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        numbers = []
        for v in wanted:
            try:
                numbers.append(float(v))
            except (TypeError, ValueError):
                pass
        return values.isin(numbers)
    return values.astype("str").isin([str(v) for v in wanted]) & values.notna()


def _make_label(spec: FlatSpec, spec_path: Path, raw: pd.DataFrame, ids: pd.Series, root: Path):
    """The 0/1 label and, per reason, the rows whose label cannot be decided."""
    bad: dict[str, np.ndarray] = {}
    if spec.label.join is not None:
        join = spec.label.join
        other_file = _resolve(join.file, root)
        other = _read_csv(other_file, join.read, spec_path, "label.join.file")
        if join.column not in other.columns:
            raise SpecError(f"{spec_path}: label.join.column: column '{join.column}' is not in {other_file.name}")
        winners = set(other[join.column].dropna().astype("str"))
        return ids.astype("str").isin(winners).astype("int8"), bad
    values = raw[spec.label.column]
    positive = _matches(values, spec.label.positive)
    bad[f"empty label {spec.label.column}"] = values.isna().to_numpy()
    if spec.label.negative is not None:
        other = ~positive & ~_matches(values, spec.label.negative) & values.notna()
        bad[f"label {spec.label.column} neither positive nor negative"] = other.to_numpy()
    return positive.astype("int8"), bad


def _typed(values: pd.Series, col: str, spec: FlatSpec, spec_path: Path, data_file: Path) -> pd.Series:
    """Missing markers to NaN, then float64 or category (numeric if every value parses as a number)."""
    markers = spec.missing_values.get(col, []) if isinstance(spec.missing_values, dict) else spec.missing_values
    if markers:
        values = values.mask(_matches(values, markers))
    if pd.api.types.is_bool_dtype(values):
        values = values.astype("object")
    kind = spec.column_types.get(col)
    numeric_dtype = pd.api.types.is_numeric_dtype(values)
    parsed = values if numeric_dtype else pd.to_numeric(values, errors="coerce")
    unparsed = parsed.isna() & values.notna()
    if kind is None:
        kind = "numeric" if not unparsed.any() and values.notna().any() else "category"
    if kind == "numeric":
        if unparsed.any():
            examples = ", ".join(repr(v) for v in values[unparsed].unique()[:3])
            raise SpecError(
                f"{spec_path}: column_types.{col}: numeric, but {int(unparsed.sum())} values of {data_file.name} "
                f"do not parse as numbers, e.g. {examples}"
            )
        return parsed.astype("float64")
    text = values.astype("str").where(values.notna())
    return text.astype("category")
