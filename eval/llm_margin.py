"""How often the retriever is unsure, and how often it is then wrong: the table behind `llm_margin`.

Reads the predictions.jsonl of a `kgqa eval` run made without an LLM (each row keeps the retriever
scores of its two best paths), keeps dev's held-out slice (the retriever never trained on it), and prints, for each margin, the share of questions whose two best paths
score within it (those the LLM would be asked about) and the retriever's path accuracy on them and on
the rest.

Usage:
  KGQA_RERANKER=none kgqa eval metaqa --split dev --limit 2000 --out eval/runs/dev-margins
  .venv/bin/python eval/llm_margin.py eval/runs/dev-margins/predictions.jsonl
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from kgqa.retrieval.data import is_held_out

MARGINS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 2.0)


def main(file: Path) -> None:
    rows = [json.loads(line) for line in file.open(encoding="utf-8")]
    rows = [r for r in rows if len(r.get("path_scores", [])) == 2 and is_held_out(r["question"])]
    if not rows:
        raise SystemExit(f"{file}: no rows with two path scores (run `kgqa eval` without an LLM first)")
    print(f"{len(rows)} held-out questions with two or more candidate paths ({file})")
    print("| margin | asked | path acc. when asked | path acc. when not asked |")
    print("|---|---|---|---|")
    for margin in MARGINS:
        asked = [r for r in rows if r["path_scores"][0] - r["path_scores"][1] < margin]
        rest = [r for r in rows if r["path_scores"][0] - r["path_scores"][1] >= margin]

        def accuracy(group: list[dict]) -> str:
            return f"{100 * sum(r['path'] == r['gold_path'] for r in group) / len(group):.2f}" if group else "-"

        print(f"| {margin} | {100 * len(asked) / len(rows):.2f}% | {accuracy(asked)} | {accuracy(rest)} |")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]))
