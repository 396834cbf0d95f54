"""Finding targets: medspaCy TargetRules from ``patterns/targets.json``, plus user concepts.

The rules are medspaCy ``TargetRule`` objects, but they are matched here rather than by medspaCy's
RegexMatcher, which rebuilds ``doc.text_with_ws`` for every rule and scans the Doc token by token
for every match that does not fall on a token boundary (40% of the pipeline's time on short
reports, quadratic on long ones). Matches snap outward to token boundaries, as medspaCy's do, and
overlapping matches are pruned as medspaCy's ``prune_overlapping_matches`` prunes them (``prune_longest``).

Targets go to the span group ``report_nlp_targets`` (findings overlap each other's context, and
``doc.ents`` allows no overlap). ``analyze(text, concepts=[...])`` puts extra phrases on
``doc._.report_concepts`` before the pipeline runs; they are matched here, case-insensitively on word
boundaries, as targets of label ``concept`` so the same ConText rules judge them.
"""

import re
import warnings
from bisect import bisect_left, bisect_right
from functools import lru_cache
from operator import itemgetter

from medspacy.target_matcher import TargetRule
from spacy.attrs import IDX, LENGTH
from spacy.language import Language
from spacy.tokens import Doc, Span

from ..leading import LeadingScan
from ..resources import expand_macros, load_rules, lowercase_pattern
from .component import BatchComponent, get_doc_value, set_span_value
from .sections import doc_text

# medspaCy's matcher holds our regex rules outside spaCy's Matcher, which then warns that it is empty.
warnings.filterwarnings("ignore", message=r"\[W036\]")

SPAN_GROUP = "report_nlp_targets"
CONCEPT_LABEL = "concept"

if not Doc.has_extension("report_concepts"):
    Doc.set_extension("report_concepts", default=())
if not Span.has_extension("concept_name"):
    Span.set_extension("concept_name", default=None)


def target_rules() -> list[TargetRule]:
    """TargetRules from patterns/targets.json, with macros expanded; ``metadata['requires']`` is the pre-filter."""
    data = load_rules("targets")
    macros = data.get("macros", {})
    return [
        TargetRule(literal=r["literal"], category=r["category"], pattern=expand_macros(r["pattern"], macros),
                   metadata={"requires": tuple(r["requires"])})
        for r in data["rules"]
    ]


_START_END = itemgetter(1, 2)


def prune_longest(matches: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """medspaCy's ``prune_overlapping_matches(matches, "longest")``, pass for pass and tie for tie, without
    its ``pop(0)`` from the front of a list, a lambda per comparison and a call per overlap test
    (tested against it on random match lists)."""
    if not matches:
        return matches
    while True:
        ordered = sorted(matches, key=_START_END)
        n = len(ordered)
        pruned = []
        current, i = ordered[0], 1
        while True:
            if i >= n:
                pruned.append(current)
                break
            following = ordered[i]
            i += 1
            if current[1] <= following[1] < current[2] or current[1] < following[2] <= current[2]:
                # the longer of the two; the first on a tie
                pruned.append(following if following[2] - following[1] > current[2] - current[1] else current)
                if i >= n:
                    break
                current = ordered[i]
                i += 1
            else:
                pruned.append(current)
                current = following
        if len(pruned) == n:
            return pruned
        matches = pruned


@lru_cache(maxsize=256)
def _concept_regex(concepts: tuple[str, ...]) -> re.Pattern | None:
    phrases = sorted({c.strip() for c in concepts if c and c.strip()}, key=len, reverse=True)
    if not phrases:
        return None
    alt = "|".join(re.escape(p).replace(r"\ ", r"\s+") for p in phrases)
    return re.compile(rf"(?<!\w)(?:{alt})(?!\w)", re.I)


class ReportTargets(BatchComponent):
    """spaCy component: finding targets and concepts into ``doc.spans['report_nlp_targets']``."""

    def __init__(self, nlp: Language, name: str):
        self.name = name
        self.rules = target_rules()
        # ASCII text: the rules with capitals lowercased over the lowercased text, through their leading-
        # character scans; other text: the rules with re.I, as written
        self.compiled = [(rule, LeadingScan(re.compile(rule.pattern, re.I), scan=False)) for rule in self.rules]
        self.compiled_lower = [(rule, LeadingScan(re.compile(lowercase_pattern(rule.pattern)))) for rule in self.rules]

    def match(self, doc: Doc) -> list[Span]:
        text = doc_text(doc)
        lower = text.lower()
        if not len(doc):
            return []
        arr = doc.to_array([IDX, LENGTH])
        starts = arr[:, 0].tolist()
        ends = (arr[:, 0] + arr[:, 1]).tolist()
        found = []
        # lowercasing keeps offsets on ASCII text only (and re.I folds more than ASCII)
        compiled, subject = (self.compiled_lower, lower) if text.isascii() else (self.compiled, text)
        for i, (rule, scan) in enumerate(compiled):
            if not any(map(lower.__contains__, rule.metadata["requires"])):
                continue
            for a, b in scan.spans(subject):
                if b <= a:
                    continue
                # snap outward to token boundaries, as medspaCy's RegexMatcher does
                first = max(0, bisect_right(starts, a) - 1)
                if ends[first] <= a:
                    first += 1
                last = bisect_left(ends, b)
                if first <= last < len(starts):
                    found.append((i, first, last + 1))
        spans = []
        for i, start, end in prune_longest(found):
            rule = self.rules[i]
            span = Span(doc, start, end, label=rule.category)
            set_span_value(span, "target_rule", rule)
            spans.append(span)
        return spans

    def __call__(self, doc: Doc) -> Doc:
        spans = self.match(doc)
        if get_doc_value(doc, "report_concepts"):
            spans.extend(self._concepts(doc))
        spans.sort(key=lambda s: (s.start, -s.end))
        doc.spans[SPAN_GROUP] = spans
        return doc

    @staticmethod
    def _concepts(doc: Doc) -> list[Span]:
        regex = _concept_regex(tuple(doc._.report_concepts))
        if regex is None:
            return []
        out = []
        for m in regex.finditer(doc_text(doc)):
            span = doc.char_span(m.start(), m.end(), label=CONCEPT_LABEL, alignment_mode="expand")
            if span is not None:
                span._.concept_name = re.sub(r"\s+", " ", m.group(0).lower())
                out.append(span)
        return out


@Language.factory("report_nlp_targets", assigns=["doc.spans"])
def make_targets(nlp: Language, name: str) -> ReportTargets:
    return ReportTargets(nlp, name)
