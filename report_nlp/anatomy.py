"""Anatomy tables from ``patterns/anatomy.json``: exam wording -> roots, and root adjacency."""
from __future__ import annotations

import re
from functools import lru_cache

from .resources import load_rules

ROOT_ORDER = [f"C{i}" for i in range(2, 9)] + [f"T{i}" for i in range(1, 13)] + [f"L{i}" for i in range(1, 6)] + [f"S{i}" for i in range(1, 4)]
_ORDER = {r: i for i, r in enumerate(ROOT_ORDER)}


def adjacent(a: str, b: str) -> bool:
    """Roots one apart in the sequence C2..C8, T1..T12, L1..L5, S1.. (L5 and S1 are adjacent)."""
    return a in _ORDER and b in _ORDER and abs(_ORDER[a] - _ORDER[b]) == 1


def _norm(term: str) -> str:
    return re.sub(r"[^a-z0-9 ]+", " ", term.lower()).strip()


class ExamVocabulary:
    """Dermatome / myotome / reflex wording of every root, matched as whole phrases inside exam terms."""

    def __init__(self) -> None:
        anatomy = load_rules("anatomy")
        roots = anatomy["roots"]
        self.filler = re.compile(r"\b(?:" + "|".join(map(re.escape, anatomy["exam_filler_words"])) + r")\b")
        linking = re.compile(r"\b(?:" + "|".join(map(re.escape, anatomy["phrase_linking_words"])) + r")\b")
        entries = sorted(((_norm(phrase), root, what) for root, table in roots.items()
                          for what in ("dermatome", "myotome", "reflex") for phrase in table[what]),
                         key=lambda e: -len(e[0]))
        # (phrase as compared: linking words out, spaces squeezed; root; what), longest phrase first
        self.entries = [(re.sub(r"\s+", " ", linking.sub(" ", phrase)).strip(), root, what) for phrase, root, what in entries]
        self._memo: dict[tuple[str, tuple[str, ...]], tuple[str, ...]] = {}

    def roots_for(self, term: str, what: tuple[str, ...]) -> list[str]:
        """Roots named by one exam term ('numbness over the dorsum of the foot' -> ['L5'])."""
        key = (term, tuple(what))
        got = self._memo.get(key)
        if got is None:
            if len(self._memo) >= 50_000:
                self._memo.clear()
            got = self._memo[key] = tuple(self._roots_for(term, what))
        return list(got)

    def _roots_for(self, term: str, what: tuple[str, ...]) -> list[str]:
        text = f" {_norm(term)} "
        text = self.filler.sub(" ", text)
        text = re.sub(r"\s+", " ", text)
        found: list[str] = []
        best = 0
        for p, root, kind in self.entries:
            if kind not in what:
                continue
            if p and f" {p} " in text:
                if len(p) < best:
                    continue  # a longer phrase already matched ("ring and little finger" over "finger")
                best = max(best, len(p))
                if root not in found:
                    found.append(root)
        return found


@lru_cache(maxsize=1)
def exam_vocabulary() -> ExamVocabulary:
    return ExamVocabulary()
