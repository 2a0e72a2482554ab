"""PathQuestion end to end, as a user with their own graph: `kgqa train all` from question-answer pairs only,
or from the graph alone.

For each set (PQ-2H, PQ-3H, PQL-2H, PQL-3H) it converts the release (eval/pathquestion.py: the graph as TSV,
questions without paths or brackets), splits the questions 90/10 by a hash of the fact they ask about (so
that the paraphrases of one fact fall on the same side: the test questions are worded differently from any
training question about the same fact), and answers the held-out tenth with the agent: untrained (no
models: what a user gets after `kgqa kg load`), then after each training regime, each in a fresh cache:
`qa` trains with `kgqa train all --questions` on the other nine tenths, `graph` with `kgqa train all` and
no questions (kgqa writes its own from the graph; no PathQuestion question is read). The data is read
from ../shared and never copied into the repo.

    .venv/bin/python eval/pathquestion_train.py --out eval/results/weak-labels/pq-train.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "eval"))

from pathquestion import DATA, convert, machine  # noqa: E402

from kgqa.agent import Agent  # noqa: E402
from kgqa.config import load_settings  # noqa: E402
from kgqa.evaluate import answer_metrics  # noqa: E402


def is_test(fact: str, percent: int = 10) -> bool:
    return int.from_bytes(hashlib.sha256(fact.encode("utf-8")).digest()[:4], "big") % 100 < percent


def hits(kb: Path, cache: Path, questions: list[str], answers: list[tuple[str, ...]]) -> dict:
    settings = load_settings(overrides={"graph": str(kb), "graph_format": "tsv", "cache_dir": str(cache)})
    agent = Agent(settings, many=True)
    started = time.perf_counter()
    results = agent.answer_batch(questions)
    scores = [answer_metrics(r.answer_names, gold) for r, gold in zip(results, answers)]
    first = list({q: i for i, q in reversed(list(enumerate(questions)))}.values())  # a repeated question once
    return {"hits@1": round(100 * sum(s["hits@1"] for s in scores) / len(scores), 2),
            "distinct_questions": len(first),
            "distinct_hits@1": round(100 * sum(scores[i]["hits@1"] for i in first) / len(first), 2),
            "f1": round(100 * sum(s["f1"] for s in scores) / len(scores), 2),
            "answered": sum(bool(r.answers) for r in results), "questions": len(results),
            "seconds": round(time.perf_counter() - started, 1)}


def run_set(name: str, data: Path, work: Path, max_minutes: float, regimes: list[str]) -> dict:
    kb, _, gold = convert(name, data, work)
    facts = [f"{g.topic}#{g.path}#{'|'.join(g.answers)}" for g in gold]  # what the paraphrases share
    train = [g for g, f in zip(gold, facts) if not is_test(f)]
    test = [g for g, f in zip(gold, facts) if is_test(f)]
    train_file = work / f"{name}-train.tsv"
    train_file.write_text("".join(f"{g.question}\t{'|'.join(g.answers)}\n" for g in train), encoding="utf-8")
    questions, answers = [g.question for g in test], [g.answers for g in test]
    out = {"train_questions": len(train), "test_questions": len(test),
           "untrained": hits(kb, work / f"{name}-untrained", questions, answers)}
    for regime in regimes:
        cache = work / f"{name}-{regime}"
        started = time.perf_counter()
        given = ["--questions", str(train_file)] if regime == "qa" else []
        done = subprocess.run([sys.executable, "-m", "kgqa.cli", "train", "all", *given, "--graph", str(kb),
                               "--max-minutes", str(max_minutes)], capture_output=True, text=True, cwd=ROOT,
                              env={**os.environ, "KGQA_CACHE_DIR": str(cache), "KGQA_GRAPH_FORMAT": "tsv"})
        if done.returncode != 0:
            raise SystemExit(f"{name}: kgqa train all ({regime}) failed:\n{done.stderr[-3000:]}")
        out[regime] = {"train_seconds": round(time.perf_counter() - started, 1),
                       "train_log": done.stdout.splitlines()[-3:], **hits(kb, cache, questions, answers)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--sets", nargs="+", default=["PQ-2H", "PQ-3H", "PQL-2H", "PQL-3H"])
    parser.add_argument("--regimes", nargs="+", choices=["qa", "graph"], default=["qa", "graph"])
    parser.add_argument("--max-minutes", type=float, default=15.0,
                        help="time budget of each `kgqa train all` (labelling and the three models)")
    parser.add_argument("--out", type=Path, default=ROOT / "eval" / "results" / "weak-labels" / "pq-train.json")
    parser.add_argument("--work", type=Path, help="keep the converted graphs and trained caches here "
                        "(default: a temporary folder, removed at the end)")
    args = parser.parse_args()
    report = {"command": "python " + " ".join(sys.argv), "machine_before": machine(), "sets": {}}
    with tempfile.TemporaryDirectory() as folder:
        work = args.work or Path(folder)
        work.mkdir(parents=True, exist_ok=True)
        for name in args.sets:
            report["sets"][name] = run_set(name, args.data, work, args.max_minutes, args.regimes)
            print(name, json.dumps(report["sets"][name]), flush=True)
    report["machine_after"] = machine()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
