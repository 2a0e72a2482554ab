"""Paraphrase robustness on MetaQA: the machine paraphrases (`1hop/ntm_dev.tsv`) of the held-out dev questions.

Training never reads these: `kgqa.retrieval.data.training_split` trains on the paraphrases of training
questions only, and the held-out slice (10% of dev, by a hash of the original question) is kept for model
selection. The agent answers each paraphrase with its own linking, as a user's question:

    .venv/bin/python eval/paraphrases.py --out eval/results/paraphrases/ntm-held-out.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kgqa.agent import Agent  # noqa: E402
from kgqa.config import load_settings  # noqa: E402
from kgqa.evaluate import answer_metrics, environment  # noqa: E402
from kgqa.model_store import trained_kinds  # noqa: E402
from kgqa.retrieval.data import held_out_paraphrases  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "eval" / "results" / "paraphrases" / "ntm-held-out.json")
    args = parser.parse_args()
    examples = held_out_paraphrases("metaqa", "dev")
    agent = Agent(load_settings(), many=True)
    load = os.getloadavg()
    started = time.perf_counter()
    results = agent.answer_batch([e.question for e in examples])
    seconds = time.perf_counter() - started
    scores = [answer_metrics(r.answer_names, e.answers) for r, e in zip(results, examples)]
    wrong = [{"question": e.question, "gold_path": e.path, "path": r.path, "topic": e.topic, "entity": r.entity}
             for e, r, s in zip(examples, results, scores) if not s["hits@1"]]
    report = {"command": "python " + " ".join(sys.argv), "questions": len(examples),
              "hits@1": round(100 * sum(s["hits@1"] for s in scores) / len(scores), 2),
              "f1": round(100 * sum(s["f1"] for s in scores) / len(scores), 2),
              "topic_accuracy": round(100 * sum(r.entity == e.topic for r, e in zip(results, examples)) / len(examples), 2),
              "path_accuracy": round(100 * sum(r.path == e.path for r, e in zip(results, examples)) / len(examples), 2),
              "models": trained_kinds(agent.settings, agent.graph), "seconds": round(seconds, 1),
              "load_average_before": [round(x, 2) for x in load], "environment": environment(), "misses": wrong[:100]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "misses"}))


if __name__ == "__main__":
    main()
