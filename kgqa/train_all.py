"""Train a graph's models (linker, retriever, reranker, question shapes) and its few-shot pool from labelled
questions (the shape model from programs written from the graph: `kgqa.shapes`).

The labels come from question–answer pairs (`kgqa.weak_labels`) or are written from the graph alone
(`kgqa.question_writer`); either way each is a question with its topic, the topic's mention span, a path
and answers. `kgqa train all` is the command.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kgqa.config import Settings
from kgqa.errors import InputError
from kgqa.graph.store import GraphStore
from kgqa.model_store import fewshot_file, model_dir, record_graph
from kgqa.questions import Example
from kgqa.retrieval.data import split_dev, stratified_sample

if TYPE_CHECKING:
    from kgqa.weak_labels import Label

MIN_TRAINING_QUESTIONS = 20
"""Fewer labelled questions than this cannot give a training and a held-out slice worth the name."""

FEWSHOT_POOL_SIZE = 2_000
"""Training questions kept as the graph's few-shot pool for `--llm`, spread over paths."""

TYPO_RATE = 0.2
"""Share of the linker's training mentions given a typo, so that misspelt names are found too."""


LABELLING_SHARE = 0.45
"""Most of `kgqa train all`'s time budget that labelling question-answer pairs may take."""

STAGE_WEIGHTS = {"linker": 0.8, "retriever": 1.0, "reranker": 1.0}
"""How the time left after labelling is shared among the models, in training order (MetaQA from QA pairs:
the linker finishes its plan in less than the others need)."""

STAGE_OVERHEAD_S = 25.0
"""Seconds a model's stage spends outside its clock-limited training loop (loading, encoding, selection)."""

SHAPES_RESERVE_S = 45.0
"""Seconds kept for the question-shape model, which is not stopped by the clock (about 30 on MetaQA)."""

MIN_STAGE_S = 2.0
"""A model trains at least this long, whatever is left of the budget."""


@dataclass
class TimeBudget:
    """The seconds one command may take, shared among its stages as they come."""

    total_s: float | None
    """None: no limit."""
    started: float = field(default_factory=time.perf_counter)

    def left(self) -> float | None:
        return None if self.total_s is None else max(0.0, self.total_s - (time.perf_counter() - self.started))

    def for_stage(self, stage: str) -> float | None:
        """The training-loop time of a model's stage: its weight's share, among itself and the stages after
        it, of the time left less SHAPES_RESERVE_S, less STAGE_OVERHEAD_S (time a stage leaves unused passes
        on); at least MIN_STAGE_S."""
        left = self.left()
        if left is None:
            return None
        names = list(STAGE_WEIGHTS)
        after = sum(STAGE_WEIGHTS[n] for n in names[names.index(stage):])
        return max(MIN_STAGE_S, (left - SHAPES_RESERVE_S) * STAGE_WEIGHTS[stage] / after - STAGE_OVERHEAD_S)

    def for_labelling(self) -> float | None:
        return None if self.total_s is None else self.total_s * LABELLING_SHARE


def train_for_graph(settings: Settings, graph: GraphStore, labels: Sequence["Label"], trained_on: str,
                    extra: dict, budget: TimeBudget, typos: bool = False,
                    on_stage: Callable[[str], None] = lambda _: None,
                    on_step: Callable[[int, int, float], None] | None = None) -> dict:
    """Train the linker, retriever and reranker for `graph` on `labels` within what is left of `budget`, save
    them and the few-shot pool as the graph's own; returns each model's metadata. typos: misspell some
    mentions for the linker (for written questions, which never have typos of their own)."""
    from kgqa.encoder import default_model_path
    from kgqa.linking import linker_dir
    from kgqa.linking.linker import train_linker
    from kgqa.linking.tagger import TrainConfig
    from kgqa.question_writer import with_typos
    from kgqa.rerank import reranker_dir
    from kgqa.rerank.train import RerankOptions, train_reranker
    from kgqa.retrieval.model import retriever_dir
    from kgqa.retrieval.train import TrainOptions, train_retriever
    from kgqa.shapes import train_shape_model
    from kgqa.weak_labels import write_labelled_tsv

    if len(labels) < MIN_TRAINING_QUESTIONS:
        raise InputError(f"only {len(labels)} questions got a topic and a path (at least {MIN_TRAINING_QUESTIONS} "
                         "are needed to train)")
    examples = [label.example for label in labels]
    train, held = split_dev(examples)
    extra = {"trained_on": trained_on, **extra}
    meta: dict = {}
    marks: list[tuple[str, float]] = []  # (stage, when it began)

    def stage(name: str, text: str) -> None:
        marks.append((name, time.perf_counter()))
        on_stage(text)

    stage("linker", "training the linker")
    with tempfile.TemporaryDirectory() as folder:
        marked = Path(folder) / "marked.tsv"
        write_labelled_tsv(with_typos(labels, TYPO_RATE) if typos else labels, marked)
        config = TrainConfig(str(default_model_path()), time_limit_s=budget.for_stage("linker"))
        meta["linker"] = train_linker(linker_dir(settings, graph), [marked], config, on_progress=on_step)
    stage("retriever", "training the retriever")
    options = TrainOptions(max_hops=settings.max_hops, time_limit_s=budget.for_stage("retriever"), extra=extra)
    meta["retriever"] = train_retriever(graph, train, held, retriever_dir(settings, graph), options, on_step=on_step)
    stage("reranker", "training the reranker")
    rerank = RerankOptions(top_topics=settings.rerank_topics, top_paths=settings.top_paths,
                           time_limit_s=budget.for_stage("reranker"), extra=extra)
    meta["reranker"] = train_reranker(settings, graph, train, held, reranker_dir(settings, graph), rerank,
                                      on_step=on_step)
    stage("shapes", "training the question-shape model")
    shapes, meta["shapes"] = train_shape_model(graph, max_hops=min(settings.max_hops, 2))
    shapes.save(model_dir(settings, graph, "shapes"))
    marks.append(("", time.perf_counter()))
    meta["stage_seconds"] = {name: round(end - begun, 1) for (name, begun), (_, end) in zip(marks, marks[1:])}
    write_fewshot_pool(fewshot_file(settings, graph), train)
    record_graph(settings, graph)
    return meta


def write_fewshot_pool(file: Path, examples: Sequence[Example]) -> int:
    """The graph's own few-shot pool (JSONL: question, topic, path, source), spread over paths."""
    from kgqa.files import write_text_atomically

    chosen = stratified_sample([e for e in examples if e.path and e.topic], FEWSHOT_POOL_SIZE)
    write_text_atomically(file, "".join(json.dumps({"question": e.question, "topic": e.topic, "path": e.path,
                                                    "source": e.source}, ensure_ascii=False) + "\n"
                                        for e in chosen))
    return len(chosen)
