"""Shared fixtures: the pipeline is built once per test session."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def nlp():
    import report_nlp

    return report_nlp.load()


@pytest.fixture(scope="session")
def analyze(nlp):
    import report_nlp

    return report_nlp.analyze


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


def _pg_bin() -> Path | None:
    import glob
    import shutil

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PostgresCluster:
    """A throwaway PostgreSQL cluster the tests can stop, start and restart (fault injection)."""

    def __init__(self, bindir: Path, base: Path, prefix: list[str], port: int):
        self.bindir, self.base, self.prefix, self.port = bindir, base, prefix, port
        self.data = base / "data"
        self.url = self.url_for("reports")

    def url_for(self, database: str) -> str:
        return f"postgresql+psycopg://report_nlp@127.0.0.1:{self.port}/{database}"

    def _ctl(self, *args: str, check: bool = True):
        import subprocess

        return subprocess.run(self.prefix + [str(self.bindir / "pg_ctl"), "-D", str(self.data), *args], check=check,
                              capture_output=True)

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.base / 'sock'} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._ctl("-o", opts, "-l", str(self.base / "log"), "-w", "start")

    def stop(self) -> None:
        self._ctl("-m", "fast", "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def create_database(self, name: str) -> str:
        import subprocess
        import time

        for _ in range(50):
            done = subprocess.run(self.prefix + [str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                                                 "-U", "report_nlp", name], capture_output=True)
            if done.returncode == 0:
                break
            time.sleep(0.2)
        return self.url_for(name)


@pytest.fixture(scope="session")
def postgres_cluster():
    """A throwaway PostgreSQL cluster on a free local port (Debian's postgresql package; installed by CI)."""
    import os
    import shutil
    import socket
    import subprocess
    import tempfile

    bindir = _pg_bin()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries not found (apt-get install postgresql)")
        pytest.skip("PostgreSQL server binaries not installed")
    base = Path(tempfile.mkdtemp(prefix="report_nlp_pg_"))  # not under pytest's 0700 tree: postgres must reach it
    (base / "sock").mkdir()
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: run the cluster as the postgres user
        subprocess.run(["chown", "-R", "postgres", str(base)], check=True)
        os.chmod(base, 0o755)
        prefix = ["runuser", "-u", "postgres", "--"]
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    cluster = PostgresCluster(bindir, base, prefix, port)
    subprocess.run(prefix + [str(bindir / "initdb"), "-D", str(cluster.data), "-A", "trust", "-U", "report_nlp"], check=True,
                   capture_output=True)
    cluster.start()
    try:
        cluster.create_database("reports")
        yield cluster
    finally:
        cluster._ctl("-m", "immediate", "stop", check=False)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url(postgres_cluster) -> str:
    return postgres_cluster.url
