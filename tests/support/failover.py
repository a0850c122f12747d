"""Two (or more) real ``onemap serve`` replicas behind a real nginx (Debian's nginx-light) on loopback,
and a client load that counts errors per second. Used by tests/test_failover.py (a short replica kill)
and load-tests/failover.py (replica kill, Redis restart; errors/s and recovery time).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from tests.support import ROOT
from tests.support.live import free_port

NGINX = Path("/usr/sbin/nginx")
PATHS_DEFAULT = ["/collections/parcels/items?limit=20&bbox=121.50,29.80,121.60,29.90",
                 "/collections/parcels/tiles/WebMercatorQuad/14/6767/13723",
                 "/tiles/WebMercatorQuad/13/3383/6861",
                 "/collections/land_survey/items?limit=10"]

NGINX_CONF = """
{user}
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream onemap {{
{servers}
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://onemap;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_connect_timeout 2s;
            proxy_read_timeout 30s;
            proxy_next_upstream error timeout http_502 http_504;
            proxy_next_upstream_tries 2;
            proxy_next_upstream_timeout 10s;
        }}
    }}
}}
"""


def wait_http(url: str, timeout_s: float = 60, proc: subprocess.Popen | None = None) -> None:
    """Wait until ``url`` answers at all (any status)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the process serving {url} exited")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


class Replica:
    """One ``onemap serve`` process (its own session, so a kill reaches its workers too)."""

    def __init__(self, env: dict[str, str], cwd: Path, workers: int = 1) -> None:
        self.port = free_port()
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("ONEMAP_")},
                    "PYTHONPATH": str(ROOT), **env}
        self.cwd = cwd
        self.workers = workers
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--port", str(self.port), "--workers", str(self.workers),
             "--no-access-log", "--log-level", "warning"],
            env=self.env, cwd=self.cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_http(f"http://127.0.0.1:{self.port}/conformance", proc=self.proc)

    def kill(self) -> None:
        """kill -9 the replica and its workers."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


class Nginx:
    """nginx on a free loopback port, balancing over ``ports``."""

    def __init__(self, prefix: Path, ports: list[int]) -> None:
        if not NGINX.exists():
            raise RuntimeError("nginx is required (Debian package nginx-light)")
        self.port = free_port()
        prefix.mkdir(parents=True, exist_ok=True)
        servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;" for p in ports)
        user = "user root root;" if os.geteuid() == 0 else ""
        conf = prefix / "nginx.conf"
        conf.write_text(NGINX_CONF.format(user=user, prefix=prefix, servers=servers, port=self.port))
        self.proc = subprocess.Popen([str(NGINX), "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"
        wait_http(f"{self.url}/conformance", proc=self.proc)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class Load:
    """``clients`` threads requesting ``paths`` through ``base`` until stopped; outcomes by second."""

    def __init__(self, base: str, paths: list[str], key: str, clients: int = 4) -> None:
        self.base, self.paths, self.key = base, paths, key
        self.started = time.monotonic()
        self.ok: Counter[int] = Counter()
        self.errors: Counter[int] = Counter()
        self.statuses: Counter[int] = Counter()
        self.failures: Counter[str] = Counter()  # what a request that got no answer met
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(clients)]
        for t in self._threads:
            t.start()

    def _run(self, i: int) -> None:
        with httpx.Client(base_url=self.base, headers={"X-API-Key": self.key}, timeout=30) as client:
            n = i
            while not self._stop.is_set():
                path = self.paths[n % len(self.paths)]
                try:
                    status = client.get(path).status_code
                except httpx.HTTPError as exc:
                    status = 0
                    with self._lock:
                        self.failures[f"{path}: {exc.__class__.__name__} {exc}"[:300]] += 1
                second = int(time.monotonic() - self.started)
                with self._lock:
                    self.statuses[status] += 1
                    (self.ok if status == 200 else self.errors)[second] += 1
                n += 1

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())
