"""Path recall@1/@5 per hop: the gold topic entity is given, the candidates are the paths the path search scores.

    .venv/bin/python eval/bench_retrieval.py --limit 2000 \
        --model packaged --model trained=$HOME/.cache/kgqa/models/retriever --out eval/runs/retrieval.json
    .venv/bin/python eval/bench_retrieval.py --split dev --model trained=... --beam 0 --beam 3 --beam 5 --beam 10

Each --beam is a beam width of the search (0: keep every partial path, i.e. exhaustive enumeration of the
walkable paths); the default is 0 and the configured `beam_width`. "found" is the share of questions whose
gold path the search scored at all; "paths" the mean number of paths it scored per question.

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
from kgqa.retrieval.metrics import gold_ranks, recall_table
from kgqa.retrieval.model import UNTRAINED_HOP_PENALTY, read_meta
from kgqa.retrieval.paths import PathRanker
from kgqa.retrieval.search import PathSearch


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
    parser.add_argument("--beam", type=int, action="append", default=[], help="beam width (0: exhaustive; repeatable)")
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
        ranker = PathRanker(embedder, settings.cache_dir)
        entry = {"folder": str(folder), "trained": bool(meta), "hop_penalty": own, "beams": {}}
        for beam in sorted(set(args.beam or [0, settings.beam_width])):
            search = PathSearch(graph, ranker, settings.max_hops, beam, settings.relation_shortlist if beam else 0)
            started = time.perf_counter()
            ranks = gold_ranks(search, examples, penalties)
            scored = search.search_many([e.topic for e in examples[:300]],
                                        embedder.embed([e.masked for e in examples[:300]]), None)
            ranker.save()
            entry["beams"][str(beam)] = {
                "seconds": round(time.perf_counter() - started, 1),
                "found": round(100 * float((ranks[own] < 10**9).mean()), 2),
                "paths_per_question": round(sum(map(len, scored)) / max(1, len(scored)), 1),
                "recall": {str(p): recall_table(examples, ranks[p]) for p in penalties}}
            print(f"## {name}, beam {beam or 'exhaustive'}: {entry['beams'][str(beam)]['seconds']} s, gold path "
                  f"scored for {entry['beams'][str(beam)]['found']}%, "
                  f"{entry['beams'][str(beam)]['paths_per_question']} paths per question")
            for penalty in penalties:
                table = entry["beams"][str(beam)]["recall"][str(penalty)]
                print(f"hop penalty {penalty}{' (its own)' if penalty == own else ''}: " + "; ".join(
                    f"{hop if hop == 'all' else hop + '-hop'} R@1 {row['recall@1']:.2f} R@5 {row['recall@5']:.2f} "
                    f"(n={row['questions']})" for hop, row in table.items()))
        search = PathSearch(graph, ranker, settings.max_hops, settings.beam_width, settings.relation_shortlist)
        held_out = meta.get("options", {}).get("hold_out_paths") or []
        if held_out:
            rows = []
            for path in held_out:
                rows += [e for e in everything if e.path == path][:args.held_out_limit]
            held_ranks = gold_ranks(search, rows, [own])[own]
            entry["held_out_paths"] = held_out
            entry["held_out_recall"] = recall_table(rows, held_ranks)
            entry["held_out_recall_per_path"] = {
                path: recall_table([e for e in rows if e.path == path], held_ranks[[e.path == path for e in rows]])["all"]
                for path in held_out}
            ranker.save()
        results["models"][name] = entry
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
