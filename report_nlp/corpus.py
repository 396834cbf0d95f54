"""The gold corpus: reading and checking ``corpora/*.jsonl`` rows (GoldReport)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from .schema import GoldReport, NegationItem


def _read_jsonl(path: str | Path, model, what: str) -> list:
    """All rows of a JSONL file validated as ``model``; a bad row raises ValueError naming its line."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rows.append(model.model_validate_json(line))
            except ValueError as exc:
                raise ValueError(f"{path}:{n}: not a valid {what} row: {exc}") from None
    return rows


def read_gold(path: str | Path) -> list[GoldReport]:
    """All rows of a gold JSONL file, validated; a bad row raises ValueError naming its line."""
    return _read_jsonl(path, GoldReport, "gold")


def offset_problems(report: GoldReport) -> Iterator[str]:
    """Findings whose offsets do not point at their evidence text."""
    for i, f in enumerate(report.findings):
        if not (0 <= f.start < f.end <= len(report.text)) or report.text[f.start:f.end] != f.text:
            yield f"{report.id} finding {i}: text[{f.start}:{f.end}] != {f.text!r}"


def corpus_json_schema() -> dict:
    return GoldReport.model_json_schema()



def concept_spans(text: str, concept: str) -> list[tuple[int, int]]:
    """Where the concept phrase occurs: case-insensitive, on word boundaries, any whitespace between words."""
    words = [re.escape(w) for w in concept.split()]
    return [m.span() for m in re.finditer(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", text, re.I)]


def read_negation(path: str | Path) -> list[NegationItem]:
    """A concept-negation JSONL file, validated: the concept must occur exactly once in its text."""
    rows = _read_jsonl(path, NegationItem, "negation")
    for n, row in enumerate(rows, 1):
        if len(concept_spans(row.text, row.concept)) != 1:
            raise ValueError(f"{path}: row {n} ({row.id}): concept {row.concept!r} must occur exactly once in its text")
    return rows
