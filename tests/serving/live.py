"""What the tests that start real servers share: a free port, waiting until ready, slow clients."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, proc, timeout: float, why: Callable[[], str] = lambda: "") -> None:
    """Poll ``url`` until it answers 200; fail the test if ``proc`` exits first (with ``why()``,
    e.g. the end of its log) or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, why() or f"exited with {proc.returncode}"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{url} not ready in {timeout:.0f} s"
        time.sleep(0.1)


@contextmanager
def trickling(host: str, port: int, head: bytes, body: bytes, clients: int, every_s: float,
              timeout: float) -> Iterator[list[socket.socket]]:
    """``clients`` connections that send ``head`` at once, then ``body`` one byte per ``every_s``
    each; yields their sockets, closed afterwards."""
    slow = [socket.create_connection((host, port), timeout=timeout) for _ in range(clients)]
    for s in slow:
        s.sendall(head)
    stop = threading.Event()

    def trickle():
        for i in range(len(body)):
            for s in slow:
                try:
                    s.send(body[i:i + 1])
                except OSError:
                    pass
            if stop.wait(every_s):
                return

    threading.Thread(target=trickle, daemon=True).start()
    try:
        yield slow
    finally:
        stop.set()
        for s in slow:
            s.close()


def read_until(sock: socket.socket, marker: bytes) -> bytes:
    """What ``sock`` receives until ``marker`` has arrived or the peer closes."""
    data = b""
    while marker not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data
