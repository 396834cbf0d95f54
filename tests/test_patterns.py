"""Invariants over every rule file in patterns/: schema, vocabulary, anatomy completeness."""
from __future__ import annotations

import copy
import functools
import json
import re
import typing

import hypothesis
import pytest
from hypothesis import strategies as st

from report_nlp import schema
from report_nlp.errors import RuleFileError
from report_nlp.resources import RULE_FILES, load_rules, patterns_file, validate_rules


@pytest.mark.parametrize("name", RULE_FILES)
def test_patterns_file_validates_against_its_schema(name):
    data = json.loads(patterns_file(f"{name}.json").read_text("utf-8"))
    assert validate_rules(name, data) == []


@pytest.mark.parametrize("name", RULE_FILES)
def test_patterns_file_is_self_describing(name):
    data = load_rules(name)
    assert data["name"] == name
    assert len(data["description"]) > 40
    assert re.match(r"^\d+\.\d+\.\d+$", data["version"])


def test_patterns_schema_rejects_bad_rules():
    # Arrange: a target rule with an unknown kind and a broken regex
    data = copy.deepcopy(load_rules("targets"))
    data["rules"].append({"category": "not_a_kind", "literal": "x", "pattern": "(unclosed"})
    # Act
    messages = validate_rules("targets", data)
    # Assert: both problems are reported, with where they are
    assert any("not_a_kind" in m for m in messages)
    assert any("does not compile" in m for m in messages)


def test_patterns_load_raises_rule_file_error_listing_problems(monkeypatch):
    import report_nlp.resources as resources

    bad = copy.deepcopy(load_rules("severity"))
    bad["words"][0]["severity"] = "extreme"
    monkeypatch.setattr(resources, "patterns_file", lambda n: _Fake(json.dumps(bad)))
    resources.load_rules.cache_clear()
    try:
        with pytest.raises(RuleFileError, match=r"(?s)\[E001\].*extreme"):
            resources.load_rules("severity")
    finally:
        monkeypatch.undo()
        resources.load_rules.cache_clear()


class _Fake:
    def __init__(self, text):
        self.text = text

    def read_text(self, encoding):
        return self.text


def test_patterns_context_literals_are_trimmed_unique_and_lowercase():
    offenders = []
    seen = {}
    for group in load_rules("context")["rules"]:
        for lit in group.get("literals", []):
            if lit != lit.strip() and lit != "? ":
                offenders.append(f"untrimmed: {lit!r}")
            if lit != lit.lower():
                offenders.append(f"not lower-case: {lit!r}")
            key = (lit, group["direction"])
            if key in seen:
                offenders.append(f"duplicate: {lit!r} in {seen[key]} and {group['category']}")
            seen[key] = group["category"]
    assert offenders == []


def test_patterns_context_has_no_colon_no_rule():
    # medspaCy's default ": no" (BACKWARD) out-prunes "no" after a level prefix (PEERS.md c.1)
    literals = {lit for g in load_rules("context")["rules"] for lit in g.get("literals", [])}
    assert ": no" not in literals


def test_patterns_enums_agree_with_the_data_contract():
    kinds = set(typing.get_args(schema.Kind)) - {"concept"}
    assert {r["category"] for r in load_rules("targets")["rules"]} == kinds
    severities = set(typing.get_args(schema.Severity))
    assert {s["label"] for s in load_rules("severity")["scale"]} == severities
    assert {s["label"]: s["grade"] for s in load_rules("severity")["scale"]} == schema.SEVERITY_GRADE
    sections = set(typing.get_args(schema.Section))
    assert {s["category"] for s in load_rules("sections")["sections"]} <= sections


def test_patterns_every_root_has_dermatome_myotome_and_reflex_entries():
    anatomy = load_rules("anatomy")
    offenders = []
    lumbar_cervical_roots = {lv["exiting"] for lv in anatomy["levels"] if lv["region"] != "thoracic"}
    lumbar_cervical_roots |= {lv["traversing"] for lv in anatomy["levels"] if lv["region"] != "thoracic"}
    for root in sorted(lumbar_cervical_roots - {"L1", "C2", "C3", "C4"}):
        entry = anatomy["roots"].get(root)
        if entry is None:
            offenders.append(f"{root}: missing")
            continue
        if not entry["dermatome"] or not entry["myotome"] or "reflex" not in entry:
            offenders.append(f"{root}: incomplete")
    assert offenders == []


@pytest.mark.parametrize(
    ("level", "exiting", "traversing"),
    [("L4-L5", "L4", "L5"), ("L5-S1", "L5", "S1"), ("C5-C6", "C6", "C6"), ("C7-T1", "C8", "C8"), ("T12-L1", "T12", "L1")],
)
def test_patterns_anatomy_level_roots(level, exiting, traversing):
    table = {lv["level"]: lv for lv in load_rules("anatomy")["levels"]}
    assert (table[level]["exiting"], table[level]["traversing"]) == (exiting, traversing)


def test_patterns_files_ship_in_the_wheel(tmp_path, root):
    import subprocess
    import sys
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(root)],
                   check=True, capture_output=True)
    wheel = next(tmp_path.glob("report_nlp-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in RULE_FILES:
        assert f"report_nlp/patterns/{name}.json" in names
        assert f"report_nlp/patterns/schema/{name}.schema.json" in names


def test_patterns_audit_vocabulary_is_consistent():
    # Arrange
    data = load_rules("audit")
    guideline_ids = {s["id"] for s in load_rules("guideline")["sentences"]}
    red_flag_codes = {f["code"] for f in load_rules("red_flags")["flags"]}
    offenders = []
    # Act: every citation exists, every urgent red flag is a red-flag code, code lists are sorted and unique
    for name, measure in data["measures"].items():
        offenders += [f"{name}: unknown guideline id {c}" for c in measure["citations"] if c not in guideline_ids]
    offenders += [f"urgent red flag {c} not in red_flags.json" for c in data["measures"]["low_value_referral"]["urgent_red_flags"]
                  if c not in red_flag_codes]
    lists = {"lbp_index": data["lbp_index"]["prefixes"], **{e["code"]: e["prefixes"] for e in data["hedis_exclusions"]}}
    for name, prefixes in lists.items():
        if prefixes != sorted(set(prefixes)):
            offenders.append(f"{name}: prefixes not sorted and unique")
    codes = [e["code"] for e in data["hedis_exclusions"]]
    if codes != sorted(set(codes)):
        offenders.append("hedis_exclusions not sorted by code, or a code repeats")
    # an index code that is also an exclusion would exclude every case it admits
    lbp = data["lbp_index"]["prefixes"]
    for e in data["hedis_exclusions"]:
        offenders += [f"{p} is both an LBP index and a {e['code']} prefix" for p in e["prefixes"]
                      if any(p.startswith(q) or q.startswith(p) for q in lbp)]
    cfg = data["measures"]["hedis_lbp_imaging"]
    if not cfg["min_age"] < cfg["max_age"]:
        offenders.append("min_age must be under max_age")
    # Assert
    assert offenders == []


def _ascii_report_texts() -> list[str]:
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "corpora"
    texts = [json.loads(line)["text"] for line in (root / "gold.jsonl").read_text("utf-8").splitlines() if line.strip()]
    return [t for t in texts if t.isascii()]


def test_patterns_lowercased_targets_match_where_the_ignorecase_rules_match():
    """Every target rule, compiled as the matcher compiles it for ASCII text (capitals lowercased, no
    re.I, run on the lowercased text), finds exactly the spans the rule finds with re.I: on the gold
    reports as written, in capitals and in alternating case."""
    from report_nlp.pipeline.targets import target_rules
    from report_nlp.resources import lowercase_pattern

    texts = _ascii_report_texts()
    texts += [t.upper() for t in texts[:40]] + ["".join(c.upper() if i % 2 else c for i, c in enumerate(t)) for t in texts[:40]]
    hits = 0
    for rule in target_rules():
        written, lowered = re.compile(rule.pattern, re.I), re.compile(lowercase_pattern(rule.pattern))
        for text in texts:
            expected = [m.span() for m in written.finditer(text)]
            assert [m.span() for m in lowered.finditer(text.lower())] == expected, rule.literal
            hits += len(expected)
    assert hits > 1000


@pytest.mark.parametrize("pattern, lowered", [
    (r"\bDB\b", r"\bdb\b"),
    (r"[CTLS]\d\S+\W", r"[ctls]\d\S+\W"),
    (r"(?P<Root>L5)(?P=Root)", r"(?P<root>l5)(?P=root)"),
])
def test_patterns_lowercase_pattern_keeps_escapes_and_group_syntax(pattern, lowered):
    from report_nlp.resources import lowercase_pattern

    assert lowercase_pattern(pattern) == lowered


def test_patterns_folded_level_rules_attach_what_the_ignorecase_rules_attach(nlp):
    """The levels component reads ASCII text with its rules lowercased over the lowercased text: the
    raw findings equal those of the re.I rules over the text as written, on the gold reports in three
    casings."""
    from report_nlp.pipeline.levels import Attacher

    texts = _ascii_report_texts()
    texts += [t.upper() for t in texts[:40]] + ["".join(c.upper() if i % 3 == 0 else c for i, c in enumerate(t)) for t in texts[:40]]
    folded, written = Attacher(fold=True), Attacher()
    component = nlp.get_pipe("report_nlp_levels")
    assert component.folded.fold and not component.attacher.fold
    count = 0
    for doc in nlp.pipe(texts):
        expected = written.findings(doc)
        assert folded.findings(doc) == expected
        count += len(expected)
    assert count > 1000


_WORDS = ["left", "right", "L", "R", ">", "greater than", "bilateral", "both", "foraminal", "far lateral",
          "lateral recess", "central", "paracentral", "extra-foraminal", "abutting", "compressing", "contacts",
          "displaces", "the", "root", "nerve", "NF", "L5", "-", ",", "(", ")", " "]


@functools.lru_cache(maxsize=2)
def _attacher(fold: bool):
    from report_nlp.pipeline.levels import Attacher

    return Attacher(fold=fold)


@pytest.mark.parametrize("fold", [False, True])
@pytest.mark.parametrize("family", ["sides", "zones", "floors"])
@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(fragment=st.lists(st.sampled_from(_WORDS), max_size=12).map(" ".join))
def test_patterns_family_screen_matches_exactly_when_a_rule_does(family, fold, fragment):
    """The one-pass screen of a rule family (side words, zone words, relation floors) finds a match in
    a fragment exactly when one of the family's rules does, so skipping the family on a miss changes
    nothing: checked on random fragments made of the families' own words, in both compiled forms."""
    attacher = _attacher(fold)
    rules = {"sides": [r for side, r in attacher.sides if side != "central"],
             "zones": [r for _, r in attacher.zones], "floors": [r for _, r in attacher.floors]}[family]
    screen = {"sides": attacher.side_screen, "zones": attacher.zone_screen, "floors": attacher.floor_screen}[family]
    assert screen is not None
    fragment = fragment.lower() if fold else fragment
    assert bool(screen.search(fragment)) == any(r.search(fragment) for r in rules)
    scanned = {"sides": attacher.side_screen_scan, "zones": attacher.zone_screen_scan}.get(family)
    if scanned is not None:  # the scan form the folded component runs
        assert scanned.found_in(fragment) == bool(screen.search(fragment))
    if family == "sides":
        rules_ = [r for side, r in attacher.sides if side != "central"]
        assert [scan.spans(fragment) for _, scan in attacher.side_scans] == [
            [m.span() for m in r.finditer(fragment)] for r in rules_]


def test_patterns_any_of_refuses_patterns_it_could_break():
    from report_nlp.pipeline.levels import any_of

    assert any_of([re.compile(r"(?P<a>x)"), re.compile("y")]) is None
    assert any_of([re.compile(r"(a)\1"), re.compile("y")]) is None
    assert any_of([re.compile("a", re.I), re.compile("b")]) is None
    assert any_of([]) is None
    joined = any_of([re.compile(r"\bleft\b"), re.compile(r"\bright\b")])
    assert joined.search("on the right") and not joined.search("brighter")


@hypothesis.settings(max_examples=500, deadline=None)
@hypothesis.given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 12), st.integers(1, 6)).map(
    lambda t: (t[0], t[1], t[1] + t[2])), max_size=14))
def test_prune_longest_is_medspacys_prune(matches):
    """The targets' pruning keeps exactly what medspaCy's prune_overlapping_matches keeps, in its
    order, ties and repeated passes included."""
    from medspacy.common.util import prune_overlapping_matches

    from report_nlp.pipeline.targets import prune_longest

    assert prune_longest(list(matches)) == prune_overlapping_matches(list(matches))
