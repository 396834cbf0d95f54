"""The trained second opinion: reproducible training, safe loading, disagreement flag, rules-only fallback."""
from __future__ import annotations

import json
import os
import sqlite3

import pytest

from report_nlp import model as model_mod
from report_nlp.model import CLASSES, ModelFileError, disagree, grade_class, load_model


@pytest.mark.parametrize(("grade", "cls"), [(None, "mild"), (2, "mild"), (3, "mild"), (4, "moderate"), (5, "moderate"), (6, "severe")])
def test_model_grade_classes(grade, cls):
    assert grade_class(grade) == cls


@pytest.mark.parametrize(("rules", "model", "flag"), [("none", "none", False), ("none", "mild", True), ("mild", "moderate", False),
                                                     ("mild", "severe", True), ("severe", "none", True)])
def test_model_disagreement_rule(rules, model, flag):
    assert disagree(rules, model) is flag


def test_model_shipped_file_loads_with_trusted_types_only():
    m = load_model()
    assert set(m.classes_) <= set(CLASSES)


def test_model_tampered_file_is_refused(tmp_path):
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    bad = tmp_path / "tampered.skops"
    sio.dump(FunctionTransformer(func=os.system), str(bad))
    with pytest.raises(ModelFileError, match=r"untrusted types, refused: .*system"):
        load_model(str(bad))
    junk = tmp_path / "junk.skops"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(ModelFileError, match="not a readable skops file"):
        load_model(str(junk))


def test_model_no_pickle_or_joblib_loading_in_the_package(root):
    offenders = []
    for path in (root / "report_nlp").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for word in ("import pickle", "pickle.load", "joblib", "cloudpickle", "dill"):
            if word in text:
                offenders.append(f"{path.name}: {word}")
    assert offenders == []


def test_model_missing_file_means_rules_only_said_once(monkeypatch, caplog, analyze):
    monkeypatch.setattr(model_mod, "_STATE", model_mod._State())
    monkeypatch.setattr(model_mod, "load_model", lambda path=None: (_ for _ in ()).throw(ModelFileError("[E020] model file not found")))
    caplog.set_level("WARNING", logger="report_nlp.model")
    r1 = analyze("L4-5: Moderate left foraminal stenosis.")
    r2 = analyze("L5-S1: Mild bulge.")
    assert r1.findings and r1.model_levels == [] and r2.model_levels == []
    assert sum("rules only" in rec.message for rec in caplog.records) == 1


def test_model_attaches_levels_and_flags_disagreement(analyze):
    r = analyze("FINDINGS:\nL4-5: Severe left foraminal stenosis with compression of the exiting left L4 nerve root.\nL5-S1: Normal.")
    levels = {o.level: o for o in r.model_levels}
    assert levels["L4-L5"].rules_class == "severe"
    assert ("rules_model_disagree" in r.flags) == any(o.disagree for o in r.model_levels)


@pytest.mark.slow
def test_model_training_reproduces_the_shipped_metrics(tmp_path, root):
    """report-nlp train on the train split gives the model card's dev figure and the same predictions."""
    card = (root / "models" / "README.md").read_text(encoding="utf-8")
    recorded = json.loads(card.split("<!-- training-metrics -->")[1].split("<!--")[0].strip().strip("`"))
    metrics = model_mod.train(str(root / "corpora" / "gold.jsonl"), str(tmp_path / "m.skops"))
    assert metrics == recorded


def test_model_review_queue_in_batch_output(tmp_path):
    import pandas as pd

    from report_nlp.batch import run

    src = tmp_path / "in.csv"
    pd.DataFrame([{"id": "a", "text": "L4-5: Moderate left foraminal stenosis."}]).to_csv(src, index=False)
    run(str(src), str(tmp_path / "o.db"))
    con = sqlite3.connect(tmp_path / "o.db")
    assert con.execute("SELECT COUNT(*) FROM review_queue").fetchone()[0] in (0, 1)


def _gold_units(root):
    import report_nlp
    from report_nlp.corpus import read_gold

    rows = read_gold(str(root / "corpora" / "gold.jsonl"))[:80]
    results = list(report_nlp.analyze_many([r.text for r in rows]))
    return model_mod.units_for(rows, results)


ODD_TEXTS = ["", "   ", "a", "ab", "abc", "L4-5 \u00c9\u00c9 x\u00a0y\tz\n\nw", "x" * 50, "\u0130stanbul \u01c5 \u00df", "no\u2028break",
             "disc disc disc disc protrusion"]


def test_model_fast_tfidf_equals_sklearns_transform(root):
    """The batched text features are sklearn's numbers exactly (same nonzeros, same values)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = _gold_units(root)["text"].tolist() + ODD_TEXTS
    vectorizers = [t for _, t, _ in load_model().named_steps["features"].transformers_ if isinstance(t, TfidfVectorizer)]
    assert {v.analyzer for v in vectorizers} == {"word", "char_wb"}
    for vectorizer in vectorizers:
        fast = model_mod.FastTfidf(vectorizer)
        expected, got = vectorizer.transform(texts), fast.transform(texts)
        assert got.shape == expected.shape
        assert (expected != got).nnz == 0 or abs(expected - got).max() < 1e-12
        assert (abs(expected) > 0).nnz == (abs(got) > 0).nnz
        fast.MAX_WORDS = 3  # the word memory is bounded: clearing it changes nothing
        assert abs(vectorizer.transform(texts) - fast.transform(texts)).max() < 1e-12


def test_model_fast_probabilities_equal_predict_proba(root):
    import numpy as np

    units = _gold_units(root)
    model = load_model()
    expected = model.predict_proba(units)
    assert np.allclose(model_mod.fast_proba(model, units), expected, rtol=0, atol=1e-12)
    records = units.to_dict("records")  # the pandas-free path a single web request takes
    assert np.allclose(model_mod.fast_proba(model, records), expected, rtol=0, atol=1e-12)
    assert np.allclose(model_mod.fast_proba(model, records[:1]), expected[:1], rtol=0, atol=1e-12)


def test_model_reuses_the_pipelines_level_mentions(analyze):
    """The levels component hands its level mentions to the model: the same rows as finding them again."""
    import report_nlp
    from report_nlp.model import level_records

    text = ("FINDINGS:\nL3-4: mild disc bulge.\nL4-L5 and L5-S1: moderate right foraminal stenosis with "
            "impingement of the exiting right L4 nerve root.\nAt the lumbosacral junction no herniation.")
    doc = report_nlp.load()(text)
    mentions = doc._.report_level_mentions
    assert [lv for _, levels in mentions for lv in levels] == ["L3-L4", "L4-L5", "L5-S1", "L5-S1"]
    findings = analyze(text).findings
    assert level_records(text, findings, mentions) == level_records(text, findings)


@pytest.mark.parametrize("params", [{"min_df": 2}, {"min_df": 1, "max_df": 0.3}, {"min_df": 2, "max_features": 300},
                                    {"sublinear_tf": True, "min_df": 3}])
def test_fast_word_pairs_equal_sklearn_for_other_fits(root, params):
    """The word-pair path (no sklearn analyzer, the vocabulary's bigrams as a first word -> second word
    table) gives sklearn's matrix for vectorizers fitted other ways; a token pattern that can match a
    space leaves the keys ambiguous and falls back to sklearn's analyzer."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = [json.loads(line)["text"] for line in (root / "corpora" / "gold.jsonl").read_text("utf-8").splitlines() if line.strip()]
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), **params).fit(texts[::2])
    fast = model_mod.FastTfidf(vectorizer)
    assert fast.word_tokens is not None and len(fast.pairs) > 30
    others = texts[1::2] + ODD_TEXTS
    expected, got = vectorizer.transform(others), fast.transform(others)
    assert (abs(expected) > 0).nnz == (abs(got) > 0).nnz > 1000
    assert abs(expected - got).max() < 1e-12
    spaced = TfidfVectorizer(ngram_range=(1, 2), token_pattern=r"[a-z]+(?: [a-z]+)?").fit(texts[::2])
    assert model_mod.FastTfidf(spaced).word_tokens is None
    assert abs(spaced.transform(others) - model_mod.FastTfidf(spaced).transform(others)).max() < 1e-12
