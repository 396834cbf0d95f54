"""The gold corpus: reading and checking ``corpora/*.jsonl`` rows (GoldReport)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from .schema import GoldReport


def read_gold(path: str | Path) -> list[GoldReport]:
    """All rows of a gold JSONL file, validated; a bad row raises ValueError naming its line."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rows.append(GoldReport.model_validate_json(line))
            except ValueError as exc:
                msg = f"{path}:{n}: not a valid gold row: {exc}"
                raise ValueError(msg) from None
    return rows


def offset_problems(report: GoldReport) -> Iterator[str]:
    """Findings whose offsets do not point at their evidence text."""
    for i, f in enumerate(report.findings):
        if not (0 <= f.start < f.end <= len(report.text)) or report.text[f.start:f.end] != f.text:
            yield f"{report.id} finding {i}: text[{f.start}:{f.end}] != {f.text!r}"


def corpus_json_schema() -> dict:
    return GoldReport.model_json_schema()

