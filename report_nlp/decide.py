"""After extraction: concordance with the exam, then the guideline recommendation and flags."""
from __future__ import annotations

from .concordance import assess
from .guideline import recommend
from .schema import Result


def decide(result: Result) -> Result:
    """Fill ``concordance``, ``recommendation`` and ``flags`` of a Result (plain Python on Findings)."""
    concordance = assess(result.findings, result.exam, result.level_numbering_uncertain)
    recommendation, flags = recommend(result, concordance)
    result.concordance = concordance
    result.recommendation = recommendation
    result.flags = sorted(set(result.flags) | set(flags))
    return result
