"""A speed change must not change results: write every Result as JSON, one line per text, for a fixed
set of texts (gold and sample reports, their all-caps and mixed-case copies, synthetic reports, the
negation items with their concepts), and compare the files of two checkouts (``cmp`` or ``md5sum``).

Run: python bench/same_results.py OUT.jsonl [--synthetic 3000]
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from synth import reports  # noqa: E402

import report_nlp  # noqa: E402


def texts(synthetic: int) -> list[str]:
    gold = [json.loads(line)["text"] for name in ("gold.jsonl", "gold_test.jsonl")
            for line in (ROOT / "corpora" / name).read_text("utf-8").splitlines() if line.strip()]
    mixed = ["".join(c.upper() if i % 3 == 0 else c for i, c in enumerate(t)) for t in gold]
    csv.field_size_limit(10**9)
    with open(ROOT / "samples" / "reports.csv", newline="", encoding="utf-8") as f:
        samples = [row["text"] for row in csv.DictReader(f)]
    return gold + [t.upper() for t in gold] + mixed + reports(synthetic) + samples


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--synthetic", type=int, default=3000)
    args = ap.parse_args()
    n = 0
    with open(args.out, "w", encoding="utf-8") as out:
        for result in report_nlp.analyze_many(texts(args.synthetic)):
            out.write(result.model_dump_json() + "\n")
            n += 1
        for name in ("negation.jsonl", "negation_test.jsonl"):
            for line in (ROOT / "corpora" / name).read_text("utf-8").splitlines():
                if line.strip():
                    item = json.loads(line)
                    out.write(report_nlp.analyze(item["text"], concepts=[item["concept"]]).model_dump_json() + "\n")
                    n += 1
    print(f"{n} results -> {args.out}")


if __name__ == "__main__":
    main()
