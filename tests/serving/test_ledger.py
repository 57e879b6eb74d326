"""The score ledger on both backends: SQLite (a tmp file) and a real PostgreSQL server."""

from __future__ import annotations

import json
import math
import socket
import sqlite3
import threading
import time
import traceback
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import leadscore.serving.ledger as ledger_module
from leadscore.serving.ledger import Ledger, LedgerEntry, LedgerError, pseudonym, score_ledger
from tests.serving.conftest import PG_PASSWORD

KEY = b"test-deployment-key"
T0 = datetime(2025, 3, 1, 9, 30, 0, 123456)


def entry(lead_id: str, scored_at: datetime, **overrides) -> LedgerEntry:
    """A realistic served score for `lead_id`, answered at `scored_at`."""
    values = dict(
        lead_key=pseudonym(lead_id, KEY),
        as_of=scored_at - timedelta(seconds=1),
        scored_at=scored_at,
        scorer="model",
        model_version="7",
        probability=0.4213,
        score=42,
        grade="B",
        reasons=[
            {"feature": "pricing_page_views_14d", "value": 3.0, "effect": 0.21,
             "text": "Viewed pricing 3 times in 14 days", "group": "interest"},
        ],
        features={"pricing_page_views_14d": 3.0, "employees": 250.0, "industry": "software", "is_free_mail": None},
        fit_grade="B",
        interest_level=3,
        matrix_cell="B3",
        lang="en",
    )
    values.update(overrides)
    return LedgerEntry(**values)


def raw_rows(url: str) -> list[dict]:
    """Every stored row, read past the Ledger API."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(r) for r in conn.execute(text("SELECT * FROM score_ledger ORDER BY id")).mappings()]
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return request.getfixturevalue("fresh_postgres_url")


@pytest.fixture
def ledger(url: str):
    ledger = Ledger(url)
    yield ledger
    ledger.close()


def test_record_then_history_round_trips_values_order_and_limit(ledger: Ledger):
    mine = [
        entry("lead-1", T0, score=30, grade="C"),
        entry("lead-1", T0 + timedelta(hours=1), score=55, grade="B", scorer="rules", model_version="rules:2"),
        entry("lead-1", T0 + timedelta(hours=2), score=91, grade="A", fit_grade=None, interest_level=None,
              matrix_cell=None, lang="de"),
    ]
    ledger.record([mine[2], mine[0]])  # stored out of order: history orders by scored_at
    ledger.record([mine[1], entry("lead-2", T0)])

    history = ledger.history(pseudonym("lead-1", KEY))

    assert [replace(e, id=None) for e in history] == mine
    assert all(isinstance(e.id, int) for e in history)
    assert ledger.history(pseudonym("lead-1", KEY), limit=2) == history[1:]
    assert ledger.history(pseudonym("lead-1", KEY), limit=0) == []
    assert ledger.history(pseudonym("never-scored", KEY)) == []


def test_record_is_all_or_nothing(ledger: Ledger):
    broken = entry("lead-2", T0, grade=None)  # NOT NULL in the table: the database refuses it

    with pytest.raises(LedgerError, match="write failed"):
        ledger.record([entry("lead-1", T0), broken])

    assert ledger.latest([pseudonym("lead-1", KEY), pseudonym("lead-2", KEY)]) == {}


def test_aware_datetimes_are_stored_as_naive_utc(ledger: Ledger):
    paris = timezone(timedelta(hours=2))
    ledger.record([entry("lead-1", datetime(2025, 3, 1, 11, 0, tzinfo=paris))])

    (stored,) = ledger.history(pseudonym("lead-1", KEY))

    assert stored.scored_at == datetime(2025, 3, 1, 9, 0)
    assert stored.scored_at.tzinfo is None


def test_latest_is_the_newest_entry_per_key(ledger: Ledger):
    ledger.record([
        entry("a", T0 + timedelta(minutes=5), score=20),
        entry("a", T0 + timedelta(minutes=9), score=80),
        entry("a", T0, score=50),
        entry("b", T0, score=11),
        entry("b", T0, score=12),  # same moment: the later insert (higher id) wins
        entry("c", T0 - timedelta(days=3), score=60),
    ])
    ledger.record([entry("c", T0 - timedelta(days=4), score=5)])  # recorded late, but older

    keys = {name: pseudonym(name, KEY) for name in ("a", "b", "c", "never-scored")}
    latest = ledger.latest([keys["a"], keys["b"], keys["c"], keys["never-scored"], keys["a"]])

    assert {k: e.score for k, e in latest.items()} == {keys["a"]: 80, keys["b"]: 12, keys["c"]: 60}
    assert ledger.latest([]) == {}


def test_latest_answers_for_more_keys_than_one_query_holds(ledger: Ledger):
    ids = [f"lead-{i}" for i in range(2500)]
    ledger.record([entry(i, T0, score=1 + n % 99) for n, i in enumerate(ids)])

    latest = ledger.latest([pseudonym(i, KEY) for i in ids])

    assert len(latest) == 2500
    assert latest[pseudonym("lead-2499", KEY)].score == 1 + 2499 % 99


def test_pseudonym_is_deterministic_keyed_hex():
    first = pseudonym("lead-42", KEY)

    assert first == pseudonym("lead-42", KEY)
    assert first != pseudonym("lead-42", b"another-deployment")
    assert first != pseudonym("lead-43", KEY)
    assert len(first) == 64 and all(ch in "0123456789abcdef" for ch in first)
    with pytest.raises(ValueError, match="key"):
        pseudonym("lead-42", b"")


def test_raw_lead_ids_never_reach_the_table(ledger: Ledger, url: str):
    raw_id = "crm-lead-0042-jane.doe@example.com"
    ledger.record([entry(raw_id, T0), entry(raw_id, T0 + timedelta(minutes=1))])
    with pytest.raises(ValueError, match="pseudonym"):
        ledger.record([entry("other", T0, lead_key="crm-lead-0043")])  # a raw id passed by mistake

    rows = raw_rows(url)

    assert len(rows) == 2
    assert {r["lead_key"] for r in rows} == {pseudonym(raw_id, KEY)}
    assert raw_id not in repr(rows) and "crm-lead-0043" not in repr(rows)


def test_nan_and_inf_features_are_stored_as_none(ledger: Ledger, url: str):
    features = {"a": math.nan, "b": math.inf, "c": np.float64("nan"), "d": np.int64(4), "e": 2.5, "f": "x"}
    reasons = [{"feature": "a", "value": math.nan, "effect": -0.1, "text": "No data", "group": "fit"}]
    ledger.record([entry("lead-1", T0, features=features, reasons=reasons)])

    (stored,) = ledger.history(pseudonym("lead-1", KEY))
    (row,) = raw_rows(url)

    assert stored.features == {"a": None, "b": None, "c": None, "d": 4, "e": 2.5, "f": "x"}
    assert stored.reasons[0]["value"] is None
    raw_json = row["features"] if isinstance(row["features"], str) else json.dumps(row["features"])
    json.loads(raw_json, parse_constant=lambda c: pytest.fail(f"invalid JSON constant {c} stored"))


def test_sqlite_creates_missing_folders_lazily_and_uses_wal(tmp_path: Path):
    path = tmp_path / "var" / "ledger" / "scores.db"
    ledger = Ledger(f"sqlite:///{path}")
    assert not path.parent.exists()  # constructing touches nothing

    ledger.ping()
    ledger.record([entry("lead-1", T0)])
    ledger.close()

    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT count(*) FROM score_ledger").fetchone()[0] == 1


def test_sqlite_in_an_uncreatable_place_raises_ledger_error(tmp_path: Path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the ledger's folder should be")
    ledger = Ledger(f"sqlite:///{blocker / 'ledger.db'}")

    for use in (ledger.ping, lambda: ledger.record([entry("lead-1", T0)]),
                lambda: ledger.latest(["x" * 64]), lambda: ledger.history("x" * 64)):
        with pytest.raises(LedgerError, match=r"^ledger \(sqlite at .*not-a-folder/ledger.db\) unreachable: "):
            use()


def test_postgresql_on_a_closed_port_fails_fast():
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ledger = Ledger(f"postgresql+psycopg://leadscore:{PG_PASSWORD}@127.0.0.1:{port}/leadscore")

    started = time.monotonic()
    with pytest.raises(LedgerError, match=rf"^ledger \(postgresql at 127.0.0.1:{port}/leadscore\) unreachable: ") as err:
        ledger.record([entry("lead-1", T0)])

    assert time.monotonic() - started < 3
    assert "\n" not in str(err.value)


def test_postgresql_server_that_never_answers_times_out():
    # Accepts TCP (the kernel completes the handshake) but never speaks: a hung or black-holed server.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        ledger = Ledger(f"postgresql+psycopg://leadscore:{PG_PASSWORD}@127.0.0.1:{port}/leadscore", timeout_s=1.0)

        started = time.monotonic()
        with pytest.raises(LedgerError, match="unreachable"):
            ledger.ping()

        assert time.monotonic() - started < 3.5  # psycopg/libpq never wait less than 2 s to connect


def test_locked_ledger_fails_within_the_timeout_instead_of_hanging(url: str):
    ledger = Ledger(url, timeout_s=0.3)
    ledger.ping()  # creates the table
    with _write_lock(url):
        started = time.monotonic()
        with pytest.raises(LedgerError, match="write failed"):
            ledger.record([entry("lead-1", T0)])
        assert time.monotonic() - started < 3

    ledger.record([entry("lead-1", T0)])  # lock released: the same ledger works again
    assert len(ledger.history(pseudonym("lead-1", KEY))) == 1
    ledger.close()


class _write_lock:
    """Holds the ledger table's write lock from another connection, as a long transaction would."""

    def __init__(self, url: str) -> None:
        self.url = make_url(url)

    def __enter__(self) -> None:
        if self.url.get_backend_name() == "sqlite":
            self.conn = sqlite3.connect(self.url.database, isolation_level=None)
            self.conn.execute("BEGIN IMMEDIATE")
        else:
            self.conn = psycopg.connect(self.url.set(drivername="postgresql").render_as_string(hide_password=False))
            self.conn.execute("LOCK TABLE score_ledger IN ACCESS EXCLUSIVE MODE")

    def __exit__(self, *exc) -> None:
        self.conn.rollback()
        self.conn.close()


def test_postgresql_reconnects_after_its_connection_was_killed(fresh_postgres_url: str):
    ledger = Ledger(fresh_postgres_url)
    ledger.record([entry("lead-1", T0)])
    with psycopg.connect(make_url(fresh_postgres_url).set(drivername="postgresql").render_as_string(hide_password=False),
                         autocommit=True) as admin:
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()[0]
    assert killed >= 1  # the ledger's pooled connection is gone, as after a server restart

    ledger.record([entry("lead-1", T0 + timedelta(minutes=1))])

    assert len(ledger.history(pseudonym("lead-1", KEY))) == 2
    ledger.close()


def test_password_never_appears_in_describe_or_errors(postgres_url: str):
    good = Ledger(postgres_url)
    assert PG_PASSWORD not in good.describe()
    assert "***" in good.describe() and good.describe().startswith("postgresql+psycopg://leadscore:")

    wrong_password = "Wrong-Pass-99z"
    wrong = Ledger(make_url(postgres_url).set(password=wrong_password).render_as_string(hide_password=False))
    with pytest.raises(LedgerError, match="unreachable: .*password authentication failed") as err:
        wrong.ping()

    shown = "".join(traceback.format_exception(err.value))  # the message and its chained causes
    assert wrong_password not in shown and PG_PASSWORD not in shown
    assert "\n" not in str(err.value)
    good.close()


@pytest.mark.parametrize("bad", ["mysql://u:p@host/db", "not a url", "redis://localhost:6379/0"])
def test_unknown_url_names_the_expected_forms(bad: str):
    with pytest.raises(LedgerError) as err:
        Ledger(bad)

    assert "sqlite:///path.db" in str(err.value)
    assert "postgresql+psycopg://user:pass@host/db" in str(err.value)
    assert ":p@" not in str(err.value)


def test_plain_postgresql_url_uses_psycopg_3():
    ledger = Ledger("postgresql://u:secret@db.internal/leads")

    assert ledger.backend == "postgresql"
    assert ledger.describe() == "postgresql+psycopg://u:***@db.internal/leads"


def test_two_ledgers_on_one_database_write_interleaved(url: str):
    first, second = Ledger(url), Ledger(url)
    for n in range(20):
        first.record([entry("lead-1", T0 + timedelta(seconds=2 * n), score=1)])
        second.record([entry("lead-1", T0 + timedelta(seconds=2 * n + 1), score=2)])

    scores = [e.score for e in first.history(pseudonym("lead-1", KEY))]

    assert scores == [1, 2] * 20
    first.close()
    second.close()


def test_sqlite_ledgers_writing_concurrently_all_succeed(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    Ledger(url).ping()
    failures: list[BaseException] = []

    def write(worker: int) -> None:
        ledger = Ledger(url)  # its own engine: a separate connection, as a separate worker process has
        try:
            for n in range(100):
                ledger.record([entry(f"lead-{worker}", T0 + timedelta(seconds=n))])
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)
        finally:
            ledger.close()

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert failures == []
    assert len(raw_rows(url)) == 400


def test_account_latest_is_the_newest_entry_of_each_lead_of_the_account(ledger: Ledger):
    t = datetime(2026, 3, 1, 9, 0)
    ledger.record([
        entry("L1", t, account_key="acme.de", roles=["user"], probability=0.1),
        entry("L1", t + timedelta(hours=1), account_key="acme.de", roles=["user", "decision_maker"], probability=0.3),
        entry("L2", t, account_key="acme.de", roles=[], probability=0.2),
        entry("L3", t, account_key="other.de", roles=["budget_holder"], probability=0.9),
        entry("L4", t, probability=0.5),  # no account
    ])
    latest = ledger.account_latest("acme.de")
    assert [(e.lead_key, e.probability) for e in latest] == [(pseudonym("L1", KEY), 0.3), (pseudonym("L2", KEY), 0.2)]
    assert latest[0].roles == ["decision_maker", "user"] and latest[1].roles == []
    assert ledger.account_latest("nobody.de") == []
    assert ledger.history(pseudonym("L4", KEY))[0].account_key is None


def test_a_ledger_from_before_the_account_columns_gets_them(url: str):
    """An older ledger table (no account columns) is extended on first use; its rows stay readable."""
    engine = create_engine(url)
    old = [c for c in score_ledger.columns if c.name not in ("account_key", "roles")]
    from sqlalchemy import MetaData, Table

    legacy = Table("score_ledger", MetaData(), *[c.copy() for c in old])
    with engine.begin() as conn:
        legacy.create(conn)
        row = {k: v for k, v in ledger_module._entry_row(entry("OLD", datetime(2026, 1, 1))).items()
               if k not in ("account_key", "roles")}
        conn.execute(legacy.insert(), [row])
    engine.dispose()
    ledger = Ledger(url)
    try:
        ledger.record([entry("NEW", datetime(2026, 1, 2), account_key="acme.de", roles=["user"])])
        assert ledger.history(pseudonym("OLD", KEY))[0].account_key is None
        assert [e.roles for e in ledger.account_latest("acme.de")] == [["user"]]
    finally:
        ledger.close()
