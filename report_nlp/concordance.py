"""Findings x Exam -> Concordance: does the imaging explain the patient's signs?

A finding's roots are compared with the roots the exam points to (dermatome, myotome, reflex
wording mapped through ``patterns/anatomy.json``) and with the exam side:

* ``concordant``: an affirmed or probable finding's root is an exam root, on the exam's side;
* ``partially_concordant``: the adjacent root (or any root within one, where transitional anatomy
  makes the numbering uncertain), the other side, a side unknown on either part, or a finding that
  is only possible ("cannot exclude");
* ``discordant``: both have roots and none of the above holds;
* ``imaging_only``: findings with roots but no radicular signs in the exam;
* ``symptoms_only``: radicular signs but no present finding with a root;
* ``not_assessable``: no exam, or nothing to compare.

Negated, historical and hypothetical findings never count as correlates.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Optional

from .anatomy import adjacent, exam_vocabulary
from .schema import Concordance, Exam, Finding, FindingVerdict

RANK = {"concordant": 0, "partially_concordant": 1, "discordant": 2}


def exam_roots(exam: Exam) -> tuple[list[str], list[str], list[str]]:
    """(roots, their evidence, unmapped terms) from the exam's areas, weakness and reflexes."""
    vocab = exam_vocabulary()
    roots, evidence, unmapped = [], [], []
    fields = (
        ("pain_distribution", ("dermatome",)),
        ("sensory_deficit", ("dermatome",)),
        ("motor_weakness", ("myotome",)),
        ("reflex_changes", ("reflex",)),
    )
    for name, what in fields:
        for term in getattr(exam, name):
            found = vocab.roots_for(term, what) or vocab.roots_for(term, ("dermatome", "myotome", "reflex"))
            if not found:
                unmapped.append(term)
                continue
            evidence.append(f"{term} ({'/'.join(found)})")
            for root in found:
                if root not in roots:
                    roots.append(root)
    return roots, evidence, unmapped


def _correlates(f: Finding) -> bool:
    return f.kind != "concept" and not (f.negated or f.historical or f.hypothetical)


def _side_ok(finding_side: Optional[str], exam_side: Optional[str]) -> Optional[bool]:
    """True same side, False other side, None unknown on either part."""
    if finding_side in (None, "central") or exam_side is None:
        return None
    if "bilateral" in (finding_side, exam_side):
        return True
    return finding_side == exam_side


def _describe(f: Finding) -> str:
    parts = [f.severity or "", f.side or "", f.kind.replace("_", " "), f"at {f.level}" if f.level else ""]
    return " ".join(p for p in parts if p)


def verdict_for(f: Finding, roots: list[str], side: Optional[str], numbering_uncertain: bool,
                signs: str = "") -> tuple[str, str]:
    what = _describe(f)
    signs = f" (exam: {signs})" if signs else ""
    if not _correlates(f):
        status = "negated" if f.negated else ("historical" if f.historical else "hypothetical")
        return "not_assessable", f"{what} is {status}: not a correlate"
    if not f.roots:
        return "not_assessable", f"{what} names no single root"
    if not roots:
        return "imaging_only", f"{what} ({'/'.join(f.roots)}) has no matching sign in the exam"
    exact = [r for r in f.roots if r in roots]
    near = [r for r in f.roots if any(adjacent(r, e) for e in roots)]
    side_ok = _side_ok(f.side, side)
    root_txt = "/".join(f.roots)
    if exact:
        if side_ok is True and f.certainty in ("affirmed", "probable"):
            return "concordant", f"{root_txt} root on the {f.side} side explains the exam{signs} ({what})"
        if side_ok is False:
            return "partially_concordant", f"{root_txt} matches the exam root{signs} but the finding is on the {f.side}, the symptoms on the {side}"
        if side_ok is None:
            return "partially_concordant", f"{root_txt} matches the exam root{signs}; side not stated in the report or the exam ({what})"
        return "partially_concordant", f"{root_txt} matches the exam{signs}, but the finding is only possible ({what})"
    if near and side_ok is not False:
        why = "transitional anatomy makes the level numbering uncertain" if numbering_uncertain else "adjacent root"
        return "partially_concordant", f"{root_txt} is next to the exam root {'/'.join(roots)}{signs} ({why}; {what})"
    return "discordant", f"{root_txt} ({what}) does not explain signs of {'/'.join(roots)}{signs} on the {side or 'unstated'} side"


@lru_cache(maxsize=4096)
def _no_exam(finding_index: int) -> FindingVerdict:
    """The verdict of finding ``finding_index`` of a report without an exam (immutable, shared)."""
    return FindingVerdict(finding_index=finding_index, verdict="not_assessable", explanation="no exam given")


def assess(findings: list[Finding], exam: Optional[Exam], numbering_uncertain: bool = False) -> Concordance:
    if exam is None:
        return Concordance(overall="not_assessable", explanation="no exam given",
                           per_finding=[_no_exam(i) for i, f in enumerate(findings) if f.kind != "concept"])
    roots, evidence, unmapped = exam_roots(exam)
    per = []
    for i, f in enumerate(findings):
        if f.kind == "concept":
            continue
        verdict, why = verdict_for(f, roots, exam.side, numbering_uncertain, "; ".join(evidence))
        per.append(FindingVerdict(finding_index=i, verdict=verdict, explanation=why))
    rooted = [v for v in per if v.verdict in RANK or v.verdict == "imaging_only"]
    if not roots:
        if rooted:
            overall, why = "imaging_only", "findings with nerve roots, but no dermatomal, motor or reflex sign in the exam"
        else:
            overall, why = "not_assessable", "neither the exam nor the report names a nerve root"
    elif not rooted:
        overall, why = "symptoms_only", f"exam points to {'/'.join(roots)} ({'; '.join(evidence)}) but no present finding involves a root"
    else:
        best = min((v for v in rooted if v.verdict in RANK), key=lambda v: RANK[v.verdict])
        overall, why = best.verdict, best.explanation
    return Concordance(overall=overall, explanation=why, per_finding=per, exam_roots=roots, unmapped_exam_terms=unmapped)
