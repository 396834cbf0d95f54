"""Where the time goes: each pipeline component timed over the same synthetic reports, then the
whole ``analyze_many`` (the rest is result objects, guideline, the model's opinion and glue).

Run: python bench/stages.py [--n 600] [--rounds 5]   (ms per report, best of the rounds)
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synth import reports  # noqa: E402

import report_nlp  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    nlp = report_nlp.load()
    texts = reports(args.n)
    list(report_nlp.analyze_many(texts[:50]))
    best: dict[str, float] = {}

    def keep(name: str, seconds: float) -> None:
        best[name] = min(best.get(name, float("inf")), seconds)

    for _ in range(args.rounds):
        t0 = time.perf_counter()
        docs = [nlp.make_doc(t) for t in texts]
        keep("tokenizer", time.perf_counter() - t0)
        for name, proc in nlp.pipeline:
            t0 = time.perf_counter()
            docs = [proc(d) for d in docs]
            keep(name, time.perf_counter() - t0)
        t0 = time.perf_counter()
        list(report_nlp.analyze_many(texts))
        keep("analyze_many", time.perf_counter() - t0)
    per = {k: v / len(texts) * 1000 for k, v in best.items()}
    stages = sum(v for k, v in per.items() if k != "analyze_many")
    for name, ms in per.items():
        print(f"{name:24s} {ms:6.3f} ms")
    print(f"{'rest of analyze_many':24s} {per['analyze_many'] - stages:6.3f} ms  (result objects, guideline, model, glue)")


if __name__ == "__main__":
    main()
