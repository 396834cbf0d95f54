"""A fast sentence splitter for dictated radiology reports.

PyRuSH, medspaCy's default, runs ~180 short reports/s and keeps ';' inside sentences. Reports are
split here with a few regular expressions over the text: sentence-final punctuation, ';' (a clause
boundary that ends ConText scope), line breaks that start a new statement (header, level header,
list item, or a line after one that ended with punctuation), and the colon after a header.
Paragraph starts (blank lines, headers, list items, level headers) are kept too: a level named in a
paragraph carries to the statements under it, and stops at the next paragraph.
"""

import re

import numpy
from spacy.attrs import IDX, LENGTH, SENT_START
from spacy.language import Language
from spacy.tokens import Doc

from ..leading import LeadingScan
from ..resources import load_rules, lowercase_pattern
from .component import BatchComponent, get_doc_value, set_doc_value
from .sections import doc_text

if not Doc.has_extension("report_paragraphs"):
    Doc.set_extension("report_paragraphs", default=())
if not Doc.has_extension("report_blocks"):
    # starts of blocks that end a level header's reach: blank lines and section headers
    Doc.set_extension("report_blocks", default=())
if not Doc.has_extension("report_level_headers"):
    # (header_start, header_end, level_text_start, level_text_end)
    Doc.set_extension("report_level_headers", default=())
if not Doc.has_extension("report_sentence_bounds"):
    # what sentence_bounds() returns, as this component set the sentences: ConText and the levels both
    # need them; a later component that moves sentence starts must set it back to None
    Doc.set_extension("report_sentence_bounds", default=None)

# starts only at the first mark of a run ("....."): the same matches, without re-scanning the run from
# every mark in it (quadratic on a long run of dots)
_SENT_END = re.compile(r"(?<![.!?])[.!?]+[\"')\]]*(?=\s+\S)")
# Longest sentence: a longer run (no punctuation or line break in sight) is cut at its last space
# before the limit. ConText compares every cue of a sentence with every other (quadratic in its
# length); the longest sentence in the gold corpora is 316 characters.
MAX_SENTENCE_CHARS = 1000
_LIST_NUMBER = re.compile(r"(?:^|\s)\(?\d{1,2}[.)]$")
_SEMICOLON = re.compile(r";(?=\s*\S)")


class SentenceRules:
    """Compiled splitter; ``split(text, sections)`` returns (boundaries, paragraph starts, level headers)."""

    def __init__(self):
        lex = load_rules("lexicon")["levels"]
        level = f"(?:{lex['disc_level']}|{lex['disc_level_fused']})"
        level = re.sub(r"\(\?P<\w+>", "(?:", level)
        header = lex["header"].replace("(?P<level>LEVEL)", f"(?P<level>{level})").replace("LEVEL", level)
        self.level_header = re.compile(header, re.I | re.M)
        words = load_rules("lexicon")["sentences"]
        self.abbreviation = re.compile(words["abbreviation"], re.I)
        self.list_item = re.compile(words["list_item"], re.I)
        self.continues = re.compile(words["continues"], re.I)
        # ASCII text: the folded rule over the lowercased line, through its leading-character scan
        self.continues_folded = LeadingScan(re.compile(lowercase_pattern(words["continues"])))
        self.sentence_end = LeadingScan(_SENT_END)

    def split(self, text: str, sections):
        """(sentence boundaries, paragraph starts, block starts, level headers), all sorted."""
        bounds: set[int] = {0}
        paragraphs: set[int] = {0}
        blocks: set[int] = {0}
        headers = []
        for m in self.level_header.finditer(text):
            headers.append((m.start(), m.end(), m.start("level"), m.end("level")))
            bounds.add(m.start())
            bounds.add(m.end())
            paragraphs.add(m.start())
        for _, _, start, end, _ in sections:
            bounds.add(start)
            bounds.add(end)
            paragraphs.add(start)
            blocks.add(start)
        for start, end in self.sentence_end.spans(text):
            if _LIST_NUMBER.search(text, max(0, start - 4), end):
                continue
            if text[start] == "." and self.abbreviation.search(text, max(0, start - 6), start):
                continue
            bounds.add(end)
        for m in _SEMICOLON.finditer(text):
            bounds.add(m.end())
        self._lines(text, bounds, paragraphs, blocks)
        _cap_sentences(text, bounds)
        n = len(text)
        return (sorted(b for b in bounds if b < n), sorted(p for p in paragraphs if p < n),
                sorted(b for b in blocks if b < n), headers)

    def _lines(self, text: str, bounds: set[int], paragraphs: set[int], blocks: set[int]) -> None:
        lines = text.split("\n")
        if text.isascii():
            continues = self.continues_folded.found_in
            folded = text.lower().split("\n")
        else:
            continues, folded = self.continues.search, lines
        prev_line = prev_folded = ""
        pos = 0
        for line, line_folded in zip(lines, folded):
            start = pos
            pos += len(line) + 1
            stripped = line.strip()
            if not stripped:
                prev_line = prev_folded = ""
                continue
            if not prev_line.strip():
                bounds.add(start)
                paragraphs.add(start)
                blocks.add(start)
            elif self.list_item.match(line):
                bounds.add(start)
                paragraphs.add(start)
            elif not continues(prev_folded) and not stripped[0].islower():
                bounds.add(start)
            prev_line, prev_folded = line, line_folded


def _cap_sentences(text: str, bounds: set[int]) -> None:
    """Add boundaries so that no sentence is longer than MAX_SENTENCE_CHARS (cut after the last
    whitespace in the second half of the allowance, else at the limit)."""
    n = len(text)
    ordered = sorted(b for b in bounds if b < n)
    for start, end in zip(ordered, ordered[1:] + [n]):
        while end - start > MAX_SENTENCE_CHARS:
            limit = start + MAX_SENTENCE_CHARS
            lo = start + MAX_SENTENCE_CHARS // 2
            cut = max(text.rfind(" ", lo, limit), text.rfind("\t", lo, limit), text.rfind("\n", lo, limit))
            cut = cut + 1 if cut >= 0 else limit
            bounds.add(cut)
            start = cut


class ReportSentences(BatchComponent):
    """spaCy component: sets ``token.is_sent_start`` and the paragraph / level-header extensions."""

    def __init__(self, nlp: Language, name: str):
        self.name = name
        self.rules = SentenceRules()

    def __call__(self, doc: Doc) -> Doc:
        bounds, paragraphs, blocks, headers = self.rules.split(doc_text(doc), get_doc_value(doc, "report_sections"))
        set_doc_value(doc, "report_paragraphs", tuple(paragraphs))
        set_doc_value(doc, "report_blocks", tuple(blocks))
        set_doc_value(doc, "report_level_headers", tuple(headers))
        # Setting token.is_sent_start one by one re-checks the whole Doc each time (quadratic);
        # write the SENT_START column in one go instead.
        if len(doc):
            columns = doc.to_array([IDX, LENGTH])
            starts = sent_starts(columns[:, 0], bounds)
            doc.from_array([SENT_START], starts.view("uint64").reshape(-1, 1))
            set_doc_value(doc, "report_sentence_bounds", tuple(_bounds(starts, columns[:, 0], columns[:, 1])))
        return doc


def sent_starts(token_starts: numpy.ndarray, bounds: list[int]) -> numpy.ndarray:
    """The SENT_START column (1 starts a sentence, -1 does not): the first token of the Doc, and for each
    character boundary the first token that starts at or after it (boundaries past the last token start
    nothing). ``token_starts``: each token's character offset, ascending."""
    values = numpy.full(len(token_starts), -1, dtype="int64")
    if len(token_starts):
        first = numpy.searchsorted(token_starts, numpy.asarray(bounds, dtype=token_starts.dtype), side="left")
        values[first[first < len(token_starts)]] = 1
        values[0] = 1
    return values


def sentence_bounds(doc: Doc) -> list[tuple[int, int, int, int]]:
    """(start token, end token, start char, end char) of each sentence: what ``doc.sents`` yields, read
    from the SENT_START, IDX and LENGTH columns in one go instead of one Span object per sentence."""
    if "sents" in doc.user_hooks or not len(doc) or not doc.has_annotation("SENT_START"):
        return [(s.start, s.end, s.start_char, s.end_char) for s in doc.sents]
    known = get_doc_value(doc, "report_sentence_bounds")
    if known is not None:
        return list(known)
    columns = doc.to_array([SENT_START, IDX, LENGTH])
    return _bounds(columns[:, 0], columns[:, 1], columns[:, 2])


def _bounds(sent_start: numpy.ndarray, idx: numpy.ndarray, length: numpy.ndarray) -> list[tuple[int, int, int, int]]:
    """sentence_bounds() from the SENT_START, IDX and LENGTH columns of a Doc with tokens."""
    starts = numpy.flatnonzero(sent_start[1:] == 1) + 1  # token 0 starts the first sentence whatever it holds
    starts = [0, *starts.tolist()]
    ends = [*starts[1:], len(idx)]
    idx, length = idx.tolist(), length.tolist()
    return [(a, b, idx[a], idx[b - 1] + length[b - 1]) for a, b in zip(starts, ends)]


@Language.factory(
    "report_nlp_sentences",
    assigns=["token.is_sent_start", "doc._.report_paragraphs", "doc._.report_blocks", "doc._.report_level_headers",
             "doc._.report_sentence_bounds"],
)
def make_sentences(nlp: Language, name: str) -> ReportSentences:
    return ReportSentences(nlp, name)
