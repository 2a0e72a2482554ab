"""Hits@1 on a random sample of MetaQA dev per hop (dev files are grouped by relation, so `--limit` on them
is not representative), with the paths most often confused: for comparing training regimes and settings
without touching the test split. The models are those of the configured cache (KGQA_CACHE_DIR).

    KGQA_CACHE_DIR=/tmp/regime-c/cache .venv/bin/python eval/dev_sample.py --per-hop 500 300 300
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

from kgqa.agent import Agent  # noqa: E402
from kgqa.config import load_settings  # noqa: E402
from kgqa.evaluate import Benchmark  # noqa: E402

DATA = Path(os.environ.get("KGQA_METAQA_DIR", ROOT.parent / "shared" / "data" / "metaqa"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-hop", type=int, nargs=3, default=[500, 300, 300], metavar=("ONE", "TWO", "THREE"))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, help="write the report here (JSON: Hits@1 and confusions per hop)")
    parser.add_argument("--rows", type=Path, help="write every question's answer and candidate paths here (JSON; it "
                        "holds MetaQA dev questions, so keep it out of the repository)")
    args = parser.parse_args()
    benchmark = Benchmark.load("metaqa", str(DATA))
    agent = Agent(load_settings(), many=True)
    report: dict = {"seed": args.seed, "hops": {}}
    rows = []
    for hop, count in zip((1, 2, 3), args.per_hop):
        examples = benchmark.examples(hop, "dev")
        random.Random(args.seed).shuffle(examples)
        examples = examples[:count]
        started = time.perf_counter()
        results = agent.answer_batch([e.question for e in examples])
        right, confused = 0, Counter()
        for example, result in zip(examples, results):
            ok = bool(result.answer_names) and result.answer_names[0] in example.answers
            right += ok
            if not ok:
                confused[f"{example.path} -> {result.path}"] += 1
            rows.append({"hop": hop, "question": example.question, "gold": example.path, "topic": example.topic,
                         "entity": result.entity, "path": result.path, "right": ok,
                         "candidates": result.path_candidates[:6]})
        report["hops"][hop] = {"questions": len(examples), "hits@1": round(100 * right / len(examples), 2),
                               "seconds": round(time.perf_counter() - started, 1),
                               "confused": dict(confused.most_common(8))}
        print(f"{hop}-hop: Hits@1 {report['hops'][hop]['hits@1']:.2f} of {len(examples)}")
        for pair, n in confused.most_common(8):
            print(f"   {n:4d}  {pair}")
    report["load_average"] = os.getloadavg()
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if args.rows:
        args.rows.write_text(json.dumps(rows, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
