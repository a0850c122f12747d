"""A throwaway PostgreSQL 15 + PostGIS cluster for tests.

``start_cluster`` runs ``initdb`` in a private directory, starts the server on a free loopback port
(with durability switched off, since the data is disposable), and creates the database ``onemap``
with the PostGIS extension. When the tests run as root, the server runs as the ``postgres`` OS user.

Missing binaries are an error, never a skip: the test command installs the Debian packages
``postgresql-15`` and ``postgresql-15-postgis-3``, and PostGIS tests must not pass by not running.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

PG_BIN = Path("/usr/lib/postgresql/15/bin")
POSTGIS_CONTROL = Path("/usr/share/postgresql/15/extension/postgis.control")
INSTALL_WAIT_S = 600
SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "'32MB'",
    "max_connections": "40",
    "max_wal_size": "'256MB'",
    "logging_collector": "off",
}


class ClusterError(RuntimeError):
    """The test cluster could not be created or started; the message says why."""


@dataclass
class PgCluster:
    """A running throwaway cluster; ``url`` points at the ``onemap`` database."""

    base_dir: Path
    port: int
    link: Path | None = None

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base_dir / "sock"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/onemap"

    def halt(self) -> None:
        """Stop the server but keep the data, as if the database went away."""
        _pg_ctl("stop", "-D", str(self.data_dir), "-m", "fast", "-w")

    def resume(self) -> None:
        """Start the server again after ``halt``."""
        _pg_ctl("start", "-D", str(self.data_dir), "-w", "-t", "30", "-l", str(self.base_dir / "server.log"))

    def stop(self) -> None:
        """Stop the server immediately and remove its directory."""
        with contextlib.suppress(ClusterError):  # already stopped; still remove the directory
            _pg_ctl("stop", "-D", str(self.data_dir), "-m", "immediate", "-w")
        shutil.rmtree(self.base_dir, ignore_errors=True)
        if self.link is not None:
            self.link.unlink(missing_ok=True)


def _as_postgres(cmd: list[str]) -> list[str]:
    """Run as the ``postgres`` OS user when we are root (the server refuses to run as root)."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _run(cmd: list[str], timeout: float = 60) -> None:
    proc = subprocess.run(_as_postgres(cmd), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        output = proc.stderr.strip() or proc.stdout.strip()
        raise ClusterError(f"{Path(cmd[0]).name} failed ({proc.returncode}): {output}")


def _pg_ctl(*args: str) -> None:
    _run([str(PG_BIN / "pg_ctl"), *args])


def _installer_running() -> bool:
    """True while apt-get or dpkg runs (another process may still be installing PostgreSQL)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            name = (proc / "comm").read_text().strip()
        except OSError:
            continue
        if name in {"apt-get", "apt", "dpkg", "aptitude"}:
            return True
    return False


def wait_for_binaries(timeout_s: float = INSTALL_WAIT_S) -> None:
    """Wait (bounded) while packages are being installed; raise if PostgreSQL or PostGIS is missing."""
    needed = [PG_BIN / "initdb", PG_BIN / "pg_ctl", PG_BIN / "postgres", POSTGIS_CONTROL]
    deadline = time.monotonic() + timeout_s
    while True:
        missing = [str(p) for p in needed if not p.exists()]
        if not missing:
            return
        if not _installer_running() or time.monotonic() > deadline:
            raise ClusterError(
                "PostgreSQL 15 with PostGIS is required for these tests but is not installed "
                f"(missing: {', '.join(missing)}). Install: apt-get install -y postgresql-15 postgresql-15-postgis-3"
            )
        time.sleep(2)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _postgres_can_write(path: Path) -> bool:
    return subprocess.run(_as_postgres(["test", "-w", str(path)]), capture_output=True).returncode == 0


def _prepare_home(base_dir: Path) -> tuple[Path, Path | None]:
    """The directory the cluster lives in, and a symlink to it when it is not ``base_dir`` itself.

    As root the server runs as ``postgres``, which must reach the directory. Private directories
    (pytest's temporary directories are 0700 root) get a symlink ``base_dir/cluster`` to a fresh
    directory in the system temporary directory instead.
    """
    base_dir.mkdir(parents=True, exist_ok=True)
    home, link = base_dir, None
    if os.geteuid() == 0:
        shutil.chown(base_dir, "postgres", "postgres")
        if not _postgres_can_write(base_dir):
            home = Path(tempfile.mkdtemp(prefix="onemap-pg-"))
            shutil.chown(home, "postgres", "postgres")
            link = base_dir / "cluster"
            link.symlink_to(home, target_is_directory=True)
        if not _postgres_can_write(home):
            raise ClusterError(f"the postgres OS user cannot write to {home}")
    (home / "sock").mkdir(exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(home / "sock", "postgres", "postgres")
    return home, link


def _write_config(cluster: PgCluster) -> None:
    settings = dict(SERVER_SETTINGS, port=str(cluster.port), unix_socket_directories=f"'{cluster.socket_dir}'")
    lines = "".join(f"{key} = {value}\n" for key, value in settings.items())
    with open(cluster.data_dir / "postgresql.conf", "a", encoding="utf-8") as conf:
        conf.write("\n# throwaway test cluster\n" + lines)


def _create_database(cluster: PgCluster) -> None:
    admin = f"postgresql://postgres@127.0.0.1:{cluster.port}/postgres"
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        conn.execute("CREATE DATABASE onemap")
    with psycopg.connect(cluster.url, autocommit=True, connect_timeout=10) as conn:
        conn.execute("CREATE EXTENSION postgis")


def start_cluster(base_dir: Path | None = None) -> PgCluster:
    """Create and start a throwaway cluster in ``base_dir`` (a fresh temporary directory when ``None``).

    The cluster's directory is removed by ``PgCluster.stop()``.
    """
    wait_for_binaries()
    base_dir = Path(base_dir) if base_dir else Path(tempfile.mkdtemp(prefix="onemap-pg-"))
    home, link = _prepare_home(base_dir)
    cluster = PgCluster(home, port=0, link=link)
    try:
        _run([str(PG_BIN / "initdb"), "-D", str(cluster.data_dir), "-U", "postgres", "-A", "trust",
              "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"], timeout=120)
        _start_on_free_port(cluster)
        _create_database(cluster)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _start_on_free_port(cluster: PgCluster, attempts: int = 3) -> None:
    """Pick a free loopback port and start; another process may take the port first, so retry."""
    for attempt in range(attempts):
        cluster.port = _free_port()
        _write_config(cluster)
        try:
            cluster.resume()
            return
        except ClusterError:
            if attempt == attempts - 1:
                raise


@contextlib.contextmanager
def sample_cluster(base_dir: Path, scale: int = 200) -> Iterator[PgCluster]:
    """A throwaway cluster holding the sample county at ``scale`` parcels, stopped after."""
    from server.sample import build_sample
    from server.settings import Settings
    from server.stores.postgis import PostGISStore

    pg = start_cluster(base_dir)
    try:
        build_sample(scale, PostGISStore(Settings(database_url=pg.url)))
        yield pg
    finally:
        pg.stop()
