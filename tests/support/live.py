"""A live server for tests that drive real clients over HTTP: uvicorn in a thread on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn
from starlette.types import ASGIApp

from server.app import create_app
from server.settings import Settings
from tests.support import ROOT


def free_port() -> int:
    """A loopback port free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def live_server(settings: Settings, wrap: Callable[[ASGIApp], ASGIApp] | None = None) -> Iterator[str]:
    """Serve ``create_app(settings)`` (inside ``wrap``, if given) until the block ends; yields the root URL."""
    port = free_port()
    app = create_app(settings)
    config = uvicorn.Config(wrap(app) if wrap else app, host="127.0.0.1", port=port, log_level="warning",
                            proxy_headers=False)
    server = uvicorn.Server(config)  # forwarded headers are the app's to judge (ONEMAP_TRUSTED_PROXIES)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the server did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def wait_answering(url: str, proc: subprocess.Popen, log: Path, timeout_s: float = 60) -> None:
    """Wait until ``url`` answers 200 from the server process ``proc``; the assertion fails with the tail
    of its ``log`` when the process exits or ``timeout_s`` passes first."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)


def serve_process(env: dict[str, str], log: Path, *options: str, workers: int = 2) -> tuple[subprocess.Popen, str]:
    """``onemap serve --workers N`` on a free loopback port with the ``ONEMAP_`` variables of ``env`` only (the
    test environment's own are left out), output to ``log``; returns (process, root URL) once it was
    started, not yet answering (``wait_answering``)."""
    port = free_port()
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("ONEMAP_", "PROMETHEUS_"))}
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--port", str(port),
                                 "--workers", str(workers), *options],
                                cwd=ROOT, env=inherited | env, stdout=out, stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}"
