"""Fine-tune the sentence embedder so that a masked question lands next to the path that answers it.

Contrastive training with sentence-transformers: MultipleNegativesRankingLoss over (masked question,
gold path verbalisation, hard negative) triplets, the hard negative being another path reachable from
the same topic entity. Batches never hold the same path text twice (a duplicate would be a false
negative). The word-embedding matrix stays frozen: paths never seen in training keep the pretrained
meaning of their words, and each step is cheaper on a CPU.

The result is a standard sentence-transformers folder (model.safetensors, tokenizer.json, config.json,
modules.json, …) that `kgqa.encoder.SentenceEmbedder` reads, plus `kgqa_retriever.json`: how it was
trained, and the hop penalty chosen on the held-out dev slice.

torch is imported inside the functions that need it, so importing this module stays cheap.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path as FsPath

import numpy as np

from kgqa.config import Settings
from kgqa.encoder import SentenceEmbedder, default_model_path
from kgqa.errors import InputError, ModelError
from kgqa.graph.store import GraphStore
from kgqa.questions import Example
from kgqa.retrieval.metrics import gold_ranks, recall_table
from kgqa.retrieval.model import META_FILE
from kgqa.retrieval.paths import PathRanker, verbalise_path
from kgqa.retrieval.search import PathSearch, path_search, searched_paths
from kgqa.types import Path, format_path


@dataclass
class TrainOptions:
    max_pairs: int = 4800
    """Training triplets, sampled evenly over gold paths (about 4 minutes on MetaQA on 2 CPU cores; with
    2,400, which sample was drawn moved MetaQA 3-hop by 0.7: eval/README.md)."""
    batch_size: int = 32
    epochs: int = 1
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.1
    max_seq_length: int = 40
    """MetaQA dev questions are at most 34 word pieces, path verbalisations at most 22."""
    seed: int = 0
    hold_out_paths: tuple[str, ...] = ()
    """Gold paths kept out of training entirely (neither positive nor negative), to test generalisation."""
    selection_questions: int = 900
    """Held-out dev questions used to choose the hop penalty after training."""
    penalty_grid: tuple[float, ...] = (0.0, 0.02, 0.05, 0.1)
    max_hops: int = 3
    time_limit_s: float | None = None
    """Stop training after this many seconds; the learning rate then follows the clock, reaching zero at the
    limit, so a slow machine trains fewer steps but still anneals (recorded in the metadata)."""
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Triplet:
    question: str
    positive: str
    negative: str
    path: str


# ---- data --------------------------------------------------------------------------------------


def hard_negative(rng: random.Random, gold: Path, reachable: Sequence[Path], excluded: set[str]) -> Path | None:
    """Another path reachable from the topic, preferring ones that share steps or length with the gold path."""
    candidates = [p for p in reachable if p != gold and format_path(p) not in excluded]
    if not candidates:
        return None
    gold_steps = set(gold)
    weights = [1.0 + 2.0 * len(gold_steps & set(p)) + (len(p) == len(gold)) for p in candidates]
    return rng.choices(candidates, weights)[0]


def make_triplets(search: PathSearch, examples: Sequence[Example], seed: int = 0,
                  excluded: Sequence[str] = ()) -> list[Triplet]:
    """One (masked question, gold path text, hard negative text) triplet per example not on an excluded path;
    negatives are drawn from the paths the search scores for the example."""
    rng = random.Random(seed)
    excluded_set = set(excluded)
    kept = [e for e in examples if e.path not in excluded_set]
    reachable = searched_paths(search, kept)
    triplets = []
    for example, paths in zip(kept, reachable):
        negative = hard_negative(rng, example.steps, paths, excluded_set)
        if negative is not None:
            triplets.append(Triplet(example.masked, verbalise_path(example.steps), verbalise_path(negative),
                                    example.path))
    return triplets


def batches_without_duplicates(triplets: Sequence[Triplet], batch_size: int, seed: int = 0) -> list[list[Triplet]]:
    """Shuffled batches in which no path text (positive or negative) occurs twice; left-overs wait for a later batch."""
    rng = random.Random(seed)
    pending = list(triplets)
    rng.shuffle(pending)
    batches = []
    while pending:
        batch, texts, rest = [], set(), []
        for triplet in pending:
            if len(batch) < batch_size and triplet.positive not in texts and triplet.negative not in texts:
                batch.append(triplet)
                texts.update((triplet.positive, triplet.negative))
            else:
                rest.append(triplet)
        batches.append(batch)
        pending = rest
    return batches


# ---- training ----------------------------------------------------------------------------------


def training_threads() -> int:
    """Threads for CPU training: the idle cores, at least one.

    On a busy machine torch's threads wait for each other at every barrier while the scheduler runs
    something else: measured here under a load of 14 on 2 cores, one step took 35 s with 2 threads
    and 3 s with 1.
    """
    cores = os.cpu_count() or 1
    try:
        idle = cores - os.getloadavg()[0]
    except OSError:
        return cores
    return max(1, min(cores, int(idle + 0.5)))


def training_progress(step: int, total: int, elapsed: float, time_limit: float | None) -> float:
    """How far training is, 0..1: by steps, or by the clock when a time limit comes first."""
    done = step / max(1, total)
    if time_limit:
        done = max(done, elapsed / time_limit)
    return done


def lr_factor(done: float, first: float, warmup: float) -> float:
    """Linear warm-up over the first `warmup` of training, then linear decay to zero at the end."""
    if done < warmup:
        return max(done, first) / warmup
    return max(0.0, (1.0 - done) / max(1e-9, 1.0 - warmup))


def fine_tune(base_model: FsPath, triplets: Sequence[Triplet], options: TrainOptions,
              on_step: Callable[[int, int, float], None] | None = None):
    """Train a copy of `base_model`; returns (the SentenceTransformer, a log of the run)."""
    import torch
    from sentence_transformers import SentenceTransformer
    try:
        from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    except ImportError:  # sentence-transformers before the 6.x layout
        from sentence_transformers.losses import MultipleNegativesRankingLoss

    torch.manual_seed(options.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(training_threads())
    model = SentenceTransformer(str(base_model), device=device)
    original_length = model.max_seq_length
    model.max_seq_length = options.max_seq_length
    model[0].auto_model.embeddings.word_embeddings.weight.requires_grad_(False)
    loss_fn = MultipleNegativesRankingLoss(model)
    preprocess = getattr(model, "preprocess", None) or model.tokenize  # tokenize before 6.x

    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [{"params": [p for n, p in named if "LayerNorm" not in n and not n.endswith("bias")], "weight_decay": 0.01},
              {"params": [p for n, p in named if "LayerNorm" in n or n.endswith("bias")], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=options.learning_rate)
    batches = [b for epoch in range(options.epochs)
               for b in batches_without_duplicates(triplets, options.batch_size, options.seed + epoch)]
    total = len(batches)

    losses: list[float] = []
    started = time.perf_counter()
    stopped_early = False
    model.train()
    for step, batch in enumerate(batches, start=1):
        done = training_progress(step - 1, total, time.perf_counter() - started, options.time_limit_s)
        if done >= 1.0:
            stopped_early = True
            break
        for group in optimizer.param_groups:
            group["lr"] = options.learning_rate * lr_factor(done, 1 / total, options.warmup_ratio)
        features = []
        for column in ([t.question for t in batch], [t.positive for t in batch], [t.negative for t in batch]):
            encoded = preprocess(column)
            features.append({k: v.to(device) if hasattr(v, "to") else v for k, v in encoded.items()})
        loss = loss_fn(features, torch.zeros(len(batch), device=device))
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in named], 1.0)
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()))
        if on_step:
            on_step(step, total, losses[-1])
    model.eval()
    model.max_seq_length = original_length
    log = {"steps": len(losses), "planned_steps": total, "train_seconds": round(time.perf_counter() - started, 1),
           "device": device, "loss_first_10": round(float(np.mean(losses[:10])), 4) if losses else None,
           "loss_last_10": round(float(np.mean(losses[-10:])), 4) if losses else None,
           "stopped_early": stopped_early, "torch_threads": torch.get_num_threads()}
    return model, log


def choose_hop_penalty(embedder: SentenceEmbedder, graph: GraphStore, examples: Sequence[Example],
                       grid: Sequence[float], max_hops: int = 3) -> tuple[float, dict]:
    """The penalty with the best recall@1 on `examples` (the smaller one on a tie), and every penalty's table."""
    ranks = gold_ranks(training_search(graph, PathRanker(embedder), max_hops), examples, grid)
    tables = {str(p): recall_table(examples, ranks[p]) for p in grid}
    best = max(grid, key=lambda p: (tables[str(p)]["all"]["recall@1"], -p))
    return best, tables


def train_retriever(graph: GraphStore, train_examples: Sequence[Example], held_examples: Sequence[Example],
                    out_dir: FsPath, options: TrainOptions | None = None, base_model: FsPath | None = None,
                    on_step: Callable[[int, int, float], None] | None = None,
                    on_stage: Callable[[str], None] | None = None) -> dict:
    """Train, save to `out_dir` (replacing what is there only once the new model is complete), return the metadata."""
    from kgqa.retrieval.data import stratified_sample

    options = options or TrainOptions()
    base_model = FsPath(base_model or default_model_path())
    say = on_stage or (lambda _: None)
    started = time.perf_counter()
    held_out = set(options.hold_out_paths)
    unknown = held_out - {e.path for e in train_examples}
    if unknown:
        raise InputError(f"--hold-out-path {sorted(unknown)[0]!r} is not a gold path of the training data")
    pool = [e for e in train_examples if e.path not in held_out]
    if not pool:
        raise InputError("no training examples left")
    say(f"preparing up to {options.max_pairs} triplets from {len(pool)} training questions")
    sample = stratified_sample(pool, options.max_pairs, options.seed)
    base_search = training_search(graph, PathRanker(SentenceEmbedder(base_model)), options.max_hops)
    triplets = make_triplets(base_search, sample, options.seed, sorted(held_out))

    model, log = fine_tune(base_model, triplets, options, on_step)

    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    model.save(str(tmp))
    for required in ("model.safetensors", "tokenizer.json", "config.json"):
        if not (tmp / required).exists():
            raise ModelError(f"the saved model in {tmp} lacks {required}")

    say("choosing the hop penalty on the held-out dev slice")
    rng = random.Random(options.seed)
    selection = list(held_examples)
    rng.shuffle(selection)
    selection = selection[:options.selection_questions]
    selection += [e for e in held_examples if e.path in held_out and e not in selection][:100 * len(held_out)]
    embedder = SentenceEmbedder(tmp)  # also proves the numpy encoder reads the saved folder
    penalty, tables = choose_hop_penalty(embedder, graph, selection, options.penalty_grid, options.max_hops)
    meta = {
        "kind": "kgqa path retriever",
        "base_model": str(base_model),
        "hop_penalty": penalty,
        "trained_on": options.extra.get("trained_on", "the training slice of dev"),
        "training_questions": len(pool), "triplets": len(triplets),
        "paths_in_training": sorted({t.path for t in triplets}),
        "options": {k: v for k, v in asdict(options).items() if k != "extra"} | options.extra,
        **log,
        "selection_questions": len(selection),
        "selection_recall": tables,
        "held_out_path_recall": _held_out_recall(selection, tables, penalty, held_out, embedder, graph, options),
        "total_seconds": round(time.perf_counter() - started, 1),
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    _replace_dir(tmp, out_dir)
    return meta


def _held_out_recall(selection: Sequence[Example], tables: dict, penalty: float, held_out: set[str],
                     embedder: SentenceEmbedder, graph: GraphStore, options: TrainOptions) -> dict | None:
    """Recall on the held-out dev questions whose gold path was never trained on."""
    if not held_out:
        return None
    rows = [e for e in selection if e.path in held_out]
    if not rows:
        return None
    ranks = gold_ranks(training_search(graph, PathRanker(embedder), options.max_hops), rows, [penalty])[penalty]
    return recall_table(rows, ranks)


def training_search(graph: GraphStore, ranker: PathRanker, max_hops: int) -> PathSearch:
    """The agent's path search with the default beam: training sees the candidates answering will see."""
    return path_search(Settings(max_hops=max_hops), graph, ranker)


def _replace_dir(new: FsPath, target: FsPath) -> None:
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    if target.exists():
        target.rename(old)
    new.rename(target)
    shutil.rmtree(old, ignore_errors=True)
