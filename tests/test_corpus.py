"""The gold corpus: schema, offsets, split, size and style mix, and the test-split hash guard."""
from __future__ import annotations

import hashlib
import json
import re
from collections import Counter

import pytest

from report_nlp.corpus import corpus_json_schema, offset_problems, read_gold


@pytest.fixture(scope="module")
def train(root):
    return read_gold(root / "corpora" / "gold.jsonl")


@pytest.fixture(scope="module")
def test_split(root):
    return read_gold(root / "corpora" / "gold_test.jsonl")


def test_corpus_rows_validate_and_offsets_point_at_evidence(train, test_split):
    problems = [p for r in train + test_split for p in offset_problems(r)]
    assert problems == []


def test_corpus_ids_unique_and_splits_disjoint(train, test_split):
    ids = [r.id for r in train + test_split]
    assert len(ids) == len(set(ids))
    assert {r.id for r in train}.isdisjoint({r.id for r in test_split})


def test_corpus_size_regions_and_styles(train, test_split):
    rows = train + test_split
    regions = Counter(r.region for r in rows)
    assert len(rows) >= 250
    assert regions["cervical"] >= 90
    assert regions["lumbar"] >= 120
    assert regions["thoracic"] >= 5
    assert len({r.style for r in rows}) >= 12
    assert len(test_split) >= 0.30 * len(rows)


def test_corpus_no_two_reports_share_a_text(train, test_split):
    texts = [re.sub(r"\W+", " ", r.text.lower()).strip() for r in train + test_split]
    assert len(texts) == len(set(texts))


def test_corpus_test_split_hash_is_recorded(root):
    digest = hashlib.sha256((root / "corpora" / "gold_test.jsonl").read_bytes()).hexdigest()
    readme = (root / "corpora" / "README.md").read_text(encoding="utf-8")
    recorded = re.search(r"TEST-SPLIT-SHA256: ([0-9a-f]{64})", readme)
    assert recorded, "corpora/README.md must record the test split's SHA-256"
    assert recorded.group(1) == digest, "gold_test.jsonl changed: if on purpose, update its hash in corpora/README.md in the same commit"


def test_corpus_schema_file_is_current(root):
    committed = json.loads((root / "corpora" / "schema.json").read_text(encoding="utf-8"))
    assert committed == corpus_json_schema()
