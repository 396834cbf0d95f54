"""The leading-character scan (report_nlp/leading.py) finds exactly what ``finditer`` finds."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from report_nlp.leading import LeadingScan, leading_scan
from report_nlp.resources import lowercase_pattern

ROOT = Path(__file__).resolve().parents[1]


def _finditer(regex: re.Pattern, text: str) -> list[tuple[int, int]]:
    return [m.span() for m in regex.finditer(text)]


def _texts() -> list[str]:
    gold = [json.loads(line)["text"] for line in (ROOT / "corpora" / "gold.jsonl").read_text("utf-8").splitlines() if line.strip()]
    return [t.lower() for t in gold if t.isascii()]


def test_leading_scan_of_every_target_rule_finds_what_finditer_finds(nlp):
    """Every target rule as the targets component runs it on ASCII text (lowercased, scanned) gives the
    spans of ``finditer`` on the gold reports; nearly all rules have a scan."""
    scans = nlp.get_pipe("report_nlp_targets").compiled_lower
    assert sum(scan.scan is not None for _, scan in scans) >= len(scans) - 1
    hits = 0
    texts = _texts()
    for rule, scan in scans:
        for text in texts:
            expected = _finditer(scan.regex, text)
            assert scan.spans(text) == expected, rule.literal
            hits += len(expected)
    assert hits > 1000


@pytest.mark.parametrize(("pattern", "has_scan"), [
    (r"\bcanal\s+stenosis\b", True),
    (r"(?<=patent\s)(?:neural\s+)?foramina\b", True),
    (r"\b(?:(?:mild|severe)\s+)?stenosis", True),
    (r"\s+foo", True),
    (r"[a-c\d]x", True),
    (r"a?", False),  # can match the empty string
    (r"\b(?:x|y?)z", False),  # an alternative that can be empty
    (r"(?:(?<=a\s)|(?<=b\s))(?:x\s+)?canal", True),  # alternatives that consume nothing, then a word
    (r"(?:(?<=a)|(?<=b))", False),  # nothing but lookbehinds
    (r"(?:(?<=a)|b)", False),  # may consume nothing
    (r"(?:(?<=a)|b)c", True),
    (r"(a)\1", False),  # backreference
    (r"[^a]b", False),  # negated class
    (r".b", False),  # any character
])
def test_leading_scan_is_built_only_where_the_first_characters_are_known(pattern, has_scan):
    assert (leading_scan(re.compile(pattern)) is not None) is has_scan


ATOMS = ["a", "b", "ab", r"\bab", r"\s", r"\s+", "[ab]", r"\d", "(?:a|b)", "(?:ab|b)", "a?", "b*", "(?<=a)b", "(?<!a)b",
         r"(?=b)", r"\b", "(?:a|)", "c", " ", "(?:(?<=a)|(?<=b))", "(?:(?<=a)|b)", "(?:(?<=a )|(?<=c))"]


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(pattern=st.lists(st.sampled_from(ATOMS), min_size=1, max_size=5).map("".join),
       text=st.text(st.sampled_from("ab c\n1"), max_size=40))
def test_leading_scan_equals_finditer_on_random_patterns(pattern, text):
    """Random small patterns over a small alphabet: the scan (where one is built) gives ``finditer``'s
    non-empty matches, in order; without a scan the spans are finditer's."""
    regex = re.compile(pattern)
    got = LeadingScan(regex).spans(text)
    assert got == _finditer(regex, text)
    assert LeadingScan(regex).found_in(text) == bool(regex.search(text))


def test_leading_scan_sees_text_before_the_search_start():
    """Lookbehinds and word boundaries at a match's start see the real text, as finditer's do."""
    regex = re.compile(lowercase_pattern(r"(?<=patent\s)foramina\b|\bNF\b"))
    text = "patent foramina; patent foramina. xnf nf"
    assert LeadingScan(regex).scan is not None
    assert LeadingScan(regex).spans(text) == _finditer(regex, text) == [(7, 15), (24, 32), (38, 40)]


def test_leading_scan_of_the_level_expressions_gives_finditer_matches_and_groups():
    """The whole-text level expressions of the folded levels component (level forms, junctions, null and
    context levels, roots with a role): same spans and same named groups as ``finditer``."""
    from report_nlp.pipeline.levels import Attacher

    attacher = Attacher(fold=True)
    assert sum(scan.scan is not None for scan in attacher.scans.values()) >= len(attacher.scans) - 1
    gold = [json.loads(line)["text"] for line in (ROOT / "corpora" / "gold.jsonl").read_text("utf-8").splitlines() if line.strip()]
    texts = _texts() + gold  # lowercased, and as written (the two case-sensitive level forms)
    hits = 0
    for regex, scan in attacher.scans.items():
        for text in texts:
            expected = [(m.start(), m.end(), m.groupdict()) for m in regex.finditer(text)]
            assert [(a, b, m.groupdict()) for a, b, m in scan.matches(text)] == expected, regex.pattern[:60]
            hits += len(expected)
    assert hits > 1000


def test_leading_study_rules_agree_with_the_rules_as_written():
    """Modality, region and contrast (study reader): each folded test on lowercased ASCII text says what
    the re.I rule says on the text as written, for the gold reports' openings in three casings."""
    from report_nlp.pipeline.findings import study_reader

    reader = study_reader()
    gold = [json.loads(line)["text"] for name in ("gold.jsonl", "gold_test.jsonl")
            for line in (ROOT / "corpora" / name).read_text("utf-8").splitlines() if line.strip()]
    heads = [t[:400] for t in gold if t.isascii()]
    heads += [h.upper() for h in heads] + ["".join(c.upper() if i % 3 else c for i, c in enumerate(h)) for h in heads]
    hits = 0
    for plain, folded in zip(reader.tests, reader.tests_folded):
        for (name, search), (name_f, found_in) in zip(plain, folded):
            assert name == name_f
            answers = [found_in(h.lower()) for h in heads]
            assert answers == [bool(search(h)) for h in heads], name
            hits += sum(answers)
    assert hits > len(heads)


def test_leading_numbering_uncertain_agrees_with_the_rule_as_written():
    """Transitional-anatomy wording (study reader): the folded scan on ASCII text says what the re.I rule
    says, on the gold reports in three casings and on the rule's own phrases."""
    from report_nlp.pipeline.findings import study_reader

    reader = study_reader()
    gold = [json.loads(line)["text"] for name in ("gold.jsonl", "gold_test.jsonl")
            for line in (ROOT / "corpora" / name).read_text("utf-8").splitlines() if line.strip()]
    phrases = ["Transitional lumbosacral anatomy.", "LSTV noted", "S1 is SACRALIZED", "numbering assumes five lumbar",
               "Designated as L5 for numbering.", "hypoplastic rib at T12", "transitionally", "no anomaly"]
    texts = gold + [t.upper() for t in gold] + phrases + [p.upper() for p in phrases]
    answers = [reader.numbering_uncertain(t) for t in texts]
    assert answers == [bool(reader.transitional.search(t)) for t in texts]
    assert 5 < sum(answers) < len(texts)


def test_leading_sentence_rules_agree_with_the_rules_as_written(nlp):
    """The sentence splitter's folded line-continuation rule and its sentence-end scan say what the
    rules as written say, on every line of the gold reports in three casings."""
    from report_nlp.pipeline.sentences import _SENT_END

    rules = nlp.get_pipe("report_nlp_sentences").rules
    assert rules.continues_folded.scan is not None and rules.sentence_end.scan is not None
    gold = [json.loads(line)["text"] for line in (ROOT / "corpora" / "gold.jsonl").read_text("utf-8").splitlines() if line.strip()]
    texts = gold + [t.upper() for t in gold] + ["".join(c.upper() if i % 3 else c for i, c in enumerate(t)) for t in gold]
    endings = ["and", "or", "of the", "with", ",", "-", "&", "than", "band", "wither", "L4-5.", "stenosis"]
    made = [f"{head} {end}{space}" for head in ("Mild narrowing", "FINDINGS:") for end in endings for space in ("", " ", "\t")]
    lines = [line for t in texts + made + [m.upper() for m in made] if t.isascii() for line in t.split("\n")]
    continued = [rules.continues_folded.found_in(line.lower()) for line in lines]
    assert continued == [bool(rules.continues.search(line)) for line in lines]
    assert 50 < sum(continued) < len(lines) - 50
    assert [rules.sentence_end.spans(t) for t in texts] == [_finditer(_SENT_END, t) for t in texts]


@pytest.mark.parametrize(("pattern", "needs"), [
    (r"[CTLS]\d{1,2}", True), (r"L(?:4|5)", True), (r"(?:a|b)?[0-9]", True), (r"x(?:\d|y)", False),
    (r"\d?", False), (r"\d*x", False), (r"(?=\d)x", False), (r"(\d)+", True), (r"a|\d", False), (r"[\dx]", False),
])
def test_leading_requires_digit_reads_the_pattern(pattern, needs):
    from report_nlp.leading import requires_digit

    assert requires_digit(re.compile(pattern)) is needs


DIGIT_ATOMS = ["a", r"\d", "[0-9]", "5", r"\d?", r"\d+", "(?:a|1)", "(?:2|3)", "(?=1)", "[a1]", r"(\d)", "b*", r"\s"]


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(pattern=st.lists(st.sampled_from(DIGIT_ATOMS), min_size=1, max_size=5).map("".join),
       text=st.text(st.sampled_from("ab 15x\u0663"), max_size=30))
def test_leading_requires_digit_never_skips_a_match(pattern, text):
    """Where ``requires_digit`` says yes, every match holds a digit, so skipping digit-free text loses nothing."""
    from report_nlp.leading import requires_digit

    regex = re.compile(pattern)
    if requires_digit(regex):
        assert all(re.search(r"\d", m.group(0)) for m in regex.finditer(text))


def test_leading_root_rules_require_a_digit():
    """The levels component skips its two root searches on fragments without a digit: both rules need one."""
    from report_nlp.pipeline.levels import Attacher

    assert Attacher().roots_need_digit and Attacher(fold=True).roots_need_digit
