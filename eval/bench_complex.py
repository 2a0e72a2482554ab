"""The agent on the complex-question test set (eval/data/complex/test.jsonl, see eval/complex.md): per-kind
accuracy (Hits@1 and F1 for sets, exact for counts and yes/no), the kind the planner chose, and latency per
kind, with the agent's own linking, on the configured graph (the bundled one, or `--graph bolt://...`: a
Neo4j server holding the bundled graph, answered with the bundled graph's conventions and trained models).

    .venv/bin/python eval/bench_complex.py --out eval/results/complex/embedded.json
    KGQA_NEO4J_PASSWORD=... .venv/bin/python eval/bench_complex.py --graph bolt://127.0.0.1:7687 \\
        --out eval/results/complex/neo4j.json
    .venv/bin/python eval/bench_complex.py --llm embedded --per-kind 15 --out eval/results/complex/embedded-llm.json
    .venv/bin/python eval/bench_complex.py --data eval/data/complex/dev.jsonl --out /tmp/dev.json   # tune here
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "eval"))

from complex import load, score  # noqa: E402

from kgqa.agent import Agent  # noqa: E402
from kgqa.config import load_settings  # noqa: E402
from kgqa.evaluate import environment, percentile  # noqa: E402
from kgqa.graph import open_graph  # noqa: E402
from kgqa.model_store import graph_models_dir  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graph", default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "eval" / "results" / "complex" / "embedded.json")
    parser.add_argument("--data", type=Path, default=None, help="question set (default: the test set)")
    parser.add_argument("--llm", default=None, help="plan with this LLM (embedded, or a server URL)")
    parser.add_argument("--per-kind", type=int, default=None, help="only the first N questions of each kind")
    args = parser.parse_args()
    records = load(args.data) if args.data else load()
    if args.per_kind:
        taken: Counter = Counter()
        records = [r for r in records if (taken.update([r["kind"]]) or taken[r["kind"]] <= args.per_kind)]
    overrides = ({"graph": args.graph} if args.graph else {}) | ({"llm": args.llm} if args.llm else {})
    if args.graph:  # the bundled graph held by another store: its conventions and its trained models
        bundled = load_settings(overrides={"llm": "none"})
        models = graph_models_dir(bundled, open_graph(bundled))
        overrides |= {"walk_through_topic": bundled.walk_through_topic, "topic_as_answer": bundled.topic_as_answer,
                      "relation_phrases": bundled.relation_phrases}
        overrides |= {key: str(models / folder) for key, folder in
                      (("linker", "linker"), ("reranker", "reranker"), ("embedder", "retriever"))
                      if (models / folder / "model.safetensors").exists()}
    settings = load_settings(overrides=overrides or None)
    agent = Agent(settings)
    agent.answer(records[0]["question"])  # warm
    load_before = os.getloadavg()
    results, ms = [], defaultdict(list)
    for record in records:  # one at a time, as `kgqa ask` and chat answer
        started = time.perf_counter()
        results.append(agent.answer(record["question"]))
        ms[record["kind"]].append((time.perf_counter() - started) * 1000)
    predictions = [{"answers": r.answer_names, "count": r.count, "yes": r.yes} for r in results]
    report = {"command": "python " + " ".join(sys.argv), "graph": args.graph or "metaqa (embedded)",
              "scores": score(records, predictions),
              "kind_chosen": {kind: dict(Counter(r.kind for r, g in zip(results, records) if g["kind"] == kind))
                              for kind in sorted({g["kind"] for g in records})},
              "latency_ms": {kind: {"p50": round(percentile(v, 50), 1), "p95": round(percentile(v, 95), 1)}
                             for kind, v in sorted(ms.items())},
              "planned_by": {kind: dict(Counter(r.planned_by.split(" (")[0] for r, g in zip(results, records)
                                                 if g["kind"] == kind)) for kind in sorted({g["kind"] for g in records})},
              "llm_calls": sum(r.llm_calls for r in results),
              "load_average_before": [round(x, 2) for x in load_before],
              "load_average_after": [round(x, 2) for x in os.getloadavg()], "environment": environment(),
              "answers": [{"question": g["question"], "kind": g["kind"], "chosen": r.kind, "program": r.program,
                           "planned_by": r.planned_by,
                           "answers": r.answer_names[:10], "count": r.count, "yes": r.yes}
                          for g, r in zip(records, results)]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps({k: report[k] for k in ("scores", "kind_chosen", "planned_by", "latency_ms")}, indent=1))


if __name__ == "__main__":
    main()
