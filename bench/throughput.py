"""Throughput: report_nlp.analyze_many vs medspaCy's default pipeline, same reports, same process.

Prints reports/s and characters/s for both in alternating rounds and the ratio (median of rounds).
Run: python bench/throughput.py [--n 400] [--rounds 3]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import medspacy  # noqa: E402
from medspacy.target_matcher import TargetRule  # noqa: E402
from synth import reports  # noqa: E402

import report_nlp  # noqa: E402

SPINE_TERMS = ["disc herniation", "disc protrusion", "disc extrusion", "disc bulge", "foraminal stenosis",
               "foraminal narrowing", "canal stenosis", "lateral recess stenosis", "nerve root impingement",
               "nerve root", "cord compression", "cauda equina"]


def medspacy_default():
    from loguru import logger

    logger.disable("PyRuSH")  # its debug calls would otherwise print every sentence
    nlp = medspacy.load()
    nlp.get_pipe("medspacy_target_matcher").add([TargetRule(t, "SPINE") for t in SPINE_TERMS])
    return nlp


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    texts = reports(args.n)
    chars = sum(map(len, texts))
    base = medspacy_default()
    report_nlp.load()
    list(report_nlp.analyze_many(texts[:20]))
    list(base.pipe(texts[:20]))
    ours, theirs = [], []
    for _ in range(args.rounds):
        theirs.append(timed(lambda: list(base.pipe(texts))))
        ours.append(timed(lambda: list(report_nlp.analyze_many(texts))))
    o, t = statistics.median(ours), statistics.median(theirs)
    single = texts[0] * max(1, 3000 // len(texts[0]))
    one = statistics.median(timed(lambda: report_nlp.analyze(single)) for _ in range(20))
    print(f"reports: {args.n}, characters: {chars:,} (mean {chars // args.n} per report), rounds: {args.rounds}")
    print(f"medspaCy default : {args.n / t:8.1f} reports/s  {chars / t:12,.0f} chars/s")
    print(f"report_nlp       : {args.n / o:8.1f} reports/s  {chars / o:12,.0f} chars/s  (full Result objects)")
    print(f"ratio report_nlp / medspaCy default: {t / o:.1f}x")
    print(f"single {len(single):,}-character report: {one * 1000:.1f} ms")


if __name__ == "__main__":
    main()
