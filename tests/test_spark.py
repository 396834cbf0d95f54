"""Spark in local mode gives the same findings as the local runner on the same 200 reports."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from synth import reports  # noqa: E402

try:
    import pyspark  # noqa: F401
except ImportError:  # pragma: no cover
    if os.environ.get("CI"):
        raise
    pytest.skip("PySpark not installed (optional extra [spark])", allow_module_level=True)

from report_nlp.batch import FINDING_COLUMNS, analyze_frame  # noqa: E402


@pytest.fixture(scope="module")
def spark():
    from report_nlp.spark import local_session

    session = local_session("local[2]", "report_nlp-test")
    yield session
    session.stop()


def test_spark_findings_equal_the_local_runner(spark):
    from report_nlp.spark import annotate

    pdf = pd.DataFrame({"id": [f"r{i:03d}" for i in range(200)], "text": reports(200, seed=11)})
    local = analyze_frame(pdf)[1]
    remote = annotate(spark.createDataFrame(pdf).repartition(4), "id", "text", "findings").toPandas()
    key = ["report_id", "finding_index"]
    cols = [c for c in FINDING_COLUMNS if c not in ("roots_inferred",)]
    local = local[cols].sort_values(key).reset_index(drop=True)
    remote = remote[cols].sort_values(key).reset_index(drop=True)
    assert len(local) == len(remote) > 500
    pd.testing.assert_frame_equal(local.astype(str), remote.astype(str))


def test_spark_results_and_errors_tables(spark):
    from report_nlp.spark import annotate

    pdf = pd.DataFrame({"id": ["a", "b", "c"], "text": [reports(1)[0], "", reports(1, seed=2)[0]]})
    sdf = spark.createDataFrame(pdf)
    assert sorted(annotate(sdf, table="results").toPandas()["report_id"]) == ["a", "c"]
    errors = annotate(sdf, table="errors").toPandas()
    assert list(errors["report_id"]) == ["b"] and "empty" in errors["reason"][0]


def test_spark_cli_engine_writes_three_tables(tmp_path):
    """Last in this module: run_spark stops the shared session when it is done."""
    from typer.testing import CliRunner

    from report_nlp.cli import app

    src = tmp_path / "in.jsonl"
    pd.DataFrame({"id": [f"s{i}" for i in range(20)] + ["empty"], "text": reports(20, seed=4) + [""]}).to_json(
        src, orient="records", lines=True)
    res = CliRunner().invoke(app, ["batch", str(src), "--out", str(tmp_path / "out"), "--engine", "spark", "--master", "local[2]"])
    assert res.exit_code == 0, res.output
    assert '"rows_in": 21' in res.output and '"results": 20' in res.output and '"errors": 1' in res.output
    assert (tmp_path / "out" / "findings").exists()
