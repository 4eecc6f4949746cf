"""Private Redis and PostgreSQL servers for tests that stop and restart them.

The machine's shared servers are never stopped: each of these runs on a free port of its own,
is stopped by its PID (or its own data directory) and removed afterwards.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.live import free_port

REQUIRED = os.environ.get("TRAINER_REQUIRE_POSTGRES") == "1"  # CI: a missing tool fails


def _missing(what: str) -> None:
    if REQUIRED:
        pytest.fail(f"TRAINER_REQUIRE_POSTGRES=1 but {what}")
    pytest.skip(what)


def _wait_for_port(port: int, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {seconds} s")


class PrivateRedis:
    """``redis-server`` on a free port, without persistence; ``stop``/``start`` keep the port."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # by its PID: this server only
            self.process.wait(timeout=10)
        self.process = None


@contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    binary = shutil.which("redis-server")
    if binary is None:
        _missing("redis-server is not installed")
    assert binary is not None
    server = PrivateRedis(binary)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _postgres_bin() -> Path | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


class PrivatePostgres:
    """A PostgreSQL cluster of its own (initdb in a temporary folder), on a free port."""

    def __init__(self, bindir: Path, root: Path) -> None:
        self.bindir = bindir
        self.data = root / "data"
        self.root = root
        self.port = free_port()
        self.admin_url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        # initdb and postgres refuse to run as root: run them as the postgres user then
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def init(self) -> None:
        self._run(
            str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.root / "server.log")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    bindir = _postgres_bin()
    if bindir is None:
        _missing("PostgreSQL's server programs (initdb, pg_ctl) are not installed")
    assert bindir is not None
    root = Path(tempfile.mkdtemp(prefix="trainer-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    server = PrivatePostgres(bindir, root)
    server.init()
    server.start()
    try:
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
