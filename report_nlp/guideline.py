"""The guideline (``patterns/guideline.json``, a verbatim copy of shared/guideline.txt) as ordered rules.

Each rule's docstring names the guideline lines it implements (ids ``Gnn``); a test checks those
lines exist verbatim in the guideline. The gate for invasive care is deliberately narrow: a mild,
hedged, discordant or imaging-only finding can never open it.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Optional

from .resources import load_rules
from .schema import Citation, Concordance, Exam, Finding, Recommendation, Result, Warning_

INVASIVE_MIN_GRADE = 4  # moderate (clinical.md 2.5: "confirming impingement" is sev >= 4)
WEEKS = 6
ADVANCED_IMAGING = {"mri", "ct", "ct_myelogram"}
RED_FLAG_CODES = {
    "progressive_neurologic_deficit", "bilateral_motor_weakness", "cauda_equina", "infection",
    "malignancy", "trauma", "intractable_pain", "vertebral_tenderness",
}
ESI_EVIDENCE = ("Epidural steroid injection evidence is modest: only 35.4% of cervical radiculopathy patients "
                "achieve at least 50% pain reduction at 1 month (guideline).")


@lru_cache(maxsize=1)
def sentences() -> dict[str, str]:
    return {s["id"]: s["text"] for s in load_rules("guideline")["sentences"]}


def cite(*ids: str) -> list[Citation]:
    return [_citation(i) for i in ids]


@lru_cache(maxsize=None)
def _citation(sentence_id: str) -> Citation:
    """One immutable Citation per guideline sentence, shared by every Result that cites it."""
    return Citation(id=sentence_id, text=sentences()[sentence_id])


@lru_cache(maxsize=1)
def _red_flag_matchers():
    return [(f["code"], re.compile(f["pattern"], re.I)) for f in load_rules("red_flags")["flags"]]


def exam_red_flags(exam: Optional[Exam]) -> tuple[list[str], list[str]]:
    """(red-flag codes, unrecognised entries) from the exam; free text is matched to codes."""
    if exam is None:
        return [], []
    codes, unknown = [], []
    for entry in exam.red_flags:
        key = entry.strip().lower().replace(" ", "_").replace("-", "_")
        if key in RED_FLAG_CODES:
            found = [key]
        else:
            found = [code for code, rx in _red_flag_matchers() if rx.search(entry)]
        if not found:
            unknown.append(entry)
        for code in found:
            if code not in codes:
                codes.append(code)
    return codes, unknown


def confirming(findings: list[Finding], concordance: Concordance) -> list[Finding]:
    """Findings that confirm impingement correlating with the exam (G24): concordant, affirmed or probable, grade >= 4."""
    verdicts = {v.finding_index: v.verdict for v in concordance.per_finding}
    out = []
    for i, f in enumerate(findings):
        if verdicts.get(i) != "concordant":
            continue
        if f.negated or f.historical or f.hypothetical or f.certainty not in ("affirmed", "probable"):
            continue
        if f.grade is not None and f.grade >= INVASIVE_MIN_GRADE:
            out.append(f)
    return out


def _has_report(result: Result) -> bool:
    return any(f.kind != "concept" for f in result.findings) or result.study.modality != "unknown" or bool(result.study.region != "unknown")


def rule_red_flags(result: Result, codes: list[str]) -> Optional[Recommendation]:
    """G12, G13-G20: red flags call for immediate imaging or specialist referral."""
    history = sorted({m.code for m in result.history_red_flags if not m.negated})
    flags = sorted(set(codes) | set(history))
    if not flags:
        return None
    ids = {"progressive_neurologic_deficit": "G14", "bilateral_motor_weakness": "G14", "cauda_equina": "G15", "infection": "G16",
           "malignancy": "G17", "trauma": "G18", "intractable_pain": "G19", "vertebral_tenderness": "G20"}
    where = []
    if codes:
        where.append("exam: " + ", ".join(sorted(codes)))
    if history:
        where.append("report history: " + ", ".join(history))
    return Recommendation(
        category="urgent_evaluation",
        invasive_allowed=False,
        reasons=[f"Red flag present ({'; '.join(where)}): evaluate urgently (immediate imaging or specialist referral) "
                 "rather than following the routine conservative pathway."],
        citations=cite("G13", *sorted({ids[f] for f in flags})),
    )


def rule_early_imaging(result: Result, exam: Optional[Exam], has_report: bool) -> Optional[Recommendation]:
    """G12, G02: no MRI/CT in the first 6 weeks without red flags; begin with conservative care."""
    if not has_report or exam is None or exam.symptom_weeks is None:
        return None
    if result.study.modality in ADVANCED_IMAGING and exam.symptom_weeks < WEEKS:
        return Recommendation(
            category="imaging_not_indicated",
            reasons=[f"Advanced imaging was done after {exam.symptom_weeks:g} weeks of symptoms without red flags: imaging is not "
                     "indicated in the first 6 weeks. Continue conservative care (stay active, NSAIDs, physical therapy, "
                     "posture, education); most cases resolve.",
                     "The findings should not drive treatment: such findings are common in people without symptoms."],
            citations=cite("G12", "G02", "G33"),
        )
    return None


def rule_mri_indicated(result: Result, exam: Optional[Exam], has_report: bool) -> Optional[Recommendation]:
    """G22: after 6 weeks of failed optimal conservative therapy, obtain MRI without IV contrast."""
    if exam is None or exam.conservative_weeks is None or exam.conservative_weeks < WEEKS:
        return None
    if has_report and result.study.modality not in ("radiograph",):
        return None
    return Recommendation(
        category="mri_indicated",
        reasons=[f"Symptoms persist after {exam.conservative_weeks:g} weeks of conservative therapy and no MRI has been done: "
                 "obtain MRI of the symptomatic region without IV contrast to guide further decisions."],
        citations=cite("G22"),
    )


def rule_invasive_gate(result: Result, exam: Optional[Exam], concordance: Concordance) -> tuple[Optional[Recommendation], list[str]]:
    """G24, G25, G26, G02, G28: invasive options only for a candidate after 6+ weeks of failed care whose imaging
    confirms impingement that correlates with the symptoms (concordant, affirmed/probable, moderate or worse)."""
    why_not = []
    if exam is None:
        return None, ["No exam: imaging alone never justifies invasive treatment."]
    if exam.conservative_weeks is None or exam.conservative_weeks < WEEKS:
        why_not.append("fewer than 6 weeks of optimal conservative care" if exam.conservative_weeks is not None
                       else "duration of conservative care not documented")
    if exam.invasive_candidate is not True:
        why_not.append("not documented as a candidate for injection or surgery")
    strong = confirming(result.findings, concordance)
    if not strong:
        rooted = [f for f in result.findings if f.roots and f.kind != "concept" and not f.negated]
        if any(v.verdict == "concordant" for v in concordance.per_finding):
            why_not.append("the concordant finding is below moderate (mild findings alone never justify invasive care)")
        elif rooted:
            why_not.append(f"imaging does not confirm impingement that correlates with the exam ({concordance.overall.replace('_', ' ')})")
        else:
            why_not.append("imaging shows no nerve-root impingement")
    if why_not:
        return None, ["Invasive referral not supported: " + "; ".join(why_not) + "."]
    levels = ", ".join(sorted({f"{f.side or ''} {'/'.join(f.roots)} at {f.level}".strip() for f in strong}))
    rec = Recommendation(
        category="consider_invasive_referral",
        invasive_allowed=True,
        reasons=[f"Candidate with symptoms after {exam.conservative_weeks:g} weeks of optimal conservative care, and imaging "
                 f"confirms concordant impingement ({levels}, moderate or worse): injection or surgical referral may be considered.",
                 ESI_EVIDENCE],
        citations=cite("G24", "G25", "G26", "G28"),
    )
    return rec, []


def rule_conservative(reasons: list[str]) -> Recommendation:
    """G02, G06-G10, G33: conservative management (stay active, NSAIDs, PT, posture, education)."""
    return Recommendation(
        category="conservative_care",
        reasons=["Conservative care: remain active rather than bed rest, NSAIDs or analgesics, physical therapy focused on "
                 "mobility, postural modifications, and education about the favourable natural history."] + reasons,
        citations=cite("G02", "G06", "G07", "G08", "G09", "G10", "G33"),
    )


def warnings_for(exam: Optional[Exam], category: str) -> list[Warning_]:
    """G29, G30, G31: psychosocial factors, vascular claudication, avoid immobilisation."""
    out = []
    if exam is not None and exam.psychosocial_flags:
        out.append(Warning_(code="psychosocial", message=f"Psychosocial factors ({', '.join(exam.psychosocial_flags)}) predict poorer "
                            "outcomes: assess and address them concurrently. (G29)"))
    if exam is not None and exam.claudication_with_walking:
        out.append(_fixed_warning("vascular_claudication"))
    if category in ("conservative_care", "imaging_not_indicated"):
        out.append(_fixed_warning("avoid_immobilization"))
    return out


FIXED_WARNINGS = {
    "vascular_claudication": "Pain predictably with walking and relieved by rest: rule out vascular claudication with an "
                             "ankle-brachial index. (G30)",
    "avoid_immobilization": "Avoid prolonged splinting, collars, bracing or bed rest: immobilisation leads to deconditioning "
                            "and learned non-use. (G31)",
}


@lru_cache(maxsize=None)
def _fixed_warning(code: str) -> Warning_:
    """The warnings whose wording never changes, one immutable instance each."""
    return Warning_(code=code, message=FIXED_WARNINGS[code])


def recommend(result: Result, concordance: Concordance) -> tuple[Recommendation, list[str]]:
    """The recommendation and the flags (low_value_imaging, imaging_symptom_mismatch) for one Result."""
    exam = result.exam
    codes, unknown = exam_red_flags(exam)
    has_report = _has_report(result)
    flags: list[str] = []
    rec = rule_red_flags(result, codes)
    if rec is None:
        rec = rule_early_imaging(result, exam, has_report)
        if rec is not None:
            flags.append("low_value_imaging")
    if rec is None:
        rec = rule_mri_indicated(result, exam, has_report)
    extra: list[str] = []
    if rec is None:
        rec, extra = rule_invasive_gate(result, exam, concordance)
    if rec is None:
        rec = rule_conservative(extra)
        if exam is not None and exam.invasive_candidate:
            rec.reasons.append(ESI_EVIDENCE)
    if unknown:
        rec.reasons.append(f"Unrecognised red-flag entries were not used: {', '.join(unknown)}.")
    rec.warnings = warnings_for(exam, rec.category)
    grades = [f.grade or 0 for f in result.findings if f.roots and not (f.negated or f.historical or f.hypothetical)]
    if concordance.overall == "discordant" or (concordance.overall == "imaging_only" and grades and max(grades) >= INVASIVE_MIN_GRADE) \
            or (concordance.overall == "symptoms_only" and has_report):
        flags.append("imaging_symptom_mismatch")
        rec.citations.extend(c for c in cite("G28") if c.id not in {x.id for x in rec.citations})
    if rec.invasive_allowed and not confirming(result.findings, concordance):  # defence in depth: never reachable
        rec = rule_conservative(["Invasive referral withheld: no confirming concordant finding."])
    return rec, flags
