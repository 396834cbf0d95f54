"""Seeded synthetic spine reports for scale tests and benchmarks only.

Never used for evaluation figures: the gold corpus in corpora/ is written by hand and scored apart.
"""
from __future__ import annotations

import random

LUMBAR = ["L1-2", "L2-3", "L3-4", "L4-5", "L5-S1"]
CERVICAL = ["C2-3", "C3-4", "C4-5", "C5-6", "C6-7", "C7-T1"]
SEV = ["mild", "mild", "mild", "moderate", "moderate", "severe", "minimal", "mild to moderate"]
SIDE = ["left", "right", "bilateral"]
NORMAL = ["No disc herniation, canal stenosis or foraminal narrowing.", "Normal disc height and signal. No stenosis.",
          "The neural foramina are patent.", "Unremarkable.", "No significant abnormality."]


def level_line(rng: random.Random, level: str, lumbar: bool) -> str:
    if rng.random() < 0.45:
        return f"{level}: {rng.choice(NORMAL)}"
    parts = []
    if rng.random() < 0.6:
        parts.append(f"{rng.choice(['Broad-based', 'Mild', 'Circumferential'])} disc bulge")
    if rng.random() < 0.35:
        side = rng.choice(["left", "right"])
        zone = rng.choice(["paracentral", "subarticular", "foraminal", "central"])
        verb = rng.choice(["contacting", "abutting", "displacing", "compressing"])
        root = "traversing" if zone in ("paracentral", "subarticular") else "exiting"
        parts.append(f"a {rng.choice(['small', 'tiny', 'moderate-sized', 'large'])} {side} {zone} disc protrusion {verb} the {root} {side} nerve root")
    if rng.random() < 0.5:
        parts.append(f"{rng.choice(SEV)} {rng.choice(SIDE)} {'neural foraminal narrowing' if lumbar else 'uncovertebral foraminal stenosis'}")
    if rng.random() < 0.4:
        parts.append(f"{rng.choice(SEV)} {'central canal stenosis' if lumbar else 'spinal canal stenosis with cord flattening'}")
    if not parts:
        return f"{level}: {rng.choice(NORMAL)}"
    text = ", ".join(parts)
    if rng.random() < 0.3:
        text += ". No canal stenosis"
    return f"{level}: {text[0].upper() + text[1:]}."


def report(rng: random.Random) -> str:
    lumbar = rng.random() < 0.6
    levels = LUMBAR if lumbar else CERVICAL
    region = "LUMBAR" if lumbar else "CERVICAL"
    lines = [
        f"EXAM: MRI {region} SPINE WITHOUT CONTRAST",
        f"CLINICAL HISTORY: {rng.choice(['Low back pain', 'Neck pain', 'Radiculopathy', 'Pain for 8 weeks', 'Numbness'])}.",
        f"COMPARISON: {rng.choice(['None.', 'Prior MRI from 2021.', 'Radiographs.'])}",
        "FINDINGS:",
        f"Alignment is {rng.choice(['normal', 'preserved', 'straightened'])}. Vertebral body heights are maintained.",
    ]
    for level in levels:
        lines.append(level_line(rng, level, lumbar))
    lines.append("IMPRESSION:")
    lines.append(f"1. {rng.choice(['Multilevel degenerative changes as above.', 'Findings most pronounced at ' + rng.choice(levels) + '.'])}")
    return "\n".join(lines) + "\n"


def reports(n: int, seed: int = 13) -> list[str]:
    rng = random.Random(seed)
    return [report(rng) for _ in range(n)]
