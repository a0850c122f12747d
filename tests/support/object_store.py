"""A real S3-compatible object store for tests: moto's server mode (``moto_server``) on a loopback port,
behind a TCP proxy the tests can slow down and whose traffic they can count.

``ObjectStore.stop()`` stops the server process (a failing store); ``start()`` brings it back on the
same port and uploads the same objects again (moto keeps them in memory only).
Missing binaries are an error, never a skip: the tests that claim to test object storage must run it.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

MOTO_SERVER = Path(sys.executable).parent / "moto_server"
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DelayingProxy:
    """Forwards loopback TCP connections to ``target_port``, holding every chunk of the answers back for
    ``delay_s`` (kept-alive connections too); counts the bytes sent back to clients (``received``)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.delay_s = 0.0
        self.received = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
        except OSError:
            client.close()  # the store is down: the connection ends at once
            return
        threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
        self._pipe(upstream, client, True)

    def _pipe(self, src: socket.socket, dst: socket.socket, count: bool) -> None:
        try:
            while data := src.recv(65536):
                if count:
                    time.sleep(self.delay_s)
                    with self._lock:
                        self.received += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed = True
        self._listener.close()


class ObjectStore:
    """moto's S3 server with a bucket of uploaded files, reached through a ``DelayingProxy``."""

    def __init__(self, bucket: str) -> None:
        if not MOTO_SERVER.exists():
            raise RuntimeError("moto_server is required (pip install 'moto[server]')")
        self.bucket = bucket
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.objects: dict[str, Path] = {}
        self.proxy = DelayingProxy(self.port)

    @property
    def gdal_env(self) -> dict[str, str]:
        """What GDAL needs in the environment to read ``/vsis3/`` from this store (through the proxy)."""
        return {"AWS_S3_ENDPOINT": f"127.0.0.1:{self.proxy.port}", "AWS_HTTPS": "NO", "AWS_VIRTUAL_HOSTING": "FALSE",
                "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": REGION}

    def _client(self):
        import boto3

        return boto3.client("s3", endpoint_url=f"http://127.0.0.1:{self.port}", region_name=REGION,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def start(self, timeout_s: float = 30.0) -> None:
        """Start (or restart) the server on the same port, then create the bucket and upload the objects."""
        self.proc = subprocess.Popen([str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)
        client = self._client()
        client.create_bucket(Bucket=self.bucket)
        for key, path in self.objects.items():
            client.upload_file(str(path), self.bucket, key)

    def put(self, key: str, path: Path) -> None:
        """Upload a file now, and again after every restart."""
        self.objects[key] = path
        self._client().upload_file(str(path), self.bucket, key)

    def stop(self) -> None:
        """Stop the server: every request to the store fails."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def close(self) -> None:
        self.stop()
        self.proxy.close()
