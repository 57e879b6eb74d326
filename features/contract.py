"""The CRM export contract: reading, checking and normalising the three tables.

An export is a folder with ``leads``, ``activities`` and ``opportunities``, each as CSV or
Parquet, and optionally ``lead_status``: sales' feedback on handed-over leads (accepted, rejected
with the reason, disqualified, recycled). That history is after the hand-over, so it never feeds a
feature; the SLA report and monitoring read it. Every problem is reported with file, row, column, what was expected and what was
found. Rows that cannot be used are dropped *and counted*; a missing table or column is fatal.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

TABLES = ("leads", "activities", "opportunities")
REQUIRED = {
    "leads": ("lead_id", "created_at"),
    "activities": ("lead_id", "occurred_at", "activity_type"),
    "opportunities": ("lead_id", "created_at", "closed_at", "stage"),
}
# Known optional lead columns; everything else in `leads` is a profile attribute.
KNOWN_LEAD_COLUMNS = (
    "email", "company", "industry", "employees", "annual_revenue", "country", "job_title", "lead_source",
)
NUMERIC_LEAD_COLUMNS = ("employees", "annual_revenue")
# Personal data: never a feature, never logged. E-mail is used for its domain only.
PERSONAL_COLUMNS = frozenset({
    "email", "first_name", "last_name", "name", "full_name", "firstname", "lastname",
    "vorname", "nachname", "phone", "mobile", "telefon", "street", "address", "linkedin_url",
})
# Sales' feedback, optional: one row per status change of a lead.
OPTIONAL_TABLES = ("lead_status",)
LEAD_STATUS_COLUMNS = ("lead_id", "changed_at", "status", "reason")
REQUIRED["lead_status"] = ("lead_id", "changed_at", "status")
# The statuses the SLA report counts; any other status is kept as written (lower case) and listed.
LEAD_STATUSES = ("accepted", "rejected", "disqualified", "recycled")
REJECTIONS = ("rejected", "disqualified")  # the verdicts that say sales should not have got the lead
STAGES = ("open", "won", "lost")
TIMESTAMP_DTYPE = "datetime64[ns]"
# Timestamps later than now (plus this much clock skew) are errors in the source system.
CLOCK_SKEW = pd.Timedelta(minutes=5)
TIMESTAMP_EXPECTED = "an ISO 8601 or dd.mm.yyyy [HH:MM] timestamp (years 1678–2261)"


def _now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC").tz_localize(None) + CLOCK_SKEW


@dataclass(frozen=True)
class Problem:
    """One finding: ``row`` is the 1-based data row (the CSV line is ``row + 1``), None for the whole file."""

    file: str
    row: int | None
    column: str | None
    expected: str
    found: str

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f" row {self.row}"
        if self.column:
            where += f", column '{self.column}'"
        return f"{where}: expected {self.expected}, found {self.found}"


class ContractError(ValueError):
    """The export cannot be used at all (missing table or required column)."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass
class Export:
    """A checked export: clean tables plus every problem found and the rows dropped per table."""

    leads: pd.DataFrame
    activities: pd.DataFrame
    opportunities: pd.DataFrame
    # Sales' feedback (``LEAD_STATUS_COLUMNS``), empty when the export has none. Never a feature.
    lead_status: pd.DataFrame = field(default_factory=lambda: empty_lead_status())
    problems: list[Problem] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    # How each CSV table not in the contract's own spelling (UTF-8, commas, ISO dates) was written, as
    # features.dialect found it: encoding, delimiter, decimal mark, the columns rewritten.
    dialects: dict[str, str] = field(default_factory=dict)

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        """The tables read, in contract order (``lead_status`` only when the export has one)."""
        read = {"leads": self.leads, "activities": self.activities, "opportunities": self.opportunities}
        if "lead_status" in self.dropped:
            read["lead_status"] = self.lead_status
        return read

    @property
    def data_end(self) -> pd.Timestamp:
        """The last moment the export has observed: its latest timestamp of any kind."""
        stamps = [
            self.leads["created_at"].max(),
            self.activities["occurred_at"].max() if len(self.activities) else pd.NaT,
            self.opportunities["created_at"].max() if len(self.opportunities) else pd.NaT,
            self.opportunities["closed_at"].max() if len(self.opportunities) else pd.NaT,
        ]
        return max(s for s in stamps if pd.notna(s))


def empty_lead_status() -> pd.DataFrame:
    return pd.DataFrame({"lead_id": pd.Series(dtype="object"), "changed_at": pd.Series(dtype=TIMESTAMP_DTYPE),
                         "status": pd.Series(dtype="object"), "reason": pd.Series(dtype="object")})


def first_verdicts(moments: pd.DataFrame, lead_status: pd.DataFrame) -> pd.DataFrame:
    """Sales' first verdict (one of ``LEAD_STATUSES``) on each moment's lead at or after the moment.
    ``moments`` has ``row, lead_id, at``; the result ``row, status, changed_at, reason``, one per
    moment that has a verdict. Ties in time: the order of ``lead_status``. The SLA report asks it at
    each hand-over, monitoring at each served score."""
    status = lead_status.reset_index(drop=True)
    verdicts = status.loc[status["status"].isin(LEAD_STATUSES)].assign(order=lambda d: np.arange(len(d)))
    if "reason" not in verdicts.columns:
        verdicts = verdicts.assign(reason=None)
    hits = moments[["row", "lead_id", "at"]].merge(verdicts[["lead_id", "changed_at", "status", "reason", "order"]],
                                                   on="lead_id")
    hits = hits.loc[hits["changed_at"] >= hits["at"]].sort_values(["row", "changed_at", "order"], kind="stable")
    return hits.groupby("row", sort=False).head(1)[["row", "status", "changed_at", "reason"]].reset_index(drop=True)


def verdict_counts(verdict: pd.Series) -> dict:
    """Counts of one group's verdicts (a ``LEAD_STATUSES`` value or missing, one per hand-over or
    score): ``n``, ``with_feedback``, each status, ``turned_down`` (the ``REJECTIONS``) and
    ``rejection_rate`` = turned down / with feedback (NaN without feedback). The SLA report and
    monitoring both count with it."""
    n, given = int(len(verdict)), int(verdict.notna().sum())
    row = {"n": n, "with_feedback": given, **{v: int((verdict == v).sum()) for v in LEAD_STATUSES}}
    row["turned_down"] = sum(row[v] for v in REJECTIONS)
    row["rejection_rate"] = row["turned_down"] / given if given else np.nan
    return row


def _find_table(folder: Path, name: str) -> Path | None:
    for suffix in (".parquet", ".csv", ".xlsx"):
        candidate = folder / f"{name}{suffix}"
        if candidate.exists():
            return candidate
    return None


def _csv_options():
    from leadscore.config.settings import get_settings
    from leadscore.features.dialect import CsvOptions

    st = get_settings()
    return CsvOptions(encoding=st.csv_encoding, delimiter=st.csv_delimiter, decimal=st.csv_decimal,
                      date_order=st.csv_date_order)


def _read_table(path: Path) -> tuple[pd.DataFrame, str | None]:
    """The table and, for a CSV, how it was written (``features.dialect``)."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pd.read_parquet(path), None
    if suffix == ".xlsx":
        return read_workbook(path)
    from leadscore.features.dialect import read_office_csv

    # Everything as text first: parsing is ours, so a bad cell is reported, not guessed. Office
    # dialects (`;`, Windows-1252, decimal comma, dd.mm.yyyy) are rewritten into the contract's spelling.
    frame, dialect = read_office_csv(path, _csv_options())
    return frame, None if dialect.plain else dialect.describe()


def read_workbook(path: Path) -> tuple[pd.DataFrame, str]:
    """An Excel workbook's first sheet, every cell as text (date cells as ISO timestamps)."""
    sheets = pd.read_excel(path, sheet_name=None, dtype=object, engine="openpyxl")
    name, frame = next(iter(sheets.items()))
    text = frame.apply(lambda col: col.map(_cell_text))
    extra = f"; {len(sheets) - 1} more sheet(s) ignored" if len(sheets) > 1 else ""
    return text, f"Excel workbook, sheet '{name}'{extra}"


def _cell_text(value: object) -> object:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, datetime.date | np.datetime64):  # datetime.datetime and pd.Timestamp too
        return pd.Timestamp(value).isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


_EARLIEST, _LATEST = pd.Timestamp("1678-01-01"), pd.Timestamp("2261-12-31")


def parse_timestamps(values: pd.Series) -> pd.Series:
    """ISO 8601 text or datetimes → naive UTC ``datetime64[ns]``; unparseable or out of range → NaT."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        parsed = values.dt.tz_convert("UTC").dt.tz_localize(None)
    elif pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
    else:
        parsed = pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601").dt.tz_localize(None)
    # Beyond what nanoseconds can hold (years 1678–2261) a date is a typo, not a moment.
    in_range = parsed.isna() | ((parsed >= _EARLIEST) & (parsed <= _LATEST))
    return parsed.where(in_range).astype(TIMESTAMP_DTYPE)


def _clean_text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    text = str(value).strip()
    return text or None


def _text(values: pd.Series) -> pd.Series:
    """Text cells stripped, with empty cells as None (object dtype: pandas 3 would pick ``str``)."""
    return pd.Series([_clean_text(v) for v in values], index=values.index, dtype="object")


def _lower(values: pd.Series) -> pd.Series:
    return pd.Series([v.lower() if v else None for v in _text(values)], index=values.index, dtype="object")


class _Checker:
    def __init__(self, file: str):
        self.file = file
        self.problems: list[Problem] = []

    def future(self, stamps: pd.Series, column: str, raw: pd.Series, now: pd.Timestamp) -> pd.Series:
        """Rows dated after ``now``: recorded, returned for dropping."""
        return self.bad_rows(stamps > now, column, f"a time not in the future (now: {now:%Y-%m-%dT%H:%M})", raw)

    def bad_rows(self, mask: pd.Series, column: str, expected: str, found: pd.Series) -> pd.Series:
        """Record one problem per row in ``mask`` and return the mask."""
        for idx in np.flatnonzero(mask.to_numpy()):
            value = found.iloc[idx]
            shown = "empty" if value is None or (isinstance(value, float) and np.isnan(value)) else repr(value)
            self.problems.append(Problem(self.file, int(idx) + 1, column, expected, shown))
        return mask


def _missing_columns(df: pd.DataFrame, table: str, file: str) -> list[Problem]:
    return [
        Problem(file, None, col, f"a column '{col}'", f"columns {list(df.columns)}")
        for col in REQUIRED[table]
        if col not in df.columns
    ]


def check_leads(
    raw: pd.DataFrame, file: str = "leads", now: pd.Timestamp | None = None
) -> tuple[pd.DataFrame, list[Problem], int]:
    """Validate and normalise a leads table. Returns (clean, problems, dropped rows)."""
    chk, now = _Checker(file), now or _now()
    df = raw.reset_index(drop=True).copy()
    df["lead_id"] = _text(df["lead_id"])
    drop = chk.bad_rows(df["lead_id"].isna(), "lead_id", "a non-empty id", df["lead_id"])
    dup = df["lead_id"].duplicated(keep="first") & df["lead_id"].notna()
    drop |= chk.bad_rows(dup, "lead_id", "a unique id (duplicate of an earlier row)", df["lead_id"])
    created = parse_timestamps(df["created_at"])
    drop |= chk.bad_rows(created.isna(), "created_at", TIMESTAMP_EXPECTED, df["created_at"])
    drop |= chk.future(created, "created_at", df["created_at"], now)
    df["created_at"] = created
    for col in NUMERIC_LEAD_COLUMNS:
        if col not in df.columns:
            continue
        num = pd.to_numeric(df[col], errors="coerce")
        bad = (num.isna() & df[col].notna()) | (num < 0) | ~np.isfinite(num.fillna(0))
        # A bad size is a bad cell, not a bad lead: keep the row, blank the cell.
        chk.bad_rows(bad, col, "a non-negative number", df[col])
        df[col] = num.where(~bad).astype("float64")
    for col in df.columns:
        if col not in ("lead_id", "created_at", *NUMERIC_LEAD_COLUMNS) and not pd.api.types.is_numeric_dtype(df[col]):
            df[col] = _text(df[col])
    clean = df.loc[~drop].reset_index(drop=True)
    return clean, chk.problems, int(drop.sum())


def _check_lead_refs(chk: _Checker, df: pd.DataFrame, lead_ids: set[str]) -> pd.Series:
    """Normalise ``lead_id`` in place; the rows without one or with an unknown one."""
    df["lead_id"] = _text(df["lead_id"])
    drop = chk.bad_rows(df["lead_id"].isna(), "lead_id", "a lead id", df["lead_id"])
    unknown = df["lead_id"].notna() & ~df["lead_id"].isin(lead_ids)
    return drop | chk.bad_rows(unknown, "lead_id", "an id present in leads", df["lead_id"])


def check_activities(
    raw: pd.DataFrame, lead_ids: set[str], file: str = "activities", now: pd.Timestamp | None = None
) -> tuple[pd.DataFrame, list[Problem], int]:
    """Validate and normalise an activity log against the known lead ids."""
    chk, now = _Checker(file), now or _now()
    df = raw.reset_index(drop=True).copy()
    drop = _check_lead_refs(chk, df, lead_ids)
    occurred = parse_timestamps(df["occurred_at"])
    drop |= chk.bad_rows(occurred.isna(), "occurred_at", TIMESTAMP_EXPECTED, df["occurred_at"])
    drop |= chk.future(occurred, "occurred_at", df["occurred_at"], now)
    df["occurred_at"] = occurred
    df["activity_type"] = _lower(df["activity_type"])
    drop |= chk.bad_rows(df["activity_type"].isna(), "activity_type", "an activity type", df["activity_type"])
    for col in ("channel", "campaign"):
        if col in df.columns:
            df[col] = _text(df[col])
    clean = df.loc[~drop].reset_index(drop=True)
    return clean, chk.problems, int(drop.sum())


def check_opportunities(
    raw: pd.DataFrame, lead_ids: set[str], file: str = "opportunities", now: pd.Timestamp | None = None
) -> tuple[pd.DataFrame, list[Problem], int]:
    """Validate and normalise opportunities: stage in {open, won, lost}, closed_at set iff closed."""
    chk, now = _Checker(file), now or _now()
    df = raw.reset_index(drop=True).copy()
    drop = _check_lead_refs(chk, df, lead_ids)
    created = parse_timestamps(df["created_at"])
    drop |= chk.bad_rows(created.isna(), "created_at", TIMESTAMP_EXPECTED, df["created_at"])
    drop |= chk.future(created, "created_at", df["created_at"], now)
    stage = _lower(df["stage"])
    drop |= chk.bad_rows(~stage.isin(STAGES), "stage", "one of open, won, lost", df["stage"])
    closed_raw = _text(df["closed_at"]) if not pd.api.types.is_datetime64_any_dtype(df["closed_at"]) else df["closed_at"]
    closed = parse_timestamps(df["closed_at"])
    unparsable = closed.isna() & pd.Series(closed_raw).notna()
    drop |= chk.bad_rows(unparsable, "closed_at", TIMESTAMP_EXPECTED + " or empty", df["closed_at"])
    missing_close = stage.isin(("won", "lost")) & closed.isna() & ~unparsable
    drop |= chk.bad_rows(missing_close, "closed_at", "a close date for a won or lost deal", df["closed_at"])
    drop |= chk.future(closed, "closed_at", df["closed_at"], now)
    early = closed.notna() & created.notna() & (closed < created)
    drop |= chk.bad_rows(early, "closed_at", "a date at or after created_at", df["closed_at"])
    # An open deal with a close date is contradictory but harmless: report it, keep the row open.
    open_closed = (stage == "open") & closed.notna()
    chk.bad_rows(open_closed, "closed_at", "empty while stage is open", df["closed_at"])
    df["created_at"], df["stage"] = created, stage
    df["closed_at"] = closed.where(stage != "open")
    if "amount" in df.columns:
        df["amount"] = pd.to_numeric(df["amount"], errors="coerce").astype("float64")
    clean = df.loc[~drop].reset_index(drop=True)
    return clean, chk.problems, int(drop.sum())


def check_lead_status(
    raw: pd.DataFrame, lead_ids: set[str], file: str = "lead_status", now: pd.Timestamp | None = None
) -> tuple[pd.DataFrame, list[Problem], int]:
    """Validate and normalise sales' feedback: a known lead, a time, a status (lower case; a status
    outside ``LEAD_STATUSES`` is kept as written), an optional free-text reason."""
    chk, now = _Checker(file), now or _now()
    df = raw.reset_index(drop=True).copy()
    drop = _check_lead_refs(chk, df, lead_ids)
    changed = parse_timestamps(df["changed_at"])
    drop |= chk.bad_rows(changed.isna(), "changed_at", TIMESTAMP_EXPECTED, df["changed_at"])
    drop |= chk.future(changed, "changed_at", df["changed_at"], now)
    df["changed_at"] = changed
    df["status"] = _lower(df["status"])
    drop |= chk.bad_rows(df["status"].isna(), "status", "a status (" + ", ".join(LEAD_STATUSES) + ", …)", df["status"])
    df["reason"] = _text(df["reason"]) if "reason" in df.columns else pd.Series(None, index=df.index, dtype="object")
    clean = df.loc[~drop, list(LEAD_STATUS_COLUMNS)].reset_index(drop=True)
    return clean, chk.problems, int(drop.sum())


def _is_url(source: Path | str) -> bool:
    return isinstance(source, str) and "://" in source


def _read_sql_tables(url: str) -> tuple[dict[str, pd.DataFrame], dict[str, str], list[Problem]]:
    """The contract's tables from a database (any SQLAlchemy URL: sqlite, postgresql, …)."""
    import sqlalchemy as sa

    shown = sa.engine.make_url(url).render_as_string(hide_password=True)
    try:
        engine = sa.create_engine(url)
        names = set(sa.inspect(engine).get_table_names())
    except Exception as exc:  # a wrong URL or an unreachable server is the user's to fix
        return {}, {}, [Problem(shown, None, None, "a reachable database", f"{type(exc).__name__}: {exc}")]
    raw, files, problems = {}, {}, []
    for name in TABLES + OPTIONAL_TABLES:
        if name in OPTIONAL_TABLES and name not in names:
            continue
        files[name] = f"{shown} table {name}"
        if name not in names:
            problems.append(Problem(files[name], None, None, f"a table '{name}'", f"tables {sorted(names)}"))
            continue
        with engine.connect() as conn:
            raw[name] = pd.read_sql_table(name, conn)
    engine.dispose()
    return raw, files, problems


def _read_folder(folder: Path) -> tuple[dict[str, pd.DataFrame], dict[str, str], list[Problem], dict[str, str]]:
    from leadscore.features.dialect import DialectError

    if not folder.is_dir():
        return {}, {}, [Problem(str(folder), None, None, "a folder with leads, activities, opportunities", "no such folder")], {}
    paths = {name: _find_table(folder, name) for name in TABLES}
    missing = [
        Problem(str(folder / f"{name}.csv"), None, None, f"a table '{name}' (.csv, .xlsx or .parquet)", "no such file")
        for name, p in paths.items()
        if p is None
    ]
    if missing:
        return {}, {}, missing, {}
    paths.update({name: p for name in OPTIONAL_TABLES if (p := _find_table(folder, name)) is not None})
    raw, problems, dialects = {}, [], {}
    for name, p in paths.items():
        try:
            raw[name], dialect = _read_table(p)
        except DialectError as exc:
            problems.append(Problem(exc.file, None, exc.column, exc.expected, exc.found))
            continue
        except Exception as exc:  # an unreadable file is a contract problem, not a traceback
            problems.append(Problem(str(p), None, None, "a readable CSV, Excel or Parquet table", f"{type(exc).__name__}: {exc}"))
            continue
        if dialect:
            dialects[name] = dialect
    return raw, {name: str(p) for name, p in paths.items()}, problems, dialects


def read_export(source: Path | str, now: pd.Timestamp | None = None) -> Export:
    """Read and check an export: a folder of CSV/Parquet tables or a database URL.

    Raises ContractError when it cannot be used at all (a missing table or required column).
    """
    if _is_url(source):
        (raw, files, fatal), dialects = _read_sql_tables(source), {}
    else:
        raw, files, fatal, dialects = _read_folder(Path(source))
    if fatal:
        raise ContractError(fatal)
    for name, frame in raw.items():
        fatal += _missing_columns(frame, name, files[name])
    if fatal:
        raise ContractError(fatal)
    now = now or _now()
    leads, p_leads, d_leads = check_leads(raw["leads"], files["leads"], now)
    ids = set(leads["lead_id"])
    acts, p_acts, d_acts = check_activities(raw["activities"], ids, files["activities"], now)
    opps, p_opps, d_opps = check_opportunities(raw["opportunities"], ids, files["opportunities"], now)
    status, p_status, d_status = empty_lead_status(), [], 0
    if "lead_status" in raw:
        status, p_status, d_status = check_lead_status(raw["lead_status"], ids, files["lead_status"], now)
    if leads.empty:
        raise ContractError(p_leads + [Problem(files["leads"], None, None, "at least one usable lead", "none")])
    return Export(
        leads=leads,
        activities=acts,
        opportunities=opps,
        lead_status=status,
        problems=p_leads + p_acts + p_opps + p_status,
        dropped={"leads": d_leads, "activities": d_acts, "opportunities": d_opps,
                 **({"lead_status": d_status} if "lead_status" in raw else {})},
        files=files,
        dialects=dialects,
    )
