"""ConText: medspaCy's algorithm run with the radiology rule pack in ``patterns/context.json``.

The rule pack replaces medspaCy's defaults (see the file's description). PROBABLE_EXISTENCE is kept
apart from POSSIBLE_EXISTENCE so the guideline can tell "likely impingement" (counts as confirming)
from "cannot exclude impingement" (does not).
"""

from medspacy.context import ConText, ConTextRule
from spacy.language import Language
from spacy.tokens import Doc, Span

from ..resources import load_rules
from .targets import SPAN_GROUP

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


class ReportContext:
    """spaCy component wrapping medspaCy ConText over the target span group."""

    def __init__(self, nlp: Language, name: str, rules: str = "report_nlp"):
        self.name = name
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

    def __call__(self, doc: Doc) -> Doc:
        if SPAN_GROUP not in doc.spans or not len(doc.spans[SPAN_GROUP]):
            return doc
        return self.context(doc)


@Language.factory(
    "report_nlp_context",
    assigns=["span._.modifiers"],
    requires=["doc.spans"],
    default_config={"rules": "report_nlp"},
)
def make_context(nlp: Language, name: str, rules: str) -> ReportContext:
    return ReportContext(nlp, name, rules=rules)
