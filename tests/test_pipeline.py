"""The pipeline: registration, sentences, sections, levels, sides, roots, severity and ConText fixes."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from spacy.language import Language

from report_nlp.pipeline.build import COMPONENTS


def one(result, kind, level=None, side="any"):
    hits = [f for f in result.findings if f.kind == kind and (level is None or f.level == level) and (side == "any" or f.side == side)]
    assert hits, f"no {kind} {level} {side} in {[(f.kind, f.level, f.side) for f in result.findings]}"
    return hits[0]


@pytest.mark.parametrize("name", COMPONENTS)
def test_pipeline_factories_are_registered(name):
    assert Language.has_factory(name)


def test_pipeline_analysis_has_no_problems(nlp):
    problems = nlp.analyze_pipes()["problems"]
    assert all(not v for v in problems.values())


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(text=st.text(max_size=200))
def test_pipeline_tokenizer_keeps_any_text_as_given(nlp, text):
    """``analyze_many`` gives each Doc its text instead of joining the tokens again (``doc_text``): that
    relies on spaCy's tokenizer giving back exactly the text it was handed, whatever the characters."""
    assert nlp.make_doc(text).text == text


def test_pipeline_docs_of_analyze_many_carry_their_own_text(nlp, monkeypatch):
    """The text put on each Doc before the pipeline runs is the Doc's text (pieces of a long report too)."""
    from report_nlp import analysis

    seen = []
    release = analysis._release

    def spy(doc):
        seen.append((doc._.report_text, doc.text))
        release(doc)

    monkeypatch.setattr(analysis, "_release", spy)
    texts = ["FINDINGS:\r\nL4-5:  mild\tstenosis.\u00a0\u2028 Done.", "x" * 10, "L5-S1: disc bulge. " * 1500]
    list(analysis.analyze_texts(texts))
    assert len(seen) > len(texts)  # the long one in pieces
    assert all(preset == text for preset, text in seen)


def test_pipeline_pipe_runs_stage_by_stage_per_batch_with_the_same_docs(nlp, monkeypatch):
    """Every component runs over a whole batch before the next one starts, and nlp.pipe gives exactly
    what calling the pipeline on each text gives."""
    from report_nlp.pipeline.levels import ReportLevels
    from report_nlp.pipeline.sections import ReportSections

    texts = [f"FINDINGS:\nL{i % 4 + 1}-{i % 4 + 2}: mild left foraminal stenosis. No canal stenosis." for i in range(7)]
    calls = []
    for cls in (ReportSections, ReportLevels):
        original = cls.__call__

        def spy(self, doc, _original=original, _name=cls.__name__):
            calls.append((_name, doc.text))
            return _original(self, doc)

        monkeypatch.setattr(cls, "__call__", spy)
    piped = list(nlp.pipe(texts, batch_size=3))
    names = [name for name, _ in calls]
    assert names[:6] == ["ReportSections"] * 3 + ["ReportLevels"] * 3
    assert names.count("ReportLevels") == len(texts)
    calls.clear()
    one_by_one = [nlp(t) for t in texts]
    assert [d._.report_findings for d in piped] == [d._.report_findings for d in one_by_one]
    assert all(d._.report_findings for d in piped)


@pytest.mark.parametrize("text", [
    "Foraminal stenosis is moderate bilaterally at C4-5 and mild on the right at C5-6.",
    "FORAMINAL STENOSIS IS MODERATE BILATERALLY AT C4-5 AND MILD ON THE RIGHT AT C5-6.",
    "FORAMINAL STENOSIS IS MODERATE BILATERALLY AT C4-5 AND MILD ON THE RIGHT AT C5-6 — UNCHANGED.",  # not ASCII
])
def test_pipeline_side_carried_to_a_second_level_is_normalised_in_any_case(text):
    """"... and mild on the right at C5-6" in capitals once gave side 'RIGHT', which the data contract
    rejects: analyze() raised instead of returning the findings."""
    import report_nlp

    r = report_nlp.analyze(text)
    assert one(r, "foraminal_stenosis", "C5-C6", "right").severity == "mild"
    assert one(r, "foraminal_stenosis", "C4-C5", "bilateral").severity == "moderate"


def test_pipeline_load_is_cached(nlp):
    import report_nlp

    assert report_nlp.load() is nlp


# ---------------------------------------------------------------- ConText regressions (PEERS.md c)
@pytest.mark.issue(2)
@pytest.mark.parametrize(
    ("text", "kind", "negated"),
    [
        ("L4-5: No disc herniation.", "disc_herniation", True),
        ("L1-2: No disc herniation, canal stenosis or foraminal narrowing.", "foraminal_stenosis", True),
        ("Disc herniation is not seen at L4-5.", "disc_herniation", True),
        ("At L4-5, disc herniation is not identified.", "disc_herniation", True),
        ("The disc herniation at L5-S1 has resolved.", "disc_herniation", True),
        ("MRI was negative for disc herniation at L4-5.", "disc_herniation", True),
        ("L3-4: The neural foramina are patent.", "foraminal_stenosis", True),
        ("L3-4: The lateral recesses are preserved.", "lateral_recess_stenosis", True),
        ("No interval change in the left foraminal stenosis at L4-5.", "foraminal_stenosis", False),
        ("There is no significant change in the disc protrusion at L4-5 compared to prior.", "disc_herniation", False),
        ("Disc extrusion at L5-S1 with no more than mild canal stenosis.", "central_canal_stenosis", False),
        ("Without contrast, there is a disc extrusion at L5-S1.", "disc_herniation", False),
        ("Not only disc bulge but also foraminal stenosis at L4-5.", "disc_bulge", False),
    ],
)
def test_pipeline_context_negation(analyze, text, kind, negated):
    assert one(analyze(text), kind).negated is negated


@pytest.mark.issue(2)
def test_pipeline_context_scope_ends_at_semicolon_and_new_finding(analyze):
    r = analyze("L5-S1: No canal stenosis; moderate left foraminal stenosis with impingement of the exiting left L5 nerve root.")
    assert one(r, "central_canal_stenosis", "L5-S1").negated
    f = one(r, "foraminal_stenosis", "L5-S1")
    n = one(r, "nerve_root_impingement", "L5-S1")
    assert (f.negated, n.negated) == (False, False)
    assert (f.severity, f.grade, f.side) == ("moderate", 4, "left")
    assert (n.roots, n.roots_inferred, n.side, n.zone) == (["L5"], False, "left", "foraminal")


@pytest.mark.issue(2)
@pytest.mark.parametrize(
    ("text", "negated_kinds", "present_kinds"),
    [
        ("No significant canal stenosis at L3-4 or L4-5, and moderate left foraminal stenosis at L5-S1 with impingement of the exiting left L5 nerve root.",
         {"central_canal_stenosis"}, {"foraminal_stenosis", "nerve_root_impingement"}),
        ("Mild disc bulge without canal stenosis or foraminal narrowing at L4-5, and a small right paracentral disc protrusion at L5-S1 contacting the right S1 nerve root.",
         {"central_canal_stenosis", "foraminal_stenosis"}, {"disc_bulge", "disc_herniation", "nerve_root_impingement"}),
        ("No fracture. There is no canal stenosis at L3-4 but there is severe canal stenosis at L4-5 with compression of the cauda equina.",
         {"central_canal_stenosis"}, {"central_canal_stenosis", "cauda_equina_compression"}),
        ("Broad-based disc bulge at L4-5 without significant canal stenosis, with mild bilateral foraminal narrowing.",
         {"central_canal_stenosis"}, {"disc_bulge", "foraminal_stenosis"}),
    ],
)
def test_pipeline_context_and_lists_do_not_negate_the_positive_clause(analyze, text, negated_kinds, present_kinds):
    r = analyze(text)
    assert {f.kind for f in r.findings if f.negated} == negated_kinds
    assert {f.kind for f in r.findings if not f.negated} == present_kinds


@pytest.mark.issue(2)
@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Cannot exclude small disc herniation at L4-5.", "disc_herniation"),
        ("Disc herniation at L4-5 cannot be excluded.", "disc_herniation"),
        ("Questionable contact of the left S1 nerve root at L5-S1.", "nerve_root_impingement"),
        ("Equivocal nerve root impingement at L4-5.", "nerve_root_impingement"),
        ("Suspected left paracentral disc protrusion at L4-5.", "disc_herniation"),
        ("Findings at L5-S1 may represent disc herniation versus scar.", "disc_herniation"),
        ("Possible right foraminal stenosis at C5-6.", "foraminal_stenosis"),
        ("Probable left paracentral protrusion at C6-7.", "disc_herniation"),
    ],
)
def test_pipeline_context_hedges_are_uncertain_not_negated(analyze, text, kind):
    f = one(analyze(text), kind)
    assert (f.uncertain, f.negated) == (True, False)


@pytest.mark.issue(2)
def test_pipeline_context_probable_is_kept_apart_from_possible(analyze):
    assert one(analyze("Likely contact of the left L5 nerve root at L4-5."), "nerve_root_impingement").certainty == "probable"
    assert one(analyze("Possible contact of the left L5 nerve root at L4-5."), "nerve_root_impingement").certainty == "possible"


@pytest.mark.issue(2)
@pytest.mark.parametrize("text", ["Evaluate for disc herniation at L4-5.", "If symptoms persist, consider MRI to rule out disc herniation."])
def test_pipeline_context_indication_language_is_hypothetical(analyze, text):
    f = one(analyze(text), "disc_herniation")
    assert f.hypothetical and not f.negated


@pytest.mark.issue(2)
def test_pipeline_context_history_words(analyze):
    assert one(analyze("Prior disc herniation at L4-5."), "disc_herniation").historical
    r = analyze("Status post L4-5 laminectomy with recurrent left paracentral disc extrusion.")
    assert not one(r, "disc_herniation").historical


# ---------------------------------------------------------------- sections and study
def test_pipeline_history_text_is_not_a_finding_but_red_flags_are_exposed(analyze):
    r = analyze("CLINICAL HISTORY: Left L5 radiculopathy, disc herniation? Saddle anesthesia. No fever.\nFINDINGS:\nL4-5: Mild disc bulge.")
    assert [f.kind for f in r.findings] == ["disc_bulge"]
    flags = {(m.code, m.negated) for m in r.history_red_flags}
    assert ("cauda_equina", False) in flags
    assert ("infection", True) in flags


@pytest.mark.parametrize(
    ("header", "section"),
    [("IMPRESSION:", "impression"), ("Impression", "impression"), ("conclusion:", "impression"), ("FINDINGS", "findings"), ("Findings:", "findings")],
)
def test_pipeline_sections_with_or_without_colon(analyze, header, section):
    r = analyze(f"{header}\nModerate canal stenosis at L4-5.")
    assert one(r, "central_canal_stenosis").section == section


@pytest.mark.parametrize(
    ("title", "modality", "region", "contrast"),
    [
        ("EXAM: MRI LUMBAR SPINE WITHOUT CONTRAST", "mri", "lumbar", False),
        ("PROCEDURE: CT myelogram of the cervical spine", "ct_myelogram", "cervical", None),
        ("MRI C-spine with and without contrast", "mri", "cervical", True),
        ("XR THORACIC SPINE 2 VIEWS", "radiograph", "thoracic", None),
        ("EXAM: CT lumbar spine", "ct", "lumbar", None),
    ],
)
def test_pipeline_study_from_exam_line(analyze, title, modality, region, contrast):
    s = analyze(f"{title}\nFINDINGS: Normal.").study
    assert (s.modality, s.region, s.contrast) == (modality, region, contrast)


# ---------------------------------------------------------------- levels, sides, roots, severity
@pytest.mark.parametrize(
    ("phrase", "level"),
    [("L4-5", "L4-L5"), ("L4-L5", "L4-L5"), ("L4/5", "L4-L5"), ("L4–5", "L4-L5"), ("the L4-5 level", "L4-L5"),
     ("the level of L4 and L5", "L4-L5"), ("the lumbosacral junction", "L5-S1"), ("C7-T1", "C7-T1"), ("T12-L1", "T12-L1"),
     ("C5-C6", "C5-C6"), ("L5/S1", "L5-S1")],
)
def test_pipeline_levels_canonical_form(analyze, phrase, level):
    assert one(analyze(f"Moderate canal stenosis at {phrase}."), "central_canal_stenosis").level == level


def test_pipeline_levels_ranges_and_lists(analyze):
    r = analyze("Mild foraminal narrowing from L3-4 through L5-S1.")
    assert sorted(f.level for f in r.findings) == ["L3-L4", "L4-L5", "L5-S1"]
    r = analyze("Mild canal stenosis L3 through L5.")
    assert sorted(f.level for f in r.findings) == ["L3-L4", "L4-L5"]
    r = analyze("Moderate foraminal stenosis at L4-5 and L5-S1.")
    assert sorted(f.level for f in r.findings) == ["L4-L5", "L5-S1"]


def test_pipeline_levels_per_clause(analyze):
    r = analyze("There is mild canal stenosis at L3-4 and moderate canal stenosis at L4-5.")
    got = sorted((f.level, f.severity) for f in r.findings)
    assert got == [("L3-L4", "mild"), ("L4-L5", "moderate")]


def test_pipeline_level_header_carries_to_following_statements(analyze):
    r = analyze("L4-5:\nBroad disc bulge.\nModerate right foraminal stenosis.\n\nL5-S1: Normal.")
    assert one(r, "foraminal_stenosis").level == "L4-L5"
    assert one(r, "disc_bulge").level == "L4-L5"


def test_pipeline_level_from_stated_root(analyze):
    assert one(analyze("Impingement of the exiting left L5 nerve root."), "nerve_root_impingement").level == "L5-S1"
    assert one(analyze("Contact of the traversing right S1 nerve root."), "nerve_root_impingement").level == "L5-S1"


@pytest.mark.parametrize(
    ("phrase", "side"),
    [("left", "left"), ("right", "right"), ("bilateral", "bilateral"), ("B/L", "bilateral"), ("L>R", "bilateral"),
     ("right greater than left", "bilateral")],
)
def test_pipeline_sides(analyze, phrase, side):
    assert one(analyze(f"Moderate {phrase} foraminal stenosis at L4-5."), "foraminal_stenosis").side == side


def test_pipeline_side_after_the_target(analyze):
    assert one(analyze("Foraminal stenosis at L4-5 on the left."), "foraminal_stenosis").side == "left"
    assert one(analyze("Foraminal narrowing at L4-5 bilaterally."), "foraminal_stenosis").side == "bilateral"


def test_pipeline_per_side_severities(analyze):
    r = analyze("Moderate right and mild left foraminal narrowing at C5-6.")
    assert sorted((f.side, f.severity) for f in r.findings) == [("left", "mild"), ("right", "moderate")]


@pytest.mark.parametrize(
    ("text", "roots", "inferred", "zone"),
    [
        ("Moderate left foraminal stenosis at L4-5.", ["L4"], True, "foraminal"),
        ("Left lateral recess stenosis at L4-5.", ["L5"], True, "subarticular"),
        ("Left paracentral disc protrusion at L5-S1.", ["S1"], True, "subarticular"),
        ("Right foraminal stenosis at C5-6.", ["C6"], True, "foraminal"),
        ("Right foraminal stenosis at C7-T1.", ["C8"], True, "foraminal"),
        ("Compression of the bilateral L5 nerve roots at L4-5.", ["L5"], False, "subarticular"),
    ],
)
def test_pipeline_roots(analyze, text, roots, inferred, zone):
    f = analyze(text).findings[0]
    assert (f.roots, f.roots_inferred, f.zone) == (roots, inferred, zone)


@pytest.mark.parametrize(
    ("word", "severity", "grade"),
    [("minimal", "minimal", 1), ("mild", "mild", 2), ("mild-to-moderate", "mild-moderate", 3), ("mild to moderate", "mild-moderate", 3),
     ("moderate", "moderate", 4), ("moderately severe", "moderate-severe", 5), ("moderate to severe", "moderate-severe", 5),
     ("severe", "severe", 6), ("high-grade", "severe", 6), ("marked", "moderate-severe", 5), ("borderline", "minimal", 1),
     ("no more than mild", "mild", 2)],
)
def test_pipeline_severity_scale(analyze, word, severity, grade):
    f = one(analyze(f"There is {word} canal stenosis at L4-5."), "central_canal_stenosis")
    assert (f.severity, f.grade, f.negated) == (severity, grade, False)


def test_pipeline_severity_grade_word(analyze):
    assert one(analyze("Left foraminal stenosis at L5-S1, grade 2."), "foraminal_stenosis").grade == 4


@pytest.mark.parametrize(("verb", "grade"), [("contacting", 2), ("displacing", 4), ("compressing", 6)])
def test_pipeline_root_relation_floor(analyze, verb, grade):
    f = one(analyze(f"Right paracentral protrusion at L5-S1 {verb} the traversing right S1 nerve root."), "nerve_root_impingement")
    assert (f.grade, f.severity) == (grade, None)


def test_pipeline_protrusion_contacting_root_is_two_findings(analyze):
    r = analyze("Small right paracentral disc protrusion at C5-6 contacting the right C6 nerve root.")
    assert sorted(f.kind for f in r.findings) == ["disc_herniation", "nerve_root_impingement"]


def test_pipeline_offsets_point_at_evidence(analyze):
    text = "EXAM: MRI\nFINDINGS:\nL4-5: moderate left foraminal stenosis. <b>L5-S1</b>: severe canal stenosis."
    for f in analyze(text).findings:
        assert text[f.start:f.end] == f.text


def test_pipeline_concepts_use_the_same_context(analyze):
    r = analyze("No evidence of pulmonary embolism. Pleural effusion is present.", concepts=["pulmonary embolism", "pleural effusion"])
    concepts = {f.concept: f.negated for f in r.findings if f.kind == "concept"}
    assert concepts == {"pulmonary embolism": True, "pleural effusion": False}


def test_pipeline_transitional_anatomy_is_flagged(analyze):
    assert analyze("There is a transitional lumbosacral vertebra. Mild bulge at L4-5.").level_numbering_uncertain


def _gold_texts() -> list[str]:
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "corpora" / "gold.jsonl"
    return [json.loads(line)["text"] for line in path.read_text("utf-8").splitlines() if line.strip()]


def test_sentence_bounds_are_what_doc_sents_yields(nlp):
    """The sentence offsets the sentences component publishes, and those read from the token columns,
    equal doc.sents' spans: on the gold reports, on texts of one token or none, and on a Doc whose
    sentences come from a user hook."""
    from report_nlp.pipeline.sentences import sentence_bounds

    docs = list(nlp.pipe(_gold_texts() + ["", "x", "L4-5.", "  \n\n ", "One. Two.\n\nThree"]))
    assert sum(len(list(d.sents)) for d in docs) > 500
    for doc in docs:
        expected = [(s.start, s.end, s.start_char, s.end_char) for s in doc.sents]
        assert sentence_bounds(doc) == expected  # as the sentences component published them
        assert (doc._.report_sentence_bounds is not None) is (len(doc) > 0)
        doc._.report_sentence_bounds = None
        assert sentence_bounds(doc) == expected  # read from the token columns
    doc = nlp("Mild stenosis at L4-5. No herniation.")
    doc.user_hooks["sents"] = lambda d: iter([d[0:3], d[3:]])
    assert sentence_bounds(doc) == [(0, 3, 0, doc[2].idx + len(doc[2])), (3, len(doc), doc[3].idx, len(doc.text))]


def test_context_scope_is_medspacys_for_every_rule(nlp):
    """The scope given to each ConText cue from the sentence's token bounds is the one
    ConTextModifier computes itself from ``doc[start].sent``, for every rule (each direction, with and
    without a rule max_scope) at cue positions across whole gold reports."""
    from medspacy.context import ConTextModifier

    from report_nlp.pipeline.context import _sentence_bounds, _sentence_scope

    rules = list(nlp.get_pipe("report_nlp_context").context.rules)
    assert {r.direction.lower() for r in rules} >= {"forward", "backward", "bidirectional"}
    assert any(r.max_scope for r in rules)
    checked = 0
    for doc in nlp.pipe(_gold_texts()[:40]):
        starts, bounds = _sentence_bounds(doc)
        for start in range(0, len(doc) - 2, 3):
            s0, s1 = next((a, b) for a, b in bounds if a <= start < b)
            end = min(start + 2, s1)
            for rule in rules[:: max(1, len(rules) // 40)] + [r for r in rules if r.max_scope]:
                want = ConTextModifier(rule, start, end, doc).scope_span
                assert _sentence_scope(rule, start, end, s0, s1) == want, (rule.literal, start)
                checked += 1
    assert checked > 10000


def test_analyze_many_leaves_no_doc_to_the_cycle_collector():
    """Finished Docs are emptied of their Spans (which hold the Doc), so reference counting frees
    them: none is left as cyclic garbage for the collector (whose full passes cost ~7% of a run)."""
    import gc

    import report_nlp

    texts = _gold_texts()[:60] + ["No stenosis.\n" * 2000]  # and a long report analysed in parts
    list(report_nlp.analyze_many(texts[:2]))
    gc.collect()
    flags, enabled = gc.get_debug(), gc.isenabled()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        results = list(report_nlp.analyze_many(texts))
        gc.collect()
        docs = [o for o in gc.garbage if type(o).__name__ in ("Doc", "Span", "ConTextModifier")]
    finally:
        gc.garbage.clear()
        gc.set_debug(flags)
        if enabled:
            gc.enable()
    assert sum(len(r.findings) for r in results) > 100
    assert docs == []


def test_pipeline_span_values_read_and_write_what_span_underscore_does(nlp):
    """``get_span_value``/``set_span_value`` (no Underscore object per access) see and leave the same
    values as ``span._``: plain defaults, values set either way, same-offset spans (spaCy keys extension
    values by character offsets), mutable defaults and getters (through ``span._``), unknown names."""
    from spacy.tokens import Span

    from report_nlp.pipeline.component import get_span_value, set_span_value

    for name, kwargs in {"rn_test_plain": {"default": None}, "rn_test_tuple": {"default": ()},
                         "rn_test_list": {"default": []}, "rn_test_getter": {"getter": lambda s: s.text.upper()}}.items():
        Span.set_extension(name, force=True, **kwargs)
    doc = nlp.make_doc("mild left foraminal stenosis at L4-5")
    a, b, same = doc[0:2], doc[2:4], Span(doc, 0, 2, label="other")
    assert get_span_value(a, "rn_test_plain") is None and get_span_value(a, "rn_test_tuple") == ()
    set_span_value(a, "rn_test_plain", "x")
    b._.rn_test_tuple = (1,)
    set_span_value(b, "rn_test_tuple", get_span_value(b, "rn_test_tuple") + (2,))
    for span in (a, b, same):
        for name in ("rn_test_plain", "rn_test_tuple", "rn_test_list", "rn_test_getter"):
            assert get_span_value(span, name) == getattr(span._, name), (span, name)
    assert a._.rn_test_plain == "x" == get_span_value(same, "rn_test_plain") and b._.rn_test_tuple == (1, 2)
    got = get_span_value(a, "rn_test_list")
    got.append(3)
    assert a._.rn_test_list == [3]  # a mutable default is stored on first read, as span._ does
    set_span_value(a, "rn_test_list", [4])
    assert a._.rn_test_list == [4]
    for call in (lambda: get_span_value(a, "rn_test_missing"), lambda: set_span_value(a, "rn_test_missing", 1)):
        with pytest.raises(AttributeError):
            call()
    for name in ("rn_test_plain", "rn_test_tuple", "rn_test_list", "rn_test_getter"):
        Span.remove_extension(name)


def _sent_starts_one_by_one(token_starts: list[int], bounds: list[int]) -> list[int]:
    """The SENT_START column as the splitter first wrote it: a walk over tokens and boundaries."""
    values, j, prev = [], 0, -1
    for i, idx in enumerate(token_starts):
        value = 1 if i == 0 else -1
        while j < len(bounds) and bounds[j] <= idx:
            if bounds[j] > prev:
                value = 1
            j += 1
        values.append(value)
        prev = idx
    return values


@settings(max_examples=500, deadline=None, derandomize=True, database=None)
@given(gaps=st.lists(st.integers(1, 6), max_size=30), bounds=st.sets(st.integers(0, 120), max_size=25))
def test_pipeline_sentence_starts_column_equals_the_token_walk(gaps, bounds):
    """``sent_starts`` (numpy) marks the same tokens as the walk: token 0, and the first token at or after
    each boundary; boundaries inside a token, between tokens or past the end included."""
    import numpy

    from report_nlp.pipeline.sentences import sent_starts

    token_starts = list(numpy.cumsum([0, *gaps])) if gaps or bounds else []
    got = sent_starts(numpy.asarray(token_starts, dtype="uint64"), sorted(bounds)).tolist()
    assert got == _sent_starts_one_by_one(token_starts, sorted(bounds))


def test_pipeline_doc_values_read_and_write_what_doc_underscore_does(nlp):
    """``get_doc_value``/``set_doc_value`` see and leave what ``doc._`` does (plain and mutable defaults,
    getters, unknown names)."""
    from spacy.tokens import Doc

    from report_nlp.pipeline.component import get_doc_value, set_doc_value

    for name, kwargs in {"rn_test_plain": {"default": None}, "rn_test_list": {"default": []},
                         "rn_test_getter": {"getter": lambda d: len(d)}}.items():
        Doc.set_extension(name, force=True, **kwargs)
    doc, other = nlp.make_doc("mild stenosis"), nlp.make_doc("no stenosis")
    assert get_doc_value(doc, "rn_test_plain") is None
    set_doc_value(doc, "rn_test_plain", ("x",))
    assert doc._.rn_test_plain == ("x",) == get_doc_value(doc, "rn_test_plain") and other._.rn_test_plain is None
    other._.rn_test_plain = 3
    assert get_doc_value(other, "rn_test_plain") == 3
    get_doc_value(doc, "rn_test_list").append(1)
    assert doc._.rn_test_list == [1] and get_doc_value(doc, "rn_test_getter") == 2
    with pytest.raises(AttributeError):
        get_doc_value(doc, "rn_test_missing")
    with pytest.raises(AttributeError):
        set_doc_value(doc, "rn_test_missing", 1)
    for name in ("rn_test_plain", "rn_test_list", "rn_test_getter"):
        Doc.remove_extension(name)


def test_pipeline_span_value_of_an_unregistered_extension_is_the_given_fallback(nlp):
    """``get_span_value(span, name, missing)`` gives ``missing`` where nobody registered ``name`` (the levels
    component reads ConText's ``modifiers`` so when ConText is not in the pipeline); without it, an error."""
    from report_nlp.pipeline.component import get_span_value

    span = nlp.make_doc("mild stenosis")[0:2]
    assert get_span_value(span, "rn_test_never_registered", ()) == ()
    assert get_span_value(span, "target_rule", "fallback") is None  # registered: its value, not the fallback
    with pytest.raises(AttributeError):
        get_span_value(span, "rn_test_never_registered")
