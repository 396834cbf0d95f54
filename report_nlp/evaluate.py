"""Gold corpus -> per-kind detection P/R/F1 and attribute accuracies, for the pipeline and a baseline.

Matching (documented in corpora/README.md): within a report, mentions of the same
(kind, level, side) are merged into one finding, for gold and prediction alike, so a finding stated
in FINDINGS and again in IMPRESSION counts once. ``central`` and ``null`` sides are the same side.
The merged finding takes its status from its most assertive mention (affirmed > uncertain >
historical/hypothetical > negated), its grade from the highest graded non-negated mention, and its
roots from the union of its mentions.

Detection counts (kind, level, side); strict detection also requires the same ``negated``.
Attribute accuracies are computed on the detected (matched) findings only.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Optional, get_args

import pandas as pd
from sklearn.metrics import accuracy_score

from .schema import GoldReport, Kind, Result

KINDS = [k for k in get_args(Kind) if k != "concept"]
SYSTEMS = ("report_nlp", "medspacy_default")


@dataclass
class Merged:
    kind: str
    level: Optional[str]
    side: Optional[str]
    negated: bool
    uncertain: bool
    historical: bool
    hypothetical: bool
    grade: Optional[int]
    roots: frozenset
    zone: Optional[str]
    mentions: list = field(default_factory=list)  # (start, end)


def _side(side: Optional[str]) -> Optional[str]:
    return None if side in (None, "central") else side


def _rank(m) -> int:
    if m.negated:
        return 3
    if m.historical or m.hypothetical:
        return 2
    if m.uncertain:
        return 1
    return 0


def merge(findings: Iterable) -> dict[tuple, Merged]:
    """Merge mentions by (kind, level, side); works on gold and predicted findings alike."""
    groups: dict[tuple, list] = defaultdict(list)
    for f in findings:
        if f.kind == "concept":
            continue
        groups[(f.kind, f.level, _side(f.side))].append(f)
    out = {}
    for key, mentions in groups.items():
        rep = min(mentions, key=_rank)
        grades = [m.grade for m in mentions if not m.negated and m.grade is not None]
        roots = frozenset(r for m in mentions for r in m.roots)
        out[key] = Merged(
            kind=key[0], level=key[1], side=key[2], negated=rep.negated, uncertain=rep.uncertain and not rep.negated,
            historical=rep.historical, hypothetical=rep.hypothetical, grade=max(grades) if grades else None,
            roots=roots, zone=rep.zone, mentions=[(m.start, m.end) for m in mentions],
        )
    return out


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


@dataclass
class Scores:
    system: str
    table: pd.DataFrame  # one row per kind + "overall"
    attributes: dict
    errors: list[dict]

    def to_dict(self) -> dict:
        return {
            "system": self.system,
            "detection": self.table.reset_index().to_dict(orient="records"),
            "attributes": self.attributes,
            "n_errors": len(self.errors),
        }


def score(gold: list[GoldReport], predictions: list[Result], system: str = "report_nlp") -> Scores:
    counts = {k: [0, 0, 0, 0, 0, 0] for k in KINDS}  # tp fp fn strict_tp strict_fp strict_fn
    pairs = defaultdict(lambda: ([], []))
    errors: list[dict] = []
    for report, result in zip(gold, predictions):
        g = merge(report.findings)
        p = merge(result.findings)
        text = report.text
        for key in g.keys() | p.keys():
            kind = key[0]
            c = counts[kind]
            if key in g and key in p:
                c[0] += 1
                gm, pm = g[key], p[key]
                same_neg = gm.negated == pm.negated
                c[3] += same_neg
                c[4] += not same_neg
                c[5] += not same_neg
                for attr in ("negated", "uncertain", "historical", "hypothetical"):
                    pairs[attr][0].append(getattr(gm, attr))
                    pairs[attr][1].append(getattr(pm, attr))
                if not gm.negated and not pm.negated and (gm.grade is not None or pm.grade is not None):
                    pairs["grade"][0].append(gm.grade if gm.grade is not None else -1)
                    pairs["grade"][1].append(pm.grade if pm.grade is not None else -1)
                if gm.roots:
                    pairs["roots"][0].append(tuple(sorted(gm.roots)))
                    pairs["roots"][1].append(tuple(sorted(pm.roots)))
                if gm.zone is not None:
                    pairs["zone"][0].append(gm.zone)
                    pairs["zone"][1].append(pm.zone)
                wrong = [a for a in ("negated", "uncertain", "historical", "hypothetical") if getattr(gm, a) != getattr(pm, a)]
                if gm.grade != pm.grade and not gm.negated:
                    wrong.append("grade")
                if wrong:
                    errors.append(_error(report, text, "attribute", key, gm, pm, wrong))
            elif key in p:
                c[1] += 1
                c[4] += 1
                errors.append(_error(report, text, "false_positive", key, None, p[key], []))
            else:
                c[2] += 1
                c[5] += 1
                errors.append(_error(report, text, "false_negative", key, g[key], None, []))
    rows = []
    total = [0] * 6
    for kind in KINDS:
        c = counts[kind]
        total = [a + b for a, b in zip(total, c)]
        rows.append(_row(kind, c))
    rows.append(_row("overall", total))
    table = pd.DataFrame(rows).set_index("kind")
    attributes = {}
    for attr, (y_true, y_pred) in pairs.items():
        if not y_true:
            continue
        if attr == "grade":
            attributes["severity_exact"] = accuracy_score(y_true, y_pred)
            within = [abs(a - b) <= 1 if a >= 0 and b >= 0 else a == b for a, b in zip(y_true, y_pred)]
            attributes["severity_within_one"] = sum(within) / len(within)
            attributes["severity_n"] = len(y_true)
        else:
            attributes[f"{attr}_accuracy"] = accuracy_score([str(x) for x in y_true], [str(x) for x in y_pred])
            attributes[f"{attr}_n"] = len(y_true)
    return Scores(system=system, table=table, attributes=attributes, errors=errors)


def _row(kind: str, c: list[int]) -> dict:
    p, r, f = prf(c[0], c[1], c[2])
    sp, sr, sf = prf(c[3], c[4], c[5])
    return {"kind": kind, "gold": c[0] + c[2], "pred": c[0] + c[1], "tp": c[0], "precision": p, "recall": r,
            "f1": f, "strict_f1": sf}


def _sentence(text: str, start: int) -> str:
    lo = max(text.rfind("\n", 0, start), text.rfind(". ", 0, start) + 1, 0)
    hi_candidates = [i for i in (text.find("\n", start), text.find(". ", start)) if i >= 0]
    hi = min(hi_candidates) + 1 if hi_candidates else len(text)
    return text[lo:hi].strip()


def _error(report, text, what, key, gm, pm, wrong) -> dict:
    ref = (gm or pm).mentions[0]
    return {
        "report_id": report.id,
        "error": what,
        "kind": key[0],
        "level": key[1],
        "side": key[2],
        "wrong": wrong,
        "gold": None if gm is None else {a: getattr(gm, a) for a in ("negated", "uncertain", "historical", "hypothetical", "grade")},
        "pred": None if pm is None else {a: getattr(pm, a) for a in ("negated", "uncertain", "historical", "hypothetical", "grade")},
        "sentence": _sentence(text, ref[0]),
    }


def predict(gold: list[GoldReport], system: str = "report_nlp") -> list[Result]:
    from .analysis import analyze_texts

    nlp = None
    if system == "medspacy_default":
        from .pipeline.build import build_pipeline

        nlp = build_pipeline(context_rules="medspacy_default")
    return list(analyze_texts([r.text for r in gold], report_ids=[r.id for r in gold], nlp=nlp))


def evaluate(gold: list[GoldReport], systems: Iterable[str] = SYSTEMS) -> dict[str, Scores]:
    """Score each system on the same gold reports."""
    return {system: score(gold, predict(gold, system), system) for system in systems}


def compare_systems(gold: list[GoldReport], systems=("rules", "model", "hybrid")) -> pd.DataFrame:
    """Per (report, level) units: detection F1 of asserted compromise, grade-class accuracy and Brier score,
    for the rules, the trained model and their average (hybrid)."""
    import numpy as np
    from sklearn.metrics import f1_score

    from .analysis import analyze_texts
    from .model import CLASSES, load_model, predict_units, units_for

    results = list(analyze_texts([r.text for r in gold], report_ids=[r.id for r in gold]))
    units = units_for(gold, results)
    truth = np.zeros((len(units), len(CLASSES)))
    truth[np.arange(len(units)), [CLASSES.index(c) for c in units["label"]]] = 1
    rules = np.zeros_like(truth)
    rules[np.arange(len(units)), [CLASSES.index(c) for c in units["rules_class"]]] = 1
    probs = {"rules": rules}
    if "model" in systems or "hybrid" in systems:
        pred = predict_units(load_model(), units)
        probs["model"] = pred[[f"p_{c}" for c in CLASSES]].to_numpy()
        probs["hybrid"] = 0.4 * rules + 0.6 * probs["model"]
    rows = []
    y = units["label"].to_numpy()
    for name in systems:
        p = probs[name]
        pred = np.array(CLASSES)[p.argmax(axis=1)]
        rows.append({
            "system": name,
            "units": int(len(units)),
            "detection_f1": f1_score(y != "none", pred != "none"),
            "grade_accuracy": float((pred == y).mean()),
            "brier": float(((p - truth) ** 2).sum(axis=1).mean()),
        })
    return pd.DataFrame(rows).set_index("system")


def predict_negation(rows: list, system: str = "report_nlp") -> list[Optional[bool]]:
    """For each row, whether the pipeline calls its concept negated (None: the concept was not found)."""
    from .analysis import analyze_texts
    from .corpus import concept_spans

    nlp = None
    if system == "medspacy_default":
        from .pipeline.build import build_pipeline

        nlp = build_pipeline(context_rules="medspacy_default")
    out: list[Optional[bool]] = []
    for row in rows:
        (start, end), = concept_spans(row.text, row.concept)
        result = next(analyze_texts([row.text], concepts=[row.concept], nlp=nlp))
        hits = [f for f in result.findings if f.kind == "concept" and f.start < end and start < f.end]
        out.append(hits[0].negated if hits else None)
    return out


def score_negation(rows: list, predicted: list[Optional[bool]], system: str = "report_nlp") -> dict:
    """Negation as the positive class: precision, recall, F1 and accuracy; a concept not found counts as
    not negated (and is counted apart). ``errors``: every disagreement with its sentence."""
    tp = fp = fn = tn = missing = 0
    errors = []
    for row, pred in zip(rows, predicted):
        missing += pred is None
        got = bool(pred)
        if got and row.negated:
            tp += 1
        elif got:
            fp += 1
        elif row.negated:
            fn += 1
        else:
            tn += 1
        if got != row.negated:
            errors.append({"id": row.id, "concept": row.concept, "gold_negated": row.negated,
                           "predicted": "not found" if pred is None else got, "text": row.text})
    p, r, f = prf(tp, fp, fn)
    return {"system": system, "rows": len(rows), "negated": tp + fn, "tp": tp, "fp": fp, "fn": fn, "tn": tn,
            "not_found": missing, "precision": p, "recall": r, "f1": f,
            "accuracy": round((tp + tn) / len(rows), 4) if rows else 0.0, "errors": errors}


def evaluate_negation(rows: list, systems: Iterable[str] = SYSTEMS) -> dict[str, dict]:
    return {system: score_negation(rows, predict_negation(rows, system), system) for system in systems}
