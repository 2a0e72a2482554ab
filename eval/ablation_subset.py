"""Hits@1, F1 and LLM calls per hop on the first N test questions of each hop, from kgqa eval predictions.

Full runs write their predictions in test-file order, so the first N rows of each hop of a full run are
exactly the questions a `--limit N` run answers; this puts such runs side by side.

Usage:
  .venv/bin/python eval/ablation_subset.py 1000 NAME=eval/results/RUN [NAME=eval/results/RUN ...]
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path


def subset_scores(run: Path, limit: int) -> dict[int, dict[str, float]]:
    rows: dict[int, list[dict]] = defaultdict(list)
    with (run / "predictions.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if len(rows[row["hop"]]) < limit:
                rows[row["hop"]].append(row)
    return {hop: {"questions": len(r), "hits@1": 100 * sum(x["hits@1"] for x in r) / len(r),
                  "f1": 100 * sum(x["f1"] for x in r) / len(r),
                  "llm_calls": sum(x.get("llm_calls", 0) for x in r) / len(r)}
            for hop, r in sorted(rows.items())}


def main(limit: int, runs: list[tuple[str, Path]]) -> None:
    print(f"First {limit} test questions of each hop")
    print("| stages | 1-hop Hits@1 | 1-hop F1 | 2-hop Hits@1 | 2-hop F1 | 3-hop Hits@1 | 3-hop F1 | LLM calls / q |")
    print("|---|---|---|---|---|---|---|---|")
    for name, run in runs:
        scores = subset_scores(run, limit)
        cells = " | ".join(f"{scores[h]['hits@1']:.2f} | {scores[h]['f1']:.2f}" for h in sorted(scores))
        calls = sum(s["llm_calls"] * s["questions"] for s in scores.values()) / sum(s["questions"] for s in scores.values())
        print(f"| {name} | {cells} | {calls:.4f} |")


if __name__ == "__main__":
    if len(sys.argv) < 3 or not sys.argv[1].isdigit():
        raise SystemExit(__doc__)
    main(int(sys.argv[1]), [(a.split("=", 1)[0], Path(a.split("=", 1)[1])) for a in sys.argv[2:]])
