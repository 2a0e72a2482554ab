"""Path-choice accuracy of the LLM vs the retriever's top path on held-out MetaQA dev.

Held out: every 97th question of the last 10% of each dev file (the few-shot pool is built from the first
90%), gold topic entities. Used to choose the path-choice prompt; test is never read.

    .venv/bin/python eval/bench_llm_choice.py [--llm embedded] [--per-hop 20]
"""

from __future__ import annotations

import argparse
import time

from kgqa.agent import Agent
from kgqa.config import load_settings
from kgqa.evaluate import Benchmark


def held_out(bench: Benchmark, hop: int, n: int) -> list[tuple[str, str, str]]:
    lines = (bench.data_dir / f"{hop}hop" / "dev.tsv").read_text(encoding="utf-8").splitlines()
    rows = []
    for line in lines[int(len(lines) * 0.9):][::97][:n]:
        marked, _answers, path = line.split("\t")
        rows.append((marked.replace("[", "").replace("]", ""), marked.split("[")[1].split("]")[0], path))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llm", default="embedded")
    parser.add_argument("--per-hop", type=int, default=20)
    args = parser.parse_args()
    agent = Agent(load_settings(overrides={"llm": args.llm, "reranker": "none"}))
    bench = Benchmark.load("metaqa")
    for hop in (1, 2, 3):
        rows = held_out(bench, hop, args.per_hop)
        started = time.perf_counter()
        results = agent.answer_batch([q for q, _, _ in rows], [t for _, t, _ in rows])
        n = len(rows)
        chosen = sum(r.path == gold for r, (_, _, gold) in zip(results, rows)) / n
        top = sum(bool(r.path_candidates) and r.path_candidates[0]["path"] == gold
                  for r, (_, _, gold) in zip(results, rows)) / n
        within = sum(any(c["path"] == gold for c in r.path_candidates) for r, (_, _, gold) in zip(results, rows)) / n
        fallbacks = sum(any(c.get("llm_fallback") for c in r.path_candidates) for r in results)
        tokens = sum(r.prompt_tokens for r in results) / n
        print(f"hop {hop}: {n} questions; path accuracy LLM {chosen:.2f}, retriever top {top:.2f}, gold in top-k "
              f"{within:.2f}; fallbacks {fallbacks}; prompt tokens {tokens:.0f}; {time.perf_counter() - started:.0f} s",
              flush=True)


if __name__ == "__main__":
    main()
