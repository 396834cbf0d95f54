"""Assemble the pipeline: blank English tokenizer + the report_nlp components, in order."""
from __future__ import annotations

import logging

import re

import spacy
from spacy.tokenizer import Tokenizer

from ..resources import load_rules

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


SUFFIX_WINDOW = 64  # no suffix in patterns/lexicon.json is longer (they are single characters)


class TailSearch:
    """``regex.search`` over the last SUFFIX_WINDOW characters of a string: the same match for an
    end-anchored suffix pattern, but constant time. spaCy strips suffixes one at a time and searches
    the whole remaining token each time: quadratic on a long run of suffix characters ("))))...").
    ``__self__`` is the pattern, as on the bound ``regex.search`` spaCy expects (it serialises
    ``suffix_search.__self__.pattern``)."""

    def __init__(self, regex: re.Pattern):
        self.__self__ = regex

    def __call__(self, text: str):
        return self.__self__.search(text, max(0, len(text) - SUFFIX_WINDOW))


def report_tokenizer(nlp):
    """A lean tokenizer (punctuation and hyphens split, no exception table): 10x faster than the English
    defaults on reports; targets are matched on characters, so only ConText cues depend on it, and those
    are tokenized by the same tokenizer."""
    rules = load_rules("lexicon")["tokenizer"]
    suffix = re.compile(rules["suffix"])
    return Tokenizer(
        nlp.vocab,
        rules={},
        prefix_search=re.compile(rules["prefix"]).search,
        suffix_search=TailSearch(suffix) if re.search(r"(?<!\\)\$$", rules["suffix"]) else suffix.search,
        infix_finditer=re.compile(rules["infix"]).finditer,
    )


def build_pipeline(context_rules: str = "report_nlp"):
    """The pipeline. ``context_rules="medspacy_default"`` swaps in medspaCy's default ConText rules
    (the evaluation baseline); everything else stays the same."""
    quiet_third_party_logs()
    nlp = spacy.blank("en")
    nlp.tokenizer = report_tokenizer(nlp)
    nlp.max_length = 10_000_000
    for name in COMPONENTS:
        if name == "report_nlp_context" and context_rules == "medspacy_default":
            nlp.add_pipe("report_nlp_context", config={"rules": "medspacy_default"})
        else:
            nlp.add_pipe(name)
    return nlp
