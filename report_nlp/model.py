"""A trained second opinion: per (report, level), is nerve-root compromise asserted, and how severe?

Classes: ``none`` / ``mild`` (grade <= 3) / ``moderate`` (grade 4-5) / ``severe`` (grade 6), from the
affirmed nerve-root, foraminal and lateral-recess findings at the level. Features: word and character
TF-IDF n-grams of the level's sentences plus the rules' own view of the level. The model is a stock
scikit-learn Pipeline, saved with skops and loaded only with an explicit list of trusted types.
The rules stay the source of every recommendation: the model only raises ``rules_model_disagree``.
"""
from __future__ import annotations

import itertools
import logging
import re
from bisect import bisect_right
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import pandas as pd

from .errors import ReportNLPError

log = logging.getLogger("report_nlp.model")

CLASSES = ["none", "mild", "moderate", "severe"]
LEVEL_KINDS = {"nerve_root_impingement", "foraminal_stenosis", "lateral_recess_stenosis"}
SEED = 20261128
MODEL_NAME = "level_grade.skops"
TRUSTED_TYPES = [
    "numpy.dtype", "numpy.ndarray", "numpy.float64", "numpy.int64", "builtins.float", "builtins.int", "builtins.str",
    "sklearn.pipeline.Pipeline", "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.feature_extraction.text.TfidfVectorizer", "sklearn.feature_extraction.text.TfidfTransformer",
    "sklearn.preprocessing._data.StandardScaler", "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.preprocessing._encoders.OneHotEncoder", "sklearn.utils._bunch.Bunch",
    "report_nlp.model.rule_columns",
]
RULE_FEATURES = ["rules_rank", "rules_grade", "n_findings", "n_negated", "n_uncertain"]


class ModelFileError(ReportNLPError, ValueError):
    """A model file that is missing, tampered with (untrusted types) or incompatible."""

    code = "E020"


def grade_class(grade: Optional[int]) -> str:
    if grade is None or grade <= 3:
        return "mild"
    return "moderate" if grade <= 5 else "severe"


def level_class(findings: Iterable, level: str) -> str:
    """The class a set of findings (gold or predicted) asserts at one level."""
    grades = [f.grade for f in findings if f.level == level and f.kind in LEVEL_KINDS
              and not (f.negated or f.historical or f.hypothetical or f.uncertain)]
    if not grades:
        return "none"
    return max((grade_class(g) for g in grades), key=CLASSES.index)


_SENT = re.compile(r"[^\n.;]+[.;]?")


def level_units(text: str, findings: list) -> pd.DataFrame:
    """One row per level named in the text or by a finding: the level's sentences and the rules' view of it."""
    return pd.DataFrame(level_records(text, findings), columns=["level", "text", "rules_class"] + RULE_FEATURES)


def level_records(text: str, findings: list, mentions=None) -> list[dict]:
    """The rows of :func:`level_units` as plain dicts (cheap to gather across a batch). ``mentions``:
    (start, levels) of the level mentions in ``text`` when the pipeline already found them."""
    if mentions is None:
        mentions = [(g.start, g.levels) for g in _attacher().level_groups(text) if g.levels]
    sentences = [(m.start(), m.end()) for m in _SENT.finditer(text)]
    starts = [a for a, _ in sentences]

    def sentence_of(char: int) -> int:
        return max(0, bisect_right(starts, char) - 1)

    rows: dict[str, set] = {}
    for start, levels in mentions:
        for lv in levels:
            rows.setdefault(lv, set()).add(sentence_of(start))
    by_level: dict[str, list] = {}
    for f in findings:
        if f.level:
            rows.setdefault(f.level, set()).add(sentence_of(f.start))
            by_level.setdefault(f.level, []).append(f)
    out = []
    for lv, idx in rows.items():
        at = [f for f in by_level.get(lv, []) if f.kind in LEVEL_KINDS]
        rules = level_class(at, lv)
        out.append({
            "level": lv,
            "text": " ".join(text[sentences[i][0]:sentences[i][1]] for i in sorted(idx)),
            "rules_class": rules,
            "rules_rank": CLASSES.index(rules),
            "rules_grade": max([f.grade or 0 for f in at if not f.negated] or [0]),
            "n_findings": len(at),
            "n_negated": sum(f.negated for f in at),
            "n_uncertain": sum(f.uncertain for f in at),
        })
    return out


@lru_cache(maxsize=1)
def _attacher():
    from .pipeline.levels import Attacher

    return Attacher()


def rule_columns(frame):
    """Numeric rule features (module-level so skops can name it as a trusted function)."""
    return frame[RULE_FEATURES].to_numpy(dtype=float)


def build_estimator(C: float = 2.0):
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    features = ColumnTransformer([
        ("words", TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, lowercase=True), "text"),
        ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), min_df=3, sublinear_tf=True, max_features=20000), "text"),
        ("rules", StandardScaler(), RULE_FEATURES),
    ])
    return Pipeline([("features", features),
                     ("clf", LogisticRegression(C=C, max_iter=3000, class_weight="balanced", random_state=SEED))])


def units_for(rows, results) -> pd.DataFrame:
    """Training/evaluation units from gold rows and the pipeline's results on them."""
    frames = []
    for row, result in zip(rows, results):
        units = level_units(row.text, result.findings)
        units["label"] = [level_class(row.findings, lv) for lv in units["level"]]
        units["report_id"] = row.id
        frames.append(units)
    return pd.concat(frames, ignore_index=True)


def train(corpus: str, out: str, dev_fraction: float = 0.2) -> dict:
    """Fit on the train split; choose C on a held-out dev part of it; save with skops. Returns metrics on dev."""
    import skops.io as sio
    from sklearn.metrics import f1_score

    from .analysis import analyze_texts
    from .corpus import read_gold

    rows = read_gold(corpus)
    results = list(analyze_texts([r.text for r in rows], report_ids=[r.id for r in rows]))
    units = units_for(rows, results)
    rng = np.random.RandomState(SEED)
    ids = sorted(units["report_id"].unique())
    dev_ids = set(rng.choice(ids, size=max(1, int(len(ids) * dev_fraction)), replace=False))
    dev = units["report_id"].isin(dev_ids)
    best = None
    for C in (0.5, 2.0, 8.0):
        est = build_estimator(C).fit(units[~dev], units.loc[~dev, "label"])
        score = f1_score(units.loc[dev, "label"], est.predict(units[dev]), average="macro")
        if best is None or score > best[0]:
            best = (score, C)
    model = build_estimator(best[1]).fit(units, units["label"])
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    sio.dump(model, out)
    return {"dev_macro_f1": round(best[0], 4), "C": best[1], "units": int(len(units)), "reports": len(rows)}


def load_model(path: Optional[str] = None):
    """Load a skops file, refusing any type outside TRUSTED_TYPES (never unpickles)."""
    import skops.io as sio

    p = Path(path) if path else Path(str(files("report_nlp.models").joinpath(MODEL_NAME)))
    if not p.exists():
        raise ModelFileError(f"[{ModelFileError.code}] model file not found: {p.name}")
    try:
        untrusted = sio.get_untrusted_types(file=str(p))
    except Exception as exc:  # a corrupt archive
        raise ModelFileError(f"[{ModelFileError.code}] model file {p.name} is not a readable skops file: {type(exc).__name__}") from None
    refused = [t for t in untrusted if t not in TRUSTED_TYPES]
    if refused:
        raise ModelFileError(f"[{ModelFileError.code}] model file {p.name} holds untrusted types, refused: {', '.join(refused)}")
    try:
        return sio.load(str(p), trusted=[t for t in untrusted if t in TRUSTED_TYPES])
    except Exception as exc:
        raise ModelFileError(f"[{ModelFileError.code}] model file {p.name} is incompatible with this scikit-learn: {type(exc).__name__}") from None


@dataclass
class _State:
    model: object = None
    failed: bool = False


_STATE = _State()


def shipped_model():
    """The model in models/, loaded once; None (and one warning) when it cannot be used."""
    if _STATE.model is None and not _STATE.failed:
        try:
            _STATE.model = load_model()
        except ModelFileError as exc:
            _STATE.failed = True
            log.warning("rules only: %s", exc)
    return _STATE.model


class FastTfidf:
    """A fitted ``TfidfVectorizer``'s ``transform``, same numbers, without its per-n-gram Python loop.

    Character n-grams of ``char_wb`` never cross a word, so a unit's n-grams are the sum of its words'
    n-grams: each distinct word is turned into feature ids once and remembered (report vocabulary is
    small; the memory is bounded). Word n-grams go through the vectorizer's own analyzer. Then sklearn's
    steps: counts, ``1 + log(tf)`` when sublinear, times idf, l2 norm. ``tests/test_model.py`` checks the
    matrices equal sklearn's on the gold corpus."""

    MAX_WORDS = 200_000

    def __init__(self, vectorizer) -> None:
        self.vocab = vectorizer.vocabulary_
        self.idf = vectorizer.idf_ if vectorizer.use_idf else None
        self.sublinear = vectorizer.sublinear_tf
        self.norm = vectorizer.norm
        self.n_features = len(self.vocab)
        self.char_wb = vectorizer.analyzer == "char_wb" and vectorizer.lowercase and vectorizer.strip_accents is None \
            and vectorizer.preprocessor is None
        self.min_n, self.max_n = vectorizer.ngram_range
        self.analyze = vectorizer.build_analyzer()
        self.words: dict[str, list[int]] = {}
        # word unigrams and bigrams without sklearn's analyzer: its token pattern over the lowercased text,
        # and the vocabulary's bigrams as a table first word -> second word -> column (no string built
        # per pair); only where every two-word key reads one way (tokens hold no space)
        self.word_tokens = self.pairs = None
        token = re.compile(vectorizer.token_pattern) if isinstance(vectorizer.token_pattern, str) else None
        if (vectorizer.analyzer == "word" and vectorizer.ngram_range == (1, 2) and vectorizer.lowercase
                and vectorizer.strip_accents is None and vectorizer.preprocessor is None
                and vectorizer.tokenizer is None and vectorizer.stop_words is None and token is not None and token.groups == 0):
            self.pairs = _pair_table(self.vocab, token)
            if self.pairs is not None:
                self.word_tokens = token.findall
        if vectorizer.analyzer not in ("word", "char_wb") or vectorizer.norm not in ("l2", None):
            raise TypeError("FastTfidf covers word and char_wb analyzers with l2 or no norm")

    def _word_ids(self, word: str) -> list[int]:
        w = f" {word} "
        vocab, ids = self.vocab, []
        for n in range(self.min_n, self.max_n + 1):
            if len(w) <= n:  # sklearn counts a short word once, as a whole
                j = vocab.get(w)
                if j is not None:
                    ids.append(j)
                break
            for k in range(len(w) - n + 1):
                j = vocab.get(w[k:k + n])
                if j is not None:
                    ids.append(j)
        return ids

    def _word_pair_ids(self, text: str) -> list[int]:
        tokens = self.word_tokens(text.lower())
        out = [j for j in map(self.vocab.get, tokens) if j is not None]
        pairs = self.pairs
        for first, second in zip(tokens, tokens[1:]):
            following = pairs.get(first)
            if following is not None:
                j = following.get(second)
                if j is not None:
                    out.append(j)
        return out

    def ids(self, text: str) -> list[int]:
        if self.word_tokens is not None:
            return self._word_pair_ids(text)
        if not self.char_wb:
            vocab = self.vocab
            return [j for j in map(vocab.get, self.analyze(text)) if j is not None]
        words, out = self.words, []
        for word in text.lower().split():
            got = words.get(word)
            if got is None:
                if len(words) >= self.MAX_WORDS:
                    words.clear()
                got = words[word] = self._word_ids(word)
            out.extend(got)
        return out

    def weights(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, column, value) of the nonzero TF-IDF weights, rows in order, columns sorted within a row."""
        per_text = [self.ids(text) for text in texts]
        lengths = [len(got) for got in per_text]
        # straight from the lists (one flat Python list, then asarray, took half again as long)
        ids = np.fromiter(itertools.chain.from_iterable(per_text), dtype=np.int64, count=sum(lengths))
        keys = np.repeat(np.arange(len(texts), dtype=np.int64), lengths) * self.n_features + ids
        keys, counts = np.unique(keys, return_counts=True)
        rows, cols = np.divmod(keys, self.n_features)
        values = counts.astype(float)
        if self.sublinear:
            values = np.log(values) + 1.0
        if self.idf is not None:
            values *= self.idf[cols]
        if self.norm == "l2" and len(values):
            norms = np.sqrt(np.bincount(rows, weights=values * values, minlength=len(texts)))
            values /= norms[rows]
        return rows, cols, values

    def transform(self, texts: list[str]):
        """The sparse matrix sklearn's ``transform`` returns (tests compare the two)."""
        from scipy import sparse

        rows, cols, values = self.weights(texts)
        return sparse.csr_matrix((values, (rows, cols)), shape=(len(texts), self.n_features))


def _pair_table(vocab: dict, token: re.Pattern) -> Optional[dict]:
    """The vocabulary's two-word keys as {first: {second: column}}; None when a key could be read as a
    single token or split another way (a token pattern that matches spaces)."""
    pairs: dict[str, dict[str, int]] = {}
    for key, column in vocab.items():
        if " " not in key:
            continue
        first, _, second = key.partition(" ")
        if token.fullmatch(key) or " " in second or not (token.fullmatch(first) and token.fullmatch(second)):
            return None
        pairs.setdefault(first, {})[second] = column
    return pairs


@lru_cache(maxsize=8)
def _fast_text(vectorizer) -> FastTfidf:
    """One FastTfidf per fitted vectorizer (estimators hash by identity)."""
    return FastTfidf(vectorizer)


def _column(records, name: str) -> list:
    return records[name].tolist() if isinstance(records, pd.DataFrame) else [r[name] for r in records]


def fast_proba(model, records) -> np.ndarray:
    """``predict_proba`` of the shipped Pipeline (word and char TF-IDF, scaled rule features, logistic
    regression) computed from its fitted parts with numpy: the Pipeline, ColumnTransformer, pandas and
    sparse-matrix steps cost more than the arithmetic for one report's few levels (a single web request).
    ``records``: a DataFrame or a list of dicts with the unit columns. Same numbers (tested); a model of
    another shape raises TypeError and the caller falls back to ``predict_proba``."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import StandardScaler

    features, clf = model.named_steps["features"], model.named_steps["clf"]
    n = len(records)
    scores = np.tile(clf.intercept_, (n, 1)).astype(float)
    offset = 0
    for _, transformer, columns in features.transformers_:
        if transformer == "drop" or (not isinstance(columns, str) and len(columns) == 0):
            continue
        if isinstance(columns, str) and isinstance(transformer, TfidfVectorizer):
            fast = _fast_text(transformer)
            coef = clf.coef_[:, offset:offset + fast.n_features]
            rows, cols, values = fast.weights(_column(records, columns))
            for k in range(coef.shape[0]):
                scores[:, k] += np.bincount(rows, weights=values * coef[k, cols], minlength=n)
            offset += fast.n_features
        elif isinstance(transformer, StandardScaler) and not isinstance(columns, str):
            x = np.array([_column(records, c) for c in columns], dtype=float).T.reshape(n, len(columns))
            if transformer.with_mean:
                x = x - transformer.mean_
            if transformer.with_std:
                x = x / transformer.scale_
            scores += x @ clf.coef_[:, offset:offset + len(columns)].T
            offset += len(columns)
        else:
            raise TypeError(f"fast_proba does not cover {type(transformer).__name__}")
    if offset != clf.coef_.shape[1]:
        raise TypeError("fast_proba: feature widths do not add up to the classifier's")
    if scores.shape[1] == 1:  # binary problem
        scores = np.hstack([-scores, scores])
    scores -= scores.max(axis=1, keepdims=True)
    exp = np.exp(scores)
    return exp / exp.sum(axis=1, keepdims=True)


def predict_records(model, records) -> tuple[list[tuple[str, float]], np.ndarray]:
    """(model_class, probability) per unit, and the probabilities of every class in CLASSES order; no pandas."""
    try:
        proba = fast_proba(model, records)
    except (AttributeError, KeyError, TypeError, ValueError):
        frame = records if isinstance(records, pd.DataFrame) else pd.DataFrame(records)
        proba = model.predict_proba(frame)
    order = [CLASSES.index(c) for c in model.classes_]
    full = np.zeros((len(proba), len(CLASSES)))
    full[:, order] = proba
    best = full.argmax(axis=1)
    return [(CLASSES[i], float(full[r, i])) for r, i in enumerate(best)], full


def predict_units(model, units: pd.DataFrame) -> pd.DataFrame:
    predicted, full = predict_records(model, units)
    out = units[["level", "rules_class"]].copy()
    out["model_class"] = [c for c, _ in predicted]
    out["model_probability"] = full.max(axis=1) if len(full) else []
    out[[f"p_{c}" for c in CLASSES]] = full
    return out


def disagree(rules_class: str, model_class: str) -> bool:
    """Presence differs, or the grade differs by more than one step."""
    r, m = CLASSES.index(rules_class), CLASSES.index(model_class)
    return (r == 0) != (m == 0) or abs(r - m) > 1
