"""Speed benchmark of the embedded store and the CLI (not a test: numbers go to eval/README.md).

Reports: expansion latency per hop on the full MetaQA KB (gold topic + gold path of test questions,
one topic at a time and batched), cold and warm start of `kgqa ask`, and `kgqa batch` throughput.

    .venv/bin/python eval/bench_speed.py [--questions 300] [--batch 2000] [--out eval/results/speed.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kgqa.evaluate import Benchmark, environment, percentile
from kgqa.graph import bundled_graph_file
from kgqa.graph.embedded import EmbeddedGraph
from kgqa.types import parse_path


def expansion_latency(graph: EmbeddedGraph, bench: Benchmark, hop: int, n: int) -> dict[str, float]:
    examples = bench.examples(hop, "test", n)
    singles = []
    for example in examples:
        started = time.perf_counter()
        graph.expand(example.topic, parse_path(example.path))
        singles.append((time.perf_counter() - started) * 1e6)
    by_path: dict[str, list[str]] = {}
    for example in examples:
        by_path.setdefault(example.path, []).append(example.topic)
    started = time.perf_counter()
    for path, topics in by_path.items():
        graph.expand_many(topics, parse_path(path))
    batched = (time.perf_counter() - started) * 1e6 / len(examples)
    return {"topics": len(examples), "single_p50_us": round(percentile(singles, 50), 1),
            "single_p95_us": round(percentile(singles, 95), 1), "single_mean_us": round(statistics.mean(singles), 1),
            "batched_mean_us_per_topic": round(batched, 1)}


def run_cli(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "kgqa.cli", *args], env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=300, help="test questions per hop for expansion latency")
    parser.add_argument("--batch", type=int, default=2000, help="questions for the batch throughput run")
    parser.add_argument("--out", type=Path, default=Path("eval/results/speed.json"))
    args = parser.parse_args()
    bench = Benchmark.load("metaqa")
    report: dict = {"command": "python eval/bench_speed.py " + " ".join(sys.argv[1:]), "environment": environment()}

    with tempfile.TemporaryDirectory() as cache:
        started = time.perf_counter()
        EmbeddedGraph.from_file(bundled_graph_file(), "pipe", cache_dir=Path(cache))
        report["graph_build_s"] = round(time.perf_counter() - started, 3)
        started = time.perf_counter()
        graph = EmbeddedGraph.from_file(bundled_graph_file(), "pipe", cache_dir=Path(cache))
        report["graph_load_cached_s"] = round(time.perf_counter() - started, 3)
    report["expansion"] = {str(h): expansion_latency(graph, bench, h, args.questions) for h in bench.hops}

    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "KGQA_CACHE_DIR": cache}
        question = ["ask", "who directed Kismet"]
        report["ask_cold_s"] = round(run_cli(question, env), 2)
        warm = [run_cli(question, env) for _ in range(3)]
        report["ask_warm_s"] = round(statistics.median(warm), 2)

        lines = []
        for hop in bench.hops:
            lines += [e.question for e in bench.examples(hop, "test", args.batch // len(bench.hops))]
        src, out = Path(cache) / "questions.txt", Path(cache) / "answers.jsonl"
        src.write_text("\n".join(lines) + "\n")
        seconds = run_cli(["batch", str(src), "-o", str(out)], env)
        report["batch"] = {"questions": len(lines), "seconds": round(seconds, 2),
                           "questions_per_s": round(len(lines) / seconds, 1),
                           "note": "whole CLI run, model load included"}

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
