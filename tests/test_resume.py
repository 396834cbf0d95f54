"""Kill -9 mid-run, resume: no report lost, none written twice, same outputs as an uninterrupted run."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from synth import reports  # noqa: E402

CLI = [sys.executable, "-c", "from report_nlp.cli import app; app()"]


def batch(src, out, *extra):
    return subprocess.run(CLI + ["batch", str(src), "--out", str(out), "--chunk-size", "40", *extra], capture_output=True, text=True)


def snapshot(db):
    con = sqlite3.connect(db)
    results = con.execute("SELECT report_id, category, n_findings FROM results ORDER BY report_id").fetchall()
    findings = con.execute("SELECT report_id, finding_index, kind, level, side, negated FROM findings ORDER BY 1, 2").fetchall()
    con.close()
    return results, findings


def test_resume_after_kill_9_equals_an_uninterrupted_run(tmp_path):
    src = tmp_path / "in.jsonl"
    pd.DataFrame({"id": [f"r{i:04d}" for i in range(600)], "text": reports(600, seed=7)}).to_json(src, orient="records", lines=True)
    full = tmp_path / "full.db"
    assert batch(src, full).returncode == 0
    out = tmp_path / "killed.db"
    proc = subprocess.Popen(CLI + ["batch", str(src), "--out", str(out), "--chunk-size", "40"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    done = 0
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        try:
            con = sqlite3.connect(out, timeout=1)
            done = con.execute("SELECT COUNT(*) FROM _progress").fetchone()[0]
            con.close()
        except sqlite3.Error:
            continue
        if done >= 3:
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait()
    assert done >= 3, "the run finished before it could be killed"
    resumed = batch(src, out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "rows in = results + errors" in resumed.stdout
    assert snapshot(out) == snapshot(full)
