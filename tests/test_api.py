"""The public API: analyze_many keeps order, matches analyze, and gives the same results in parallel."""
from __future__ import annotations

import sys
from pathlib import Path

import report_nlp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from synth import reports  # noqa: E402


def test_api_analyze_many_matches_analyze_and_keeps_order():
    texts = reports(12, seed=3) + ["", "No disc herniation at L4-5."]
    ids = [f"r{i}" for i in range(len(texts))]
    many = list(report_nlp.analyze_many(texts, report_ids=ids, batch_size=5))
    assert [r.report_id for r in many] == ids
    for text, rid, got in zip(texts, ids, many):
        assert got == report_nlp.analyze(text, report_id=rid)


def test_api_analyze_many_in_two_processes_equals_one_process():
    texts = reports(30, seed=5)
    one = [r.model_dump() for r in report_nlp.analyze_many(texts)]
    two = [r.model_dump() for r in report_nlp.analyze_many(texts, n_process=2, batch_size=7)]
    assert one == two


def test_api_result_json_schema_is_exported():
    schema = report_nlp.Result.model_json_schema()
    assert {"findings", "study", "concordance", "recommendation", "flags", "errors"} <= set(schema["properties"])
