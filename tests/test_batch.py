"""The batch runner: every row lands in results or errors, resumable, several formats."""
from __future__ import annotations

import json
import sqlite3

import pandas as pd
import pytest

from report_nlp.batch import run

GOOD = "FINDINGS:\nL4-5: Moderate left foraminal stenosis with impingement of the exiting left L4 nerve root.\n"


def rows(n: int) -> list[dict]:
    return [{"id": f"r{i}", "text": GOOD.replace("L4-5", ["L3-4", "L4-5", "L5-S1"][i % 3])} for i in range(n)]


def poisoned() -> list[dict]:
    r = rows(6)
    r += [{"id": "", "text": GOOD}, {"id": "r1", "text": GOOD}, {"id": "blank", "text": "   "},
          {"id": "huge", "text": "x" * 5_000_001}]
    return r


def test_batch_sqlite_rows_in_equal_results_plus_errors(tmp_path):
    src = tmp_path / "in.csv"
    pd.DataFrame(poisoned()).to_csv(src, index=False)
    out = tmp_path / "out.db"
    s = run(str(src), str(out), chunk_size=4)
    assert (s.rows_in, s.results, s.errors) == (10, 6, 4)
    assert s.balanced
    db = sqlite3.connect(out)
    reasons = {r[0]: r[1] for r in db.execute("SELECT COALESCE(report_id, ''), reason FROM errors")}
    assert "missing id" in reasons[""] and reasons["r1"] == "duplicate id"
    assert "empty" in reasons["blank"] and "size limit" in reasons["huge"]
    assert db.execute("SELECT COUNT(*) FROM findings WHERE kind='nerve_root_impingement'").fetchone()[0] == 6


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_batch_reads_jsonl_and_parquet_and_writes_files(tmp_path, fmt):
    df = pd.DataFrame(rows(5))
    src = tmp_path / f"in.{fmt}"
    if fmt == "jsonl":
        df.to_json(src, orient="records", lines=True)
    else:
        df.to_parquet(src)
    out = tmp_path / "out_csv"
    s = run(str(src), str(out), chunk_size=2)
    assert s.balanced and s.results == 5
    results = pd.concat(pd.read_csv(p) for p in sorted(out.glob("results.part-*.csv")))
    assert sorted(results["report_id"]) == [f"r{i}" for i in range(5)]


def test_parquet_parts_share_one_schema_when_a_column_is_empty_in_one_chunk(tmp_path):
    """A chunk without errors or without graded findings wrote all-null columns as Parquet's null type, so
    the parts of one table differed and a dataset reader over the folder (pyarrow, Spark) refused them."""
    import pyarrow.dataset as ds

    normal = "FINDINGS:\nL4-5: Normal disc. No stenosis.\n"
    src = tmp_path / "in.jsonl"
    # chunk 0: no error, no grade; chunk 1: an error and a graded finding
    pd.DataFrame([{"id": "a", "text": normal}, {"id": "b", "text": normal},
                  {"id": "c", "text": "  "}, {"id": "d", "text": GOOD}]).to_json(src, orient="records", lines=True)
    out = tmp_path / "out"
    s = run(str(src), str(out), chunk_size=2)
    assert s.balanced and (s.results, s.errors) == (3, 1)
    for name in ("results", "findings", "errors"):
        parts = sorted(out.glob(f"{name}.part-*.parquet"))
        assert len(parts) == 2
        table = ds.dataset([str(p) for p in parts], format="parquet").to_table()
        assert len({str(ds.dataset(str(p), format="parquet").schema) for p in parts}) == 1, name
        if name == "findings":
            assert table.schema.field("grade").type == "int64"
            assert table.schema.field("negated").type == "bool"
        if name == "errors":
            assert table.num_rows == 1 and table.schema.field("row_number").type == "int64"


def test_batch_folder_of_text_files_with_a_non_utf8_file(tmp_path):
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "a.txt").write_text(GOOD)
    (folder / "b.txt").write_bytes(b"\xff\xfe\x00bad")
    s = run(str(folder), str(tmp_path / "o.db"))
    assert (s.results, s.errors) == (1, 1)


def test_batch_resume_continues_after_the_last_committed_chunk(tmp_path):
    src = tmp_path / "in.jsonl"
    pd.DataFrame(rows(9)).to_json(src, orient="records", lines=True)
    out = tmp_path / "o.db"
    run(str(src), str(out), chunk_size=3)
    db = sqlite3.connect(out)
    # simulate a crash after the first chunk: drop what chunks 2 and 3 wrote
    with db:
        db.execute("DELETE FROM results WHERE report_id IN ('r3','r4','r5','r6','r7','r8')")
        db.execute("DELETE FROM findings WHERE report_id IN ('r3','r4','r5','r6','r7','r8')")
        db.execute("DELETE FROM _progress WHERE chunk > 0")
    db.close()
    s = run(str(src), str(out), chunk_size=3, resume=True)
    assert s.resumed_chunks == 1 and s.balanced and s.results == 9
    db = sqlite3.connect(out)
    assert db.execute("SELECT COUNT(DISTINCT report_id), COUNT(*) FROM results").fetchone() == (9, 9)


def test_batch_exam_columns_feed_the_exam(tmp_path):
    src = tmp_path / "in.csv"
    pd.DataFrame([{"id": "a", "text": GOOD, "exam_side": "left", "exam_pain_distribution": "anterior thigh;medial leg",
                   "exam_symptom_weeks": "10"}]).to_csv(src, index=False)
    s = run(str(src), str(tmp_path / "o.db"))
    assert s.results == 1


def test_batch_missing_columns_is_a_clear_error(tmp_path):
    from report_nlp.errors import InputError

    src = tmp_path / "in.csv"
    pd.DataFrame([{"key": "a", "body": GOOD}]).to_csv(src, index=False)
    with pytest.raises(InputError, match="no id column"):
        run(str(src), str(tmp_path / "o.db"))
    s = run(str(src), str(tmp_path / "o2.db"), id_col="key", text_col="body")
    assert s.results == 1
    json.dumps(s.kinds)


def test_batch_two_workers_equal_one_worker(tmp_path):
    src = tmp_path / "in.jsonl"
    pd.DataFrame(poisoned()[:-1]).to_json(src, orient="records", lines=True)
    one = run(str(src), str(tmp_path / "one.db"), chunk_size=4)
    two = run(str(src), str(tmp_path / "two.db"), chunk_size=4, workers=2)
    assert (one.results, one.errors) == (two.results, two.errors)
    q = "SELECT report_id, finding_index, kind, level, side, negated, grade FROM findings ORDER BY 1, 2"
    assert sqlite3.connect(tmp_path / "one.db").execute(q).fetchall() == sqlite3.connect(tmp_path / "two.db").execute(q).fetchall()


def test_csv_output_keeps_a_carriage_return_inside_its_field(tmp_path):
    from report_nlp.batch import FINDING_COLUMNS, RESULT_COLUMNS, FileWriter

    w = FileWriter(str(tmp_path / "o_csv"), "csv", False)
    finding = {c: None for c in FINDING_COLUMNS} | {"report_id": "a", "finding_index": 0, "text": "foraminal\rstenosis"}
    rows = [tuple(finding.values()), tuple((finding | {"finding_index": 1}).values())]
    w.write(0, 1, [tuple(({c: None for c in RESULT_COLUMNS} | {"report_id": "a"}).values())], rows, [])
    assert w.counts() == (1, 0, 2)


def test_exam_list_columns_from_parquet_arrive_as_lists():
    import numpy as np

    from report_nlp.batch import exam_from_row

    exam = exam_from_row({"exam_pain_distribution": np.array(["L5", "dorsum of foot"]), "exam_side": "left"}, None)
    assert exam == {"side": "left", "pain_distribution": ["L5", "dorsum of foot"]}


def test_batch_write_behind_keeps_order_and_hands_back_the_writers_error():
    from report_nlp.batch import WriteBehind

    class Writer:
        def __init__(self):
            self.chunks = []

        def write(self, chunk, rows_in, results, findings, errors):
            if chunk == 3:
                raise RuntimeError("disk full")
            self.chunks.append(chunk)

    ok = Writer()
    behind = WriteBehind(ok)
    for k in range(3):
        behind.write(k, 1, [], [], [])
    behind.drain()
    assert ok.chunks == [0, 1, 2] and not behind.thread.is_alive()

    failing = Writer()
    behind = WriteBehind(failing)
    with pytest.raises(RuntimeError, match="disk full"):
        for k in range(10):
            behind.write(k, 1, [], [], [])
        behind.drain()
    assert failing.chunks == [0, 1, 2]  # nothing after the failed chunk is written


class _InlinePool:
    """A stand-in for the worker pool that runs each slice when its result is asked for and logs
    the order of hand-overs and waits."""

    def __init__(self):
        self.log: list[tuple[str, str]] = []

    def submit(self, fn, part):
        pool, first_id = self, part[2][0]
        pool.log.append(("submit", first_id))

        class Future:
            def result(self):
                pool.log.append(("wait", first_id))
                return fn(part)

        return Future()

    def map(self, fn, parts):
        futures = [self.submit(fn, part) for part in parts]
        return (f.result() for f in futures)

    def shutdown(self, *a, **k):
        pass


def test_workers_get_the_next_chunk_before_the_parent_waits_on_theirs(tmp_path, monkeypatch):
    """With workers, chunk k+1 is handed over before the parent waits on chunk k (no worker idles at a
    chunk's end), chunks are still written in order, and the output equals a one-worker run."""
    import report_nlp.analysis as analysis

    src = tmp_path / "in.jsonl"
    pd.DataFrame(rows(12)).to_json(src, orient="records", lines=True)
    pool = _InlinePool()
    monkeypatch.setattr(analysis, "worker_pool", lambda n: pool)
    two = run(str(src), str(tmp_path / "two.db"), chunk_size=4, workers=2)
    one = run(str(src), str(tmp_path / "one.db"), chunk_size=4)
    assert (two.results, two.errors, two.findings) == (one.results, one.errors, one.findings) == (12, 0, one.findings)
    log = pool.log
    assert log.index(("submit", "r4")) < log.index(("wait", "r0"))
    assert log.index(("submit", "r8")) < log.index(("wait", "r4"))
    assert [i for kind, i in log if kind == "wait"] == [i for kind, i in log if kind == "submit"]
    q = "SELECT chunk, rows_in FROM _progress ORDER BY chunk"
    assert sqlite3.connect(tmp_path / "two.db").execute(q).fetchall() == [(0, 4), (1, 4), (2, 4)]


def test_batch_finding_rows_are_the_findings_as_dumped(analyze, root):
    """Finding rows read the fields as attributes: the same values, types and column order as the
    Finding's model_dump (roots joined with commas), for every finding of the gold reports."""
    import json

    from report_nlp.batch import FINDING_COLUMNS, finding_rows

    texts = [json.loads(line)["text"] for line in (root / "corpora" / "gold.jsonl").read_text("utf-8").splitlines() if line.strip()]
    n = 0
    for k, text in enumerate(texts[:60]):
        result = analyze(text)
        result.report_id = f"r{k}"
        rows = finding_rows(result)
        assert len(rows) == len(result.findings)
        for i, (row, f) in enumerate(zip(rows, result.findings)):
            dumped = f.model_dump()
            expected = {c: dumped.get(c) for c in FINDING_COLUMNS}
            expected.update(report_id=f"r{k}", finding_index=i, roots=",".join(f.roots))
            assert len(row) == len(FINDING_COLUMNS)
            row = dict(zip(FINDING_COLUMNS, row))
            assert row == expected and [type(v) for v in row.values()] == [type(v) for v in expected.values()]
            n += 1
    assert n > 200


def test_batch_result_rows_follow_result_columns(analyze, root):
    """Result rows are tuples in RESULT_COLUMNS order: each column holds what the Result says."""
    from report_nlp.batch import RESULT_COLUMNS, result_row

    texts = [json.loads(line)["text"] for line in (root / "corpora" / "gold.jsonl").read_text("utf-8").splitlines() if line.strip()]
    categories = set()
    for k, text in enumerate(texts[:40]):
        r = analyze(text, exam={"side": "left", "pain_distribution": ["L5"], "symptom_weeks": 8, "conservative_weeks": 8})
        r.report_id = f"r{k}"
        row = dict(zip(RESULT_COLUMNS, result_row(r)))
        assert len(row) == len(RESULT_COLUMNS) == len(result_row(r))
        present = [f for f in r.findings if f.affirmed and f.kind != "concept"]
        assert (row["report_id"], row["modality"], row["region"]) == (f"r{k}", r.study.modality, r.study.region)
        assert (row["n_findings"], row["n_present"]) == (len(r.findings), len(present))
        assert row["max_grade"] == max((f.grade for f in present if f.grade is not None), default=None)
        assert row["concordance"] == r.concordance.overall and row["category"] == r.recommendation.category
        assert row["invasive_allowed"] is r.recommendation.invasive_allowed
        assert row["flags"] == ",".join(r.flags) and row["notes"] == "; ".join(r.errors)
        categories.add(row["category"])
    assert len(categories) > 1


def test_sqlite_findings_key_is_built_when_the_run_ends_and_checks_uniqueness(tmp_path):
    from report_nlp.batch import FINDING_COLUMNS, SQLiteWriter

    src = tmp_path / "in.jsonl"
    pd.DataFrame(rows(5)).to_json(src, orient="records", lines=True)
    s = run(str(src), str(tmp_path / "out.db"), chunk_size=2)
    db = sqlite3.connect(tmp_path / "out.db")
    unique = {name for _, name, is_unique, *_ in db.execute("PRAGMA index_list(findings)") if is_unique}
    assert "findings_key" in unique and s.findings > 0
    assert [r[2] for r in db.execute("PRAGMA index_info(findings_key)")] == ["report_id", "finding_index"]
    # a (report_id, finding_index) written twice is refused when the key is built
    w = SQLiteWriter(str(tmp_path / "dup.db"), False)
    finding = tuple(({c: None for c in FINDING_COLUMNS} | {"report_id": "a", "finding_index": 0}).values())
    w.write(0, 1, [], [finding], [])
    w.write(1, 1, [], [finding], [])
    with pytest.raises(sqlite3.IntegrityError):
        w.finalize()
    w.close()


def test_batch_raises_the_collector_threshold_only_while_it_runs(tmp_path, monkeypatch):
    """The young-generation threshold is BATCH_GC_THRESHOLD while reports are analysed and is given
    back afterwards, also when the run fails."""
    import gc

    import report_nlp
    from report_nlp.analysis import BATCH_GC_THRESHOLD
    from report_nlp.errors import InputError

    seen = []
    real = report_nlp.analyze_many

    def recording(*args, **kwargs):
        seen.append(gc.get_threshold()[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(report_nlp, "analyze_many", recording)
    before = gc.get_threshold()
    assert before[0] != BATCH_GC_THRESHOLD
    src = tmp_path / "in.jsonl"
    pd.DataFrame(rows(3)).to_json(src, orient="records", lines=True)
    assert run(str(src), str(tmp_path / "out.db")).results == 3
    assert seen and set(seen) == {BATCH_GC_THRESHOLD}
    assert gc.get_threshold() == before
    with pytest.raises(InputError):
        run(str(tmp_path / "absent.csv"), str(tmp_path / "out2.db"))
    assert gc.get_threshold() == before


def test_worker_processes_run_with_the_batch_collector_threshold():
    import gc

    from report_nlp.analysis import BATCH_GC_THRESHOLD, worker_pool

    with worker_pool(1) as pool:
        assert pool.submit(gc.get_threshold).result()[0] == BATCH_GC_THRESHOLD


def test_sqlite_binds_booleans_and_nulls_as_before_and_keeps_a_host_adapter(tmp_path):
    """The bool and None adapters the writer registers store what sqlite3 stored without them (1/0
    integers, NULL); an adapter the host program registered for bool stays."""
    from report_nlp.batch import FINDING_COLUMNS, RESULT_COLUMNS, SQLiteWriter

    keys = [(bool, sqlite3.PrepareProtocol), (type(None), sqlite3.PrepareProtocol)]
    kept = {k: sqlite3.adapters[k] for k in keys if k in sqlite3.adapters}  # the registry is the module's own dict
    try:
        for k in keys:
            sqlite3.adapters.pop(k, None)
        w = SQLiteWriter(str(tmp_path / "o.db"), False)
        assert all(k in sqlite3.adapters for k in keys)
        finding = dict.fromkeys(FINDING_COLUMNS) | {"report_id": "a", "finding_index": 0, "negated": True, "uncertain": False}
        result = dict.fromkeys(RESULT_COLUMNS) | {"report_id": "a", "invasive_allowed": False}
        w.write(0, 1, [tuple(result.values())], [tuple(finding.values())], [])
        row = w.db.execute("SELECT negated, typeof(negated), uncertain, typeof(uncertain), typeof(zone) FROM findings").fetchone()
        assert row == (1, "integer", 0, "integer", "null")
        assert w.db.execute("SELECT invasive_allowed, typeof(invasive_allowed) FROM results").fetchone() == (0, "integer")
        w.close()

        def host(value):
            return "yes" if value else "no"

        sqlite3.register_adapter(bool, host)
        SQLiteWriter(str(tmp_path / "p.db"), False).close()
        assert sqlite3.adapters[keys[0]] is host
    finally:
        for k in keys:
            sqlite3.adapters.pop(k, None)
        sqlite3.adapters.update(kept)
