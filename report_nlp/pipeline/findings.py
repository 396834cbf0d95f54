"""Doc -> the contract's objects: ``Finding`` list, ``Study``, red flags in the history section.

Findings in HISTORY / INDICATION / TECHNIQUE / COMPARISON text are the reason for the exam or the
past, not imaging findings: they are kept out of ``findings``; red-flag wording in the history text
is returned separately for the guideline. User concepts are kept wherever they are (a note's
"History:" is where "denies chest pain" lives), with their ``section`` so a caller can filter.
"""
from __future__ import annotations

import re
from functools import lru_cache

from spacy.tokens import Doc

from ..leading import LeadingScan
from ..resources import load_rules, lowercase_pattern
from ..schema import Cue, Finding, RedFlagMention, Study
from .component import get_doc_value
from .targets import CONCEPT_LABEL

EXCLUDED_SECTIONS = {"history", "technique", "comparison"}


def to_findings(doc: Doc, original: str, offset: int = 0) -> list[Finding]:
    """Findings of one Doc; ``original`` is the user's text (the Doc holds its cleaned copy)."""
    out = []
    for raw in get_doc_value(doc, "report_findings"):
        if raw["section"] in EXCLUDED_SECTIONS and raw["kind"] != CONCEPT_LABEL:
            continue
        start, end = raw["start"] + offset, raw["end"] + offset
        # model_validate of a dict: the same validation as Finding(**fields), without packing keyword arguments
        out.append(Finding.model_validate({
            "kind": raw["kind"],
            "level": raw["level"],
            "side": raw["side"],
            "zone": raw["zone"],
            "roots": raw["roots"],
            "roots_inferred": raw["roots_inferred"],
            "severity": raw["severity"],
            "grade": raw["grade"],
            "negated": raw["negated"],
            "uncertain": raw["uncertain"],
            "historical": raw["historical"],
            "hypothetical": raw["hypothetical"],
            "certainty": raw["certainty"],
            "section": raw["section"],
            "text": original[start:end],
            "start": start,
            "end": end,
            "concept": raw["concept"],
            "cues": [Cue(text=original[c["start"] + offset:c["end"] + offset], category=c["category"],
                         start=c["start"] + offset, end=c["end"] + offset) for c in raw["cues"]],
        }))
    return out



class StudyReader:
    """Modality, region and contrast from the EXAM line or the report's first lines."""

    def __init__(self) -> None:
        study = load_rules("lexicon")["study"]
        self.modality = [(m["modality"], re.compile(m["pattern"], re.I)) for m in study["modality"]]
        self.region = [(r["region"], re.compile(r["pattern"], re.I)) for r in study["region"]]
        self.contrast = [(c["contrast"], re.compile(c["pattern"], re.I)) for c in study["contrast"]]
        # (name, test) per rule of the three families; for ASCII header text, the rules lowercased, over the
        # lowercased text, through their leading-character scans
        families = (self.modality, self.region, self.contrast)
        self.tests = [[(name, rx.search) for name, rx in rules] for rules in families]
        self.tests_folded = [[(name, LeadingScan(re.compile(lowercase_pattern(rx.pattern))).found_in) for name, rx in rules]
                             for rules in families]
        transitional = load_rules("lexicon")["transitional_anatomy"]
        self.transitional = re.compile(transitional, re.I)
        self.transitional_folded = LeadingScan(re.compile(lowercase_pattern(transitional)))  # ASCII text, lowercased

    def read(self, text: str, sections, levels: list[str]) -> Study:
        header_text = ""
        for category, role, h_start, h_end, body_end in sections:
            if role == "exam":
                header_text += " " + text[h_end:min(body_end, h_end + 300)]
        first = sections[0][2] if sections else len(text)
        header_text += " " + text[: min(first, 300)]
        if not header_text.strip():
            header_text = text[:200]
        if header_text.isascii():
            subject, (modality_rules, region_rules, contrast_rules) = header_text.lower(), self.tests_folded
        else:
            subject, (modality_rules, region_rules, contrast_rules) = header_text, self.tests
        modality = next((name for name, found_in in modality_rules if found_in(subject)), "unknown")
        found = [name for name, found_in in region_rules if found_in(subject)]
        if "multiple" in found or len(set(found)) > 1:
            region = "multiple"
        elif found:
            region = found[0]
        else:
            letters = {lv[0] for lv in levels if lv}
            region = {"C": "cervical", "T": "thoracic", "L": "lumbar"}.get(next(iter(letters)), "unknown") if len(letters) == 1 else ("multiple" if len(letters) > 1 else "unknown")
        contrast = next((value for value, found_in in contrast_rules if found_in(subject)), None)
        return Study(modality=modality, region=region, contrast=contrast)

    def numbering_uncertain(self, text: str) -> bool:
        if text.isascii():
            return self.transitional_folded.found_in(text.lower())
        return bool(self.transitional.search(text))


class RedFlagReader:
    """Red-flag wording in HISTORY / INDICATION text, with a simple preceding-negation check."""

    def __init__(self) -> None:
        data = load_rules("red_flags")
        self.flags = [(f["code"], re.compile(f["pattern"], re.I)) for f in data["flags"]]
        self.negation = re.compile(data["negation"], re.I)
        self.clause = re.compile(r"[.;\n]|\bbut\b", re.I)

    def read(self, text: str, sections, original: str, offset: int = 0) -> list[RedFlagMention]:
        out = []
        for category, role, h_start, h_end, body_end in sections:
            if category != "history":
                continue
            body = text[h_end:body_end]
            for code, rx in self.flags:
                for m in rx.finditer(body):
                    start, end = h_end + m.start(), h_end + m.end()
                    clause_start = h_end
                    for c in self.clause.finditer(body, 0, m.start()):
                        clause_start = h_end + c.end()
                    negated = bool(self.negation.search(text[clause_start:start]))
                    out.append(RedFlagMention(code=code, text=original[start + offset:end + offset],
                                              start=start + offset, end=end + offset, negated=negated))
        out.sort(key=lambda r: r.start)
        return out


@lru_cache(maxsize=1)
def study_reader() -> StudyReader:
    return StudyReader()


@lru_cache(maxsize=1)
def red_flag_reader() -> RedFlagReader:
    return RedFlagReader()
