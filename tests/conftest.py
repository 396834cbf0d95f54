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


@pytest.fixture(scope="session")
def postgres_url():
    """A throwaway PostgreSQL cluster on a free local port (Debian's postgresql package; installed by CI)."""
    import os
    import socket
    import subprocess
    import time

    bindir = _pg_bin()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries not found (apt-get install postgresql)")
        pytest.skip("PostgreSQL server binaries not installed")
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="report_nlp_pg_"))  # not under pytest's 0700 tree: postgres must reach it
    data, sockdir = base / "data", base / "sock"
    sockdir.mkdir()
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: run the cluster as the postgres user
        subprocess.run(["chown", "-R", "postgres", str(base)], check=True)
        os.chmod(base, 0o755)
        prefix = ["runuser", "-u", "postgres", "--"]
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    subprocess.run(prefix + [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "report_nlp"], check=True,
                   capture_output=True)
    opts = f"-p {port} -k {sockdir} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(prefix + [str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(base / "log"), "-w", "start"],
                   check=True, capture_output=True)
    try:
        for _ in range(50):
            if subprocess.run(prefix + [str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "report_nlp", "reports"],
                              capture_output=True).returncode == 0:
                break
            time.sleep(0.2)
        yield f"postgresql+psycopg://report_nlp@127.0.0.1:{port}/reports"
    finally:
        subprocess.run(prefix + [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
