"""ConText: medspaCy's algorithm run with the radiology rule pack in ``patterns/context.json``.

The rule pack replaces medspaCy's defaults (see the file's description). PROBABLE_EXISTENCE is kept
apart from POSSIBLE_EXISTENCE so the guideline can tell "likely impingement" (counts as confirming)
from "cannot exclude impingement" (does not).
"""

from bisect import bisect_left, bisect_right

from medspacy.context import ConText, ConTextGraph, ConTextModifier, ConTextRule
from spacy.language import Language
from spacy.tokens import Doc, Span

from ..resources import load_rules
from .component import BatchComponent, get_span_value, set_span_value
from .sentences import sentence_bounds
from .targets import CONCEPT_LABEL, SPAN_GROUP

ATTRIBUTES = {
    "NEGATED_EXISTENCE": {"is_negated": True},
    "POSSIBLE_EXISTENCE": {"is_uncertain": True},
    "PROBABLE_EXISTENCE": {"is_uncertain": True},
    "HYPOTHETICAL": {"is_hypothetical": True},
    "HISTORICAL": {"is_historical": True},
}


for _attr in ("is_negated", "is_uncertain", "is_historical", "is_hypothetical", "is_family"):
    if not Span.has_extension(_attr):
        Span.set_extension(_attr, default=False)


def context_rules() -> tuple[list[ConTextRule], dict]:
    """ConTextRules from patterns/context.json and its terminating_types map."""
    data = load_rules("context")
    rules = []
    for group in data["rules"]:
        common = {"category": group["category"], "direction": group["direction"]}
        if "max_scope" in group:
            common["max_scope"] = group["max_scope"]
        if "allowed_types" in group:
            common["allowed_types"] = set(group["allowed_types"])
        if "pattern" in group:
            rules.append(ConTextRule(literal=group["literal"], pattern=group["pattern"], **common))
        else:
            rules.extend(ConTextRule(literal=lit, **common) for lit in group["literals"])
    return rules, data.get("terminating_types", {})


class ReportContext(BatchComponent):
    """spaCy component wrapping medspaCy ConText over the target span group."""

    def __init__(self, nlp: Language, name: str, rules: str = "report_nlp"):
        self.name = name
        self.trim_at_concepts = rules != "medspacy_default"
        if rules == "medspacy_default":
            # the evaluation baseline: medspaCy's own English rules, same targets and attributes
            self.context = ConText(nlp, name=f"{name}_context", rules="default", input_span_type="group",
                                   span_group_name=SPAN_GROUP)
            return
        rules_, terminating = context_rules()
        self.context = ConText(
            nlp,
            name=f"{name}_context",
            rules=None,
            span_attrs=ATTRIBUTES,
            input_span_type="group",
            span_group_name=SPAN_GROUP,
            terminating_types=terminating,
        )
        self.context.add(rules_)
        _split_first_token_sets(self.context)

    def __call__(self, doc: Doc) -> Doc:
        if SPAN_GROUP not in doc.spans or not len(doc.spans[SPAN_GROUP]):
            return doc
        if self.blockwise:
            return self._blockwise(doc)
        return self.context(doc)

    blockwise = True  # False: medspaCy's own ConText.__call__ (tests compare the two)

    def _blockwise(self, doc: Doc) -> Doc:
        """medspaCy's ConText, result for result, without pairing everything in the Doc with everything.

        ``ConText.__call__`` checks every modifier against every other modifier (scope updates) and against
        every target: quadratic in the cues of the whole Doc (minutes for a long report dense with "no").
        A modifier's scope lies inside its sentence, and medspaCy only lets a modifier touch another
        modifier or a target whose span or scope overlaps its scope. So the modifiers and targets fall
        into blocks whose token extents (spans and scopes) do not overlap, and nothing in one block can
        affect another: each block runs medspaCy's own graph steps on its own. Within a block, the
        scope-update loop skips pairs whose scopes do not overlap (medspaCy's first test, so a no-op
        either way) and each modifier is tested only against the targets its scope can reach, in
        target order. Blocks without targets are left alone (they can give no edge). A block is about a
        sentence, and sentences have a maximum length (``sentences.MAX_SENTENCE_CHARS``).
        """
        ctx = self.context
        if ctx.prune_on_target_overlap:  # not used here; medspaCy's own loop handles that option
            return ctx(doc)
        matcher = ctx._ConText__matcher  # medspaCy 1.3 keeps its matcher private; ConText.__call__ uses it so
        targets = list(doc.spans[SPAN_GROUP])
        modifiers = []
        sentences = _sentence_bounds(doc) if not ctx.max_scope else None
        for match_id, start, end in matcher(doc):
            rule = matcher.rule_map[ctx.nlp.vocab.strings[match_id]]
            if sentences is None:
                modifiers.append(ConTextModifier(rule, start, end, doc, max_scope=ctx.max_scope))
            else:
                s0, s1 = sentences[1][bisect_right(sentences[0], start) - 1]
                a, b = _sentence_scope(rule, start, end, s0, s1)
                modifiers.append(ConTextModifier(rule, start, end, doc, scope_start=a, scope_end=b,
                                                 max_scope=ctx.max_scope))
        if self.trim_at_concepts:
            modifiers = _trim_at_concepts(modifiers, targets, doc, ctx.max_scope)
        items = [(t.start, t.end, 0, i) for i, t in enumerate(targets)]
        for k, m in enumerate(modifiers):
            ends = (*m.modifier_span, *m.scope_span)
            items.append((min(ends), max(ends), 1, k))
        items.sort()
        blocks: list[tuple[list[int], list[int]]] = []
        reach = None
        for lo, hi, kind, index in items:
            if reach is None or lo >= reach:
                blocks.append(([], []))
                reach = hi
            else:
                reach = max(reach, hi)
            blocks[-1][kind].append(index)
        edges = []
        for target_ids, modifier_ids in blocks:
            if not modifier_ids or not target_ids:
                continue
            block_targets = [targets[i] for i in sorted(target_ids)]
            block_modifiers = [modifiers[k] for k in sorted(modifier_ids)]
            _update_scopes(block_modifiers)
            edges.extend(_apply_modifiers(block_targets, block_modifiers))
        mapping = ctx.context_attributes_mapping  # what ConText.set_context_attributes sets, written directly
        for target, modifier in edges:
            set_span_value(target, "modifiers", get_span_value(target, "modifiers") + (modifier,))
        if mapping:
            for target, modifier in edges:
                for name, value in mapping.get(modifier.category, {}).items():
                    set_span_value(target, name, value)
        doc._.context_graph = ConTextGraph(targets=targets, modifiers=modifiers, edges=edges,
                                           prune_on_modifier_overlap=ctx.prune_on_target_overlap)
        return doc


def _sentence_bounds(doc: Doc):
    """(sentence start tokens, (start, end) per sentence) when ``Token.sent`` is the plain SENT_START
    partition (no user hooks), else None. ``ConTextModifier`` asks ``doc[start].sent`` for each cue,
    which walks the tokens to the sentence's ends every time."""
    if doc.user_hooks or doc.user_span_hooks or doc.user_token_hooks or not doc.has_annotation("SENT_START"):
        return None
    bounds = [(a, b) for a, b, _, _ in sentence_bounds(doc)]
    return [a for a, _ in bounds], bounds


def _sentence_scope(rule: ConTextRule, start: int, end: int, s0: int, s1: int) -> tuple[int, int]:
    """The scope ``ConTextModifier.__set_scope`` gives a cue at tokens [start, end) of sentence [s0, s1)
    when ConText has no window (``max_scope`` of ConText unset); the rule's own ``max_scope`` clips it."""
    limit, direction = rule.max_scope, rule.direction.lower()
    if direction == "forward":
        a, b = end, s1
        if limit is not None and b - a > limit:
            b = end + limit
    elif direction == "backward":
        a, b = s0, start
        if limit is not None and b - a > limit:
            a = start - limit
    else:
        a, b = s0, s1
        if limit is not None and start - a > limit:
            a = start - limit
        if limit is not None and b - end > limit:
            b = end + limit
    return a, b


def _split_first_token_sets(ctx: ConText) -> None:
    """Token-pattern rules whose first token is a set (``{"LOWER": {"IN": [...]}}``, optionally
    ``"OP": "?"``) are re-added to spaCy's Matcher as one pattern per first word, under the same rule.
    The matches are the same; but spaCy tests a set predicate in Python at every token of every Doc,
    and a plain ``LOWER`` value in C (this halves the Matcher's time on reports)."""
    outer = ctx._ConText__matcher  # medspaCy 1.3 keeps both matchers private
    inner = outer._MedspacyMatcher__matcher
    for rule_id, rule in outer.rule_map.items():
        if not isinstance(rule.pattern, list):
            continue
        patterns = _first_token_alternatives(rule.pattern)
        if patterns != [rule.pattern]:
            inner.remove(rule_id)
            inner.add(rule_id, patterns, on_match=rule.on_match)


def _first_token_alternatives(pattern: list[dict]) -> list[list[dict]]:
    """``pattern`` as a list of equivalent patterns whose first token is a plain ``LOWER`` value, where
    that can be written out; else ``[pattern]``."""
    if not pattern:
        return [pattern]
    first, rest = pattern[0], pattern[1:]
    if set(first) == {"LOWER", "OP"} and first["OP"] == "?" and rest:
        without = _first_token_alternatives(rest)
        with_first = _first_token_alternatives([{"LOWER": first["LOWER"]}, *rest])
        return without + with_first
    if set(first) != {"LOWER"}:
        return [pattern]
    value = first["LOWER"]
    if isinstance(value, dict) and set(value) == {"IN"}:
        return [[{"LOWER": word}, *rest] for word in value["IN"]]
    return [pattern]


def _trim_at_concepts(modifiers: list, targets: list, doc: Doc, max_scope) -> list:
    """A user concept's own words are not a cue about it: "patent" in "patent foramen ovale", "new" of
    "no new" in "no new infarct". medspaCy lets no modifier touch a target it overlaps, so such a cue
    would hide the concept from the real one ("negative for patent foramen ovale"). A modifier that
    overlaps a concept keeps only its part before the concept (else after it); one inside is dropped.
    Spine targets are left as they are (their rules are written around their own words)."""
    concepts = sorted((t.start, t.end) for t in targets if t.label_ == CONCEPT_LABEL)
    if not concepts:
        return modifiers
    kept = []
    for m in modifiers:
        start, end = m.modifier_span
        hits = [(a, b) for a, b in concepts if a < end and start < b]
        if not hits:
            kept.append(m)
            continue
        if start < hits[0][0]:
            kept.append(ConTextModifier(m.rule, start, hits[0][0], doc, max_scope=max_scope))
        elif end > hits[-1][1]:
            kept.append(ConTextModifier(m.rule, hits[-1][1], end, doc, max_scope=max_scope))
    return kept


def _update_scopes(modifiers: list) -> None:
    """``ConTextGraph.update_scopes``: the same pairs in the same order; ``limit_scope`` starts by returning
    False when the two current scopes do not overlap (medspaCy's asymmetric ``tuple_overlaps``, written
    out here), so those calls are skipped."""
    scopes = [m.scope_span for m in modifiers]  # kept current: limit_scope says when it changed one
    n = len(modifiers)
    for i in range(n - 1):
        m1 = modifiers[i]
        a0, a1 = scopes[i]
        for j in range(i + 1, n):
            b0, b1 = scopes[j]
            if (a0 <= b0 < a1 or a0 < b1 <= a1) and m1.limit_scope(modifiers[j]):
                scopes[i] = a0, a1 = m1.scope_span
            if (b0 <= a0 < b1 or b0 < a1 <= b1) and modifiers[j].limit_scope(m1):
                scopes[j] = modifiers[j].scope_span


def _apply_modifiers(targets: list, modifiers: list) -> list:
    """``ConTextGraph.apply_modifiers`` without pruning: each modifier takes, in target order, the targets
    it ``modifies``; only targets that start or end inside its scope can pass that test, and terminating and
    pseudo cues pass it for none."""
    by_start = sorted(range(len(targets)), key=lambda i: targets[i].start)
    starts = [targets[i].start for i in by_start]
    by_end = sorted(range(len(targets)), key=lambda i: targets[i].end)
    ends = [targets[i].end for i in by_end]
    edges = []
    for modifier in modifiers:
        if modifier.direction in ("TERMINATE", "PSEUDO"):
            continue  # ``modifies`` says False for these before anything else could differ (most cues are "," or "and")
        a, b = modifier.scope_span
        candidates = set(by_start[bisect_left(starts, a):bisect_left(starts, b)])  # a <= start < b
        candidates.update(by_end[bisect_right(ends, a):bisect_right(ends, b)])  # a < end <= b
        for i in sorted(candidates):
            if modifier.modifies(targets[i]):
                modifier.modify(targets[i])
    for modifier in modifiers:
        modifier.reduce_targets()
        for target in modifier._targets:
            edges.append((target, modifier))
    return edges


@Language.factory(
    "report_nlp_context",
    assigns=["span._.modifiers"],
    requires=["doc.spans"],
    default_config={"rules": "report_nlp"},
)
def make_context(nlp: Language, name: str, rules: str) -> ReportContext:
    return ReportContext(nlp, name, rules=rules)
