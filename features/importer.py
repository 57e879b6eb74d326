"""A CRM's own export in, leadscore's export contract out — with a report of every column and row.

``import_export(src, dest, mapping)`` reads the vendor's files (CSV as offices save them, Excel
or Parquet), maps them through a *mapping* and writes ``leads``, ``activities``,
``opportunities`` and, when the CRM has one, ``lead_status`` into ``dest`` in the contract's own
spelling (UTF-8, commas, ISO dates). The result is then read back with the contract's checks, so
the rows the contract drops are counted in the same report.

A mapping is YAML (the packaged presets in ``features/presets/`` are mappings, and a user's
``--mapping FILE.yaml`` may ``extends: <preset>`` and override any part). Per contract table it
names one or more *sources*:

- ``file``: the export file's name without suffix (or a list of candidates); ``optional: true``
  when a CRM export may leave it out.
- ``where``: keep only rows whose column holds one of the listed values (the rest are counted).
- ``join``: ``{file, by, key, columns}``: columns from another file whose ``key`` is this source's ``by``
  (a campaign's name and type for its members).
- ``columns``: source column → contract column; several sources of one contract column are read
  in order, the first non-empty value wins (``ActivityDateTime`` before ``ActivityDate``).
- ``first_of``: a column holding a list (``123;456``) → its first element.
- ``lead_id``: ``{lookup: file, match: column, by: column, take: column}`` when the link runs the other way
  (Salesforce stores the converted opportunity on the lead).
- ``activity_type`` / ``stage`` / ``status``: a value table ``{column, values, default}``. A value
  not in the table is kept as its own value and listed in the report, never merged into another.
  ``stage`` may add ``flags: {won, closed}`` (boolean columns that decide where they are set).
- ``logged_by: sales`` on an activities source that sales writes (tasks, calls, meetings): a type
  its value table does not know becomes ``sales_<value>``, and every ``sales_…`` type is a sales
  activity (``features.spec.is_sales_type``), so it never feeds a feature. Values the table names
  keep their mapping (Dynamics' ``campaignresponse`` is marketing's, in the same file).
- ``keep``: a regular expression of source columns kept as feature candidates (custom fields);
  ``drop``: source column → why it is left out. Any other column is dropped as "not in the mapping".

Personal data (``features.personal``) is recognised by header and by content in every column
that would be kept: it never becomes a feature candidate. An e-mail column is kept only as
``email``, which leadscore uses for its domain.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from leadscore.features.contract import LEAD_STATUS_COLUMNS, REQUIRED, TABLES, _read_table, _text, read_export
from leadscore.features.spec import SALES_PREFIX

PRESETS = ("salesforce", "hubspot", "dynamics365", "pipedrive")
CANONICAL = {
    "leads": ("lead_id", "created_at", "email", "company", "industry", "employees", "annual_revenue", "country",
              "job_title", "lead_source"),
    "activities": ("lead_id", "occurred_at", "activity_type", "channel", "campaign"),
    "opportunities": ("lead_id", "opportunity_id", "created_at", "closed_at", "stage", "amount"),
    "lead_status": LEAD_STATUS_COLUMNS,
}
VALUE_FIELDS = {"activities": "activity_type", "opportunities": "stage", "lead_status": "status"}
_SUFFIXES = (".csv", ".xlsx", ".parquet")
_TRUE = frozenset({"true", "1", "yes", "y", "t", "wahr", "ja", "x"})
REPORT_FILE = "import_report.json"


class MappingError(ValueError):
    """A mapping file that cannot be used: where, expected, found."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ValueTable(_Strict):
    column: str | list[str]
    values: dict[str, str] = Field(default_factory=dict)
    default: str | None = None
    flags: dict[str, str] = Field(default_factory=dict)  # stage only: won / closed → a boolean column

    @property
    def columns(self) -> list[str]:
        return [self.column] if isinstance(self.column, str) else list(self.column)

    @field_validator("flags")
    @classmethod
    def _known_flags(cls, flags: dict[str, str]) -> dict[str, str]:
        unknown = set(flags) - {"won", "closed"}
        if unknown:
            raise ValueError(f"flags are 'won' and 'closed', found {sorted(unknown)}")
        return flags


class Join(_Strict):
    file: str | list[str]
    by: str  # the column of this source (YAML reads a bare `on` as true, hence `by`)
    key: str  # the column of the joined file
    columns: dict[str, str]  # joined file's column → name in this source


class Lookup(_Strict):
    lookup: str | list[str]  # the file to look the lead up in
    match: str  # its column that holds this source's id
    by: str  # this source's id column
    take: str  # its column that holds the lead id


class Source(_Strict):
    file: str | list[str]
    optional: bool = False
    where: dict[str, list[str]] = Field(default_factory=dict)
    join: Join | None = None
    columns: dict[str, str] = Field(default_factory=dict)
    first_of: dict[str, str] = Field(default_factory=dict)  # column → list separator
    lead_id: Lookup | None = None
    activity_type: ValueTable | None = None
    stage: ValueTable | None = None
    status: ValueTable | None = None
    keep: str | None = None
    drop: dict[str, str] = Field(default_factory=dict)
    # Who writes this source's rows. `sales` (a CRM's tasks, calls, meetings): a type the value
    # table does not know is named `sales_…`, so no feature ever reads it (features.spec.SALES_PREFIX).
    logged_by: Literal["sales", "marketing"] = "marketing"

    @field_validator("keep")
    @classmethod
    def _regex(cls, keep: str | None) -> str | None:
        if keep is not None:
            re.compile(keep)
        return keep


class Mapping(_Strict):
    name: str
    documented: str = ""
    tables: dict[str, dict[str, Source]]

    @field_validator("tables")
    @classmethod
    def _known_tables(cls, tables: dict) -> dict:
        unknown = set(tables) - set(CANONICAL)
        if unknown:
            raise ValueError(f"tables are {', '.join(CANONICAL)}; found {sorted(unknown)}")
        missing = [t for t in TABLES if t not in tables]
        if missing:
            raise ValueError(f"every mapping needs {', '.join(TABLES)}; missing {missing}")
        for table, sources in tables.items():
            for name, source in sources.items():
                if source.logged_by == "sales" and table != "activities":
                    raise ValueError(f"{table}.{name}.logged_by: expected only on activities sources, found 'sales'")
                wrong = {col: to for col, to in source.columns.items() if to not in CANONICAL[table]}
                if wrong:  # a custom field becomes a feature candidate by `keep`, never by a made-up name
                    raise ValueError(f"{table}.{name}.columns: expected targets among {', '.join(CANONICAL[table])}, "
                                     f"found {wrong}")
        return tables


def _merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = _merge(base[key], value) if key in base else value
        return out
    return copy.deepcopy(override)


def preset_text(name: str) -> str:
    if name not in PRESETS:
        raise MappingError(f"--from: expected one of {', '.join(PRESETS)}, found '{name}'")
    return resources.files("leadscore.features").joinpath("presets", f"{name}.yaml").read_text(encoding="utf-8")


def load_mapping(preset: str | None = None, mapping_file: Path | None = None) -> Mapping:
    """A preset, a mapping file, or a mapping file that extends a preset (``extends: salesforce``)."""
    if preset is None and mapping_file is None:
        raise MappingError(f"expected --from ({'|'.join(PRESETS)}) or --mapping FILE.yaml, found neither")
    data: dict = {}
    if mapping_file is not None:
        try:
            data = yaml.safe_load(Path(mapping_file).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise MappingError(f"{mapping_file}: expected a readable YAML mapping, found {type(exc).__name__}: {exc}") from None
        if not isinstance(data, dict):
            raise MappingError(f"{mapping_file}: expected a YAML mapping (name:, tables:), found {type(data).__name__}")
        preset = data.pop("extends", preset)
    base = yaml.safe_load(preset_text(preset)) if preset else {}
    where = str(mapping_file) if mapping_file else f"preset {preset}"
    try:
        return Mapping.model_validate(_merge(base, data))
    except ValidationError as exc:
        lines = [f"{where}: {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise MappingError("\n".join(lines)) from None


# ---------------------------------------------------------------------------------------------
# Reading the vendor's files
# ---------------------------------------------------------------------------------------------


def _tables_in(folder: Path) -> dict[str, Path]:
    """The folder's tables by lower-case file stem (the first suffix of ``_SUFFIXES`` wins)."""
    by_stem: dict[str, Path] = {}
    for path in sorted(folder.iterdir(), key=lambda p: (p.stem.casefold(), _SUFFIXES.index(p.suffix.lower())
                                                         if p.suffix.lower() in _SUFFIXES else 99)):
        if path.suffix.lower() in _SUFFIXES and path.is_file():
            by_stem.setdefault(path.stem.casefold(), path)
    return by_stem


def _find(folder: Path, names: str | list[str]) -> Path | None:
    """The first of ``names`` that the folder holds: an exact stem (any case), or a pattern with
    ``*`` (``*contacts*`` for HubSpot's dated export names) that exactly one file matches."""
    by_stem = _tables_in(folder) if folder.is_dir() else {}
    for name in [names] if isinstance(names, str) else list(names):
        if "*" not in name:
            if (hit := by_stem.get(name.casefold())) is not None:
                return hit
            continue
        hits = [path for stem, path in by_stem.items() if fnmatch.fnmatchcase(stem, name.casefold())]
        if len(hits) > 1:
            raise ImportError_(f"{folder}: expected one file matching '{name}', found {len(hits)}: "
                               f"{', '.join(p.name for p in hits)} (keep one, or name it in a --mapping)")
        if hits:
            return hits[0]
    return None


def _flag(values: pd.Series) -> pd.Series:
    """A boolean column as the CRM writes it (``true``, ``1``, ``ja`` …); empty stays None."""
    return _text(values).map(lambda v: None if v is None else v.casefold() in _TRUE)


def _key(value: str | None) -> str | None:
    return value.casefold() if value else None


def _own_value(value: str, sales: bool = False) -> str:
    """An unknown value as its own type: lower case, runs of non-alphanumerics as one underscore;
    named ``sales_…`` when sales logged it, so it never feeds a feature."""
    own = re.sub(r"[^0-9a-zäöüß]+", "_", value.casefold()).strip("_") or value.casefold()
    return own if not sales or own.startswith(SALES_PREFIX) else SALES_PREFIX + own


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------


@dataclass
class ColumnFate:
    file: str
    column: str
    became: str  # a contract column, "feature candidate", or "dropped"
    why: str = ""


@dataclass
class ImportReport:
    mapping: str
    source: str
    dest: str
    columns: list[ColumnFate] = field(default_factory=list)
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # table → read, kept, dropped, why
    # "table.source.field" → value → {"rows": n, "as": the type it became}
    unknown_values: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    personal: list[dict[str, str]] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    dialects: dict[str, str] = field(default_factory=dict)
    missing_optional: list[str] = field(default_factory=list)
    unused_files: list[str] = field(default_factory=list)  # tables in the source the mapping never reads
    contract_problems: int = 0

    def table_rows(self, table: str) -> dict[str, Any]:
        return self.rows.setdefault(table, {"read": 0, "kept": 0, "dropped": 0, "why": {}})

    def drop_rows(self, table: str, why: str, n: int) -> None:
        if n:
            entry = self.table_rows(table)
            entry["dropped"] += int(n)
            entry["why"][why] = entry["why"].get(why, 0) + int(n)

    def as_dict(self) -> dict:
        return {
            "mapping": self.mapping, "source": self.source, "dest": self.dest,
            "columns": [vars(c) for c in self.columns], "rows": self.rows, "unknown_values": self.unknown_values,
            "personal": self.personal, "files": self.files, "dialects": self.dialects,
            "missing_optional_files": self.missing_optional, "unused_files": self.unused_files,
            "contract_problems": self.contract_problems,
        }


class ImportError_(ValueError):
    """The source cannot be imported with this mapping (a missing file or column)."""


# ---------------------------------------------------------------------------------------------
# Mapping one source
# ---------------------------------------------------------------------------------------------


class _Importer:
    def __init__(self, src: Path, mapping: Mapping, report: ImportReport) -> None:
        self.src, self.mapping, self.report = src, mapping, report
        self._cache: dict[Path, pd.DataFrame] = {}

    def frame(self, names: str | list[str], what: str, optional: bool = False) -> tuple[Path | None, pd.DataFrame | None]:
        path = _find(self.src, names)
        if path is None:
            shown = names if isinstance(names, str) else " or ".join(names)
            if optional:
                self.report.missing_optional.append(f"{shown} ({what})")
                return None, None
            raise ImportError_(f"{self.src}: expected a file {shown}.csv (or .xlsx, .parquet) for {what}, found none; "
                               f"files: {sorted(p.name for p in self.src.iterdir()) if self.src.is_dir() else 'no such folder'}")
        if path not in self._cache:
            from leadscore.features.dialect import DialectError

            try:
                frame, dialect = _read_table(path)
                if path.suffix.lower() == ".parquet":
                    frame = frame.astype(object)
            except DialectError as exc:
                raise ImportError_(str(exc)) from None
            except Exception as exc:  # an unreadable file is the user's to fix, not a traceback
                raise ImportError_(f"{path}: expected a readable CSV, Excel or Parquet table, found {type(exc).__name__}: {exc}") from None
            frame.columns = [str(c).strip() for c in frame.columns]
            self._cache[path] = frame
            if dialect:
                self.report.dialects[path.name] = dialect
        return path, self._cache[path]

    def _need(self, frame: pd.DataFrame, path: Path, columns: list[str], what: str) -> None:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ImportError_(f"{path.name}: expected column(s) {missing} for {what}, found columns {list(frame.columns)}")

    def run(self, table: str, name: str, source: Source) -> pd.DataFrame | None:
        path, raw = self.frame(source.file, f"{table} ({name})", source.optional)
        if raw is None:
            return None
        rep, file = self.report, path.name
        rep.table_rows(table)["read"] += len(raw)
        df = raw.reset_index(drop=True)
        used: dict[str, tuple[str, str]] = {}  # source column → (what it became, why)
        for column, allowed in source.where.items():
            self._need(df, path, [column], "where")
            keep = _text(df[column]).map(_key).isin({str(a).casefold() for a in allowed})
            rep.drop_rows(table, f"{file}: {column} not one of {allowed}", int((~keep).sum()))
            df = df.loc[keep].reset_index(drop=True)
            used[column] = ("filter", f"rows kept where it is one of {allowed}")
        joined: dict[str, tuple[str, str]] = {}  # name in this source → (joined file, its column)
        if (join := source.join) is not None:
            jpath, jframe = self.frame(join.file, f"the join of {file}")
            self._need(df, path, [join.by], "join")
            self._need(jframe, jpath, [join.key, *join.columns], "join")
            right = jframe[[join.key, *join.columns]].rename(columns=join.columns)
            right = right.drop_duplicates(join.key).rename(columns={join.key: "__key"})
            df = df.merge(right, left_on=join.by, right_on="__key", how="left").drop(columns="__key")
            used[join.by] = ("join key", f"joined with {jpath.name} {join.key}")
            joined = {new: (jpath.name, col) for col, new in join.columns.items()}
            rep.columns.append(ColumnFate(jpath.name, join.key, "join key", f"joined into {file} by {join.by}"))
            rep.columns.extend(ColumnFate(jpath.name, col, "dropped", "not in the mapping")
                               for col in jframe.columns if col != join.key and col not in join.columns)
        for column, sep in source.first_of.items():
            if column in df.columns:
                df[column] = _text(df[column]).map(lambda v, sep=sep: v.split(sep)[0].strip() if v else None)
        out = pd.DataFrame(index=df.index)
        for column, target in source.columns.items():
            if column not in df.columns:
                continue
            values = _text(df[column])
            out[target] = values if target not in out else out[target].where(out[target].notna(), values)
            used[column] = (target, "")
        if source.lead_id is not None:
            out["lead_id"] = self._lookup(df, path, source.lead_id, used)
        value_field = VALUE_FIELDS.get(table)
        spec = getattr(source, value_field) if value_field else None
        if spec is not None:
            out[value_field] = self._values(df, path, f"{table}.{name}.{value_field}", spec, used,
                                            sales=source.logged_by == "sales")
        if table == "leads":
            self._lead_columns(df, out, path, source, used)
        if table == "opportunities" and "stage" in out and "closed_at" in out:
            # CRMs keep an expected close date on open deals (Salesforce requires one): not a close.
            out.loc[out["stage"] == "open", "closed_at"] = None
        for column in df.columns:
            if column not in used:
                used[column] = ("dropped", source.drop.get(column) or "not in the mapping")
        for column, (became, why) in used.items():  # a joined column is reported under its own file
            jfile, jcol = joined.get(column, (file, column))
            rep.columns.append(ColumnFate(jfile, jcol, became, why if jfile == file else f"via {file}; {why}".rstrip("; ")))
        if "lead_id" not in out:
            raise ImportError_(f"{file}: the mapping gives no lead_id for {table} (map a column to it)")
        no_lead = out["lead_id"].isna()
        rep.drop_rows(table, f"{file}: no lead id", int(no_lead.sum()))
        return out.loc[~no_lead].reset_index(drop=True)

    def _lookup(self, df: pd.DataFrame, path: Path, spec: Lookup, used: dict) -> pd.Series:
        lpath, lframe = self.frame(spec.lookup, f"the lead of each row of {path.name}")
        self._need(lframe, lpath, [spec.match, spec.take], "lead_id lookup")
        self._need(df, path, [spec.by], "lead_id lookup")
        pairs = pd.DataFrame({"k": _text(lframe[spec.match]), "lead": _text(lframe[spec.take])}).dropna()
        leads = dict(zip(pairs["k"], pairs["lead"]))  # the first lead that names it wins
        found = _text(df[spec.by]).map(lambda v: leads.get(v) if v else None)
        if spec.by not in used:
            used[spec.by] = ("lead_id", f"via {lpath.name}: the lead whose {spec.match} is this {spec.by}")
        else:
            used[spec.by] = (used[spec.by][0], f"also finds the lead via {lpath.name} {spec.match}")
        return found.astype("object")

    def _values(self, df: pd.DataFrame, path: Path, key: str, spec: ValueTable, used: dict, *,
                sales: bool = False) -> pd.Series:
        """The field at ``key`` ("table.source.field") through the value table; an unknown value
        becomes its own type (``sales_…`` when sales logs the source) and is listed in the report."""
        name = key.rsplit(".", 1)[1]
        present = [c for c in spec.columns if c in df.columns]
        if not present and spec.default is None and not spec.flags:
            raise ImportError_(f"{path.name}: expected a column {' or '.join(spec.columns)} for {name}, "
                               f"found columns {list(df.columns)}")
        raw = pd.Series(None, index=df.index, dtype="object")
        for col in present:  # the first non-empty of the listed columns
            raw = raw.where(raw.notna(), _text(df[col]))
            used[col] = (name, "through the value table")
        known = {k.casefold(): v for k, v in spec.values.items()}
        mapped = raw.map(lambda v: known.get(v.casefold()) if v else None)
        unknown = raw.notna() & mapped.isna()
        result = mapped.where(~unknown, raw.map(lambda v: _own_value(v, sales) if v else None))
        if spec.default is not None:
            result = result.where(raw.notna(), spec.default)
        closed_col, won_col = spec.flags.get("closed"), spec.flags.get("won")
        if closed_col in df.columns:  # stage by the CRM's own flags where they are set
            closed = _flag(df[closed_col])
            won = _flag(df[won_col]) if won_col in df.columns else pd.Series(None, index=df.index, dtype="object")
            by_flag = pd.Series([None if c is None else ("open" if not c else {True: "won", False: "lost"}.get(w))
                                 for c, w in zip(closed, won)], index=df.index, dtype="object")
            result = result.where(by_flag.isna(), by_flag)
            unknown &= by_flag.isna()
            used[closed_col] = (name, "closed flag")
            if won_col in df.columns:
                used[won_col] = (name, "won flag")
        if unknown.any():
            bucket = self.report.unknown_values.setdefault(key, {})
            for value, n in raw.loc[unknown].value_counts().items():
                entry = bucket.setdefault(str(value), {"rows": 0, "as": _own_value(str(value), sales)})
                entry["rows"] += int(n)
        return result

    def _lead_columns(self, df: pd.DataFrame, out: pd.DataFrame, path: Path, source: Source, used: dict) -> None:
        """Custom fields (``keep``) become feature candidates; then every kept column but the id and
        the creation time is checked for personal data, by header and by content. Personal data is
        dropped, except one e-mail column kept as ``email`` (used for its domain only)."""
        from leadscore.features.personal import classify, reason

        pattern = re.compile(source.keep) if source.keep else None
        for column in df.columns:
            if column not in used and column not in source.drop and pattern is not None and pattern.search(column):
                out[column] = df[column]
                used[column] = ("feature candidate", f"custom field (keep: {source.keep})")
        for column in df.columns:  # every column, so the report lists the personal data left out too
            became = used.get(column, ("dropped", ""))[0]
            if became in ("lead_id", "created_at", "filter", "join key"):
                continue
            found = classify(column, df[column])
            if found is None:
                continue
            kind, how = found
            self.report.personal.append({"file": path.name, "column": column, "kind": kind, "by": how})
            target = column if became == "feature candidate" else became
            if target in ("email", "dropped"):
                continue
            if target in out:
                out.drop(columns=target, inplace=True)
            if kind == "email" and "email" not in out:
                out["email"] = _text(df[column])
                used[column] = ("email", f"e-mail addresses (by {how}): used for the domain only")
            else:
                used[column] = ("dropped", reason(kind, how))


def _write(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, index=False, encoding="utf-8")


def import_export(src: Path | str, dest: Path | str, mapping: Mapping, *, progress=None) -> ImportReport:
    """Map ``src`` (a folder of the CRM's files) into ``dest`` and return the report (also written
    as ``dest/import_report.json``). Raises ``ImportError_`` or ``MappingError`` naming the file and column."""
    src, dest = Path(src), Path(dest)
    if not src.is_dir():
        raise ImportError_(f"{src}: expected a folder with the CRM's exported files, found no such folder")
    report = ImportReport(mapping=mapping.name, source=str(src), dest=str(dest))
    importer = _Importer(src, mapping, report)
    tables: dict[str, pd.DataFrame] = {}
    for table, sources in mapping.tables.items():
        parts = []
        for name, source in sources.items():
            if progress:
                progress(f"{table}: {name}")
            part = importer.run(table, name, source)
            if part is not None:
                parts.append(part)
        if parts:
            tables[table] = pd.concat(parts, ignore_index=True)
        elif table in TABLES:
            tables[table] = pd.DataFrame(columns=list(CANONICAL[table][:2]))
    report.unused_files = sorted(p.name for p in _tables_in(src).values() if p not in importer._cache)
    for table in TABLES:  # the contract's required columns exist, empty if no source gave them
        for col in REQUIRED[table]:
            if col not in tables[table]:
                tables[table][col] = None
    dest.mkdir(parents=True, exist_ok=True)
    for table, frame in tables.items():
        _write(frame, dest / f"{table}.csv")
        report.files[table] = str(dest / f"{table}.csv")
    stale = dest / "lead_status.csv"
    if "lead_status" not in tables and stale.exists():
        stale.unlink()  # an earlier import's feedback must not pass as this one's
    checked = read_export(dest)
    report.contract_problems = len(checked.problems)
    for table, frame in checked.tables.items():
        report.table_rows(table)["kept"] = len(frame)
        report.drop_rows(table, "the contract's checks (leadscore validate lists them)", checked.dropped.get(table, 0))
    (dest / REPORT_FILE).write_text(json.dumps(report.as_dict(), indent=1, ensure_ascii=False), encoding="utf-8")
    report.files["report"] = str(dest / REPORT_FILE)
    return report
