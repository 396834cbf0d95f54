"""report_nlp: spine MRI report text -> nerve-root findings -> exam concordance -> guideline recommendation.

Public API: :func:`load`, :func:`analyze`, :func:`analyze_many` (see DESIGN.md for the data contract).
"""
from __future__ import annotations

import logging
from typing import Iterable, Iterator, Optional

from .errors import InputError, ReportNLPError, RuleFileError
from .schema import Exam, Finding, Result, Study

__all__ = ["load", "analyze", "analyze_many", "Result", "Finding", "Exam", "Study",
           "ReportNLPError", "RuleFileError", "InputError", "__version__"]
__version__ = "0.1.0"

log = logging.getLogger("report_nlp")

_NLP = None


def load():
    """The configured spaCy/medspaCy pipeline, built once per process and cached.

    The pipeline is a few hundred thousand long-lived objects (vocabulary, matchers, rules) that
    Python's cyclic garbage collector would otherwise walk again and again while reports are
    analysed (about 10% of ``analyze_many``'s time): once built they are moved out of its reach with ``gc.freeze()``.
    """
    global _NLP
    if _NLP is None:
        import gc

        from .pipeline.build import build_pipeline

        _NLP = build_pipeline()
        gc.collect()
        gc.freeze()
    return _NLP


def analyze(text, exam=None, concepts: Optional[Iterable[str]] = None, report_id: Optional[str] = None) -> Result:
    """Analyse one report.

    ``text``: str or UTF-8 bytes. ``exam``: an :class:`Exam`, a dict, or None. ``concepts``: extra target
    phrases returned as findings of kind ``concept`` with the same ConText attributes.
    Raises :class:`InputError` for input that is not text at all; every other problem (empty text,
    markup, binary-looking content) is reported in ``Result.errors``.
    """
    from .analysis import analyze_texts

    return next(analyze_texts([text], exams=[exam], concepts=concepts, report_ids=[report_id]))


def analyze_many(
    texts: Iterable,
    n_process: int = 1,
    batch_size: int = 64,
    exams: Optional[Iterable] = None,
    concepts: Optional[Iterable[str]] = None,
    report_ids: Optional[Iterable[Optional[str]]] = None,
) -> Iterator[Result]:
    """Analyse many reports in one ``nlp.pipe`` pass per process; yields Results in input order.

    With ``n_process > 1`` each worker process builds its own pipeline from the rule files and only
    texts and plain results cross process boundaries (medspaCy's rule objects never get pickled).
    """
    from .analysis import analyze_parallel, analyze_texts

    if n_process and n_process > 1:
        return analyze_parallel(texts, n_process=n_process, batch_size=batch_size, exams=exams,
                                concepts=concepts, report_ids=report_ids)
    return analyze_texts(texts, exams=exams, concepts=concepts, report_ids=report_ids, batch_size=batch_size)
