"""Assemble the pipeline: blank English tokenizer + the report_nlp components, in order."""
from __future__ import annotations

import logging

import spacy

from . import context, levels, sections, sentences, targets  # noqa: F401  (registers factories)

COMPONENTS = (
    "report_nlp_sections",
    "report_nlp_sentences",
    "report_nlp_targets",
    "report_nlp_context",
    "report_nlp_levels",
)


def quiet_third_party_logs() -> None:
    """PyRuSH (imported by medspaCy) logs sentences at DEBUG through loguru: patient text must not reach logs."""
    try:
        from loguru import logger

        logger.disable("PyRuSH")
    except ImportError:  # pragma: no cover - loguru comes with PyRuSH
        pass
    logging.getLogger("medspacy").setLevel(logging.WARNING)


def build_pipeline(context_rules: str = "report_nlp"):
    """The pipeline. ``context_rules="medspacy_default"`` swaps in medspaCy's default ConText rules
    (the evaluation baseline); everything else stays the same."""
    quiet_third_party_logs()
    nlp = spacy.blank("en")
    nlp.max_length = 10_000_000
    for name in COMPONENTS:
        if name == "report_nlp_context" and context_rules == "medspacy_default":
            nlp.add_pipe("report_nlp_context", config={"rules": "medspacy_default"})
        else:
            nlp.add_pipe(name)
    return nlp
