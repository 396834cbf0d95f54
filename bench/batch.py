"""Batch throughput and memory: N synthetic reports through `report-nlp batch` on 1 and 2 workers.

Prints reports/s, characters/s and peak RSS of each run (each in its own process, so RSS is the
run's own), and the ratio to medspaCy's default pipeline on a sample of the same reports, measured
before and after each run (the mean of the two: this machine's speed drifts over minutes); then the
same figures after start-up (the run's time less that of the same command on a few reports), which
is what a run of millions approaches.
Where a core is left over (one worker on two cores), medspaCy's sample also runs on it for the whole
run, and the ratio to that rate, measured at the same time, is printed too; the run and the baseline
are pinned to one core each and change cores every 10 s, so that neither keeps the faster one.
Run: python bench/batch.py [--n 100000] [--sample 300]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synth import reports  # noqa: E402

SWAP_SECONDS = 10.0  # the one-worker run and the baseline beside it change cores this often


def run_batch(src: Path, out: Path, workers: int, alongside=None) -> tuple[float, int]:
    """Seconds and peak RSS of one `report-nlp batch` run; ``alongside()`` is called over and over
    in this process while the run lasts (the medspaCy baseline on an idle core, at the same time)."""
    cmd = [sys.executable, "-c", "from report_nlp.cli import app; app()", "batch", str(src), "--out", str(out),
           "--workers", str(workers), "--chunk-size", "1000"]
    t0 = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    swap_at, side = time.perf_counter() + SWAP_SECONDS, 0
    if alongside is not None and len(cores) >= 2:  # the run on one core, the baseline on another ...
        os.sched_setaffinity(proc.pid, {cores[0]})
        os.sched_setaffinity(0, {cores[1]})
    while alongside is not None and proc.poll() is None:
        alongside()
        if len(cores) >= 2 and time.perf_counter() >= swap_at and proc.poll() is None:
            side = 1 - side  # ... and every SWAP_SECONDS the other way round: each sees both cores alike
            try:
                os.sched_setaffinity(proc.pid, {cores[side]})
            except ProcessLookupError:
                break
            os.sched_setaffinity(0, {cores[1 - side]})
            swap_at += SWAP_SECONDS
    if cores:
        os.sched_setaffinity(0, set(cores))
    if proc.wait() != 0:
        raise SystemExit(f"report-nlp batch failed ({proc.returncode})")
    seconds = time.perf_counter() - t0
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, max(peak_kb, before)


class Alongside:
    """medspaCy's default pipeline over slices of the sample, timed, for as long as it is called: its
    rate over a one-worker run measured on the other core during that run, where before-and-after
    samples straddle minutes in which this machine's speed drifts."""

    def __init__(self, nlp, texts: list[str], slice_size: int = 25):
        self.nlp, self.texts, self.size = nlp, texts, slice_size
        self.done, self.seconds, self.at = 0, 0.0, 0

    def __call__(self) -> None:
        part = self.texts[self.at:self.at + self.size] or self.texts[: self.size]
        self.at = (self.at + len(part)) % len(self.texts)
        t0 = time.perf_counter()
        list(self.nlp.pipe(part))
        self.seconds += time.perf_counter() - t0
        self.done += len(part)

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds else float("nan")


def medspacy_rate(nlp, texts: list[str]) -> float:
    t0 = time.perf_counter()
    list(nlp.pipe(texts))
    return len(texts) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--sample", type=int, default=300)
    ap.add_argument("--workers", default="1,2")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "reports.jsonl"
        texts = reports(args.n, seed=1)
        chars = sum(map(len, texts))
        with open(src, "w") as fh:
            for i, t in enumerate(texts):
                fh.write(json.dumps({"id": f"r{i}", "text": t}) + "\n")
        from throughput import medspacy_default

        medspacy = medspacy_default()
        list(medspacy.pipe(texts[:10]))
        sample = texts[: args.sample]
        before = medspacy_rate(medspacy, sample)
        print(f"reports: {args.n:,}  characters: {chars:,}  cores: {os.cpu_count()}")
        print(f"medspaCy default (sample of {args.sample}, 1 process): {before:.1f} reports/s")
        tiny = Path(tmp) / "tiny.jsonl"
        first = first_steady = None
        for workers in (int(w) for w in args.workers.split(",")):
            # start-up (interpreter, imports, each worker building its pipeline): the same command on a
            # few reports; the rate after it is what a long run approaches
            with open(tiny, "w") as fh:
                for i, t in enumerate(texts[: 2 * workers]):
                    fh.write(json.dumps({"id": f"t{i}", "text": t}) + "\n")
            startup, _ = run_batch(tiny, Path(tmp) / f"tiny{workers}.db", workers)
            # with a core to spare, medspaCy's sample also runs beside the batch for as long as it lasts
            beside = Alongside(medspacy, sample) if workers + 1 <= (os.cpu_count() or 1) else None
            seconds, peak_kb = run_batch(src, Path(tmp) / f"out{workers}.db", workers, beside)
            after = medspacy_rate(medspacy, sample)
            base = (before + after) / 2
            print(f"medspaCy default after the run: {after:.1f} reports/s (ratios below use the mean, {base:.1f})")
            before = after
            rate = args.n / seconds
            steady = args.n / max(seconds - startup, 1e-9)
            first, first_steady = first or rate, first_steady or steady
            print(f"workers={workers}: {rate:8.1f} reports/s  {chars / seconds:12,.0f} chars/s  peak RSS {peak_kb / 1024:6.0f} MiB  "
                  f"x{rate / base:.1f} medspaCy default  x{rate / first:.2f} vs 1 worker")
            print(f"           after its {startup:.1f} s start-up: {steady:8.1f} reports/s  "
                  f"x{steady / base:.1f} medspaCy default  x{steady / first_steady:.2f} vs 1 worker")
            if beside is not None:
                print(f"           medspaCy default on the other core during the run: {beside.rate:.1f} reports/s "
                      f"({beside.done:,} reports): x{rate / beside.rate:.1f}, after start-up x{steady / beside.rate:.1f}")


if __name__ == "__main__":
    main()
