"""Drive Debian's headless Chromium from tests through its command line (no extra Python packages).

Each call starts a fresh Chromium with a throw-away profile, is time-boxed, and fails the test with
the tail of Chromium's stderr when something goes wrong. A missing Chromium fails the test too (it
is a system dependency of the test suite, installed by ``scripts/system-deps.sh``), it is not skipped.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

TIMEOUT_S = 60
# Needed on a closed network and in containers: no sandbox (root), no GPU, no phoning home.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
)
# stderr lines that every run prints in a container without a session bus; they hide the real error
_NOISE = ("dbus", "Fontconfig", "ALSA", "Floss manager")


def chromium_path() -> str:
    """The Chromium binary; fails the calling test (not a skip) when it is not installed."""
    for candidate in (os.environ.get("CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium",
                      shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail("Chromium not found (looked at $CHROMIUM, 'chromium' on PATH and /usr/bin/chromium): "
                "run scripts/system-deps.sh to install it", pytrace=False)


def _url(url_or_path: str | Path) -> str:
    text = str(url_or_path)
    if isinstance(url_or_path, Path) or "://" not in text:
        return Path(text).resolve().as_uri()
    return text


def _tail(stderr: str, lines: int = 25) -> str:
    useful = [line for line in stderr.splitlines() if line.strip() and not any(n in line for n in _NOISE)]
    return "\n".join(useful[-lines:]) or "(stderr empty apart from D-Bus noise)"


def _run(extra: list[str], url: str, timeout: float = TIMEOUT_S) -> tuple[str, str]:
    """Run Chromium once; returns (stdout, stderr). Fails the test on timeout or a non-zero exit."""
    binary = chromium_path()
    with tempfile.TemporaryDirectory(prefix="chromium-profile-", ignore_cleanup_errors=True) as profile:
        cmd = [binary, *FLAGS, f"--user-data-dir={profile}", *extra, url]
        # its own process group, so a hung browser and its helper processes can be ended together
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            pytest.fail(f"Chromium did not finish within {timeout:g} s for {url}\n"
                        f"command: {' '.join(cmd)}\nstderr tail:\n{_tail(err)}", pytrace=False)
    if proc.returncode != 0:
        pytest.fail(f"Chromium exited with {proc.returncode} for {url}\ncommand: {' '.join(cmd)}\n"
                    f"stderr tail:\n{_tail(err)}", pytrace=False)
    return out, err


def screenshot(url_or_path: str | Path, png_path: str | Path, width: int = 900, height: int = 1000,
               budget_ms: int = 2000) -> Path:
    """Save a PNG of the page's first ``width`` × ``height`` pixels (scripts run for ``budget_ms`` of
    virtual time first). Returns the PNG's path."""
    png = Path(png_path).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    _, err = _run([f"--screenshot={png}", f"--window-size={width},{height}",
                   f"--virtual-time-budget={budget_ms}"], _url(url_or_path))
    if not png.is_file() or png.stat().st_size == 0:
        pytest.fail(f"Chromium wrote no screenshot to {png}\nstderr tail:\n{_tail(err)}", pytrace=False)
    return png


def dump_dom(url_or_path: str | Path, budget_ms: int = 2000, width: int = 900, height: int = 1000) -> str:
    """The page's DOM serialised as HTML after its scripts ran for ``budget_ms`` of virtual time
    (virtual time waits for pending network fetches, so a fetch-and-replace finishes first)."""
    out, err = _run(["--dump-dom", f"--virtual-time-budget={budget_ms}", f"--window-size={width},{height}"],
                    _url(url_or_path))
    if "<html" not in out.lower():
        pytest.fail(f"Chromium dumped no DOM for {url_or_path}\nstdout head: {out[:300]!r}\n"
                    f"stderr tail:\n{_tail(err)}", pytrace=False)
    return out
