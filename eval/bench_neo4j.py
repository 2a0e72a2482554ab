"""Neo4j vs the embedded store on MetaQA: load time, per-hop expansion latency, batch throughput and next steps.

Loads the bundled MetaQA KB into a Neo4j server under its own label (so the `Entity` graph that
`kgqa --graph bolt://...` reads is left alone; removed afterwards unless --keep), then walks the gold
path from the gold topic entity of MetaQA test questions on both stores, in one run:

Each measurement follows one untimed pass over the same questions, so that Neo4j has planned every
query (a path's query text names its relationship types) and both stores are warm: steady state, as
in a long-running service.

- latency: one question at a time (`expand`: one Cypher query per question), p50 / p95 in ms;
- batch:   all questions of a hop, grouped by path (`expand_many`: many topics per round trip), questions/s;
- beam:    the three `next_steps_many` calls of a full 3-hop beam from the topics (the steps of every
           topic, then of every 1-step prefix so found, then of every 2-step one), ms per call.

Every Neo4j answer set and step list is checked against the embedded one. Ratios are Neo4j / embedded.

With `--scale FILE` (e.g. a graph from eval/scalegen.py) it also measures bulk loading that file, in
triples/s: over Bolt (`load_triples`, CREATE into an empty label), and with the offline importer
(`write_import_files`, then `neo4j-admin database import full` from services/neo4j/lib into a fresh
data folder, then a second server started on it with services/neo4j/start.sh, then the constraint
and index), each phase timed.

    KGQA_NEO4J_PASSWORD=kgqa-test-password .venv/bin/python eval/bench_neo4j.py --uri bolt://127.0.0.1:7687
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from kgqa.graph import bundled_graph_file
from kgqa.graph.embedded import EmbeddedGraph
from kgqa.graph.loaders import read_triples
from kgqa.graph.neo4j_load import delete_graph, ensure_schema, load_triples, write_import_files
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


def beam(graph: GraphStore, topics: list[str], hops: int = 3) -> tuple[list[float], list[int], list]:
    """The `next_steps_many` calls of a full beam: ms and rows per call, and everything found."""
    rows: list[tuple[str, tuple]] = [(t, ()) for t in topics]
    times, sizes, found = [], [], []
    for _ in range(hops):
        started = time.perf_counter()
        steps = graph.next_steps_many([t for t, _ in rows], [p for _, p in rows])
        times.append((time.perf_counter() - started) * 1000)
        sizes.append(len(rows))
        found.append(steps)
        rows = [(t, p + (step,)) for (t, p), s in zip(rows, steps) for step in s]
    return times, sizes, found


def admin_import(triples: list[tuple[str, str, str]], password: str) -> dict[str, float]:
    """Offline import into a fresh data folder, then a second server on it; seconds per phase."""
    work = Path(tempfile.mkdtemp(prefix="kgqa-import-"))
    data, home = work / "data", work / "home"
    (home / "conf").mkdir(parents=True)
    (home / "conf" / "neo4j.conf").write_text(f"server.directories.data={data}\nserver.directories.logs={data / 'logs'}\n")
    times: dict[str, float] = {}
    started = time.perf_counter()
    entities, relations = write_import_files(triples, work / "csv")
    times["write_csv_s"] = time.perf_counter() - started
    started = time.perf_counter()
    subprocess.run(["java", "-Xmx1g", "-cp", str(REPO / "services/neo4j/lib/*"), "org.neo4j.cli.AdminTool",
                    "database", "import", "full", f"--nodes={LABEL}={entities}", f"--relationships={relations}",
                    "--threads=2", "--max-off-heap-memory=1g",
                    f"--report-file={work / 'import.report'}", "neo4j"], check=True, capture_output=True,
                   env={**os.environ, "NEO4J_HOME": str(home), "NEO4J_CONF": str(home / "conf")})
    times["import_tool_s"] = time.perf_counter() - started
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "NEO4J_PORT": str(port), "NEO4J_DATA": str(data), "NEO4J_PASSWORD": password,
           "NEO4J_PYTHON": sys.executable, "NEO4J_START_TIMEOUT": "300"}
    started = time.perf_counter()
    subprocess.run(["bash", "services/neo4j/start.sh"], cwd=REPO, env=env, check=True, capture_output=True)
    times["server_start_s"] = time.perf_counter() - started
    try:
        connection = Neo4jConnection(f"bolt://127.0.0.1:{port}", "neo4j", password, timeout=None)
        started = time.perf_counter()
        ensure_schema(connection, LABEL)
        times["schema_s"] = time.perf_counter() - started
        assert Neo4jGraph(connection, LABEL).stats()["triples"] == len(triples)
        connection.close()
    finally:
        subprocess.run(["bash", "services/neo4j/stop.sh"], cwd=REPO, env=env, capture_output=True)
        (REPO / "services/neo4j" / f"neo4j-{port}.log").unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)
    return times


def scale_load(connection: Neo4jConnection, path: Path, password: str) -> dict:
    """Bulk-load a big triples file both ways; triples/s (the file is read once, not counted)."""
    triples = read_triples(path)
    report: dict = {"file": str(path), "triples": len(triples)}
    delete_graph(connection, LABEL)
    print(f"bulk load over Bolt: {len(triples):,} triples ...", file=sys.stderr)
    summary = load_triples(connection, triples, label=LABEL)
    report["bolt"] = {"method": summary.method, "seconds": summary.seconds, "triples_per_s": len(triples) / summary.seconds}
    delete_graph(connection, LABEL)
    print("offline import ...", file=sys.stderr)
    phases = admin_import(triples, password)
    total = sum(phases.values())
    report["import"] = {**phases, "seconds": total, "triples_per_s": len(triples) / total,
                        "tool_only_triples_per_s": len(triples) / phases["import_tool_s"]}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uri", default=os.environ.get("KGQA_TEST_NEO4J", "bolt://127.0.0.1:7687"))
    parser.add_argument("--user", default="neo4j")
    parser.add_argument("--questions", type=int, default=300, help="questions per hop")
    parser.add_argument("--latency-sample", type=int, default=100, help="questions per hop timed one at a time")
    parser.add_argument("--beam-topics", type=int, default=40, help="topics per hop whose 3-hop beam is listed")
    parser.add_argument("--scale", type=Path, help="also bulk-load this triples file both ways (triples/s)")
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
    report["neo4j_load_method"] = summary.method
    report["neo4j_reload_s"] = load_triples(connection, triples, label=LABEL).seconds   # MERGE, 0 created
    neo4j = Neo4jGraph(connection, LABEL)
    assert neo4j.stats()["triples"] == len(triples)

    try:
        for hop in (1, 2, 3):
            sample = questions(args.data, hop, args.questions, args.seed)
            timed = sample[:args.latency_sample]
            topics = [t for t, _ in sample[:args.beam_topics]]
            for graph in (neo4j, embedded):            # warm-up: every query planned once, caches and JIT warm
                batch(graph, sample)
                latency(graph, timed)
                beam(graph, topics)
            row: dict = {}
            found = {}
            for name, graph in (("neo4j", neo4j), ("embedded", embedded)):
                qps, answers = batch(graph, sample)
                beam_ms, beam_rows, found[name] = beam(graph, topics)
                row[name] = {"batch_qps": qps, "beam_ms": beam_ms, "beam_rows": beam_rows, **latency(graph, timed)}
                row[name]["_answers"] = answers
            same = row["neo4j"].pop("_answers") == row["embedded"].pop("_answers")
            row["same_answers"] = same and found["neo4j"] == found["embedded"]
            row["ratio"] = {"latency_p50": row["neo4j"]["p50_ms"] / row["embedded"]["p50_ms"],
                            "batch_qps": row["neo4j"]["batch_qps"] / row["embedded"]["batch_qps"],
                            "beam_ms": sum(row["neo4j"]["beam_ms"]) / sum(row["embedded"]["beam_ms"])}
            report["hops"][hop] = row
            print(f"{hop}-hop done", file=sys.stderr)
        if args.scale:
            delete_graph(connection, LABEL)
            report["scale"] = scale_load(connection, args.scale, password)
    finally:
        if not args.keep:
            delete_graph(connection, LABEL)
        connection.close()

    print(f"MetaQA KB ({len(triples):,} triples): Neo4j load {report['neo4j_load_s']:.1f} s "
          f"(re-load, nothing new: {report['neo4j_reload_s']:.1f} s); embedded CSR build {report['embedded_build_s']:.1f} s\n")
    print("| hop | latency p50 ms neo4j / embedded (×) | p95 ms neo4j / embedded | batch q/s neo4j / embedded (×) "
          "| beam: rows per call | beam ms per call neo4j | beam ms per call embedded | same answers and steps |")
    print("|---|---|---|---|---|---|---|---|")
    for hop, row in report["hops"].items():
        n, e, r = row["neo4j"], row["embedded"], row["ratio"]
        print(f"| {hop} | {n['p50_ms']:.2f} / {e['p50_ms']:.3f} ({r['latency_p50']:.0f}×) | {n['p95_ms']:.2f} / {e['p95_ms']:.3f} "
              f"| {n['batch_qps']:.0f} / {e['batch_qps']:.0f} ({r['batch_qps']:.3f}×) "
              f"| {' / '.join(map(str, n['beam_rows']))} | {' / '.join(f'{t:.0f}' for t in n['beam_ms'])} "
              f"| {' / '.join(f'{t:.1f}' for t in e['beam_ms'])} | {'yes' if row['same_answers'] else 'NO'} |")
    if "scale" in report:
        scale = report["scale"]
        print(f"\nbulk load of {scale['file']} ({scale['triples']:,} triples): over Bolt ({scale['bolt']['method']}) "
              f"{scale['bolt']['seconds']:.0f} s = {scale['bolt']['triples_per_s']:,.0f} triples/s; offline import "
              f"{scale['import']['seconds']:.0f} s = {scale['import']['triples_per_s']:,.0f} triples/s "
              f"({', '.join(f'{k} {v:.1f}' for k, v in scale['import'].items() if k.endswith('_s') and 'per_s' not in k and k != 'seconds')}; "
              f"the import tool alone {scale['import']['tool_only_triples_per_s']:,.0f} triples/s)")
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
