"""Radiology section headers -> the section of every character (FINDINGS, IMPRESSION, HISTORY, ...).

medspaCy's Sectionizer needs a colon and knows general clinical headers, not radiology ones
(PEERS.md c.10); headers here come from ``patterns/sections.json`` and match with or without a colon,
in any case, at the start of a line (and, upper-case with a colon, after a sentence inside a line).
"""

import re
from bisect import bisect_right

from spacy.language import Language
from spacy.tokens import Doc

from ..resources import load_rules
from .component import BatchComponent, get_doc_value, set_doc_value

if not Doc.has_extension("report_text"):
    Doc.set_extension("report_text", default=None)


def doc_text(doc: Doc) -> str:
    """``doc.text`` joins every token on each call: compute it once per Doc and keep it."""
    text = get_doc_value(doc, "report_text")
    if text is None:
        text = doc.text
        set_doc_value(doc, "report_text", text)
    return text


if not Doc.has_extension("report_sections"):
    # (category, role, header_start, header_end, body_end) as plain tuples: msgpack-serializable.
    Doc.set_extension("report_sections", default=())


class SectionRules:
    """Compiled header patterns; shared by the component and by plain-text callers."""

    def __init__(self, rules: dict | None = None):
        rules = rules or load_rules("sections")
        self.header_info: dict[str, tuple[str, str]] = {}
        for group in rules["sections"]:
            for header in group["headers"]:
                self.header_info[header.lower()] = (group["category"], group["role"])
        names = sorted(self.header_info, key=len, reverse=True)
        alt = "|".join(re.escape(n).replace(r"\ ", r"\s+") for n in names)
        self.line_header = re.compile(
            rf"(?im)^[ \t>*#\-_=\[]*(?P<name>{alt})[ \t]*(?:\]\s*)?(?::|(?=[ \t]*$))"
        )
        self.inline_header = re.compile(rf"(?<=[.!?])[ \t]+(?P<name>{alt.upper()})[ \t]*:")

    def find(self, text: str) -> list[tuple[str, str, int, int, int]]:
        """Return sections as (category, role, header_start, header_end, body_end), in order."""
        hits = []
        for m in self.line_header.finditer(text):
            hits.append((m.start("name"), m.end()))
        for m in self.inline_header.finditer(text):
            hits.append((m.start("name"), m.end()))
        hits.sort()
        sections = []
        for i, (start, end) in enumerate(hits):
            name = re.sub(r"\s+", " ", text[start:end].rstrip(": \t]")).lower()
            category, role = self.header_info.get(name, ("other", "other"))
            body_end = hits[i + 1][0] if i + 1 < len(hits) else len(text)
            sections.append((category, role, start, end, body_end))
        return sections


def section_at(sections, char: int, starts: list[int] | None = None) -> tuple[str, str]:
    """(category, role) of the section holding character ``char``; ('other', 'none') before any header.
    ``starts``: the sections' header starts, when the caller asks for many characters of one Doc."""
    if starts is None:
        starts = [s[2] for s in sections]
    i = bisect_right(starts, char) - 1
    if i < 0:
        return "other", "none"
    return sections[i][0], sections[i][1]


class ReportSections(BatchComponent):
    """spaCy component: sets ``doc._.report_sections``."""

    def __init__(self, nlp: Language, name: str):
        self.name = name
        self.rules = SectionRules()

    def __call__(self, doc: Doc) -> Doc:
        set_doc_value(doc, "report_sections", tuple(self.rules.find(doc_text(doc))))
        return doc


@Language.factory("report_nlp_sections", assigns=["doc._.report_sections"])
def make_sections(nlp: Language, name: str) -> ReportSections:
    return ReportSections(nlp, name)
