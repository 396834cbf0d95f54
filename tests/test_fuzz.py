"""Property-based hardening (Hardening issue, "Input"): arbitrary input into every entry point.

``analyze``, the batch path (``process_chunk`` / ``analyze_frame`` and the CSV / JSONL / Parquet / .txt
readers) and ``POST /api/analyze`` get arbitrary Unicode, control characters, markup remnants, mixed
line endings, very long tokens and lines, repeated level headers, binary bytes and malformed exams.
No exception may escape. The answer is a valid Result or a clear error:

* ``analyze``: a ``Result`` whose every finding, cue and red-flag span indexes the text it was given
  (``text[start:end] == span.text``), or an ``InputError`` (``[E010] ...``), the one error type for input
  that cannot be analysed: text that is not text, and an exam or concepts that are not valid (the
  message names the exam field).
* batch: rows in = results + errors; every error row has an id or a row number, a stage and a reason;
  a report that analyze() can analyse is never an "analysis" error.
* API: 200 with a Result, or 413 / 415 / 422 with a message (422 names the field); never 500.

``REPORT_NLP_FUZZ_EXAMPLES`` sets the generated cases per entry point (default 10,000, the issue's
minimum). Runs are derandomized (the same cases on every run) and keep no example database. The
5 MB inputs are explicit cases, not generated ones; realistic 5 MB reports are ``hardening_heavy``.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import report_nlp
from report_nlp.errors import InputError
from report_nlp.schema import Exam, Result
from report_nlp.text import MAX_CHARS

EXAMPLES = int(os.environ.get("REPORT_NLP_FUZZ_EXAMPLES", "10000"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
                           HealthCheck.filter_too_much],
)
COUNTS: dict[str, int] = {}

# --------------------------------------------------------------------------- building blocks
SECTIONS = ["FINDINGS:", "IMPRESSION:", "HISTORY:", "CLINICAL HISTORY: ", "INDICATION: ", "TECHNIQUE:", "COMPARISON: None.",
            "EXAM: MRI LUMBAR SPINE WITHOUT CONTRAST", "Findings", "IMPRESSION", " impression :", "[FINDINGS]", "REASON FOR EXAM:"]
LEVELS = ["L4-5:", "L5-S1:", "C5-C6 level:", "C5-6", "L3-L4", "T12-L1", "L45", "C3 C4", "at the L4-5 level", "L3 through L5",
          "L4-", "C7-T1:", "L4-5 and L5-S1", "lumbosacral junction", "L 4 - 5", "S1-S2", "C1-C2", "T1-T2", "L9-10", "C0-1", "L4-5.",
          "Level L2-3:", "- L4-5:", "1. L4-5:", "L3-4, L4-5, and L5-S1", "L6-S1", "at each level", "at all other levels"]
PHRASES = ["moderate left foraminal stenosis", "no disc herniation", "mild disc bulge", "severe central canal stenosis",
           "impingement of the exiting left L4 nerve root", "compressing the traversing right S1 nerve root", "cord compression",
           "cauda equina compression", "lateral recess stenosis", "broad-based disc osteophyte complex", "right paracentral protrusion",
           "bilateral neural foraminal narrowing", "mild to moderate", "unchanged", "contacting the descending L5 nerve root",
           "moderate-severe", "extrusion with caudal migration", "the neural foramina are patent", "DH", "HNP", "NF narrowing",
           "free fragment", "subarticular recess narrowing", "far lateral", "abutting", "displacing", "flattening of the cord",
           "right greater than left", "L > R", "on the left", "bilaterally", "transitional anatomy", "saddle anesthesia",
           "urinary retention", "history of cancer", "fever", "weakness"]
CUES = ["no", "No evidence of", "without", "negative for", "cannot exclude", "possible", "possibly", "likely", "status post",
        "prior", "rule out", "resolved", "no longer", "not", "unremarkable", "free of", "if", "versus", "may represent",
        "no significant", "evaluate for", "previously", "but", "however", "and", "with", "no interval change", "recurrent"]
MARKUP = ["<br>", "<br/>", "<BR >", "<p>", "</p>", "<b>", "</b>", "&nbsp;", "&amp;", "&#160;", "&lt;", "&#x1F600;", "{\\rtf1\\ansi ",
          "\\par ", "\\par\n", "}", "{", "\\b0 ", "\\'e9", "<html><body>", "<div class=\"x\">", "<span style='a'>", "<", ">",
          "&", "<!-- c -->", "<script>x</script>", "\\u8212?", "{\\fonttbl}"]
SEPARATORS = [" ", "  ", "\n", "\r\n", "\r", "\t", ". ", ", ", "; ", ":", "\n\n", "-", "/", "(", ")", "\x00", "\x0b", "\x0c",
              "\x1f", "\x7f", "\u2028", "\u2029", "\ufeff", "\u200b", "\u00a0", "\x85", "\ufffd", "...", "?", "!"]

piece = st.one_of(
    st.sampled_from(SECTIONS), st.sampled_from(LEVELS), st.sampled_from(PHRASES), st.sampled_from(PHRASES),
    st.sampled_from(CUES), st.sampled_from(MARKUP), st.sampled_from(SEPARATORS), st.sampled_from(SEPARATORS),
    st.text(max_size=12),  # any code point but surrogates
    st.text(st.characters(categories=["Cc", "Cf", "Zs", "Zl", "Zp", "Co", "Cn"]), max_size=6),  # controls, format, odd spaces
)
report_like = st.lists(piece, max_size=40).map("".join)
long_token = st.builds(lambda c, n: c * n, st.characters(), st.integers(1000, 6000))
long_line = st.builds(lambda p, n, sep: sep.join([p] * n), st.sampled_from(PHRASES + CUES), st.integers(50, 150),
                      st.sampled_from([" ", " and ", ", ", ""]))
repeated_headers = st.builds(lambda h, sep, n, tail: (h + sep) * n + tail, st.sampled_from(LEVELS), st.sampled_from(SEPARATORS),
                             st.integers(100, 400), st.sampled_from(PHRASES))
heavy = st.one_of(long_token, long_line, repeated_headers)
# mostly short report-like texts; 1 in 25 is heavy (thousands of characters)
texts = st.sampled_from(range(25)).flatmap(lambda k: heavy if k == 0 else (st.text(max_size=200) if k < 5 else report_like))

text_values = st.one_of(
    texts, texts, texts, texts,
    texts.map(lambda t: t.encode("utf-8")),
    texts.map(lambda t: bytearray(t.encode("utf-8"))),
    st.binary(max_size=300),
    st.none(), st.integers(), st.floats(), st.lists(st.text(max_size=5), max_size=2), st.booleans(),
)

EXAM_FIELDS = list(Exam.model_fields)
EXAM_WORDS = ["dorsum of foot", "great toe", "thumb", "lateral foot", "sole", "middle finger", "buttock", "EHL", "achilles",
              "triceps", "aura of doom", "", " "]
json_junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
weeks = st.one_of(st.floats(min_value=0, max_value=5200), st.integers(-10, 6000), st.floats(), st.just(-1), st.text(max_size=4))
valid_exam = st.fixed_dictionaries({}, optional={
    "side": st.sampled_from(["left", "right", "bilateral"]),
    "pain_distribution": st.lists(st.sampled_from(EXAM_WORDS) | st.text(max_size=10), max_size=3),
    "sensory_deficit": st.lists(st.sampled_from(EXAM_WORDS), max_size=2),
    "motor_weakness": st.lists(st.sampled_from(EXAM_WORDS), max_size=2),
    "reflex_changes": st.lists(st.sampled_from(EXAM_WORDS), max_size=2),
    "straight_leg_raise": st.booleans(), "spurling": st.booleans(),
    "symptom_weeks": st.floats(min_value=0, max_value=5200), "conservative_weeks": st.integers(0, 5200),
    "red_flags": st.lists(st.sampled_from(["fever", "saddle anesthesia", "trauma", "cancer"]), max_size=2),
    "claudication_with_walking": st.booleans(), "invasive_candidate": st.booleans(),
})
junk_exam = st.dictionaries(
    st.one_of(st.sampled_from(EXAM_FIELDS), st.text(max_size=8)),
    st.one_of(json_junk, weeks, st.sampled_from(["left", "up", "LEFT", ""])),
    max_size=5,
)
exams = st.one_of(
    st.none(), valid_exam, valid_exam.map(Exam.model_validate), junk_exam,
    st.fixed_dictionaries({"symptom_weeks": weeks, "conservative_weeks": weeks}),
    st.integers(), st.text(max_size=10), st.lists(st.integers(), max_size=3), st.floats(),
)
concepts = st.one_of(
    st.none(), st.none(), st.lists(st.sampled_from(["pulmonary embolism", "stenosis", "disc", "L4"]) | st.text(max_size=15), max_size=4),
    st.text(max_size=15), st.lists(st.one_of(st.integers(), st.none(), st.text(max_size=3)), max_size=3), st.integers(),
)


# --------------------------------------------------------------------------- checks
def _original(value) -> str:
    return bytes(value).decode("utf-8") if isinstance(value, (bytes, bytearray, memoryview)) else ("" if value is None else value)


def check_result(result, original: str) -> None:
    """A Result that round-trips through its JSON contract and whose spans index ``original``."""
    assert isinstance(result, Result)
    again = Result.model_validate_json(result.model_dump_json())
    assert again == result
    for f in result.findings:
        assert 0 <= f.start < f.end <= len(original), (f.start, f.end, len(original))
        assert original[f.start:f.end] == f.text
        for cue in f.cues:
            assert 0 <= cue.start < cue.end <= len(original) and original[cue.start:cue.end] == cue.text
    for flag in result.history_red_flags:
        assert 0 <= flag.start < flag.end <= len(original) and original[flag.start:flag.end] == flag.text
    assert all(isinstance(e, str) and e for e in result.errors)


def check_clear(exc: BaseException) -> None:
    """A clear error: the package's input error, one short line, with its code and a reason."""
    assert isinstance(exc, InputError), f"{type(exc).__name__}: {exc}"
    message = str(exc)
    assert message.startswith("[E010] ") and len(message) < 600 and "\n" not in message, message


def _run_counted(name: str, prop) -> None:
    COUNTS[name] = 0
    t0 = time.perf_counter()
    prop()
    seconds = time.perf_counter() - t0
    print(f"\n{name}: {COUNTS[name]:,} cases in {seconds:.1f} s")
    assert COUNTS[name] >= EXAMPLES, f"hypothesis stopped after {COUNTS[name]} of {EXAMPLES} cases"


# --------------------------------------------------------------------------- analyze()
@FUZZ
@given(value=text_values, exam=exams, concepts_=concepts, report_id=st.none() | st.text(max_size=6) | st.integers())
@example(value="L4-5 \ud800 moderate left foraminal stenosis", exam=None, concepts_=None, report_id=None)  # lone surrogate
@example(value="L4-5: mild disc bulge.", exam={"symptom_weeks": -1}, concepts_=None, report_id=None)  # negative weeks
@example(value="L4-5: mild disc bulge.", exam=None, concepts_=[1, None], report_id=None)  # non-str concepts
@example(value="." * 3000 + " L4-5 stenosis", exam=None, concepts_=None, report_id=None)  # long run of dots
def _analyze_property(value, exam, concepts_, report_id):
    COUNTS["analyze"] += 1
    try:
        result = report_nlp.analyze(value, exam=exam, concepts=concepts_, report_id=report_id)
    except InputError as exc:
        check_clear(exc)
        return
    check_result(result, _original(value))


@pytest.mark.slow
def test_fuzz_analyze_returns_a_valid_result_or_a_clear_error(nlp):
    _run_counted("analyze", _analyze_property)


def _recased(text: str, rng) -> str:
    return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in text)


def test_fuzz_every_gold_report_in_any_casing_gives_a_valid_result(nlp, root):
    """Every gold report in capitals and in random per-letter casing, as ASCII and with a non-ASCII
    character added (the two ways the rules are matched), analyses to a valid Result. A side carried to
    a second level once kept its capitals ('RIGHT'), which the contract rejects: analyze() raised."""
    import random

    rng = random.Random(20261203)
    names = ("gold.jsonl", "gold_test.jsonl")
    reports = [json.loads(line)["text"] for name in names
               for line in (root / "corpora" / name).read_text("utf-8").splitlines() if line.strip()]
    variants = []
    for text in reports:
        for cased in (text.upper(), _recased(text, rng)):
            variants += [cased, cased + " \u2014"]
    findings = 0
    for value, result in zip(variants, report_nlp.analyze_many(variants)):
        check_result(result, value)
        findings += len(result.findings)
    assert findings > 4 * 1000


@pytest.mark.parametrize(
    ("value", "expect"),
    [
        ("a" * MAX_CHARS, "parts"),  # 5 MB, one token: analysed in parts
        (" " * MAX_CHARS, "empty"),
        ("\x00\x01" * (MAX_CHARS // 2), "binary"),
        (("\u00e9" * (MAX_CHARS // 2)).encode("utf-8"), "parts"),  # 5 MB of two-byte UTF-8
        ("a" * (MAX_CHARS + 1), InputError),
        (b"\xff" * (MAX_CHARS + 1), InputError),
    ],
    ids=["5MB-token", "5MB-whitespace", "5MB-binary", "5MB-utf8-bytes", "over-limit", "over-limit-bytes"],
)
def test_fuzz_analyze_five_megabyte_inputs(nlp, value, expect):
    if expect is InputError:
        with pytest.raises(InputError) as caught:
            report_nlp.analyze(value)
        check_clear(caught.value)
        return
    result = report_nlp.analyze(value)
    check_result(result, _original(value))
    assert any(expect in e for e in result.errors)


@pytest.mark.slow
@pytest.mark.hardening_heavy
def test_fuzz_analyze_five_megabytes_of_reports(nlp, root):
    rows = [json.loads(line) for line in (root / "corpora" / "gold.jsonl").read_text("utf-8").splitlines() if line.strip()]
    text = ""
    while len(text) < MAX_CHARS:
        text += "\n\n".join(r["text"] for r in rows) + "\n\n"
    text = text[:MAX_CHARS]
    result = report_nlp.analyze(text)
    check_result(result, text)
    assert len(result.findings) > 10000


# --------------------------------------------------------------------------- batch
ids = st.one_of(st.sampled_from(["a", "b", "r1", "1", " ", ""]), st.text(max_size=6), st.integers(-3, 3), st.none(),
                st.floats(allow_nan=True), st.just(float("nan")))
row_texts = st.one_of(texts, texts, texts, st.binary(max_size=100), st.none(), st.floats(), st.integers(), st.just(""),
                      texts.map(lambda t: t.encode("utf-8")))
exam_cells = st.one_of(st.none(), st.sampled_from(["left", "right", "up", "", "true", "no", "[1, 2]", "[", "dorsum of foot; thumb",
                                                   "-1", "NaN", "1e400"]),
                       st.text(max_size=8), st.integers(-5, 100), st.floats())
rows_strategy = st.lists(
    st.fixed_dictionaries(
        {"id": ids, "text": row_texts},
        optional={"exam_side": exam_cells, "exam_symptom_weeks": exam_cells, "exam_pain_distribution": exam_cells,
                  "exam_spurling": exam_cells, "exam": st.one_of(st.sampled_from(['{"side": "left"}', '{"nope": 1}', "[]", "{",
                                                                                  '{"symptom_weeks": -3}', "5"]),
                                                                 json_junk.map(json.dumps))},
    ),
    max_size=4,
)
FORMATS = ["csv", "jsonl", "parquet", "txt", "frame"]
ANALYSIS_REASONS = {"InputError"}  # an analysis-stage error may only be input analyze() refuses (e.g. lone surrogates)


def _frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    if len(df) and "id" not in df:
        df["id"] = None
    if len(df) and "text" not in df:
        df["text"] = None
    return df


def check_batch(df: pd.DataFrame, results: list, errors: list) -> None:
    assert len(results) + len(errors) == len(df), (len(results), len(errors), len(df))
    for e in errors:
        assert e["report_id"] is not None or e["row_number"] is not None, e
        assert isinstance(e["reason"], str) and e["reason"], e
        assert e["stage"] in ("input", "exam", "analysis"), e
        if e["stage"] == "analysis":
            assert e["reason"] in ANALYSIS_REASONS, f"an exception escaped analyze(): {e}"
    ids = [r["report_id"] if isinstance(r, dict) else r[0] for r in results]  # DataFrame records or batch row tuples
    assert len(set(ids)) == len(results)  # ids are unique among results


def _write(rows: list[dict], fmt: str, folder: Path) -> Path:
    """The rows as an input file of format ``fmt`` (values made representable in that format)."""
    if fmt == "txt":
        folder = folder / "txt"
        folder.mkdir()
        for i, row in enumerate(rows):
            body = row["text"] if isinstance(row["text"], (bytes, bytearray)) else str(row["text"]).encode("utf-8", "replace")
            (folder / f"r{i}.txt").write_bytes(bytes(body))
        return folder
    df = _frame(rows)
    if fmt == "csv":
        path = folder / "in.csv"
        df = df.map(lambda v: v.decode("utf-8", "replace") if isinstance(v, (bytes, bytearray)) else v) if len(df) else df
        df.to_csv(path, index=False, quoting=csv.QUOTE_ALL)  # a lone CR in a cell is quoted, as a CSV writer should
    elif fmt == "jsonl":
        path = folder / "in.jsonl"
        with open(path, "w", encoding="utf-8") as fh:
            for row in rows:
                clean = {k: (v.decode("utf-8", "replace") if isinstance(v, (bytes, bytearray)) else v) for k, v in row.items()}
                fh.write(json.dumps(clean) + "\n")
    else:
        path = folder / "in.parquet"
        # one type per column, as a Parquet column has: text as str (bytes decoded) or all bytes, the rest as str
        cells = {}
        for col in df.columns:
            values = list(df[col])
            if col == "text" and any(isinstance(v, (bytes, bytearray)) for v in values):
                cells[col] = [bytes(v) if isinstance(v, (bytes, bytearray)) else (None if v is None else str(v).encode("utf-8", "replace"))
                              for v in values]
            else:
                cells[col] = [None if v is None or (isinstance(v, float) and math.isnan(v)) else
                              (v.decode("utf-8", "replace") if isinstance(v, (bytes, bytearray)) else str(v)) for v in values]
        pd.DataFrame(cells, columns=list(df.columns)).to_parquet(path, index=False)
    return path


@FUZZ
@given(rows=rows_strategy, fmt=st.sampled_from(FORMATS), chunk_size=st.integers(1, 4), whole_frame=st.booleans())
@example(rows=[{"id": "a", "text": "L4-5 \ud800 stenosis"}], fmt="jsonl", chunk_size=1, whole_frame=False)  # lone surrogate
@example(rows=[{"id": "a", "text": "x" * (MAX_CHARS + 1)}, {"id": "a", "text": " " * 1000}], fmt="frame", chunk_size=1,
         whole_frame=True)
def _batch_property(rows, fmt, chunk_size, whole_frame, tmp_root):
    from report_nlp.batch import analyze_frame, process_chunk, read_chunks

    COUNTS["batch"] += 1
    if fmt == "frame":
        df = _frame(rows)
        if whole_frame:
            results, findings, errors = analyze_frame(df)
            check_batch(df, results.to_dict("records"), errors.to_dict("records"))
        else:
            results, findings, errors, _ = process_chunk(df, 0, "id", "text", None, set())
            check_batch(df, results, errors)
        return
    folder = tmp_root / f"case{COUNTS['batch']}"
    folder.mkdir()
    try:
        path = _write(rows, fmt, folder)
        seen: set = set()
        rows_in = 0
        try:
            for df in read_chunks(str(path), "id", "text", chunk_size):
                results, findings, errors, _ = process_chunk(df, rows_in, "id", "text", None, seen)
                check_batch(df, results, errors)
                rows_in += len(df)
        except InputError as exc:  # the file as a whole cannot be read (e.g. a JSON integer beyond 64 bits)
            check_clear(exc)
            assert fmt == "jsonl", f"{fmt}: {exc}"
            return
        assert rows_in == len(rows), f"{fmt}: wrote {len(rows)} rows, read {rows_in}"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_fuzz_batch_rows_in_equal_results_plus_errors(nlp, tmp_path):
    _run_counted("batch", lambda: _batch_property(tmp_root=tmp_path))


# --------------------------------------------------------------------------- POST /api/analyze
@pytest.fixture(scope="module")
def client(nlp):
    from fastapi.testclient import TestClient

    from report_nlp.web import create_app

    with TestClient(create_app()) as client:  # one event-loop portal for every request (not one per request)
        yield client


json_exams = st.one_of(st.none(), valid_exam, junk_exam, st.fixed_dictionaries({"symptom_weeks": weeks, "conservative_weeks": weeks}),
                       json_junk)
body_values = st.one_of(
    st.fixed_dictionaries({"text": texts}, optional={"exam": json_exams, "concepts": concepts}),
    st.fixed_dictionaries({"text": texts}, optional={"exam": json_exams, "concepts": concepts, "unknown": json_junk,
                                                     "report_id": json_junk}),
    st.fixed_dictionaries({}, optional={"text": json_junk, "exam": json_junk, "concepts": json_junk}),
    json_junk,
)
CONTENT_TYPES = ["application/json", "application/json; charset=utf-8", "text/plain", "application/x-www-form-urlencoded", None]


@st.composite
def requests_(draw):
    kind = draw(st.sampled_from(["json", "json", "json", "bytes", "escaped"]))
    if kind == "bytes":
        body = draw(st.binary(max_size=400))
    elif kind == "escaped":  # JSON that decodes to lone surrogates, deep nesting or odd numbers
        body = draw(st.sampled_from([b'{"text": "L4-5 \\ud800 stenosis"}', b'{"text": "\\udfff"}', b'{"text": "x", "exam": {"symptom_weeks": NaN}}',
                                     b'{"text": "x", "exam": {"symptom_weeks": 1e999}}', b'{"text": "x", "exam": {"symptom_weeks": -0.0}}',
                                     b'[' * 5000 + b']' * 5000, b'{"text": "x"' + b', "text": "y"' * 3 + b'}', b'',
                                     b'{"text": "x", "concepts": ["\\u0000"]}', b'\xef\xbb\xbf{"text": "x"}']))
    else:
        body = json.dumps(draw(body_values), allow_nan=True).encode("utf-8")
    return body, draw(st.sampled_from(CONTENT_TYPES))


def check_response(response, body: bytes) -> None:
    assert response.status_code in (200, 413, 415, 422), (response.status_code, response.text[:300])
    payload = response.json()
    if response.status_code == 200:
        result = Result.model_validate(payload)
        sent = json.loads(body)["text"]
        check_result(result, sent)
        return
    detail = payload["detail"]
    assert detail, payload
    if isinstance(detail, str):  # 413 (too large), 415 (not JSON), 422 from the package's InputError
        assert detail.strip() and (response.status_code != 422 or detail.startswith("[E0"))
        return
    assert response.status_code == 422, payload
    for problem in detail:  # each problem names its field ("body" for the body as a whole)
        assert isinstance(problem["message"], str) and problem["message"], problem
        assert isinstance(problem["field"], str) and problem["field"], problem


@FUZZ
@given(request=requests_())
@example(request=(b'{"text": "L4-5: mild disc bulge.", "exam": {"symptom_weeks": -1}}', "application/json"))
@example(request=(b'{"text": "L4-5: mild disc bulge.", "concepts": [1]}', "application/json"))
def _api_property(request, client):
    COUNTS["api"] += 1
    body, content_type = request
    headers = {"content-type": content_type} if content_type else {}
    response = client.post("/api/analyze", content=body, headers=headers)
    check_response(response, body)


@pytest.mark.slow
def test_fuzz_api_answers_a_result_or_a_clear_4xx(client):
    _run_counted("api", lambda: _api_property(client=client))


@pytest.mark.parametrize("size", [256 * 1024 + 1, 5 * 1024 * 1024])
def test_fuzz_api_huge_bodies_are_413(client, size):
    body = json.dumps({"text": "L4-5 stenosis. " * (size // 15 + 1)}).encode()[: max(size, 1)]
    response = client.post("/api/analyze", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413 and "too large" in response.json()["detail"]

    def chunks():  # no Content-Length: the limit holds on a streamed body too
        view = io.BytesIO(body)
        while part := view.read(65536):
            yield part

    response = client.post("/api/analyze", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413


# --------------------------------------------------------------------------- what fuzzing found (regressions)
def test_fuzz_found_lone_surrogate_is_a_clear_input_error(nlp):
    # a str may hold a lone surrogate (Python API, JSON Lines "\ud800"): spaCy's tokenizer raised UnicodeEncodeError
    with pytest.raises(InputError, match="not valid Unicode"):
        report_nlp.analyze("FINDINGS: L4-5 \ud800 moderate left foraminal stenosis.")


def test_fuzz_found_invalid_exam_dict_is_an_input_error_naming_the_field(nlp):
    # was pydantic's ValidationError (a different type from every other bad input to analyze)
    with pytest.raises(InputError, match=r"invalid exam: symptom_weeks: .*greater than or equal to 0"):
        report_nlp.analyze("L4-5: mild disc bulge.", exam={"symptom_weeks": -1})
    with pytest.raises(InputError, match=r"invalid exam: \?: Extra inputs"):
        report_nlp.analyze("L4-5: mild disc bulge.", exam={"\n": 1})  # one-line message whatever the key


def test_fuzz_found_concepts_that_are_not_strings_are_an_input_error(nlp):
    # concepts=[1] raised AttributeError ('int' object has no attribute 'strip')
    with pytest.raises(InputError, match="concepts must be a list of str"):
        report_nlp.analyze("L4-5: mild disc bulge.", concepts=[1, None])
    # one phrase given as a plain str is that phrase, not one concept per character
    r = report_nlp.analyze("L4-5: mild disc bulge. Pulmonary embolism.", concepts="pulmonary embolism")
    assert [f.concept for f in r.findings if f.kind == "concept"] == ["pulmonary embolism"]


def test_fuzz_found_empty_csv_is_zero_rows(tmp_path):
    # pandas raised EmptyDataError out of read_chunks
    from report_nlp.batch import read_chunks

    path = tmp_path / "empty.csv"
    path.write_text("")
    assert list(read_chunks(str(path), "id", "text", 10)) == []


def test_fuzz_found_unreadable_jsonl_is_a_clear_input_error(tmp_path):
    # pandas raised ValueError("Value is too small") out of read_chunks on an integer beyond 64 bits
    from report_nlp.batch import read_chunks

    path = tmp_path / "in.jsonl"
    path.write_text('{"id": null, "text": -9223372036854775809}\n')
    with pytest.raises(InputError, match="cannot read in.jsonl as JSON Lines"):
        list(read_chunks(str(path), "id", "text", 1))


@pytest.mark.parametrize(
    ("body", "content_type", "status", "says"),
    [
        (b"\x80", "application/json", 422, "not UTF-8 text"),  # was 400 "There was an error parsing the body"
        (b'{"text": "x",}', "application/json", 422, "not valid JSON"),  # was field "13" (a character position)
        (b'{"text": "L4-5 stenosis"}', None, 415, "no Content-Type"),  # was 422 "a valid dictionary" at field ""
        (b'{"text": "L4-5 stenosis"}', "text/plain", 415, "not text/plain"),
        (b"[" * 5000 + b"]" * 5000, "application/json", 422, "nested too deeply"),  # RecursionError: was 400
        (b"", "application/json", 422, "Field required"),
    ],
    ids=["not-utf8", "bad-json", "no-content-type", "text-plain", "deep-nesting", "empty"],
)
def test_fuzz_found_api_bodies_get_a_clear_4xx(client, body, content_type, status, says):
    headers = {"content-type": content_type} if content_type else {}
    response = client.post("/api/analyze", content=body, headers=headers)
    assert response.status_code == status
    assert says in json.dumps(response.json())
    check_response(response, body)
