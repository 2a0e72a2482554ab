"""Train the reranker: fine-tune the cross-encoder on dev, then fit the fusion layer on dev's held-out slice.

1. Cross-encoder. For each sampled training question (dev without its held-out slice), a list: the gold
   path's verbalisation first, then negatives, all reachable from the gold topic entity: paths that share
   steps or length with the gold one (what retrieval confuses), and the retriever's own top paths (what the
   reranker sees at run time). Listwise loss: softmax over the list's logits, the gold path the target. The
   model (kgqa.rerank.torch_model: mean-pooled BERT, one logit) starts from the packaged MiniLM, cut to its
   first `layers` layers (each CPU forward pass costs half as much with 3 of 6); word embeddings frozen.
2. Fusion. The agent itself (its linker, retriever and LLM choice, question text without brackets) answers
   held-out questions with a recorder in the reranker's place, which keeps every candidate group with its
   signals and cross-encoder logit. A group is right when it is the gold (topic, path) or reaches exactly
   the gold answers. Logistic regression over FEATURES is fitted on them; 2-fold cross-validation over the
   held-out questions measures Hits@1/F1 of retrieval alone, the cross-encoder alone and the fused score,
   and picks how the answer set is taken (the winning group, or every group over a score threshold) and
   how answers inside a group are ordered (by degree or by name).

The saved folder replaces `out_dir` only once complete. torch is imported only inside these functions.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path as FsPath

import numpy as np

from kgqa.config import Settings, mask_uri
from kgqa.encoder import default_model_path
from kgqa.errors import InputError
from kgqa.graph.store import GraphStore
from kgqa.questions import Example
from kgqa.rerank.candidates import FEATURES, Group, feature_matrix, select_answers
from kgqa.rerank.model import FUSION_FILE, MAX_LENGTH, META_FILE, Fusion, Reranker, TorchCrossEncoder, fit_logistic
from kgqa.retrieval.data import stratified_sample
from kgqa.retrieval.paths import verbalise_path
from kgqa.retrieval.search import PathSearch, path_search, searched_paths
from kgqa.types import Path, format_path


@dataclass
class RerankOptions:
    train_questions: int = 4800
    """Training questions for the cross-encoder, spread over gold paths (bounds the time: see eval/rerank.md)."""
    negatives: int = 3
    """Negative paths per training question."""
    retriever_negatives: int = 0
    """How many of them are the retriever's top-ranked wrong paths (the rest share steps or length with the gold)."""
    questions_per_step: int = 8
    """Lists per optimiser step (more questions with fewer negatives each learnt faster per pair on held-out dev)."""
    layers: int = 3
    """Encoder layers kept from the base model."""
    epochs: int = 1
    learning_rate: float = 3e-4
    warmup_ratio: float = 0.1
    head_lr_factor: float = 10.0
    fusion_questions: int = 900
    """Held-out dev questions the fusion layer is fitted and cross-validated on (spread over gold paths)."""
    top_topics: int = 2
    top_paths: int = 5
    seed: int = 0
    time_limit_s: float | None = 600.0
    """Stop the cross-encoder's training after this many seconds (the schedule shrinks to fit; recorded)."""
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ListExample:
    """A masked question and its candidate path texts, the gold one first."""

    question: str
    texts: tuple[str, ...]
    path: str


# ---- cross-encoder data ----------------------------------------------------------------------------


def _weighted_sample(rng: random.Random, items: list, weights: list[float], k: int) -> list:
    """k distinct items, each drawn with probability proportional to its weight (Efraimidis-Spirakis)."""
    keys = [rng.random() ** (1.0 / w) for w in weights]
    order = sorted(range(len(items)), key=lambda i: -keys[i])
    return [items[i] for i in order[:k]]


def make_lists(search: PathSearch, examples: Sequence[Example], negatives: int = 5, seed: int = 0,
               retriever_top: Sequence[Sequence[Path]] | None = None,
               retriever_negatives: int = 0) -> list[ListExample]:
    """One list per example whose topic reaches some other path: gold text, then up to `negatives` others
    (first the retriever's own top paths when given, then a weighted draw from the paths the search scores)."""
    rng = random.Random(seed)
    reachable = searched_paths(search, examples)
    lists = []
    for k, (example, paths) in enumerate(zip(examples, reachable)):
        gold = example.steps
        chosen: list[Path] = []
        if retriever_top is not None:
            chosen = [p for p in retriever_top[k] if p != gold][:retriever_negatives]
        others = [p for p in paths if p != gold and p not in chosen]
        gold_steps = set(gold)
        weights = [1.0 + 2.0 * len(gold_steps & set(p)) + (len(p) == len(gold)) for p in others]
        chosen += _weighted_sample(rng, others, weights, negatives - len(chosen))
        if chosen:
            lists.append(ListExample(example.masked, (verbalise_path(gold),) + tuple(verbalise_path(p) for p in chosen),
                                     example.path))
    return lists


# ---- cross-encoder training -----------------------------------------------------------------------


def fine_tune(lists: Sequence[ListExample], options: RerankOptions, base_model: FsPath | None = None,
              on_step: Callable[[int, int, float], None] | None = None):
    """Train the cross-encoder with a listwise softmax loss; returns (model, tokenizer, log)."""
    import torch

    from kgqa.rerank.torch_model import new_cross_encoder

    torch.manual_seed(options.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, tokenizer = new_cross_encoder(FsPath(base_model or default_model_path()), options.layers)
    model.to(device)
    model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    # the classifier starts from scratch: it learns `head_lr_factor` times faster than the encoder
    groups = [{"params": [p for n, p in named if ("LayerNorm" in n or n.endswith("bias")) == no_decay
                          and n.startswith("classifier") == head],
               "weight_decay": 0.0 if no_decay else 0.01,
               "lr": options.learning_rate * (options.head_lr_factor if head else 1.0)}
              for no_decay in (False, True) for head in (False, True)]
    optimizer = torch.optim.AdamW(groups, lr=options.learning_rate)
    rng = random.Random(options.seed)
    batches = []
    for _ in range(options.epochs):
        order = list(lists)
        rng.shuffle(order)
        batches += [order[i:i + options.questions_per_step] for i in range(0, len(order), options.questions_per_step)]
    total = len(batches)
    # the planned number of steps shrinks when the time limit will not allow them all, so that the learning
    # rate still decays to zero by the last step that runs
    plan = [total]
    warmup = max(1, int(total * options.warmup_ratio))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (plan[0] - s) / max(1, plan[0] - warmup))))
    losses: list[float] = []
    started = time.perf_counter()
    stopped_early = False
    model.train()
    for step, batch in enumerate(batches, start=1):
        questions = [b.question for b in batch for _ in b.texts]
        texts = [t for b in batch for t in b.texts]
        encoded = tokenizer(questions, texts, truncation=True, max_length=MAX_LENGTH, padding=True,
                            return_tensors="pt").to(device)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):  # bf16 matmuls on a GPU
            logits = model(**encoded).float()
        width = max(len(b.texts) for b in batch)
        table = torch.full((len(batch), width), -1e4, device=device, dtype=logits.dtype)
        rows = torch.tensor([r for r, b in enumerate(batch) for _ in b.texts], device=device)
        cols = torch.tensor([c for b in batch for c in range(len(b.texts))], device=device)
        table = table.index_put((rows, cols), logits)
        loss = torch.nn.functional.cross_entropy(table, torch.zeros(len(batch), dtype=torch.long, device=device))
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in named], 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()))
        elapsed = time.perf_counter() - started
        if options.time_limit_s is not None and step % 5 == 0:
            affordable = step + int((options.time_limit_s - elapsed) / (elapsed / step))
            plan[0] = max(step + 1, min(total, affordable))
            warmup = min(warmup, max(1, int(plan[0] * options.warmup_ratio)))
        if on_step:
            on_step(step, plan[0], float(np.mean(losses[-20:])))
        if step >= plan[0] or (options.time_limit_s is not None and elapsed > options.time_limit_s):
            stopped_early = step < total
            break
    model.eval()
    log = {"steps": len(losses), "planned_steps": total, "lists_seen": sum(len(b) for b in batches[:len(losses)]), "train_seconds": round(time.perf_counter() - started, 1),
           "device": device, "torch_threads": torch.get_num_threads(), "stopped_early": stopped_early,
           "loss_first": round(losses[0], 4) if losses else None, "loss_last": round(losses[-1], 4) if losses else None,
           "loss_first_20": round(float(np.mean(losses[:20])), 4) if losses else None,
           "loss_last_20": round(float(np.mean(losses[-20:])), 4) if losses else None}
    return model, tokenizer, log


# ---- fusion data: the agent's own candidates on held-out questions ------------------------------------------


class GroupRecorder(Reranker):
    """Stands in for the reranker inside the agent: scores with the cross-encoder alone and keeps every group."""

    def __init__(self, model_dir: FsPath, scorer) -> None:
        super().__init__(model_dir, Fusion.cross_only(), scorer)
        self.recorded: list[list[Group]] = []
        self.masked: list[str] = []

    def rerank_batch(self, masked_questions, groups, degree=None):
        out = super().rerank_batch(masked_questions, groups, degree)
        self.recorded += [list(row) for row in groups]
        self.masked += list(masked_questions)
        return out


def record_groups(settings: Settings, graph: GraphStore, model_dir: FsPath, examples: Sequence[Example],
                  options: RerankOptions, chunk: int = 64,
                  on_progress: Callable[[int], None] | None = None) -> tuple[list[list[Group]], dict]:
    """Each example's candidate groups as the agent builds them (no brackets: the agent links), CE-scored."""
    from kgqa.agent import Agent

    agent = Agent(replace(settings, reranker="none", rerank_topics=options.top_topics, top_paths=options.top_paths),
                  graph)
    recorder = GroupRecorder(model_dir, TorchCrossEncoder(model_dir))
    agent.reranker = recorder
    started = time.perf_counter()
    for start in range(0, len(examples), chunk):
        rows = examples[start:start + chunk]
        agent.answer_batch([e.question for e in rows])
        if on_progress:
            on_progress(len(rows))
    return recorder.recorded, {"seconds": round(time.perf_counter() - started, 1),
                               "groups": sum(len(r) for r in recorder.recorded)}


def group_labels(groups: Sequence[Group], example: Example) -> np.ndarray:
    gold = set(example.answers)
    return np.array([float((g.topic == example.topic and format_path(g.path) == example.path)
                           or set(g.evidence) == gold) for g in groups], np.float32)


# ---- fusion fitting and selection -----------------------------------------------------------------------------


def answer_scores(groups_by_question: Sequence[Sequence[Group]], examples: Sequence[Example], mode: str = "group",
                  threshold: float = 0.5, degree=None, degree_weight: float = 0.0,
                  baseline: bool = False) -> dict[str, float]:
    """Mean Hits@1, F1 and exact match (in %) of the answer sets chosen from scored groups.

    baseline: what the agent does without the reranker (the best topic's LLM choice, else its top path;
    answers by name).
    """
    from kgqa.evaluate import answer_metrics

    totals = {"hits@1": 0.0, "f1": 0.0, "exact_match": 0.0}
    for groups, example in zip(groups_by_question, examples):
        if baseline:
            top = [g for g in groups if g.topic_rank == 0]
            picked = [g for g in top if g.llm_choice] or [g for g in top if g.path_rank == 0]
            names = sorted(picked[0].evidence) if picked else []
        else:
            names = [a.name for a in select_answers(groups, mode, threshold, degree, degree_weight)]
        scores = answer_metrics(names, set(example.answers))
        for key in totals:
            totals[key] += scores[key]
    n = max(1, len(examples))
    return {k: round(100 * v / n, 2) for k, v in totals.items()}


def _set_scores(groups_by_question: Sequence[Sequence[Group]], scores: np.ndarray) -> None:
    flat = [g for row in groups_by_question for g in row]
    for group, score in zip(flat, scores.tolist()):
        group.score = score


def fit_fusion(groups_by_question: list[list[Group]], examples: list[Example], degree=None,
               thresholds: Sequence[float] = (0.3, 0.5, 0.7, 0.9), l2: float = 1.0) -> tuple[Fusion, dict]:
    """Fit the fusion layer; choose answer-set mode, threshold and in-group order on out-of-fold scores."""
    flat = [g for row in groups_by_question for g in row]
    x = feature_matrix(flat)
    y = np.concatenate([group_labels(row, e) for row, e in zip(groups_by_question, examples)]) if flat else np.zeros(0)
    report: dict = {"questions": len(examples), "groups": len(flat), "right_groups": int(y.sum()),
                    "gold_in_candidates": round(100 * float(np.mean([max(group_labels(r, e), default=0)
                                                                     for r, e in zip(groups_by_question, examples)]
                                                                    or [0.0])), 2)}
    report["retrieval_only"] = answer_scores(groups_by_question, examples, baseline=True)
    _set_scores(groups_by_question, np.array([g.cross for g in flat], np.float32))
    report["cross_encoder_only"] = answer_scores(groups_by_question, examples)
    if len(flat) == 0 or y.min() == y.max():
        # nothing to learn from: rank by the cross-encoder alone, and say so
        why = "no candidates" if len(flat) == 0 else ("only right candidates" if y.min() == 1 else "no right candidate")
        fusion = Fusion.cross_only()
        report.update(fallback=f"fusion layer not fitted (the held-out questions gave {why}): cross-encoder alone",
                      fused_group=report["cross_encoder_only"], mode=fusion.mode, threshold=fusion.threshold,
                      degree_weight=fusion.degree_weight, chosen=report["cross_encoder_only"])
        return fusion, report
    question_of = np.concatenate([[q] * len(row) for q, row in enumerate(groups_by_question)]).astype(int)
    fold = question_of % 2
    out_of_fold = np.zeros(len(flat), np.float32)
    for k in (0, 1):
        train = fold != k
        weights, bias, mean, scale = fit_logistic(x[train], y[train], l2)
        out_of_fold[~train] = Fusion(weights, bias, mean, scale).probabilities(x[~train])
    _set_scores(groups_by_question, out_of_fold)
    report["fused_group"] = answer_scores(groups_by_question, examples)
    choices = {("group", 0.5): report["fused_group"]}
    for t in thresholds:
        choices[("threshold", t)] = answer_scores(groups_by_question, examples, "threshold", t)
    report["fused_threshold"] = {str(t): choices[("threshold", t)] for t in thresholds}
    # the winning group unless a threshold is clearly better on F1
    mode, threshold = max(choices, key=lambda c: (choices[c]["f1"] - (0.05 if c[0] == "threshold" else 0.0),
                                                  choices[c]["hits@1"]))
    degree_weight = 0.0
    if degree is not None:
        by_weight = {w: answer_scores(groups_by_question, examples, mode, threshold, degree, w) for w in (-1.0, 1.0)}
        by_weight[0.0] = choices[(mode, threshold)]
        report["answer_order_by_degree"] = {str(w): s for w, s in by_weight.items()}
        degree_weight = max(by_weight, key=lambda w: (by_weight[w]["hits@1"] - (0.2 if w else 0.0)))
    report.update(mode=mode, threshold=threshold, degree_weight=degree_weight,
                  chosen=answer_scores(groups_by_question, examples, mode, threshold, degree, degree_weight))
    weights, bias, mean, scale = fit_logistic(x, y, l2)
    fusion = Fusion(weights, bias, mean, scale, FEATURES, mode, threshold, degree_weight)
    report["weights"] = {name: round(float(w), 4) for name, w in zip(FEATURES, weights)}
    if report["chosen"]["hits@1"] < report["retrieval_only"]["hits@1"]:
        # too few held-out questions, or too short a training, to beat the retriever: keep its order
        report["fallback"] = (f"the fused score lost to the retriever's order on held-out questions "
                              f"({report['chosen']['hits@1']} against {report['retrieval_only']['hits@1']} Hits@1): "
                              "the reranker keeps the retriever's order")
        fusion = Fusion.retrieval_order()
        report["chosen"] = report["retrieval_only"]
    return fusion, report


# ---- the whole run -----------------------------------------------------------------------------------------


def train_reranker(settings: Settings, graph: GraphStore, train_examples: Sequence[Example],
                   held_examples: Sequence[Example], out_dir: FsPath, options: RerankOptions | None = None,
                   base_model: FsPath | None = None, on_step: Callable[[int, int, float], None] | None = None,
                   on_stage: Callable[[str], None] | None = None,
                   on_progress: Callable[[int, int], None] | None = None) -> dict:
    """Train, save to `out_dir` (replaced only once the new model is complete), return the metadata."""
    from kgqa.rerank import reranker_context

    options = options or RerankOptions()
    say = on_stage or (lambda _: None)
    started = time.perf_counter()
    if not train_examples or not held_examples:
        raise InputError("the reranker needs training examples and held-out examples (dev split into both)")
    sample = stratified_sample(list(train_examples), options.train_questions, options.seed)
    search, retriever_top = retriever_paths(settings, graph, sample, options.top_paths)
    lists = make_lists(search, sample, options.negatives, options.seed,
                       retriever_top if options.retriever_negatives else None, options.retriever_negatives)
    say(f"{len(lists)} training lists of up to {options.negatives + 1} paths "
        f"({time.perf_counter() - started:.0f} s to build)")
    model, tokenizer, log = fine_tune(lists, options, base_model, on_step)

    out_dir = FsPath(out_dir)
    partial = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    del model

    fusion, report, recorded = fit_fusion_on_held_out(settings, graph, partial, held_examples, options, say, on_progress)
    (partial / FUSION_FILE).write_text(json.dumps(fusion.to_json(), indent=2) + "\n")
    meta = {"base_model": str(base_model or default_model_path()), "options": asdict(options),
            "train_lists": len(lists), "training": log, "fusion_data": recorded, "held_out": report,
            **reranker_context(settings, graph), **options.extra}
    meta["total_seconds"] = round(time.perf_counter() - started, 1)
    (partial / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    partial.rename(out_dir)
    return meta


def fit_fusion_on_held_out(settings: Settings, graph: GraphStore, model_dir: FsPath,
                           held_examples: Sequence[Example], options: RerankOptions,
                           say: Callable[[str], None] = lambda _: None,
                           on_progress: Callable[[int, int], None] | None = None) -> tuple[Fusion, dict, dict]:
    """Score the agent's candidates for held-out questions with the cross-encoder in `model_dir`, fit the
    fusion layer on them; returns (fusion, report with per-hop scores, how the data was recorded)."""
    held = list(held_examples)
    fusion_sample = random.Random(options.seed).sample(held, min(options.fusion_questions, len(held)))
    say(f"scoring the agent's candidates for {len(fusion_sample)} held-out dev questions")
    done = [0]

    def progress(n: int) -> None:
        done[0] += n
        if on_progress:
            on_progress(done[0], len(fusion_sample))

    groups, recorded = record_groups(settings, graph, model_dir, fusion_sample, options, on_progress=progress)
    recorded["llm"] = mask_uri(settings.llm) if settings.llm else settings.llm
    recorded["llm_choices"] = sum(g.llm_choice for row in groups for g in row)
    fusion, report = fit_fusion(groups, fusion_sample, graph.degree)
    report["per_hop"] = {}
    for hop in sorted({e.hops for e in fusion_sample}):
        rows = [i for i, e in enumerate(fusion_sample) if e.hops == hop]
        sub_groups, sub_examples = [groups[i] for i in rows], [fusion_sample[i] for i in rows]
        _set_scores(sub_groups, fusion.probabilities(feature_matrix([g for r in sub_groups for g in r])))
        report["per_hop"][str(hop)] = {
            "questions": len(rows), "retrieval_only": answer_scores(sub_groups, sub_examples, baseline=True),
            "reranked (in-sample)": answer_scores(sub_groups, sub_examples, fusion.mode, fusion.threshold,
                                                  graph.degree, fusion.degree_weight)}
    return fusion, report, recorded


def refit_fusion(settings: Settings, graph: GraphStore, held_examples: Sequence[Example], model_dir: FsPath,
                 options: RerankOptions | None = None, on_stage: Callable[[str], None] | None = None,
                 on_progress: Callable[[int, int], None] | None = None) -> dict:
    """Fit a trained reranker's fusion layer again, for the agent as now configured (another retriever or
    linker, or an LLM whose choice becomes a signal), keeping its cross-encoder; returns the new metadata."""
    from kgqa.rerank import reranker_context

    options = options or RerankOptions()
    started = time.perf_counter()
    model_dir = FsPath(model_dir)
    if not (model_dir / "model.safetensors").exists():
        raise InputError(f"{model_dir}: no trained reranker to refit (run `kgqa train reranker` first)")
    fusion, report, recorded = fit_fusion_on_held_out(settings, graph, model_dir, held_examples, options,
                                                      on_stage or (lambda _: None), on_progress)
    try:
        meta = json.loads((model_dir / META_FILE).read_text())
    except (OSError, ValueError):
        meta = {}
    meta.update({"fusion_data": recorded, "held_out": report, **reranker_context(settings, graph),
                 "fusion_refit": {"command": options.extra.get("command", ""),
                                  "seconds": round(time.perf_counter() - started, 1),
                                  "date": time.strftime("%Y-%m-%d %H:%M:%S")}})
    (model_dir / FUSION_FILE).write_text(json.dumps(fusion.to_json(), indent=2) + "\n")
    (model_dir / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    return meta


def retriever_paths(settings: Settings, graph: GraphStore, examples: Sequence[Example], top_k: int
                    ) -> tuple[PathSearch, list[list[Path]]]:
    """The agent's path search (its retriever, its beam) and its top paths from each example's gold topic."""
    from kgqa.encoder import load_embedder
    from kgqa.retrieval.model import path_model
    from kgqa.retrieval.paths import PathRanker

    model = path_model(settings, graph)
    embedder = load_embedder(str(model.model_dir))
    ranker = PathRanker(embedder, settings.cache_dir, model.hop_penalty)
    search = path_search(settings, graph, ranker)
    ranked = [row[:top_k] for row in searched_paths(search, examples)]
    ranker.save()
    return search, ranked
