"""The score ledger: every score the live API served, with what it was computed from.

SQLite by default (one file, several worker processes), PostgreSQL via a
``postgresql+psycopg://`` URL. Leads are stored under a keyed pseudonym, never their raw id.
Every database failure surfaces as one short ``LedgerError`` line that never carries the
URL's password; a dead or locked database fails within about ``timeout_s``, never hangs.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import hmac
import json
import math
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
    true,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError, StatementError
from sqlalchemy.schema import CreateIndex, CreateTable

EXPECTED_URLS = "sqlite:///path.db or postgresql+psycopg://user:pass@host/db"
_PSEUDONYM = re.compile(r"[0-9a-f]{64}")
_SCHEMA_LOCK_ID = 0x6C656467  # "ledg": serialises concurrent first-use DDL on PostgreSQL

_metadata = MetaData()
score_ledger = Table(
    "score_ledger",
    _metadata,
    # SQLite only auto-increments an INTEGER PRIMARY KEY, so BIGINT there would need explicit ids.
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("lead_key", String(64), nullable=False),
    Column("as_of", DateTime(timezone=False), nullable=False),
    Column("scored_at", DateTime(timezone=False), nullable=False),
    Column("scorer", String, nullable=False),
    Column("model_version", String),
    Column("probability", Float, nullable=False),
    Column("score", Integer, nullable=False),
    Column("grade", String, nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("features", JSON, nullable=False),
    Column("fit_grade", String),
    Column("interest_level", Integer),
    Column("matrix_cell", String),
    Column("lang", String, nullable=False),
    # The lead's account (company domain or normalised name) and its buying-centre roles when it was
    # engaged, so a card can roll up everything served for the account. Added later: see _ADDED.
    Column("account_key", String),
    Column("roles", JSON),
)
# id last: `latest` and `history` break scored_at ties by id, so the index alone answers them.
_by_lead = Index(
    "ix_score_ledger_lead_key_scored_at", score_ledger.c.lead_key, score_ledger.c.scored_at, score_ledger.c.id
)
_by_account = Index(
    "ix_score_ledger_account_key", score_ledger.c.account_key, score_ledger.c.lead_key, score_ledger.c.scored_at,
    score_ledger.c.id,
)
_ENTRY_COLUMNS = [c.name for c in score_ledger.columns if c.name != "id"]
# Columns later versions added: a ledger created before them gets them on first use (nullable).
_ADDED = {"account_key": "VARCHAR", "roles": "JSON"}


class LedgerError(RuntimeError):
    """The ledger could not be read or written (database down, locked, bad URL)."""


def pseudonym(lead_id: str, key: bytes) -> str:
    """The lead id as stored and logged: HMAC-SHA256 with the deployment's key, hex (64 chars).

    Same id + key -> same pseudonym; without the key it cannot be reversed or recomputed.
    Raises ValueError for an empty key, which would make the pseudonym a plain, recomputable hash.
    """
    if not key:
        raise ValueError("pseudonym key is empty: set the deployment's ledger key")
    return hmac.new(key, lead_id.encode("utf-8"), hashlib.sha256).hexdigest()


@dataclass
class LedgerEntry:
    """One served score, as recorded. Datetimes are naive UTC."""

    lead_key: str  # pseudonym(lead_id), never the raw id
    as_of: datetime  # the moment scored
    scored_at: datetime  # when the API answered
    scorer: str  # "model" | "rules"
    model_version: str | None  # registry version, or "rules:<version>"
    probability: float
    score: int  # 1..99
    grade: str  # A..D
    reasons: list[dict]  # each {"feature","value","effect","text","group"} as served
    features: dict[str, float | str | None]  # raw feature values the score was computed from (NaN -> None)
    fit_grade: str | None = None
    interest_level: int | None = None
    matrix_cell: str | None = None
    lang: str = "en"
    account_key: str | None = None  # the lead's account, if it has one
    roles: list[str] | None = None  # its buying-centre roles while engaged ([] when not engaged)
    id: int | None = None  # set when read back


class Ledger:
    """Records served scores and reads them back; one Engine (connection pool) per process."""

    def __init__(self, url: str, *, timeout_s: float = 1.0) -> None:
        """Parse and check the URL (LedgerError if it is not SQLite or PostgreSQL); connects on first use."""
        self._url = _parse_url(url)
        self._engine = _create_engine(self._url, timeout_s)
        self._pid = os.getpid()
        self._ready = False
        self._ready_lock = threading.Lock()
        self._insert = score_ledger.insert()

    @property
    def backend(self) -> str:
        """Which database holds the ledger: "sqlite" or "postgresql"."""
        return self._url.get_backend_name()

    def describe(self) -> str:
        """The URL with any password masked, for logs and run metadata."""
        return self._url.render_as_string(hide_password=True)

    def record(self, entries: Sequence[LedgerEntry]) -> None:
        """Append entries in one transaction: all are stored or none.

        Raises LedgerError on any database failure, ValueError if a lead_key is not a pseudonym
        (a guard against raw lead ids reaching the table).
        """
        if not entries:
            return
        rows = [_entry_row(e) for e in entries]
        with self._connection("write") as conn:
            conn.execute(self._insert, rows)

    def latest(self, lead_keys: Sequence[str]) -> dict[str, LedgerEntry]:
        """The newest entry per key (by scored_at, then id); keys never scored are absent.

        One query, one index probe per distinct key. Raises LedgerError on any database failure.
        """
        keys = list(dict.fromkeys(lead_keys))
        if not keys:
            return {}
        if self.backend == "postgresql":
            query, bound = _LATEST_POSTGRESQL, keys
        else:
            query, bound = _LATEST_SQLITE, json.dumps(keys)
        with self._connection("read") as conn:
            rows = conn.execute(query, {"keys": bound}).mappings().all()
        return {row["lead_key"]: _row_entry(row) for row in rows}

    def history(self, lead_key: str, limit: int = 100) -> list[LedgerEntry]:
        """The `limit` newest entries for one key, oldest first. Raises LedgerError on failure."""
        if limit <= 0:
            return []
        newest_first = (
            select(score_ledger)
            .where(score_ledger.c.lead_key == lead_key)
            .order_by(score_ledger.c.scored_at.desc(), score_ledger.c.id.desc())
            .limit(limit)
        )
        with self._connection("read") as conn:
            rows = conn.execute(newest_first).mappings().all()
        return [_row_entry(r) for r in reversed(rows)]

    def account_latest(self, account_key: str, limit: int = 500) -> list[LedgerEntry]:
        """The newest entry of each lead of an account (at most ``limit`` leads). Raises LedgerError."""
        newest = func.row_number().over(partition_by=score_ledger.c.lead_key,
                                        order_by=(score_ledger.c.scored_at.desc(), score_ledger.c.id.desc()))
        ranked = select(score_ledger, newest.label("rank")).where(score_ledger.c.account_key == account_key).subquery()
        query = select(ranked).where(ranked.c.rank == 1).order_by(ranked.c.probability.desc()).limit(limit)
        with self._connection("read") as conn:
            return [_row_entry(r) for r in conn.execute(query).mappings().all()]

    def scores(self) -> list[dict[str, Any]]:
        """Every recorded score in id order: lead_key, scorer, model_version, as_of, probability and
        grade (what monitoring joins with later outcomes). An SQLite file that does not exist holds
        none and is not created. Raises LedgerError on failure."""
        if self.backend == "sqlite":
            database = self._url.database or ""
            if database not in ("", ":memory:") and not database.startswith("file:") and not Path(database).exists():
                return []
        c = score_ledger.c
        query = select(c.lead_key, c.scorer, c.model_version, c.as_of, c.probability, c.grade).order_by(c.id)
        with self._connection("read") as conn:
            return [dict(r) for r in conn.execute(query).mappings().all()]

    def ping(self) -> None:
        """Raise LedgerError unless the database answers and the ledger table exists (or was just created)."""
        with self._connection("read") as conn:
            conn.execute(text("SELECT 1"))

    def close(self) -> None:
        """Close pooled connections; the ledger reconnects if used again."""
        self._engine.dispose()

    @contextmanager
    def _connection(self, purpose: str) -> Iterator[Connection]:
        """A connection inside a transaction (committed on success), with failures as LedgerError."""
        if os.getpid() != self._pid:
            # A forked worker must not share the parent's sockets/file handles: start a fresh pool.
            self._engine.dispose(close=False)
            self._pid = os.getpid()
        self._ensure_schema()
        try:
            conn = self._engine.connect()
        except SQLAlchemyError as exc:
            raise self._error("unreachable", exc) from exc
        try:
            with conn, conn.begin():
                yield conn
        except SQLAlchemyError as exc:
            raise self._error(f"{purpose} failed", exc) from exc

    def _ensure_schema(self) -> None:
        """Create the table and index if missing, once per Ledger; retried on the next call if it fails."""
        if self._ready:
            return
        with self._ready_lock:
            if self._ready:
                return
            try:
                _prepare_location(self._url)
            except OSError as exc:
                reason = f"cannot create its folder ({exc.strerror}: {exc.filename})"
                raise self._error("unreachable", exc, reason=reason) from exc
            try:
                with self._engine.begin() as conn:
                    if self.backend == "postgresql":
                        # IF NOT EXISTS alone still races on PostgreSQL's catalog when workers start together.
                        conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _SCHEMA_LOCK_ID})
                    conn.execute(CreateTable(score_ledger, if_not_exists=True))
                    present = {c["name"] for c in inspect(conn).get_columns(score_ledger.name)}
                    for name, kind in _ADDED.items():
                        if name not in present:
                            conn.execute(text(f"ALTER TABLE {score_ledger.name} ADD COLUMN {name} {kind}"))
                    conn.execute(CreateIndex(_by_lead, if_not_exists=True))
                    conn.execute(CreateIndex(_by_account, if_not_exists=True))
            except SQLAlchemyError as exc:
                raise self._error("unreachable" if _is_connect_error(exc) else "setup failed", exc) from exc
            self._ready = True

    def _error(self, what: str, exc: BaseException, *, reason: str | None = None) -> LedgerError:
        """One short line naming backend, place and failure, with the password scrubbed."""
        reason = reason or _reason(exc)
        if self._url.password:
            reason = reason.replace(str(self._url.password), "***")
        return LedgerError(f"ledger ({self.backend} at {_where(self._url)}) {what}: {reason}")


def _parse_url(url: str) -> URL:
    """The URL as SQLAlchemy will use it: plain ``postgresql://`` means psycopg 3 (the installed driver)."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise LedgerError(f"ledger URL is not valid: expected {EXPECTED_URLS}") from None
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        return parsed
    raise LedgerError(
        f"ledger URL scheme {parsed.drivername!r} is not supported: expected {EXPECTED_URLS}"
    )


def _create_engine(url: URL, timeout_s: float) -> Engine:
    """One Engine whose every wait (connect, lock, statement, pool checkout) is bounded by timeout_s."""
    serializer = functools.partial(json.dumps, allow_nan=False, separators=(",", ":"))
    if url.get_backend_name() == "sqlite":
        engine = create_engine(
            url, json_serializer=serializer, pool_timeout=timeout_s, connect_args={"timeout": timeout_s}
        )
        event.listen(engine, "connect", functools.partial(_sqlite_pragmas, timeout_ms=int(timeout_s * 1000)))
        return engine
    timeout_ms = max(1, int(timeout_s * 1000))
    return create_engine(
        url,
        json_serializer=serializer,
        pool_pre_ping=True,
        pool_timeout=timeout_s,
        connect_args={
            "connect_timeout": max(1, math.ceil(timeout_s)),  # libpq/psycopg round up to at least 2 s
            "options": f"-c statement_timeout={timeout_ms}",
            # A server that vanished without closing the socket: give up on unacknowledged sends.
            "tcp_user_timeout": max(timeout_ms, 1000),
        },
    )


def _sqlite_pragmas(dbapi_conn: Any, _record: Any, *, timeout_ms: int) -> None:
    """WAL lets readers run beside a writer; NORMAL sync is durable in WAL and skips an fsync per commit."""
    cursor = dbapi_conn.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {timeout_ms}")  # first: the WAL switch below may wait for a lock
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


def _prepare_location(url: URL) -> None:
    """Create the SQLite file's missing folders; nothing to do for in-memory or server databases.

    Never at the filesystem root: a relative path read from ``/`` (a service started by systemd or
    cron has that working directory) or one slash too many (``sqlite:////data/l.db``) would make a
    top-level folder or file. That is refused with the path to write instead (OSError, as mkdir's).
    """
    if url.get_backend_name() != "sqlite":
        return
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return
    path = Path(database).expanduser().absolute()
    missing = [p for p in path.parents if not p.exists()]
    top = missing[-1] if missing else path.parent
    if top.parent == top or (top.parent == Path(top.anchor) and missing) or path.parent == Path(path.anchor):
        raise OSError(errno.EACCES, f"refused to create it at the filesystem root (working directory {Path.cwd()}; "
                      "sqlite:///path is relative to it, sqlite:////path is absolute): expected a path below an "
                      "existing folder", str(top if missing else path))
    path.parent.mkdir(parents=True, exist_ok=True)


def _where(url: URL) -> str:
    """The place, for messages: host:port/db for a server, the file path for SQLite."""
    if url.get_backend_name() == "sqlite":
        return url.database or ":memory:"
    host = url.host or "localhost"
    return f"{host}:{url.port or 5432}/{url.database or ''}"


def _reason(exc: BaseException) -> str:
    """The driver's own first line: SQLAlchemy's wrapper adds SQL and parameters, which don't belong in a log line."""
    cause = exc.orig if isinstance(exc, StatementError) and exc.orig is not None else exc
    lines = str(cause).strip().splitlines()
    first = lines[0] if lines else type(cause).__name__
    first = first.removeprefix("connection failed: ")
    return first[:200]


def _is_connect_error(exc: SQLAlchemyError) -> bool:
    """True when the failure is about reaching the database rather than the statement."""
    return isinstance(exc, DBAPIError) and (exc.connection_invalidated or exc.statement is None)


def _entry_row(entry: LedgerEntry) -> dict[str, Any]:
    """The row to insert: naive-UTC datetimes, JSON-safe reasons and features (NaN/inf -> None)."""
    if not _PSEUDONYM.fullmatch(entry.lead_key):
        raise ValueError("LedgerEntry.lead_key must be pseudonym(lead_id, key), not a raw lead id")
    return {
        "lead_key": entry.lead_key,
        "as_of": _naive_utc(entry.as_of),
        "scored_at": _naive_utc(entry.scored_at),
        "scorer": entry.scorer,
        "model_version": entry.model_version,
        "probability": float(entry.probability),
        "score": int(entry.score),
        "grade": entry.grade,
        "reasons": _json_safe(list(entry.reasons)),
        "features": _json_safe(dict(entry.features)),
        "fit_grade": entry.fit_grade,
        "interest_level": None if entry.interest_level is None else int(entry.interest_level),
        "matrix_cell": entry.matrix_cell,
        "lang": entry.lang,
        "account_key": entry.account_key,
        "roles": None if entry.roles is None else sorted(entry.roles),
    }


def _row_entry(row: Mapping[str, Any]) -> LedgerEntry:
    """A stored row back as a LedgerEntry."""
    return LedgerEntry(id=row["id"], **{name: row[name] for name in _ENTRY_COLUMNS})


def _naive_utc(moment: datetime) -> datetime:
    """Aware datetimes converted to UTC; naive ones are taken to be UTC already."""
    if hasattr(moment, "to_pydatetime"):  # pandas Timestamp: drop nanoseconds the databases can't hold
        moment = moment.to_pydatetime()
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


def _json_safe(value: Any) -> Any:
    """Plain JSON values: NaN/inf -> None, numpy scalars -> Python, dates -> ISO text.

    Anything else becomes its text rather than failing the write: the served score must not
    go unrecorded over how one value is represented.
    """
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return _json_safe(value.item())
    return str(value)


# `latest`: the keys go in as one bound value (an array, or JSON text for SQLite), so the
# statement is the same for 1 or 10,000 keys and each key costs one backward index probe.
# Filtering with `lead_key IN (...)` instead makes PostgreSQL hash-join the whole table
# (20x slower at 50k rows), and a window function reads every key's full history.


def _newest_for(lead_key: Any) -> Any:
    """Rows of `lead_key`, newest first (scored_at, then id), at most one."""
    probe = score_ledger.alias("probe")  # never auto-correlated with an outer score_ledger
    return (
        select(probe)
        .where(probe.c.lead_key == lead_key)
        .order_by(probe.c.scored_at.desc(), probe.c.id.desc())
        .limit(1)
    )


def _latest_postgresql() -> Any:
    """unnest(keys) CROSS JOIN LATERAL (newest row of that key)."""
    keys = bindparam("keys", type_=postgresql.ARRAY(String))
    wanted = func.unnest(keys).table_valued("key").render_derived(name="wanted")
    newest = _newest_for(wanted.c.key).lateral("newest")
    return select(newest).select_from(wanted).join(newest, true())


def _latest_sqlite() -> Any:
    """Rows whose id is the newest id of a key in json_each(keys); SQLite has no LATERAL."""
    wanted = func.json_each(bindparam("keys", type_=String)).table_valued("value").alias("wanted")
    newest = _newest_for(wanted.c.value)
    newest_id = newest.with_only_columns(newest.selected_columns.id).scalar_subquery()
    return select(score_ledger).where(score_ledger.c.id.in_(select(newest_id).select_from(wanted)))


_LATEST_POSTGRESQL = _latest_postgresql()
_LATEST_SQLITE = _latest_sqlite()
