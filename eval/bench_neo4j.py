"""Neo4j vs the embedded store on MetaQA: load time, per-hop expansion latency and batch throughput.

Loads the bundled MetaQA KB into a Neo4j server under its own label (so the `Entity` graph that
`kgqa --graph bolt://...` reads is left alone; removed afterwards unless --keep), then walks the gold
path from the gold topic entity of MetaQA test questions on both stores, in one run:

Each measurement follows one untimed pass over the same questions, so that Neo4j has planned every
query (a path's query text names its relationship types) and both stores are warm: steady state, as
in a long-running service.

- latency: one question at a time (`expand`: one Cypher query per question), p50 / p95 in ms;
- batch:   all questions of a hop, grouped by path (`expand_many`: many topics per round trip), questions/s;
- paths:   candidate paths within 3 hops for each topic (`reachable_paths_many`), topics/s.

Every Neo4j answer set is checked against the embedded one. Ratios are Neo4j / embedded.

    KGQA_NEO4J_PASSWORD=kgqa-test-password .venv/bin/python eval/bench_neo4j.py --uri bolt://127.0.0.1:7687
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

from kgqa.graph import bundled_graph_file
from kgqa.graph.embedded import EmbeddedGraph
from kgqa.graph.loaders import read_triples
from kgqa.graph.neo4j_load import delete_graph, load_triples
from kgqa.graph.neo4j_store import Neo4jConnection, Neo4jGraph
from kgqa.graph.store import GraphStore
from kgqa.types import parse_path

REPO = Path(__file__).resolve().parents[1]
LABEL = "KgqaBench"


def questions(data: Path, hop: int, n: int, seed: int) -> list[tuple[str, str]]:
    """(gold topic, gold path) of n MetaQA test questions, a fixed random sample."""
    rows = [line.rstrip("\n").split("\t") for line in (data / f"{hop}hop" / "test.tsv").open(encoding="utf-8")]
    picked = random.Random(seed + hop).sample(rows, min(n, len(rows)))
    return [(re.search(r"\[(.+?)\]", q).group(1), p) for q, _, p in picked]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def latency(graph: GraphStore, sample: list[tuple[str, str]]) -> dict[str, float]:
    times = []
    for topic, path in sample:
        started = time.perf_counter()
        graph.expand(topic, parse_path(path))
        times.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": statistics.median(times), "p95_ms": percentile(times, 0.95), "mean_ms": statistics.mean(times)}


def batch(graph: GraphStore, sample: list[tuple[str, str]]) -> tuple[float, dict[int, set[str]]]:
    by_path: dict[str, list[int]] = defaultdict(list)
    for i, (_, path) in enumerate(sample):
        by_path[path].append(i)
    answers: dict[int, set[str]] = {}
    started = time.perf_counter()
    for path, rows in by_path.items():
        for i, expansion in zip(rows, graph.expand_many([sample[i][0] for i in rows], parse_path(path))):
            answers[i] = set(expansion.answers)
    return len(sample) / (time.perf_counter() - started), answers


def paths(graph: GraphStore, topics: list[str], chunk: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(topics), chunk):
        graph.reachable_paths_many(topics[start:start + chunk], 3)
    return len(topics) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uri", default=os.environ.get("KGQA_TEST_NEO4J", "bolt://127.0.0.1:7687"))
    parser.add_argument("--user", default="neo4j")
    parser.add_argument("--questions", type=int, default=300, help="questions per hop")
    parser.add_argument("--latency-sample", type=int, default=100, help="questions per hop timed one at a time")
    parser.add_argument("--path-topics", type=int, default=100, help="topics per hop for reachable_paths")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("KGQA_METAQA_DIR", REPO.parent / "shared/data/metaqa")))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help=f"keep the {LABEL} graph afterwards")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    password = os.environ.get("KGQA_NEO4J_PASSWORD") or os.environ.get("NEO4J_PASSWORD", "")

    report: dict = {"command": "python " + " ".join(sys.argv), "uri": args.uri, "questions_per_hop": args.questions,
                    "machine": f"{platform.machine()}, {os.cpu_count()} cpus, {platform.python_version()}",
                    "load_avg_at_start": os.getloadavg()[0], "hops": {}}
    triples = read_triples(bundled_graph_file(), "pipe")

    started = time.perf_counter()
    embedded = EmbeddedGraph.from_triples(triples, source="metaqa")
    report["embedded_build_s"] = time.perf_counter() - started

    connection = Neo4jConnection(args.uri, args.user, password, timeout=120)
    connection.verify()
    delete_graph(connection, LABEL)
    print(f"loading {len(triples):,} triples into {args.uri} (label {LABEL}) ...", file=sys.stderr)
    summary = load_triples(connection, triples, label=LABEL)
    report["neo4j_load_s"] = summary.seconds
    report["neo4j_reload_s"] = load_triples(connection, triples, label=LABEL).seconds   # idempotent, 0 created
    neo4j = Neo4jGraph(connection, LABEL)
    assert neo4j.stats()["triples"] == len(triples)

    try:
        for hop in (1, 2, 3):
            sample = questions(args.data, hop, args.questions, args.seed)
            timed = sample[:args.latency_sample]
            topics = [t for t, _ in sample[:args.path_topics]]
            for graph in (neo4j, embedded):            # warm-up: every query planned once, caches and JIT warm
                batch(graph, sample)
                latency(graph, timed)
                paths(graph, topics[:8], 64)
            row: dict = {}
            for name, graph in (("neo4j", neo4j), ("embedded", embedded)):
                qps, answers = batch(graph, sample)
                row[name] = {"batch_qps": qps, "paths_topics_per_s": paths(graph, topics, 64),
                             **latency(graph, timed)}
                row[name]["_answers"] = answers
            same = row["neo4j"].pop("_answers") == row["embedded"].pop("_answers")
            row["same_answers"] = same
            row["ratio"] = {"latency_p50": row["neo4j"]["p50_ms"] / row["embedded"]["p50_ms"],
                            "batch_qps": row["neo4j"]["batch_qps"] / row["embedded"]["batch_qps"],
                            "paths_topics_per_s": row["neo4j"]["paths_topics_per_s"] / row["embedded"]["paths_topics_per_s"]}
            report["hops"][hop] = row
            print(f"{hop}-hop done", file=sys.stderr)
    finally:
        if not args.keep:
            delete_graph(connection, LABEL)
        connection.close()

    print(f"MetaQA KB ({len(triples):,} triples): Neo4j load {report['neo4j_load_s']:.1f} s "
          f"(re-load, nothing new: {report['neo4j_reload_s']:.1f} s); embedded CSR build {report['embedded_build_s']:.1f} s\n")
    print("| hop | latency p50 ms neo4j / embedded (×) | p95 ms neo4j / embedded | batch q/s neo4j / embedded (×) "
          "| paths topics/s neo4j / embedded (×) | same answers |")
    print("|---|---|---|---|---|---|")
    for hop, row in report["hops"].items():
        n, e, r = row["neo4j"], row["embedded"], row["ratio"]
        print(f"| {hop} | {n['p50_ms']:.2f} / {e['p50_ms']:.3f} ({r['latency_p50']:.0f}×) | {n['p95_ms']:.2f} / {e['p95_ms']:.3f} "
              f"| {n['batch_qps']:.0f} / {e['batch_qps']:.0f} ({r['batch_qps']:.3f}×) "
              f"| {n['paths_topics_per_s']:.1f} / {e['paths_topics_per_s']:.0f} ({r['paths_topics_per_s']:.3f}×) "
              f"| {'yes' if row['same_answers'] else 'NO'} |")
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
