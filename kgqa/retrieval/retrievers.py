"""Retrievers over FAISS indexes: few-shot examples and entity names (relation paths: `retrieval.search`).

Each retriever has one `search` method returning typed hits, best first, plus `search_many` for
batches. They share one embedder (the trained retriever when there is one, see `model.path_model`)
and keep their indexes under `settings.cache_dir / "indexes"`, rebuilt when the graph, the example
pool or the model changes and loaded from disk otherwise.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path as FsPath

import numpy as np

from kgqa.config import Settings
from kgqa.encoder import SentenceEmbedder, load_embedder
from kgqa.errors import InputError, ModelError
from kgqa.graph.store import GraphStore
from kgqa.retrieval.data import PathExample, masked_question, read_pool_rows
from kgqa.retrieval.index import VectorIndex, build_or_load, content_fingerprint, model_fingerprint
from kgqa.retrieval.model import PathModel, path_model

Progress = Callable[[int], None]


def index_root(settings: Settings) -> FsPath:
    return settings.cache_dir / "indexes"


def graph_key(graph: GraphStore) -> str:
    """A short name for the graph's index folder (its source); the fingerprints catch content changes."""
    source = str(graph.stats().get("source", "graph"))
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:12]


def embed_in_chunks(embedder: SentenceEmbedder, texts: list[str], on_progress: Progress | None = None,
                    chunk: int = 512) -> np.ndarray:
    """Embed many texts, reporting progress after each chunk."""
    parts = []
    for start in range(0, len(texts), chunk):
        parts.append(embedder.embed(texts[start:start + chunk]))
        if on_progress:
            on_progress(len(parts[-1]))
    return np.concatenate(parts) if parts else np.zeros((0, embedder.dim), np.float32)


# ---- typed hits --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExampleHit:
    example: PathExample
    score: float


@dataclass(frozen=True)
class EntityHit:
    name: str
    score: float


# ---- few-shot examples -------------------------------------------------------------------------


def read_example_file(file: FsPath) -> list[PathExample]:
    """A JSONL pool: one object a line with question, topic, path and optionally answers."""
    return [PathExample(row["question"], row.get("topic", ""), row["path"], tuple(row.get("answers", ())))
            for row in read_pool_rows(file)]


class ExampleRetriever:
    """Solved questions (question, topic, gold path, answers) nearest to a new question, by masked wording."""

    def __init__(self, index: VectorIndex, embedder: SentenceEmbedder) -> None:
        self.index = index
        self.embedder = embedder
        self.examples = [PathExample(i["question"], i["topic"], i["path"], tuple(i.get("answers", ())))
                         for i in index.items]

    @classmethod
    def build(cls, examples: list[PathExample], embedder: SentenceEmbedder, folder: FsPath | None = None,
              on_progress: Progress | None = None) -> tuple["ExampleRetriever", bool]:
        if not examples:
            raise InputError("the example pool is empty")
        texts = [e.masked for e in examples]
        items = [{"question": e.question, "topic": e.topic, "path": e.path, "answers": list(e.answers[:20]),
                  "masked": t} for e, t in zip(examples, texts)]
        key = content_fingerprint("examples", model_fingerprint(embedder.model_dir),
                                  [json.dumps(i, ensure_ascii=False) for i in items])
        index, built = build_or_load(folder, key, texts, items,
                                     lambda t: embed_in_chunks(embedder, t, on_progress),
                                     {"kind": "examples", "model": str(embedder.model_dir),
                                      "model_key": model_fingerprint(embedder.model_dir)})
        return cls(index, embedder), built

    @classmethod
    def load(cls, folder: FsPath, embedder: SentenceEmbedder) -> "ExampleRetriever":
        """The pool `kgqa index build` saved; it must have been built with this embedder."""
        if not (folder / "meta.json").exists():
            raise ModelError(f"no example index in {folder}: run `kgqa index build`")
        index = VectorIndex.load(folder)
        if index.meta.get("model_key") != model_fingerprint(embedder.model_dir):
            raise ModelError(f"the example index in {folder} was built with another model: run `kgqa index build`")
        return cls(index, embedder)

    def search(self, question: str, k: int = 4, topic: str | None = None) -> list[ExampleHit]:
        """The k nearest examples; with `topic`, the question's mention is masked first, as the pool's are."""
        return self.search_many([question], k, [topic])[0]

    def search_many(self, questions: list[str], k: int = 4, topics: Sequence[str | None] | None = None
                    ) -> list[list[ExampleHit]]:
        topics = list(topics) if topics is not None else [None] * len(questions)
        vectors = self.embedder.embed([masked_question(q, t) if t else q for q, t in zip(questions, topics)])
        scores, ids = self.index.search(vectors, k)
        return [[ExampleHit(self.examples[j], float(s)) for s, j in zip(row_s, row_i) if j >= 0]
                for row_s, row_i in zip(scores, ids)]


# ---- entity names ------------------------------------------------------------------------------


class EntityRetriever:
    """Entity names nearest in meaning to a piece of text (the embedding tier of entity linking)."""

    def __init__(self, index: VectorIndex, embedder: SentenceEmbedder) -> None:
        self.index = index
        self.embedder = embedder

    @classmethod
    def build(cls, graph: GraphStore, embedder: SentenceEmbedder, folder: FsPath | None = None,
              on_progress: Progress | None = None) -> tuple["EntityRetriever", bool]:
        names = sorted(set(graph.entity_names()))
        key = content_fingerprint("entities", model_fingerprint(embedder.model_dir), names)
        index, built = build_or_load(folder, key, names, [{"name": n} for n in names],
                                     lambda t: embed_in_chunks(embedder, t, on_progress),
                                     {"kind": "entities", "model": str(embedder.model_dir)})
        return cls(index, embedder), built

    def search(self, text: str, k: int = 10) -> list[EntityHit]:
        return self.search_many([text], k)[0]

    def search_many(self, texts: list[str], k: int = 10) -> list[list[EntityHit]]:
        scores, ids = self.index.search(self.embedder.embed(texts), k)
        return [[EntityHit(self.index.items[j]["name"], float(s)) for s, j in zip(row_s, row_i) if j >= 0]
                for row_s, row_i in zip(scores, ids)]


# ---- building them all -------------------------------------------------------------------------

INDEX_KINDS = ("examples", "entities")


@dataclass
class IndexReport:
    kind: str
    rows: int
    built: bool
    seconds: float
    folder: str


def build_indexes(settings: Settings, graph: GraphStore, kinds: Sequence[str] = INDEX_KINDS,
                  examples: list[PathExample] | None = None,
                  on_start: Callable[[str, int], Progress] | None = None) -> list[IndexReport]:
    """Build (or load, when up to date) the named indexes; `on_start(kind, total)` returns a progress callback."""
    import time

    model: PathModel = path_model(settings)
    embedder = load_embedder(str(model.model_dir))
    root = index_root(settings) / graph_key(graph)
    reports = []
    for kind in kinds:
        started = time.perf_counter()
        progress = on_start(kind, _expected_rows(kind, graph, settings, examples)) if on_start else None
        built_index: ExampleRetriever | EntityRetriever
        if kind == "examples":
            if not examples:
                raise InputError("building the example index needs examples (a benchmark or a JSONL pool)")
            built_index, built = ExampleRetriever.build(examples, embedder, index_root(settings) / "examples", progress)
        elif kind == "entities":
            built_index, built = EntityRetriever.build(graph, embedder, root / "entities", progress)
        else:
            raise InputError(f"unknown index {kind!r}; known: {', '.join(INDEX_KINDS)}")
        folder = root / kind if kind != "examples" else index_root(settings) / "examples"
        reports.append(IndexReport(kind, len(built_index.index), built, round(time.perf_counter() - started, 2),
                                   str(folder)))
    return reports


def _expected_rows(kind: str, graph: GraphStore, settings: Settings, examples: list[PathExample] | None) -> int:
    if kind == "examples":
        return len(examples or [])
    return len(graph.entity_names())


def open_entity_retriever(settings: Settings, graph: GraphStore) -> EntityRetriever:
    """The entity-name retriever for this graph and model (a shared helper for linking); built on first use."""
    embedder = load_embedder(str(path_model(settings).model_dir))
    retriever, _ = EntityRetriever.build(graph, embedder, index_root(settings) / graph_key(graph) / "entities")
    return retriever


def open_example_retriever(settings: Settings) -> ExampleRetriever:
    """The example pool `kgqa index build` saved."""
    embedder = load_embedder(str(path_model(settings).model_dir))
    return ExampleRetriever.load(index_root(settings) / "examples", embedder)
