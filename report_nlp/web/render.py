"""Turn a Result into what the page shows: highlighted report segments and the exam form's fields."""
from __future__ import annotations

from ..schema import Exam, Finding

# (field, label, options): options are (value, plain-language label)
EXAM_FORM = {
    "pain_distribution": [
        ("lateral upper arm", "Outer upper arm / shoulder (C5)"), ("thumb", "Thumb and index finger (C6)"),
        ("middle finger", "Middle finger (C7)"), ("ring and little finger", "Ring and little finger (C8)"),
        ("anterior thigh", "Front of thigh (L3/L4)"), ("medial leg", "Inner shin (L4)"),
        ("dorsum of foot", "Top of foot / big toe (L5)"), ("lateral calf", "Outer calf (L5)"),
        ("lateral foot", "Outer foot / sole / heel (S1)"), ("posterior calf", "Back of calf (S1)"),
    ],
    "motor_weakness": [
        ("deltoid", "Shoulder abduction (C5)"), ("wrist extension", "Wrist extension (C6)"), ("triceps", "Elbow extension (C7)"),
        ("grip", "Grip (C8)"), ("knee extension", "Knee extension (L3/L4)"), ("ankle dorsiflexion", "Ankle / big toe lift (L5)"),
        ("plantar flexion", "Standing on toes (S1)"),
    ],
    "reflex_changes": [
        ("biceps", "Biceps (C5/C6)"), ("brachioradialis", "Brachioradialis (C6)"), ("triceps", "Triceps (C7)"),
        ("patellar", "Knee (L3/L4)"), ("achilles", "Ankle (S1)"),
    ],
    "red_flags": [
        ("progressive_neurologic_deficit", "Progressive neurologic deficit"), ("bilateral_motor_weakness", "Bilateral weakness"),
        ("cauda_equina", "Saddle anaesthesia / urinary retention"), ("infection", "Fever / IV drug use"),
        ("malignancy", "History of cancer / weight loss"), ("trauma", "Trauma"), ("intractable_pain", "Intractable pain"),
        ("vertebral_tenderness", "Vertebral tenderness"),
    ],
    "psychosocial_flags": [("depression", "Depression"), ("passive_coping", "Passive coping"), ("job_dissatisfaction", "Job dissatisfaction")],
}


def _one(fields: dict, name: str) -> str:
    return (fields.get(name) or [""])[0].strip()


def exam_from_form(fields: dict) -> Exam | None:
    """An Exam from the form's fields, or None when the form was left empty (raises ValidationError on bad values)."""
    data: dict = {}
    side = _one(fields, "side")
    if side:
        data["side"] = side
    for name in ("pain_distribution", "motor_weakness", "reflex_changes", "red_flags", "psychosocial_flags"):
        values = [v for v in fields.get(name, []) if v]
        if values:
            data[name] = values
    for name in ("symptom_weeks", "conservative_weeks"):
        value = _one(fields, name)
        if value:
            data[name] = value
    for name in ("invasive_candidate", "claudication_with_walking"):
        if _one(fields, name):
            data[name] = True
    return Exam.model_validate(data) if data else None


def _status(f: Finding) -> str:
    for name in ("negated", "hypothetical", "historical", "uncertain"):
        if getattr(f, name):
            return name
    return "present"


def highlight(text: str, findings: list[Finding]) -> list[dict]:
    """Segments of the report: plain text or a highlighted finding (overlaps keep the first finding)."""
    segments = []
    pos = 0
    for i, f in sorted(enumerate(findings), key=lambda x: (x[1].start, -x[1].end)):
        if f.start < pos:
            continue
        if f.start > pos:
            segments.append({"text": text[pos:f.start]})
        detail = ", ".join(p for p in (f.kind.replace("_", " "), f.level, f.side, "/".join(f.roots), f.severity, _status(f)) if p)
        segments.append({"text": text[f.start:f.end], "kind": f.kind, "status": _status(f), "detail": detail, "index": i})
        pos = f.end
    segments.append({"text": text[pos:]})
    return segments
