"""Path recall@1/@5 per hop: the gold topic entity is given, the candidates are the paths reachable from it.

    .venv/bin/python eval/bench_retrieval.py --limit 2000 \
        --model packaged --model trained=$HOME/.cache/kgqa/models/retriever --out eval/runs/retrieval.json

Each --model is NAME=DIR (or `packaged`, the all-MiniLM-L6-v2 the package ships). A model is scored
with the hop penalty stored in its kgqa_retriever.json (0.1 when it has none) and with the penalties
given by --penalty. A model trained with --hold-out-path is also scored on every test question
(up to --held-out-limit per path) whose gold path it never saw.
Test is evaluation only: nothing here is tuned on it.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from kgqa.config import load_settings
from kgqa.encoder import default_model_path, load_embedder
from kgqa.graph import open_graph
from kgqa.retrieval.data import load_benchmark_examples
from kgqa.retrieval.index import model_fingerprint
from kgqa.retrieval.metrics import gold_ranks, recall_table
from kgqa.retrieval.model import UNTRAINED_HOP_PENALTY, read_meta
from kgqa.retrieval.paths import PathRanker


def parse_model(text: str) -> tuple[str, Path]:
    if text == "packaged":
        return "packaged", default_model_path()
    name, _, folder = text.partition("=")
    if not folder:
        raise SystemExit(f"--model {text!r}: expected NAME=DIR or 'packaged'")
    return name, Path(folder).expanduser()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", default=[], help="NAME=DIR or 'packaged' (repeatable)")
    parser.add_argument("--benchmark", default="metaqa")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=2000, help="questions per hop (the first ones of the file)")
    parser.add_argument("--held-out-limit", type=int, default=500, help="test questions per held-out path")
    parser.add_argument("--penalty", type=float, action="append", default=[], help="also score with this hop penalty")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    models = [parse_model(m) for m in (args.model or ["packaged"])]

    settings = load_settings()
    graph = open_graph(settings)
    from kgqa.evaluate import Benchmark

    bench = Benchmark.load(args.benchmark)
    examples = []
    for hop in bench.hops:
        examples += load_benchmark_examples(args.benchmark, args.split, hops=[hop])[:args.limit]
    everything = load_benchmark_examples(args.benchmark, args.split)

    results: dict = {"command": "python " + " ".join(sys.argv), "split": args.split, "limit_per_hop": args.limit,
                     "graph": settings.graph, "python": platform.python_version(),
                     "date": time.strftime("%Y-%m-%d %H:%M:%S"), "models": {}}
    for name, folder in models:
        meta = read_meta(folder)
        own = float(meta.get("hop_penalty", UNTRAINED_HOP_PENALTY))
        penalties = sorted({own, *args.penalty})
        embedder = load_embedder(str(folder))
        ranker = PathRanker(embedder, cache_file=settings.cache_dir / "paths" / f"{model_fingerprint(folder)}.npz")
        started = time.perf_counter()
        ranks = gold_ranks(ranker, graph, examples, penalties, settings.max_hops)
        ranker.save()
        entry = {"folder": str(folder), "trained": bool(meta), "hop_penalty": own,
                 "seconds": round(time.perf_counter() - started, 1),
                 "recall": {str(p): recall_table(examples, ranks[p]) for p in penalties}}
        held_out = meta.get("options", {}).get("hold_out_paths") or []
        if held_out:
            rows = []
            for path in held_out:
                rows += [e for e in everything if e.path == path][:args.held_out_limit]
            held_ranks = gold_ranks(ranker, graph, rows, [own], settings.max_hops)[own]
            entry["held_out_paths"] = held_out
            entry["held_out_recall"] = recall_table(rows, held_ranks)
            entry["held_out_recall_per_path"] = {
                path: recall_table([e for e in rows if e.path == path], held_ranks[[e.path == path for e in rows]])["all"]
                for path in held_out}
            ranker.save()
        results["models"][name] = entry
        print(f"## {name} ({folder}), {entry['seconds']} s")
        for penalty in penalties:
            table = entry["recall"][str(penalty)]
            print(f"hop penalty {penalty}{' (its own)' if penalty == own else ''}: " + "; ".join(
                f"{hop if hop == 'all' else hop + '-hop'} R@1 {row['recall@1']:.2f} R@5 {row['recall@5']:.2f} (n={row['questions']})"
                for hop, row in table.items()))
        if held_out:
            row = entry["held_out_recall"]["all"]
            print(f"paths never trained on {held_out}: R@1 {row['recall@1']:.2f} R@5 {row['recall@5']:.2f} "
                  f"(n={row['questions']}); per path {json.dumps(entry['held_out_recall_per_path'])}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
