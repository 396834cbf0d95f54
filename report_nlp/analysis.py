"""From texts to Results: cleaning, chunking of huge texts, one nlp.pipe pass, assembly, decisions."""
from __future__ import annotations

import gc
import itertools
import os
import threading
import time
from collections import deque
from contextlib import contextmanager
from concurrent.futures import ProcessPoolExecutor
from typing import Iterable, Iterator, Optional

from pydantic import ValidationError

from .errors import InputError
from .schema import Exam, Result
from .text import clean_text, coerce_text, looks_binary

CHUNK_CHARS = 12_000  # ConText pairs every modifier with every target: keep docs short


def _chunks(text: str) -> list[tuple[int, int]]:
    """Split a long text at paragraph (else line, else space) boundaries into pieces <= CHUNK_CHARS."""
    if len(text) <= CHUNK_CHARS:
        return [(0, len(text))]
    pieces = []
    start = 0
    n = len(text)
    while start < n:
        end = min(n, start + CHUNK_CHARS)
        if end < n:
            cut = max(text.rfind("\n\n", start + CHUNK_CHARS // 2, end), text.rfind("\n", start + CHUNK_CHARS // 2, end))
            if cut <= start:
                cut = text.rfind(" ", start + CHUNK_CHARS // 2, end)
            if cut > start:
                end = cut + 1
        pieces.append((start, end))
        start = end
    return pieces


def _as_exam(exam) -> Optional[Exam]:
    """An Exam from an Exam, a dict or None; anything else, or a dict that is not a valid exam, is an
    InputError naming the fields (the same error type as bad text, so callers catch one thing)."""
    if exam is None or isinstance(exam, Exam):
        return exam
    if isinstance(exam, dict):
        try:
            return Exam.model_validate(exam)
        except ValidationError as exc:
            raise InputError(f"invalid exam: {exam_problems(exc)}") from None
    msg = f"exam must be an Exam, a dict or None, not {type(exam).__name__}"
    raise InputError(msg)


def exam_problems(exc: ValidationError, limit: int = 3) -> str:
    """'field: message; ...' for the first ``limit`` problems of an Exam ValidationError (no input values)."""
    problems = exc.errors()
    parts = [f"{'.'.join(_printable(x) for x in e['loc']) or 'exam'}: {e['msg']}" for e in problems[:limit]]
    more = f" (and {len(problems) - limit} more)" if len(problems) > limit else ""
    return "; ".join(parts) + more


def _printable(key) -> str:
    """A field name for a one-line message (an unknown key can be any string)."""
    return "".join(ch if ch.isprintable() else "?" for ch in str(key)[:40])


def _concept_tuple(concepts) -> tuple[str, ...]:
    """``concepts`` as a tuple of phrases: None, one str, or an iterable of str; anything else is an InputError."""
    if concepts is None:
        return ()
    if isinstance(concepts, str):
        return (concepts,)
    try:
        phrases = tuple(concepts)
    except TypeError:
        raise InputError(f"concepts must be a list of str, not {type(concepts).__name__}") from None
    for phrase in phrases:
        if not isinstance(phrase, str):
            raise InputError(f"concepts must be a list of str; found {type(phrase).__name__}")
    return phrases


def _prepare(value) -> tuple[str, str, list[str]]:
    """(original text, cleaned text, errors) for one input."""
    original = coerce_text(value)
    errors: list[str] = []
    if not original.strip():
        errors.append("empty report: nothing to analyse")
        return original, original, errors
    if looks_binary(original):
        errors.append("text looks binary (control or replacement characters): not analysed")
        return original, " " * len(original), errors
    cleaned, notes = clean_text(original)
    errors.extend(f"note: {n}" for n in notes)
    return original, cleaned, errors


def analyze_texts(
    texts: Iterable,
    exams: Optional[Iterable] = None,
    concepts: Optional[Iterable[str]] = None,
    report_ids: Optional[Iterable] = None,
    batch_size: int = 64,
    nlp=None,
) -> Iterator[Result]:
    from . import load
    from .pipeline.component import get_doc_value, set_doc_value

    nlp = nlp or load()
    concept_list = _concept_tuple(concepts)
    exams_it = iter(exams) if exams is not None else itertools.repeat(None)
    ids_it = iter(report_ids) if report_ids is not None else itertools.repeat(None)
    jobs = []  # (original, cleaned, errors, exam, report_id, [(chunk_start, chunk_end)])

    def docs():
        for value in texts:
            exam = next(exams_it, None)
            rid = next(ids_it, None)
            original, cleaned, errors = _prepare(value)
            pieces = _chunks(cleaned) if cleaned.strip() else []
            jobs.append((original, cleaned, errors, _as_exam(exam), rid, pieces))
            for a, b in pieces:
                piece = cleaned[a:b]
                doc = nlp.make_doc(piece)
                set_doc_value(doc, "report_text", piece)  # spaCy's tokenizer keeps the text as given: no join of tokens later
                set_doc_value(doc, "report_concepts", concept_list)
                yield doc

    stream = nlp.pipe(docs(), batch_size=batch_size)
    pending: deque = deque()
    ready: list[tuple] = []  # (Result, cleaned text, level mentions): assembled, waiting for one batched model call
    done = 0
    while True:
        if done < len(jobs) and len(pending) >= len(jobs[done][5]):
            job = jobs[done]
            chunk_docs = [pending.popleft() for _ in job[5]]
            jobs[done] = None  # release the text
            done += 1
            mentions = get_doc_value(chunk_docs[0], "report_level_mentions") if len(chunk_docs) == 1 else None
            ready.append((_assemble(job, chunk_docs), job[1], mentions))
            for doc in chunk_docs:
                _release(doc)
            if len(ready) >= batch_size:
                yield from second_opinion_many(ready)
                ready = []
            continue
        try:
            pending.append(next(stream))
        except StopIteration:
            if done < len(jobs):
                continue
            yield from second_opinion_many(ready)
            return


def _release(doc) -> None:
    """A finished Doc holds Spans (ConText's graph and modifiers, in ``doc.user_data``) that hold the
    Doc: a reference cycle, so every Doc waited for the cyclic garbage collector, whose full passes
    were ~7% of ``analyze_many``. Nothing outside this module sees these Docs; emptying their
    extension data lets reference counting free each one as soon as its Result is built."""
    doc.user_data.clear()
    doc.spans.clear()


def _assemble(job, chunk_docs) -> Result:
    from .decide import decide
    from .pipeline.component import get_doc_value
    from .pipeline.findings import red_flag_reader, study_reader, to_findings
    from .pipeline.sections import doc_text

    original, cleaned, errors, exam, rid, pieces = job
    findings, flags_hist = [], []
    sections_first = ()
    for (a, _), doc in zip(pieces, chunk_docs):
        findings.extend(to_findings(doc, original, offset=a))
        sections = get_doc_value(doc, "report_sections")
        flags_hist.extend(red_flag_reader().read(doc_text(doc), sections, original, offset=a))
        if a == 0:
            sections_first = sections
    if len(pieces) > 1:
        errors.append(f"note: long report analysed in {len(pieces)} parts")
    study = study_reader().read(cleaned, sections_first, [f.level for f in findings])
    result = Result(
        report_id=None if rid is None else str(rid),
        study=study,
        findings=[f for f in findings if f.kind != "concept"] + [f for f in findings if f.kind == "concept"],
        history_red_flags=flags_hist,
        level_numbering_uncertain=study_reader().numbering_uncertain(cleaned),
        exam=exam,
        errors=errors,
    )
    return decide(result)


def second_opinion_many(batch: list[tuple]) -> Iterator[Result]:
    """Attach the trained model's view of each level, one model call per batch of reports, and flag
    rules_model_disagree (the rules still decide). ``batch``: (Result, cleaned text, level mentions or
    None) in order; the mentions found by the levels component save finding them again. Yields the Results."""
    from .model import disagree, level_records, predict_records, shipped_model
    from .schema import LevelOpinion

    model = shipped_model() if batch else None
    records = []
    if model is not None:
        for i, (result, cleaned, mentions) in enumerate(batch):
            if result.findings and len(cleaned) <= CHUNK_CHARS * 4:
                for rec in level_records(cleaned, result.findings, mentions):
                    rec["_i"] = i
                    records.append(rec)
    if records:
        predicted, _ = predict_records(model, records)
        by_report: dict[int, list[LevelOpinion]] = {}
        for rec, (model_class, probability) in zip(records, predicted):
            by_report.setdefault(rec["_i"], []).append(LevelOpinion.model_validate({
                "level": rec["level"], "rules_class": rec["rules_class"], "model_class": model_class,
                "model_probability": round(probability, 4), "disagree": disagree(rec["rules_class"], model_class)}))
        for i, opinions in by_report.items():
            result = batch[i][0]
            result.model_levels = sorted(opinions, key=lambda o: o.level)
            if any(o.disagree for o in opinions):
                result.flags = sorted(set(result.flags) | {"rules_model_disagree"})
    for result, _, _ in batch:
        yield result


# ----------------------------------------------------------------- processes
def _worker_run(payload):
    texts, exams, concepts, ids = payload
    return [r.model_dump(mode="json") for r in analyze_texts(texts, exams=exams, concepts=concepts, report_ids=ids)]


# Python's cyclic collector walks its youngest generation whenever allocations of container objects
# outnumber deallocations by 700. Analysing a batch of 64 reports holds ~10,000 of them alive at once
# (Docs' spans, pydantic models), nearly all freed by reference counting when the batch is done, so at
# 700 the collector walks the same live batch again and again: ~60 us per report, 5% of a batch run
# (bench/batch_gc.py). Batch processes raise the threshold above a batch's peak; the little cyclic
# garbage there is (its net allocations) still triggers collections, so memory stays flat.
BATCH_GC_THRESHOLD = 20_000


@contextmanager
def batch_gc():
    """The collector's youngest threshold at BATCH_GC_THRESHOLD for the duration; restored after."""
    old = gc.get_threshold()
    gc.set_threshold(BATCH_GC_THRESHOLD, *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)


def _worker_init(parent: int):
    from . import load

    threading.Thread(target=_exit_with_parent, args=(parent,), name="report-nlp-orphan-watch", daemon=True).start()
    load()
    gc.set_threshold(BATCH_GC_THRESHOLD, *gc.get_threshold()[1:])  # a worker process does nothing but batches


def _exit_with_parent(parent: int, every: float = 0.5) -> None:
    """A worker whose parent was killed (kill -9, OOM) would wait on its queue forever, holding a
    pipeline's memory: it leaves as soon as it is handed to another parent."""
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(1)


def worker_pool(n_process: int) -> ProcessPoolExecutor:
    """A pool whose workers each build the pipeline once from the rule files (nothing is pickled but text)
    and exit on their own if this process dies."""
    return ProcessPoolExecutor(max_workers=n_process, initializer=_worker_init, initargs=(os.getpid(),))


def analyze_parallel(texts, n_process: int, batch_size: int, exams=None, concepts=None, report_ids=None,
                     pool: Optional[ProcessPoolExecutor] = None) -> Iterator[Result]:
    exams_it = iter(exams) if exams is not None else itertools.repeat(None)
    ids_it = iter(report_ids) if report_ids is not None else itertools.repeat(None)
    concept_list = _concept_tuple(concepts)

    def batches():
        it = iter(texts)
        while True:
            chunk = list(itertools.islice(it, batch_size))
            if not chunk:
                return
            ex = [e.model_dump() if isinstance(e, Exam) else e for e in (next(exams_it, None) for _ in chunk)]
            ids = [next(ids_it, None) for _ in chunk]
            yield (chunk, ex, concept_list, ids)

    if pool is not None:
        for rows in pool.map(_worker_run, batches()):
            for row in rows:
                yield Result.model_validate(row)
        return
    with worker_pool(n_process) as own:
        for rows in own.map(_worker_run, batches()):
            for row in rows:
                yield Result.model_validate(row)
