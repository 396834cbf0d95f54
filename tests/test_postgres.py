"""PostgreSQL, a real server: read reports with a query, write the three tables, resume an interrupted run."""
from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from report_nlp.batch import run

GOOD = "FINDINGS:\nL4-5: Moderate left foraminal stenosis with impingement of the exiting left L4 nerve root.\n"


@pytest.fixture(scope="module")
def source(postgres_url):
    engine = create_engine(postgres_url)
    rows = [{"report_id": f"p{i:03d}", "body": GOOD.replace("L4-5", ["L3-4", "L4-5", "L5-S1"][i % 3])} for i in range(40)]
    rows.append({"report_id": "empty", "body": ""})
    pd.DataFrame(rows).to_sql("reports", engine, if_exists="replace", index=False)
    engine.dispose()
    return postgres_url


def counts(url):
    engine = create_engine(url)
    with engine.connect() as conn:
        out = {t: conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one() for t in ("results", "findings", "errors", "_progress")}
        out["distinct"] = conn.execute(text("SELECT COUNT(DISTINCT report_id) FROM results")).scalar_one()
    engine.dispose()
    return out


def test_postgres_query_in_three_tables_out(source):
    s = run(source, source, id_col="report_id", text_col="body", query="SELECT report_id, body FROM reports ORDER BY report_id",
            chunk_size=10)
    assert (s.rows_in, s.results, s.errors) == (41, 40, 1) and s.balanced
    c = counts(source)
    assert c["results"] == c["distinct"] == 40 and c["errors"] == 1 and c["findings"] >= 80
    engine = create_engine(source)
    with engine.connect() as conn:  # the QA review queue is a view over results
        assert conn.execute(text("SELECT COUNT(*) FROM review_queue")).scalar_one() <= 40
    engine.dispose()


def test_postgres_resume_after_an_interrupted_run(source):
    query = "SELECT report_id, body FROM reports ORDER BY report_id"
    run(source, source, id_col="report_id", text_col="body", query=query, chunk_size=10)
    engine = create_engine(source)
    with engine.begin() as conn:  # an interrupted run: only the first two chunks were committed
        conn.execute(text("DELETE FROM results WHERE report_id >= 'p020'"))
        conn.execute(text("DELETE FROM findings WHERE report_id >= 'p020'"))
        conn.execute(text("DELETE FROM errors"))
        conn.execute(text("DELETE FROM _progress WHERE chunk >= 2"))
    engine.dispose()
    s = run(source, source, id_col="report_id", text_col="body", query=query, chunk_size=10, resume=True)
    assert s.resumed_chunks == 2 and s.balanced
    c = counts(source)
    assert c["results"] == c["distinct"] == 40 and c["errors"] == 1 and c["_progress"] == 5
