"""Weak labels against MetaQA's gold paths: label a sample of dev questions per hop with their brackets and
path column removed (as `kgqa train all --questions` does), and count how often the label's path is the
gold one.

    .venv/bin/python eval/label_accuracy.py --per-hop 2000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kgqa.config import load_settings  # noqa: E402
from kgqa.graph import open_graph  # noqa: E402
from kgqa.linking import NameMatchLinker  # noqa: E402
from kgqa.weak_labels import QARow, label_questions  # noqa: E402

DATA = Path(os.environ.get("KGQA_METAQA_DIR", ROOT.parent / "shared" / "data" / "metaqa"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-hop", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0, help="added to the hop as the sampling seed")
    args = parser.parse_args()
    settings = load_settings(overrides={"llm": "none"})
    graph = open_graph(settings)
    rows, gold = [], []
    for hop in (1, 2, 3):
        lines = (DATA / f"{hop}hop" / "dev.tsv").read_text(encoding="utf-8").splitlines()
        random.Random(hop + args.seed).shuffle(lines)
        for line in lines[:args.per_hop]:
            question, answers, path = line.split("\t")
            rows.append(QARow(question.replace("[", "").replace("]", ""), tuple(answers.split("|"))))
            gold.append((hop, path))
    load = os.getloadavg()
    started = time.perf_counter()
    report = label_questions(graph, rows, 3, linker=NameMatchLinker(graph, cache_dir=settings.cache_dir))
    right, total = Counter(), Counter()
    for label in report.labels:
        hop, path = gold[label.row]
        total[hop] += 1
        right[hop] += label.example.path == path
    print(json.dumps({"per_hop": args.per_hop, "seconds": round(time.perf_counter() - started, 1),
                      "load_average_before": [round(x, 2) for x in load],
                      "ambiguous": sum(1 for label in report.labels if label.ties),
                      "path_accuracy": {f"{hop}-hop": round(100 * right[hop] / total[hop], 2) for hop in sorted(total)},
                      "labelled": {f"{hop}-hop": total[hop] for hop in sorted(total)}}))


if __name__ == "__main__":
    main()
