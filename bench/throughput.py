"""Throughput: report_nlp.analyze_many vs medspaCy's default pipeline, same reports, same process.

Each round runs the two pipelines in turn on the same slices of ``--chunk`` reports (one slice by one
pipeline, then by the other), so both see the machine in the same state: this guest's speed drifts
by 10-20% within seconds, and whole rounds in turn (4 s of medspaCy, then 0.4 s of ours) let one
side alone catch a slow spell. Prints reports/s and characters/s for both (median of rounds), the
ratio (median of the rounds' ratios) and the range of the rounds' ratios.
Run: python bench/throughput.py [--n 400] [--rounds 3] [--chunk 50]
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
    ap.add_argument("--chunk", type=int, default=50, help="reports per slice the two pipelines take in turn")
    args = ap.parse_args()
    texts = reports(args.n)
    chars = sum(map(len, texts))
    base = medspacy_default()
    report_nlp.load()
    list(report_nlp.analyze_many(texts[:20]))
    list(base.pipe(texts[:20]))
    ours, theirs = [], []
    slices = [texts[i:i + args.chunk] for i in range(0, len(texts), args.chunk)]
    for r in range(args.rounds):
        o = t = 0.0
        for k, part in enumerate(slices):
            run_base = lambda: list(base.pipe(part))  # noqa: E731
            run_ours = lambda: list(report_nlp.analyze_many(part))  # noqa: E731
            first, second = (run_base, run_ours) if (r + k) % 2 == 0 else (run_ours, run_base)
            a, b = timed(first), timed(second)
            t, o = (t + a, o + b) if first is run_base else (t + b, o + a)
        theirs.append(t)
        ours.append(o)
    ratios = [t / o for t, o in zip(theirs, ours)]
    o, t = statistics.median(ours), statistics.median(theirs)
    single = texts[0] * max(1, 3000 // len(texts[0]))
    one = statistics.median(timed(lambda: report_nlp.analyze(single)) for _ in range(20))
    print(f"reports: {args.n}, characters: {chars:,} (mean {chars // args.n} per report), rounds: {args.rounds}")
    print(f"medspaCy default : {args.n / t:8.1f} reports/s  {chars / t:12,.0f} chars/s")
    print(f"report_nlp       : {args.n / o:8.1f} reports/s  {chars / o:12,.0f} chars/s  (full Result objects)")
    print(f"ratio report_nlp / medspaCy default: {statistics.median(ratios):.1f}x "
          f"(rounds: {', '.join(f'{x:.1f}' for x in ratios)})")
    print(f"single {len(single):,}-character report: {one * 1000:.1f} ms")


if __name__ == "__main__":
    main()
