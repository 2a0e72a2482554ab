"""Reranker throughput: candidates (question x path pairs) scored per second, per backend.

    .venv/bin/python eval/bench_rerank.py [--model DIR] [--pairs 2000] [--json]

Backends: numpy on the CPU (what the CLI uses), torch fp32 on the CPU, and, when CUDA is present, torch on
the GPU in bf16 with SDPA attention and torch.compile (padding-aware: pairs sorted by length). The pairs
are MetaQA held-out dev questions (topic masked) against paths reachable from their topic entity, the
mix the agent scores. Without a trained reranker (default: <cache>/models/reranker) an untrained model
with the same shape (--layers of the packaged MiniLM) is timed: speed does not depend on the weights.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kgqa.config import load_settings  # noqa: E402
from kgqa.rerank import NumpyCrossEncoder, TorchCrossEncoder, reranker_dir  # noqa: E402


def benchmark_pairs(count: int) -> tuple[list[str], list[str]]:
    """`count` (masked question, path text) pairs from held-out dev, a few paths per question."""
    from kgqa.graph import bundled_graph_file
    from kgqa.graph.embedded import EmbeddedGraph
    from kgqa.rerank.train import make_lists
    from kgqa.retrieval.data import load_benchmark_examples, split_dev

    _, held = split_dev(load_benchmark_examples("metaqa", "dev"))
    graph = EmbeddedGraph.from_file(bundled_graph_file(), "pipe", cache_dir=load_settings().cache_dir)
    questions, texts = [], []
    for example in make_lists(graph, held[: count // 4 + 10], negatives=5, seed=0):
        for text in example.texts:
            questions.append(example.question)
            texts.append(text)
    return questions[:count], texts[:count]


def timed(scorer, questions: list[str], texts: list[str], repeats: int) -> float:
    """Best pairs/second over `repeats` runs (after one warm-up run)."""
    scorer.score(questions[:64], texts[:64])
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        scorer.score(questions, texts)
        best = max(best, len(questions) / (time.perf_counter() - started))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="A reranker folder (default: the trained one).")
    parser.add_argument("--layers", type=int, default=3, help="Layers of the untrained stand-in model.")
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--gpu-pairs", type=int, default=50000, help="Pairs for the GPU run (repeats the CPU set).")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import torch

    from kgqa.graph import open_graph

    settings = load_settings()
    model_dir = args.model or reranker_dir(settings, open_graph(settings))
    scratch = None
    if not (model_dir / "model.safetensors").exists():
        from kgqa.encoder import default_model_path
        from kgqa.rerank.torch_model import new_cross_encoder

        scratch = tempfile.TemporaryDirectory()
        model, tokenizer = new_cross_encoder(default_model_path(), args.layers)
        model.save_pretrained(scratch.name)
        tokenizer.save_pretrained(scratch.name)
        model_dir = Path(scratch.name)
        print(f"no trained reranker: timing an untrained {args.layers}-layer stand-in", file=sys.stderr)

    questions, texts = benchmark_pairs(args.pairs)
    rows = []
    threads = torch.get_num_threads()
    rows.append({"backend": "numpy fp32", "device": "cpu",
                 "pairs_per_s": timed(NumpyCrossEncoder(model_dir), questions, texts, args.repeats)})
    rows.append({"backend": "torch fp32", "device": f"cpu ({threads} threads)",
                 "pairs_per_s": timed(TorchCrossEncoder(model_dir, device="cpu"), questions, texts, args.repeats)})
    # bf16 against fp32 on the same pairs: the tolerance the GPU path (bf16) is held to
    reference = NumpyCrossEncoder(model_dir).score(questions, texts)
    bf16_device = "cuda" if torch.cuda.is_available() else "cpu"
    bf16 = TorchCrossEncoder(model_dir, device=bf16_device, dtype="bfloat16", compile=False).score(questions, texts)
    same_best = agree_on_best(questions, reference, bf16)
    agreement = {"bf16_device": bf16_device, "max_abs_logit_diff": round(float(np.abs(bf16 - reference).max()), 4),
                 "mean_abs_logit_diff": round(float(np.abs(bf16 - reference).mean()), 4),
                 "logit_range": round(float(reference.max() - reference.min()), 2),
                 "same_best_path_per_question": round(100 * same_best, 2)}
    if torch.cuda.is_available():
        reps = max(1, args.gpu_pairs // len(questions))
        gq, gt = questions * reps, texts * reps
        for compiled in (False, True):
            scorer = TorchCrossEncoder(model_dir, device="cuda", compile=compiled)
            scorer.score(gq, gt)  # warm-up: compilation for the shapes seen
            torch.cuda.synchronize()
            rows.append({"backend": "torch bf16 sdpa" + (" compiled" if compiled else ""),
                         "device": torch.cuda.get_device_name(0), "pairs_per_s": timed(scorer, gq, gt, args.repeats)})
    report = {"model": str(model_dir) if scratch is None else f"untrained {args.layers}-layer stand-in",
              "pairs": len(questions), "mean_pair_tokens": None, "cpus": os.cpu_count(),
              "python": platform.python_version(), "torch": torch.__version__,
              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "rows": rows, "bf16_vs_fp32": agreement}
    tokenizer = NumpyCrossEncoder(model_dir).encoder.tokenizer
    report["mean_pair_tokens"] = round(sum(sum(e.attention_mask) for e in tokenizer.encode_batch(
        list(zip(questions, texts)))) / len(questions), 1)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{report['pairs']} pairs, {report['mean_pair_tokens']} word pieces on average; model: {report['model']}")
    print("| backend | device | candidates/s |")
    print("|---|---|---|")
    for row in rows:
        print(f"| {row['backend']} | {row['device']} | {row['pairs_per_s']:.0f} |")
    print(f"bf16 vs fp32 ({agreement['bf16_device']}): max |logit diff| {agreement['max_abs_logit_diff']}, mean "
          f"{agreement['mean_abs_logit_diff']} (logits span {agreement['logit_range']}); same best path for "
          f"{agreement['same_best_path_per_question']}% of questions")


def agree_on_best(questions: list[str], a: np.ndarray, b: np.ndarray) -> float:
    """Share of questions whose best-scored pair is the same under both scorings."""
    rows: dict[str, list[int]] = {}
    for i, question in enumerate(questions):
        rows.setdefault(question, []).append(i)
    same = [int(np.argmax(a[r])) == int(np.argmax(b[r])) for r in rows.values()]
    return sum(same) / max(1, len(same))


if __name__ == "__main__":
    main()
