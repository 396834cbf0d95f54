"""Streaming batch runner: reports in (CSV, JSONL, Parquet, a folder of .txt), three tables out.

Every input row ends up in exactly one place: the ``results`` table (with its rows in ``findings``)
or the ``errors`` table with its id, the stage that failed and the reason — never its text.
Input is read in chunks, each chunk is analysed in one ``nlp.pipe`` pass (or by a pool of worker
processes) and written in one transaction together with a progress row, so ``--resume`` after a
crash continues from the last committed chunk without losing or repeating a report.
"""
from __future__ import annotations

import csv
import json
import logging
import os
import queue
import re
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import Callable, Iterator, Optional

import pandas as pd

from .analysis import batch_gc
from .errors import DatabaseUnavailable, InputError, ReportNLPError
from .schema import Exam, Result
from .text import MAX_CHARS

log = logging.getLogger("report_nlp.batch")

EXAM_FIELDS = list(Exam.model_fields)
LIST_FIELDS = {n for n, f in Exam.model_fields.items() if "list" in str(f.annotation)}
RESULT_COLUMNS = ["report_id", "modality", "region", "n_findings", "n_present", "max_grade", "concordance",
                  "category", "invasive_allowed", "flags", "notes"]
FINDING_COLUMNS = ["report_id", "finding_index", "kind", "level", "side", "zone", "roots", "roots_inferred",
                   "severity", "grade", "negated", "uncertain", "historical", "hypothetical", "certainty",
                   "section", "text", "start", "end"]
ERROR_COLUMNS = ["report_id", "row_number", "stage", "reason"]
# the one statement of the output column types (every other column is text): SQL tables, Parquet parts and Spark
INT_COLUMNS = frozenset({"n_findings", "n_present", "max_grade", "finding_index", "grade", "start", "end", "row_number"})
BOOL_COLUMNS = frozenset({"invasive_allowed", "roots_inferred", "negated", "uncertain", "historical", "hypothetical"})


def column_kind(col: str) -> str:
    """"int", "bool" or "text": each writer maps these to its own types."""
    return "int" if col in INT_COLUMNS else "bool" if col in BOOL_COLUMNS else "text"
RETRY_SECONDS = float(os.environ.get("REPORT_NLP_DB_RETRY_SECONDS", "60"))  # how long a lost database is waited for


@dataclass
class Summary:
    rows_in: int = 0
    results: int = 0
    errors: int = 0
    findings: int = 0
    categories: Counter = field(default_factory=Counter)
    kinds: Counter = field(default_factory=Counter)  # affirmed findings (not negated, historical or hypothetical)
    seconds: float = 0.0
    chars: int = 0
    resumed_chunks: int = 0
    resumed_rows: int = 0

    @property
    def balanced(self) -> bool:
        return self.rows_in == self.results + self.errors


# ----------------------------------------------------------------- readers
def is_url(path: str) -> bool:
    return "://" in path


def read_chunks(path: str, id_col: str, text_col: str, chunk_size: int, query: Optional[str] = None) -> Iterator[pd.DataFrame]:
    """Yield DataFrames of at most ``chunk_size`` rows; columns as in the input.

    ``path`` is a file, a folder of .txt files, or a SQLAlchemy URL read with ``query`` (streamed with a
    server-side cursor where the database has one).
    """
    if is_url(path):
        if not query:
            raise InputError("a database input needs --query (e.g. \"SELECT id, text FROM reports ORDER BY id\")")
        from sqlalchemy import create_engine, text

        from sqlalchemy.exc import DBAPIError

        engine = create_engine(path)
        try:
            with engine.connect().execution_options(stream_results=True) as conn:
                for df in pd.read_sql(text(query), conn, chunksize=chunk_size):
                    yield df
        except DBAPIError as exc:
            if exc.connection_invalidated or _is_connection_error(exc):
                raise DatabaseUnavailable("lost the input database while reading the query: committed chunks are "
                                          "kept; run again with --resume") from None
            raise InputError(f"the input query failed: {type(exc.orig).__name__}") from None
        finally:
            engine.dispose()
        return
    p = Path(path)
    if not p.exists():
        raise InputError(f"input not found: {path}")
    if p.is_dir():
        files = sorted(x for x in p.iterdir() if x.suffix.lower() == ".txt")
        for i in range(0, len(files), chunk_size):
            rows = []
            for f in files[i:i + chunk_size]:
                try:
                    body: object = f.read_bytes().decode("utf-8")
                except UnicodeDecodeError:
                    body = f.read_bytes()
                rows.append({id_col: f.stem, text_col: body})
            yield pd.DataFrame(rows)
        return
    suffix = p.suffix.lower()
    if suffix == ".csv":
        try:
            reader = pd.read_csv(p, chunksize=chunk_size, dtype=str, keep_default_na=False, encoding_errors="replace")
        except pd.errors.EmptyDataError:  # an empty file: no header, no rows
            return
        yield from _refuse_unreadable(reader, p.name, "CSV")
    elif suffix in (".jsonl", ".ndjson"):
        yield from _refuse_unreadable(pd.read_json(p, lines=True, chunksize=chunk_size, dtype=False), p.name, "JSON Lines")
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(p).iter_batches(batch_size=chunk_size):
            yield batch.to_pandas()
    else:
        raise InputError(f"unsupported input format {suffix!r}: use .csv, .jsonl, .parquet or a folder of .txt files")


def _refuse_unreadable(chunks, name: str, kind: str) -> Iterator[pd.DataFrame]:
    """The parser's chunks; a file the parser cannot read (malformed CSV, a JSON line that is not JSON
    or holds an integer beyond 64 bits) is an InputError naming the file, not a pandas traceback."""
    try:
        yield from chunks
    except ValueError as exc:  # pandas' ParserError and JSON errors are ValueErrors
        raise InputError(f"cannot read {name} as {kind}: {str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}") from None


def exam_from_row(row: dict, exam_cols: Optional[list[str]]) -> Optional[dict]:
    """Exam fields from table columns named like Exam fields (optionally prefixed ``exam_``)."""
    exam = {}
    for name in EXAM_FIELDS:
        for col in (f"exam_{name}", name):
            if col in row and (exam_cols is None or col in exam_cols):
                value = row[col]
                if hasattr(value, "tolist") and not isinstance(value, str):  # a Parquet list column: numpy array
                    value = value.tolist()
                if value is None or (isinstance(value, float) and pd.isna(value)) or (isinstance(value, str) and value == ""):
                    break
                if name in LIST_FIELDS and isinstance(value, str):
                    value = json.loads(value) if value.strip().startswith("[") else [v.strip() for v in value.split(";") if v.strip()]
                elif isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
                    value = value.lower() in ("true", "yes")
                exam[name] = value
                break
    if "exam" in row and isinstance(row["exam"], (dict, str)) and row["exam"]:
        extra = row["exam"] if isinstance(row["exam"], dict) else json.loads(row["exam"])
        exam.update(extra)
    return exam or None


def count_rows(path: str) -> Optional[int]:
    """Rows in the input when cheap to know (for a progress bar's ETA); None otherwise."""
    p = Path(path)
    try:
        if is_url(path) or not p.exists():
            return None
        if p.is_dir():
            return sum(1 for x in p.iterdir() if x.suffix.lower() == ".txt")
        suffix = p.suffix.lower()
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(p).metadata.num_rows
        if suffix in (".jsonl", ".ndjson"):
            with open(p, "rb") as fh:
                return sum(1 for line in fh if line.strip())
    except OSError:
        return None
    return None  # CSV rows may span lines: no cheap count


# ----------------------------------------------------------------- rows out
# Result and finding rows are tuples in RESULT_COLUMNS / FINDING_COLUMNS order: executemany, DataFrame(rows,
# columns=...) and the workers' pickles take them as they are (building a dict per finding row cost about
# as much as inserting it). Error rows are dicts keyed by ERROR_COLUMNS: few, and completed as a chunk ends.
_ROOTS_AT = FINDING_COLUMNS.index("roots")
_FINDING_HEAD = attrgetter(*FINDING_COLUMNS[2:_ROOTS_AT])  # the Finding's own fields before "roots" ...
_FINDING_TAIL = attrgetter(*FINDING_COLUMNS[_ROOTS_AT + 1:])  # ... and after it
RESULT_AT = {c: i for i, c in enumerate(RESULT_COLUMNS)}  # column -> its place in a result row
FINDING_AT = {c: i for i, c in enumerate(FINDING_COLUMNS)}
_CATEGORY = itemgetter(RESULT_AT["category"])
_FLAGS = RESULT_AT["flags"]
_KIND, _NEGATED, _HISTORICAL, _HYPOTHETICAL = (FINDING_AT[c] for c in ("kind", "negated", "historical", "hypothetical"))


def result_row(r: Result) -> tuple:
    """The ``results`` row of a Result (RESULT_COLUMNS order)."""
    present = [f for f in r.findings if f.affirmed and f.kind != "concept"]
    grades = [f.grade for f in present if f.grade is not None]
    return (
        r.report_id,
        r.study.modality,
        r.study.region,
        len(r.findings),
        len(present),
        max(grades) if grades else None,
        r.concordance.overall if r.concordance else None,
        r.recommendation.category if r.recommendation else None,
        bool(r.recommendation and r.recommendation.invasive_allowed),
        ",".join(r.flags),
        "; ".join(r.errors),
    )


def finding_rows(r: Result) -> list[tuple]:
    """One ``findings`` row per finding (FINDING_COLUMNS order); the Finding's own fields read as
    attributes (plain str/int/bool values: what ``model_dump`` gives, without its serializer per finding)."""
    rid = r.report_id
    return [(rid, i) + _FINDING_HEAD(f) + (",".join(f.roots),) + _FINDING_TAIL(f) for i, f in enumerate(r.findings)]


def as_dicts(rows: list[tuple], columns: list[str]) -> list[dict]:
    """Rows as dicts keyed by ``columns``: for the writers whose libraries take records."""
    return [dict(zip(columns, row)) for row in rows]


# ----------------------------------------------------------------- writers
def _bind_directly() -> None:
    """Python's sqlite3 binds an int, float or str as it is, but for any other value first looks for an
    adapter (a key tuple, a registry lookup, two attribute lookups): with five booleans and a few empty
    columns per findings row, binding was 2.5 of the 2.9 us its insert cost. Registering the adapters it
    falls back to anyway (True -> 1, None -> NULL) finds them at the first lookup: binding 1.8 us. An adapter
    the host program registered for bool or None is left as it is."""
    registry = getattr(sqlite3, "adapters", None)
    for kind, adapter in ((bool, int), (type(None), _as_null)):
        if registry is not None and (kind, sqlite3.PrepareProtocol) not in registry:
            sqlite3.register_adapter(kind, adapter)


def _as_null(value: None) -> None:
    return None


class SQLiteWriter:
    """Three tables plus a progress table in one SQLite file; one transaction per chunk."""

    def __init__(self, path: str, resume: bool):
        self.path = path
        _bind_directly()
        if not resume and os.path.exists(path):
            os.remove(path)
        # check_same_thread off: with worker processes a WriteBehind thread does the writes, never two at once
        self.db = sqlite3.connect(path, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(
            """
            CREATE TABLE IF NOT EXISTS results (report_id TEXT PRIMARY KEY, modality TEXT, region TEXT, n_findings INTEGER,
              n_present INTEGER, max_grade INTEGER, concordance TEXT, category TEXT, invasive_allowed INTEGER, flags TEXT, notes TEXT);
            CREATE TABLE IF NOT EXISTS findings (report_id TEXT, finding_index INTEGER, kind TEXT, level TEXT, side TEXT, zone TEXT,
              roots TEXT, roots_inferred INTEGER, severity TEXT, grade INTEGER, negated INTEGER, uncertain INTEGER, historical INTEGER,
              hypothetical INTEGER, certainty TEXT, section TEXT, text TEXT, start INTEGER, "end" INTEGER);
            CREATE TABLE IF NOT EXISTS errors (report_id TEXT, row_number INTEGER PRIMARY KEY, stage TEXT, reason TEXT);
            CREATE TABLE IF NOT EXISTS _progress (chunk INTEGER PRIMARY KEY, rows_in INTEGER, finished_at REAL);
            CREATE VIEW IF NOT EXISTS review_queue AS
              SELECT * FROM results WHERE ',' || flags || ',' LIKE '%,rules_model_disagree,%' ORDER BY max_grade DESC;
            """
        )

    def done_chunks(self) -> int:
        row = self.db.execute("SELECT COUNT(*) FROM _progress").fetchone()
        return row[0]

    def done_rows(self) -> int:
        return self.db.execute("SELECT COALESCE(SUM(rows_in), 0) FROM _progress").fetchone()[0]

    def seen_ids(self) -> set:
        return {r[0] for r in self.db.execute("SELECT report_id FROM results")}

    def write(self, chunk: int, rows_in: int, results, findings, errors) -> None:
        with self.db:
            self.db.executemany(f"INSERT INTO results VALUES ({','.join('?' * len(RESULT_COLUMNS))})", results)
            self.db.executemany(f"INSERT INTO findings VALUES ({','.join('?' * len(FINDING_COLUMNS))})", findings)
            self.db.executemany("INSERT INTO errors VALUES (?,?,?,?)", [tuple(r[c] for c in ERROR_COLUMNS) for r in errors])
            self.db.execute("INSERT INTO _progress VALUES (?,?,?)", (chunk, rows_in, time.time()))

    def finalize(self) -> None:
        """After the last chunk: the findings key. Built once from the whole table (a sort) rather than
        kept up during the run, where inserting each row into it cost a quarter of the write; the
        runner itself never writes a (report_id, finding_index) twice, and this index checks it."""
        with self.db:
            self.db.execute("CREATE UNIQUE INDEX IF NOT EXISTS findings_key ON findings (report_id, finding_index)")

    def counts(self) -> tuple[int, int, int]:
        q = self.db.execute
        return (q("SELECT COUNT(*) FROM results").fetchone()[0], q("SELECT COUNT(*) FROM errors").fetchone()[0],
                q("SELECT COUNT(*) FROM findings").fetchone()[0])

    def close(self) -> None:
        self.db.close()


class SQLWriter:
    """The three tables (and _progress) in any SQLAlchemy database, e.g. PostgreSQL; one transaction per chunk."""

    def __init__(self, url: str, resume: bool):
        from sqlalchemy import Boolean, Column, Float, Integer, MetaData, Table, Text, create_engine

        self.engine = create_engine(url, pool_pre_ping=True)
        md = MetaData()
        sql_type = {"int": Integer, "bool": Boolean, "text": Text}
        self.tables = {
            name: Table(name, md, *[Column(c, sql_type[column_kind(c)]) for c in cols])
            for name, cols in (("results", RESULT_COLUMNS), ("findings", FINDING_COLUMNS), ("errors", ERROR_COLUMNS))
        }
        self.progress = Table("_progress", md, Column("chunk", Integer, primary_key=True), Column("rows_in", Integer),
                              Column("finished_at", Float))
        from sqlalchemy import text as sql

        with self.engine.begin() as conn:
            conn.execute(sql("DROP VIEW IF EXISTS review_queue"))
        if not resume:
            md.drop_all(self.engine)
        md.create_all(self.engine)
        with self.engine.begin() as conn:  # reports where the rules and the trained model disagree, worst first
            conn.execute(sql("CREATE VIEW review_queue AS SELECT * FROM results "
                             "WHERE ',' || flags || ',' LIKE '%,rules_model_disagree,%'"))

    def _retrying(self, what: str, action):
        """Run ``action`` (one transaction); while the server is unreachable, wait and retry until
        RETRY_SECONDS have passed, then stop with a resumable error. A half-done transaction rolls back."""
        from sqlalchemy.exc import DBAPIError

        deadline = time.monotonic() + RETRY_SECONDS
        delay = 0.5
        while True:
            try:
                return action()
            except DBAPIError as exc:
                if not (exc.connection_invalidated or _is_connection_error(exc)):
                    raise
                if time.monotonic() + delay > deadline:
                    raise DatabaseUnavailable(f"lost the output database while {what} and it did not come back within "
                                              f"{RETRY_SECONDS:.0f} s: committed chunks are kept; run again with --resume") from None
                log.warning("database unavailable while %s; retrying in %.1f s", what, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def done_chunks(self) -> int:
        from sqlalchemy import func, select

        def count():
            with self.engine.connect() as conn:
                return conn.execute(select(func.count()).select_from(self.progress)).scalar_one()
        return self._retrying("reading progress", count)

    def done_rows(self) -> int:
        from sqlalchemy import func, select

        def total():
            with self.engine.connect() as conn:
                return conn.execute(select(func.coalesce(func.sum(self.progress.c.rows_in), 0))).scalar_one()
        return int(self._retrying("reading progress", total))

    def seen_ids(self) -> set:
        from sqlalchemy import select

        def ids():
            with self.engine.connect() as conn:
                return {r[0] for r in conn.execute(select(self.tables["results"].c.report_id))}
        return self._retrying("reading progress", ids)

    def write(self, chunk: int, rows_in: int, results, findings, errors) -> None:
        from sqlalchemy import select

        def transaction():
            with self.engine.begin() as conn:
                # a commit whose acknowledgement was lost must not be written twice
                if conn.execute(select(self.progress.c.chunk).where(self.progress.c.chunk == chunk)).first():
                    return
                for name, rows in (("results", as_dicts(results, RESULT_COLUMNS)),
                                   ("findings", as_dicts(findings, FINDING_COLUMNS)), ("errors", errors)):
                    if rows:
                        conn.execute(self.tables[name].insert(), rows)
                conn.execute(self.progress.insert(), [{"chunk": chunk, "rows_in": rows_in, "finished_at": time.time()}])
        self._retrying(f"writing chunk {chunk}", transaction)

    def finalize(self) -> None:
        pass

    def counts(self) -> tuple[int, int, int]:
        from sqlalchemy import func, select

        def count():
            with self.engine.connect() as conn:
                return tuple(conn.execute(select(func.count()).select_from(self.tables[n])).scalar_one()
                             for n in ("results", "errors", "findings"))
        return self._retrying("counting rows", count)

    def close(self) -> None:
        self.engine.dispose()


def _is_connection_error(exc) -> bool:
    """Server gone (restart, network): worth waiting for, unlike a constraint or syntax error."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    return isinstance(exc, (OperationalError, InterfaceError))


_PART_INDEX = re.compile(r"\.part-(\d+)\.")  # results.part-000012.parquet -> 12


class FileWriter:
    """results/findings/errors as CSV, JSONL or Parquet files in a folder; parts are renamed into place."""

    def __init__(self, folder: str, fmt: str, resume: bool):
        self.folder = Path(folder)
        self.fmt = fmt
        self.folder.mkdir(parents=True, exist_ok=True)
        if not resume:
            for f in self.folder.glob("*.part-*"):
                f.unlink()
            for f in self.folder.glob("_progress.jsonl"):
                f.unlink()
        else:
            # a chunk is committed by its progress line: parts renamed into place by a run killed before
            # that line are not output (their ids must not count as seen, their rows as written)
            committed = len(self._progress())
            for f in self.folder.glob("*.part-*"):
                m = _PART_INDEX.search(f.name)
                if m is None or int(m.group(1)) >= committed:
                    f.unlink()
        for f in self.folder.glob("*.tmp"):
            f.unlink()

    def _progress(self) -> list[dict]:
        """Committed progress lines; a line torn by a kill mid-append is cut off (its chunk is redone)."""
        p = self.folder / "_progress.jsonl"
        if not p.exists():
            return []
        raw = p.read_bytes()
        complete = raw[: raw.rfind(b"\n") + 1]
        if len(complete) != len(raw):
            with open(p, "r+b") as fh:
                fh.truncate(len(complete))
        return [json.loads(line) for line in complete.splitlines() if line.strip()]

    def done_chunks(self) -> int:
        return len(self._progress())

    def done_rows(self) -> int:
        return sum(p["rows_in"] for p in self._progress())

    def seen_ids(self) -> set:
        ids = set()
        for f in sorted(self.folder.glob(f"results.part-*.{self.fmt}")):
            ids.update(self._read(f)["report_id"].astype(str))
        return ids

    def _read(self, f: Path) -> pd.DataFrame:
        if self.fmt == "csv":
            return pd.read_csv(f, dtype=str, keep_default_na=False)
        if self.fmt == "jsonl":
            return pd.read_json(f, lines=True, dtype=False)
        return pd.read_parquet(f)

    def _write(self, name: str, chunk: int, rows: list[tuple], columns: list[str]) -> None:
        df = pd.DataFrame(rows, columns=columns)
        final = self.folder / f"{name}.part-{chunk:06d}.{self.fmt}"
        tmp = final.with_suffix(final.suffix + ".tmp")
        if self.fmt == "csv":
            df.to_csv(tmp, index=False, quoting=csv.QUOTE_NONNUMERIC)  # quoted: a lone "\r" in evidence text stays in its field
        elif self.fmt == "jsonl":
            df.to_json(tmp, orient="records", lines=True)
        else:  # one explicit schema: a column empty in one chunk must not change type between parts
            import pyarrow.parquet as pq

            pq.write_table(pa_table_from_rows(rows, columns), tmp)
        os.replace(tmp, final)

    def write(self, chunk: int, rows_in: int, results, findings, errors) -> None:
        queue = [r for r in results if "rules_model_disagree" in (r[_FLAGS] or "").split(",")]
        self._write("review_queue", chunk, queue, RESULT_COLUMNS)
        self._write("results", chunk, results, RESULT_COLUMNS)
        self._write("findings", chunk, findings, FINDING_COLUMNS)
        self._write("errors", chunk, [tuple(e[c] for c in ERROR_COLUMNS) for e in errors], ERROR_COLUMNS)
        with open(self.folder / "_progress.jsonl", "a") as fh:
            fh.write(json.dumps({"chunk": chunk, "rows_in": rows_in}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def finalize(self) -> None:
        pass

    def counts(self) -> tuple[int, int, int]:
        n = []
        for name in ("results", "errors", "findings"):
            n.append(sum(len(self._read(f)) for f in self.folder.glob(f"{name}.part-*.{self.fmt}")))
        return tuple(n)

    def close(self) -> None:
        pass


@lru_cache(maxsize=None)
def _arrow_schema(columns: tuple[str, ...]):
    import pyarrow as pa

    arrow_type = {"int": pa.int64(), "bool": pa.bool_(), "text": pa.string()}
    return pa.schema([pa.field(c, arrow_type[column_kind(c)]) for c in columns])


def pa_table_from_rows(rows: list[tuple], columns: list[str]):
    """Output rows under the fixed output types (int64, bool, string; all nullable), whatever the chunk held."""
    import pyarrow as pa

    return pa.Table.from_pylist(as_dicts(rows, columns), schema=_arrow_schema(tuple(columns)))


class WriteBehind:
    """With worker processes the parent writes chunk k in this thread while the workers analyse chunk
    k+1 (otherwise they sit idle through every write). At most one chunk waits; chunks are written in
    order, each in its own transaction as before, so a kill still leaves whole chunks only. An error in
    the thread is raised in the caller at its next ``write`` or at ``drain``."""

    def __init__(self, writer) -> None:
        self.writer = writer
        self.queue: queue.Queue = queue.Queue(maxsize=1)
        self.error: Optional[BaseException] = None
        self.thread = threading.Thread(target=self._loop, name="report-nlp-writer", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            if self.error is None:  # after a failure, later chunks are dropped (they were never committed)
                try:
                    self.writer.write(*item)
                except BaseException as exc:  # handed to the caller
                    self.error = exc

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def write(self, chunk: int, rows_in: int, results, findings, errors) -> None:
        self._raise()
        self.queue.put((chunk, rows_in, results, findings, errors))

    def drain(self) -> None:
        """Wait until every handed chunk is written; raise the thread's error if there was one."""
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()
        self._raise()


def open_writer(out: str, resume: bool):
    if is_url(out):
        from sqlalchemy.exc import DBAPIError

        try:
            return SQLWriter(out, resume)
        except DBAPIError as exc:
            if _is_connection_error(exc):
                raise DatabaseUnavailable(f"cannot reach the output database ({type(exc.orig).__name__})") from None
            raise
    suffix = Path(out).suffix.lower()
    if suffix in (".db", ".sqlite", ".sqlite3"):
        return SQLiteWriter(out, resume)
    fmt = {"": "parquet"}.get(suffix, None)
    if out.endswith(("/csv", "-csv")):
        fmt = "csv"
    for name in ("csv", "jsonl", "parquet"):
        if out.rstrip("/").endswith(f".{name}.d") or out.rstrip("/").endswith(f"_{name}"):
            fmt = name
    return FileWriter(out, fmt or "parquet", resume)


# ----------------------------------------------------------------- the run
@dataclass
class Screened:
    """A chunk after the row checks: the rows to analyse and the rows already in error."""

    records: list[dict]
    start_row: int
    errors: list[dict]
    ids: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    exams: list = field(default_factory=list)


def screen_chunk(df: pd.DataFrame, start_row: int, id_col: str, text_col: str, exam_cols, seen: set) -> Screened:
    """Check every row of a chunk (id, duplicate, text, size, exam fields); the accepted ids join ``seen``."""
    records = df.to_dict(orient="records")
    out = Screened(records=records, start_row=start_row, errors=[])
    for offset, row in enumerate(records):
        number = start_row + offset
        rid = row.get(id_col)
        rid = None if rid is None or (isinstance(rid, float) and pd.isna(rid)) or str(rid).strip() == "" else str(rid)
        body = row.get(text_col)
        reason = None
        stage = "input"
        if rid is None:
            reason = f"missing id (column {id_col!r})"
        elif rid in seen:
            reason = "duplicate id"
        elif body is None or (isinstance(body, float) and pd.isna(body)):
            reason = f"missing text (column {text_col!r})"
        elif isinstance(body, (bytes, bytearray)):
            try:
                body = bytes(body).decode("utf-8")
            except UnicodeDecodeError:
                reason = "text is not UTF-8"
        elif not isinstance(body, str):
            reason = f"text is {type(body).__name__}, not text"
        if reason is None and isinstance(body, str):
            if not body.strip():
                reason = "empty text"
            elif len(body) > MAX_CHARS:
                reason = f"text over the size limit ({len(body):,} > {MAX_CHARS:,} characters)"
        exam = None
        if reason is None:
            try:
                exam = exam_from_row(row, exam_cols)
                if exam is not None:
                    exam = Exam.model_validate(exam).model_dump(exclude_unset=True)
            except (ValueError, TypeError) as exc:
                stage, reason = "exam", f"invalid exam fields: {str(exc).splitlines()[0][:200]}"
        if reason is not None:
            out.errors.append({"report_id": rid, "row_number": number, "stage": stage, "reason": reason})
            continue
        seen.add(rid)
        out.ids.append(rid)
        out.texts.append(body)
        out.exams.append(exam)
    return out


def submit_chunk(screened: Screened, pool, workers: int) -> list:
    """Hand a screened chunk's reports to the pool in slices; returns the futures, in order."""
    size = max(1, -(-len(screened.texts) // (workers * 4)))
    return [pool.submit(_rows_worker, (screened.texts[i:i + size], screened.exams[i:i + size], screened.ids[i:i + size]))
            for i in range(0, len(screened.texts), size)]


def finish_chunk(screened: Screened, id_col: str, seen: set, futures: Optional[list] = None) -> tuple[list[tuple], list[tuple], list[dict], int]:
    """(result rows, finding rows, error rows, characters analysed) of a screened chunk: from the
    workers' ``futures`` when given, else analysed here."""
    from . import analyze_many

    errors = screened.errors
    ok_ids, ok_texts, ok_exams = screened.ids, screened.texts, screened.exams
    results, findings = [], []
    try:
        if futures is not None:  # workers return finished rows: the parent only reads and writes
            for future in futures:
                part_results, part_findings = future.result()
                results.extend(part_results)
                findings.extend(part_findings)
        else:
            for r in analyze_many(ok_texts, exams=ok_exams, report_ids=ok_ids):
                results.append(result_row(r))
                findings.extend(finding_rows(r))
        analysed = True
    except Exception:  # one bad report must not sink its chunk: retry one by one
        analysed = False
        results, findings = [], []
    if not analysed:
        for rid, text, exam in zip(ok_ids, ok_texts, ok_exams):
            try:
                for r in analyze_many([text], exams=[exam], report_ids=[rid]):
                    results.append(result_row(r))
                    findings.extend(finding_rows(r))
            except Exception as exc:  # the run goes on; our own errors say why (never with report text), others by type
                reason = str(exc) if isinstance(exc, ReportNLPError) else type(exc).__name__
                errors.append({"report_id": rid, "row_number": None, "stage": "analysis", "reason": reason[:300]})
                seen.discard(rid)
    chars = sum(len(t) for t in ok_texts)
    # row numbers of analysis errors: fill from the id
    numbers = {str(row.get(id_col)): screened.start_row + i for i, row in enumerate(screened.records)}
    for e in errors:
        if e["row_number"] is None:
            e["row_number"] = numbers.get(e["report_id"])
    return results, findings, errors, chars


def process_chunk(df: pd.DataFrame, start_row: int, id_col: str, text_col: str, exam_cols,
                  seen: set) -> tuple[list[tuple], list[tuple], list[dict], int]:
    """Analyse one chunk in this process: (result rows, finding rows, error rows, characters analysed)."""
    return finish_chunk(screen_chunk(df, start_row, id_col, text_col, exam_cols, seen), id_col, seen)


def _rows_worker(part: tuple[list, list, list]) -> tuple[list[tuple], list[tuple]]:
    """In a worker process: analyse a slice of a chunk and return its result and finding rows."""
    from . import analyze_many

    texts, exams, ids = part
    results, findings = [], []
    for r in analyze_many(texts, exams=exams, report_ids=ids):
        results.append(result_row(r))
        findings.extend(finding_rows(r))
    return results, findings


def analyze_frame(df: pd.DataFrame, id_col: str = "id", text_col: str = "text", exam_cols=None,
                  start_row: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The per-chunk function shared by the local runner and Spark: a pandas batch of reports in,
    (results, findings, errors) DataFrames out. Duplicate ids are checked within the batch only."""
    results, findings, errors, _ = process_chunk(df, start_row, id_col, text_col, exam_cols, set())
    return (pd.DataFrame(results, columns=RESULT_COLUMNS), pd.DataFrame(findings, columns=FINDING_COLUMNS),
            pd.DataFrame(errors, columns=ERROR_COLUMNS))


@batch_gc()  # the collector's batch threshold while the run lasts (a fresh context per call)
def run(
    input_path: str,
    out: str,
    id_col: str = "id",
    text_col: str = "text",
    exam_cols: Optional[list[str]] = None,
    workers: int = 1,
    resume: bool = False,
    chunk_size: int = 1000,
    progress: Optional[Callable[[Summary], None]] = None,
    query: Optional[str] = None,
) -> Summary:
    """Run the batch; returns a Summary whose ``balanced`` says rows in == results + errors."""
    writer = open_writer(out, resume)
    summary = Summary()
    t0 = time.perf_counter()
    pool = behind = None
    if workers > 1:
        from .analysis import worker_pool

        pool = worker_pool(workers)
    try:
        chunk_no = writer.done_chunks() if resume else 0
        done_rows = writer.done_rows() if chunk_no else 0
        summary.resumed_chunks, summary.resumed_rows = chunk_no, done_rows
        seen = writer.seen_ids() if chunk_no else set()
        if pool is not None:
            behind = WriteBehind(writer)
        write = behind.write if behind is not None else writer.write
        in_flight: Optional[tuple] = None  # with workers: the chunk they are on while the next is screened

        def finish(chunk: int, n: int, screened: Screened, futures) -> None:
            results, findings, errors, chars = finish_chunk(screened, id_col, seen, futures)
            write(chunk, n, results, findings, errors)
            summary.chars += chars
            summary.categories.update(map(_CATEGORY, results))
            summary.kinds.update(f[_KIND] for f in findings if not (f[_NEGATED] or f[_HISTORICAL] or f[_HYPOTHETICAL]))
            summary.seconds = time.perf_counter() - t0
            summary.rows_in = screened.start_row + n
            if progress:
                progress(summary)

        row = 0
        for df in read_chunks(input_path, id_col, text_col, chunk_size, query):
            if row + len(df) <= done_rows:  # committed before the interruption
                row += len(df)
                continue
            if row < done_rows:  # resumed with another --chunk-size: skip the committed head of this chunk
                df = df.iloc[done_rows - row:]
                row = done_rows
            n = len(df)
            missing = [(what, col) for what, col in (("id", id_col), ("text", text_col)) if col not in df.columns]
            if missing and len(df):
                if in_flight is not None:  # what came before the bad chunk is committed, as without workers
                    finish(*in_flight)
                    in_flight = None
                what, col = missing[0]
                raise InputError(f"no {what} column {col!r} in input (columns: {', '.join(map(str, df.columns))})")
            screened = screen_chunk(df, row, id_col, text_col, exam_cols, seen)
            if pool is None:
                finish(chunk_no, n, screened, None)
            else:
                # the next chunk goes to the workers before this process waits on the one they are on:
                # no worker idles at a chunk's end while the others finish their slices
                futures = submit_chunk(screened, pool, workers)
                if in_flight is not None:
                    finish(*in_flight)
                in_flight = (chunk_no, n, screened, futures)
            chunk_no += 1
            row += n
        if in_flight is not None:
            finish(*in_flight)
        summary.rows_in = row
        if behind is not None:
            behind.drain()
        writer.finalize()
        summary.results, summary.errors, summary.findings = writer.counts()
    finally:
        if behind is not None and behind.thread.is_alive():  # an error in this thread: commit what was handed over
            try:
                behind.drain()
            except BaseException:  # the error already on its way out is the one to report
                pass
        writer.close()
        if pool is not None:
            pool.shutdown()
    summary.seconds = time.perf_counter() - t0
    return summary
