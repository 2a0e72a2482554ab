"""What limits 1-hop Hits@1: films that share a title are one node in the MetaQA graph.

"who acted in the movie The 39 Steps" reaches the casts of the 1935, 1959 and 2008 films, because the KB
names them alike, while the gold answers are one film's cast. Reads the predictions.jsonl of a
`kgqa eval` run and reports, for 1-hop questions whose walked path is the gold path:
  - how many reach answers outside the gold set;
  - Hits@1 under several orders of the answers (by name, by degree, by position in the KB file);
  - the Hits@1 expected from an order that cannot tell the films apart (|gold ∩ answers| / |answers|).

Usage:
  .venv/bin/python eval/title_ambiguity.py eval/results/retrieval-only-test/predictions.jsonl
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

from kgqa.config import load_settings
from kgqa.graph import bundled_graph_file, open_graph
from kgqa.types import parse_path


def main(file: Path) -> None:
    every = [json.loads(line) for line in file.open(encoding="utf-8")]
    every = [r for r in every if r["hop"] == 1]
    rows = [r for r in every if r["answers"]]  # unanswered questions count as misses below
    if not rows:
        raise SystemExit(f"{file}: no answered 1-hop questions")
    graph = open_graph(load_settings())
    line_of: dict[tuple[str, str, str], int] = {}
    with gzip.open(bundled_graph_file(), "rt", encoding="utf-8") as handle:
        for k, line in enumerate(handle):
            s, r, o = line.rstrip("\n").split("|")
            line_of.setdefault((s, r, o), k)

    def kb_position(row: dict, answer: str) -> int:
        step = parse_path(row["path"])[0]
        triple = (answer, step.relation, row["entity"]) if step.inverse else (row["entity"], step.relation, answer)
        return line_of.get(triple, 1 << 30)

    orders = {"by name (the agent's order)": lambda row, a: a,
              "by degree, highest first": lambda row, a: -graph.degree(a),
              "by degree, lowest first": lambda row, a: graph.degree(a),
              "by line in the KB file": kb_position}
    n = len(every)
    on_gold_path = [r for r in rows if r["path"] == r["gold_path"]]
    extra = [r for r in on_gold_path if set(r["answers"]) - set(r["gold"])]
    print(f"{n} 1-hop questions, {len(rows)} answered, {len(on_gold_path)} on the gold path; {len(extra)} of those "
          f"reach answers outside the gold set ({100 * len(extra) / n:.2f}%)")
    print("| answer order | Hits@1 |")
    print("|---|---|")
    for name, key in orders.items():
        hits = sum(min(r["answers"], key=lambda a, r=r: (key(r, a), a)) in r["gold"] for r in rows)
        print(f"| {name} | {100 * hits / n:.2f} |")
    expected = sum(len(set(r["answers"]) & set(r["gold"])) / len(r["answers"]) for r in rows)
    print(f"| expected, blind to which film is meant | {100 * expected / n:.2f} |")
    print("(the answer lists in predictions.jsonl are cut at 20 names)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]))
