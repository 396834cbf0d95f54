"""Patient text stays where it was asked to go. A batch (with worker processes and bad rows), the CLI and
the web server run on reports carrying a sentinel string, with their own TMPDIR, HOME and working
directory; afterwards every log line and every file they wrote is scanned. The sentinel may appear in
the requested outputs (the results database, the CLI's JSON on stdout, HTTP responses) and nowhere else."""
from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

SENTINEL = "ZQXPATIENTSENTINEL7731"
CLI = [sys.executable, "-c", "from report_nlp.cli import app; app()"]
REPORT = (f"EXAM: MRI LUMBAR SPINE\nHISTORY: {SENTINEL} back pain.\nFINDINGS:\nL4-5: {SENTINEL} moderate left foraminal "
          f"stenosis {SENTINEL} with impingement of the exiting left L4 nerve root.\nIMPRESSION: {SENTINEL}\n")


def sandbox(tmp_path: Path) -> tuple[dict, Path, list[Path]]:
    """An environment whose temp, home and cache folders are fresh, so anything written there is seen."""
    roots = [tmp_path / name for name in ("tmp", "home", "cache", "work")]
    for r in roots:
        r.mkdir()
    env = dict(os.environ, TMPDIR=str(roots[0]), HOME=str(roots[1]), XDG_CACHE_HOME=str(roots[2]),
               PYTHONDONTWRITEBYTECODE="1")
    return env, roots[3], roots


def leaks(roots: list[Path], allowed: set[Path], logs: dict[str, str]) -> list[str]:
    found = [name for name, text in logs.items() if SENTINEL in text]
    for root in roots:
        for f in root.rglob("*"):
            if f.is_file() and not any(f == a or f.name.startswith(a.name) for a in allowed):
                if SENTINEL.encode() in f.read_bytes():
                    found.append(str(f.relative_to(root.parent)))
    return found


def test_batch_and_cli_write_patient_text_only_to_the_requested_outputs(tmp_path):
    env, work, roots = sandbox(tmp_path)
    rows = [{"id": f"r{i}", "text": REPORT} for i in range(30)]
    rows += [{"id": "r1", "text": REPORT},  # duplicate id
             {"id": "big", "text": SENTINEL * 300_000},  # over the size limit
             {"id": "", "text": REPORT},  # no id
             {"id": "ctl", "text": f"{SENTINEL}\x00\x01\x02" * 50}]  # binary-looking
    src = work / "in.jsonl"
    pd.DataFrame(rows).to_json(src, orient="records", lines=True)
    out = work / "out.db"
    batch = subprocess.run(CLI + ["batch", str(src), "--out", str(out), "--workers", "2", "--chunk-size", "10"], cwd=work,
                           env=env, capture_output=True, text=True)
    assert batch.returncode == 0, batch.stderr[-2000:]
    report = work / "report.txt"
    report.write_text(REPORT)
    bad = work / "latin1.txt"
    bad.write_bytes(REPORT.encode("utf-16"))
    cli = subprocess.run(CLI + ["analyze", str(report), "--format", "json"], cwd=work, env=env, capture_output=True, text=True)
    table = subprocess.run(CLI + ["analyze", "-", "--format", "table"], input=REPORT, cwd=work, env=env, capture_output=True,
                           text=True)
    refused = subprocess.run(CLI + ["analyze", str(bad)], cwd=work, env=env, capture_output=True, text=True)
    assert cli.returncode == 0 and table.returncode == 0 and refused.returncode == 2
    assert json.loads(cli.stdout)["findings"]  # the requested output carries the findings
    logs = {"batch stdout": batch.stdout, "batch stderr": batch.stderr, "analyze stderr": cli.stderr,
            "table stderr": table.stderr, "refused stdout": refused.stdout, "refused stderr": refused.stderr}
    assert leaks(roots, {src, out, report, bad}, logs) == []


def test_web_server_logs_and_files_carry_no_patient_text(tmp_path):
    env, work, roots = sandbox(tmp_path)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    log_out, log_err = work / "server.out", work / "server.err"
    with open(log_out, "w") as out, open(log_err, "w") as err:
        server = subprocess.Popen(CLI + ["serve", "--port", str(port)], cwd=work, env=env, stdout=out, stderr=err)
    answers = []
    try:
        requests = [
            ("POST", "/api/analyze", {"content-type": "application/json"}, json.dumps({"text": REPORT}).encode()),
            ("POST", "/api/analyze", {"content-type": "application/json"},
             json.dumps({"text": REPORT, "exam": {"side": SENTINEL}}).encode()),  # invalid exam echoing the text
            ("POST", "/api/analyze", {"content-type": "application/json"}, f'{{"text": "{SENTINEL}'.encode()),  # broken JSON
            ("POST", "/api/analyze", {"content-type": "application/json"},
             json.dumps({"text": SENTINEL * 20000}).encode()),  # over the limit
            ("POST", "/", {"content-type": "application/x-www-form-urlencoded"}, f"text={SENTINEL}+L4-5+bulge".encode()),
        ]
        deadline = time.time() + 120
        while time.time() < deadline:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.3)
            finally:
                conn.close()
        for method, path, headers, body in requests:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                answers.append(resp.status)
            except OSError as exc:
                answers.append(type(exc).__name__)
            finally:
                conn.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert answers == [200, 422, 422, 413, 200]
    logs = {"server stdout": log_out.read_text(), "server stderr": log_err.read_text()}
    assert leaks(roots, {log_out, log_err}, logs) == []
