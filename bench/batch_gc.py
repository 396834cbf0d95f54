"""Time the cyclic garbage collector spends in a one-worker batch run, under Python's default
threshold and under the batch runner's (report_nlp.analysis.BATCH_GC_THRESHOLD), in one process.

Collections are timed with gc.callbacks; the run's CPU time is printed beside them (it drifts on a
shared machine, the collector's time much less). Run: python bench/batch_gc.py [--n 3000] [--rounds 2]
"""
from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synth import reports  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    import report_nlp.analysis as analysis
    from report_nlp import analyze_many, batch

    list(analyze_many(["L4-5: mild disc bulge."]))
    spent: dict[int, list] = {}
    started = [0.0]

    def on_collect(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            entry = spent.setdefault(info["generation"], [0, 0.0])
            entry[0] += 1
            entry[1] += time.perf_counter() - started[0]

    default, batch_threshold = gc.get_threshold()[0], analysis.BATCH_GC_THRESHOLD
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "reports.jsonl"
        with open(src, "w") as fh:
            for i, t in enumerate(reports(args.n, seed=2)):
                fh.write(json.dumps({"id": f"r{i}", "text": t}) + "\n")
        gc.callbacks.append(on_collect)
        try:
            for _ in range(args.rounds):
                for threshold in (default, batch_threshold):
                    analysis.BATCH_GC_THRESHOLD = threshold  # what batch.run sets while it runs
                    gc.collect()
                    spent.clear()
                    t0 = time.process_time()
                    summary = batch.run(str(src), str(Path(tmp) / "out.db"))
                    cpu = time.process_time() - t0
                    assert summary.balanced
                    total = sum(s for _, s in spent.values())
                    per_gen = ", ".join(f"gen{g} {n}x" for g, (n, _) in sorted(spent.items())) or "none"
                    print(f"threshold {threshold:>6}: collector {1e6 * total / args.n:6.1f} us/report ({per_gen}); "
                          f"run {1e6 * cpu / args.n:.0f} us/report CPU")
        finally:
            gc.callbacks.remove(on_collect)
            analysis.BATCH_GC_THRESHOLD = batch_threshold


if __name__ == "__main__":
    main()
