"""A real PostgreSQL server for the serving tests: started once per session, removed afterwards.

The server runs from the Debian binaries (``scripts/system-deps.sh`` installs them); when they
are missing the tests fail rather than skip, so CI cannot pass without proving PostgreSQL works.
PostgreSQL refuses to run as root, so under root the server runs as the ``postgres`` user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shlex
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serving.live import free_port

PG_USER = "leadscore"
PG_PASSWORD = "pg-Secret-7f3a91"  # distinctive, so tests can assert it never leaks into messages
PG_DATABASE = "leadscore"
SERVER_USER = "postgres"  # created by Debian's postgresql package
# Durability is irrelevant for a throwaway server; without fsync a database is created in ~50 ms.
FAST_SETTINGS = ("fsync=off", "full_page_writes=off", "synchronous_commit=off")


def postgres_bin_dir() -> Path | None:
    """The folder holding initdb and pg_ctl: PATH first, then the newest /usr/lib/postgresql/*/bin."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).parent
    candidates = [Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")]
    candidates = [p for p in candidates if (p / "pg_ctl").exists() and (p / "initdb").exists()]
    candidates.sort(key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    return candidates[-1] if candidates else None


def _as_server_user(cmd: list[str]) -> list[str]:
    """The command as PostgreSQL will accept it: unchanged, or run as `postgres` when we are root."""
    if os.geteuid() != 0:
        return cmd
    if shutil.which("runuser"):
        return ["runuser", "-u", SERVER_USER, "--", *cmd]
    return ["su", SERVER_USER, "-s", "/bin/sh", "-c", shlex.join(cmd)]


def _run(cmd: list[str], what: str, log: Path | None = None) -> None:
    """Run a server command; fail the session with its output (and the server log) if it fails."""
    done = subprocess.run(_as_server_user(cmd), capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        log_tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
        pytest.fail(
            f"PostgreSQL test server: {what} failed (exit {done.returncode}).\n"
            f"command: {shlex.join(cmd)}\n{done.stdout}{done.stderr}\n{log_tail}",
            pytrace=False,
        )


def _server_dir() -> Path:
    """A private folder the server user owns (pytest's own tmp tree is 0700 root when run as root)."""
    if os.geteuid() != 0:
        return Path(tempfile.mkdtemp(prefix="leadscore-pg-"))
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        pytest.fail(
            f"running as root but there is no '{SERVER_USER}' user to run PostgreSQL as; "
            "run scripts/system-deps.sh (Debian's postgresql package creates it)",
            pytrace=False,
        )
    # /tmp rather than $TMPDIR: the server user must be able to reach the folder.
    folder = Path(tempfile.mkdtemp(prefix="leadscore-pg-", dir="/tmp"))
    shutil.chown(folder, user=SERVER_USER, group=SERVER_USER)
    return folder


def _sqlalchemy_url(port: int, database: str) -> str:
    return f"postgresql+psycopg://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{port}/{database}"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A ``postgresql+psycopg://`` URL (with a password) to a database on a server private to this session."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.fail(
            "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql/*/bin: "
            "run scripts/system-deps.sh",
            pytrace=False,
        )
    folder = _server_dir()
    data, sockets, log = folder / "data", folder / "sockets", folder / "server.log"
    pwfile = folder / "pwfile"
    pwfile.write_text(PG_PASSWORD + "\n")
    sockets.mkdir()
    if os.geteuid() == 0:
        for path in (pwfile, sockets):
            shutil.chown(path, user=SERVER_USER, group=SERVER_USER)
    started = False
    try:
        _run(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", PG_USER, f"--pwfile={pwfile}",
             "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync"],
            "initdb",
        )
        for attempt in range(3):  # the free port may be taken between choosing and binding it
            port = free_port()
            options = ["-h", "127.0.0.1", "-p", str(port), "-k", str(sockets)]
            for setting in FAST_SETTINGS:
                options += ["-c", setting]
            cmd = [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
                   "-o", shlex.join(options), "start"]
            done = subprocess.run(_as_server_user(cmd), capture_output=True, text=True, timeout=120)
            if done.returncode == 0:
                started = True
                break
            if attempt == 2:
                _run(cmd, "pg_ctl start", log)
        _create_database(port, PG_DATABASE)
        yield _sqlalchemy_url(port, PG_DATABASE)
    finally:
        if started:
            subprocess.run(
                _as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
                capture_output=True, timeout=120,
            )
        shutil.rmtree(folder, ignore_errors=True)


def _create_database(port: int, name: str) -> None:
    """CREATE DATABASE over TCP as the session's superuser."""
    import psycopg

    with psycopg.connect(host="127.0.0.1", port=port, user=PG_USER, password=PG_PASSWORD,
                         dbname="postgres", autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> str:
    """A URL to a new, empty database on the session's server, for tests that need a clean slate."""
    from sqlalchemy.engine import make_url

    url = make_url(postgres_url)
    name = f"t_{uuid.uuid4().hex[:12]}"
    _create_database(url.port, name)
    return url.set(database=name).render_as_string(hide_password=False)
