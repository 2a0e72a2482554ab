"""Retrievers over FAISS indexes: relation paths, few-shot examples and entity names.

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
from kgqa.retrieval.paths import verbalise_path
from kgqa.types import Path, format_path, parse_path

Progress = Callable[[int], None]
MAX_SCHEMA_PATHS = 200_000


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


def schema_paths(graph: GraphStore, max_hops: int, limit: int = MAX_SCHEMA_PATHS) -> list[Path]:
    """Every step sequence of 1..max_hops that the graph's schema allows (graph.follows()), shortest first."""
    follows = graph.follows()
    paths: list[Path] = [(step,) for step in sorted(follows, key=str)]
    frontier = list(paths)
    for _ in range(max_hops - 1):
        frontier = [p + (nxt,) for p in frontier for nxt in follows.get(p[-1], [])]
        if len(paths) + len(frontier) > limit:
            raise InputError(f"the graph's schema allows more than {limit:,} paths of {max_hops} hops; "
                             f"lower max_hops")
        paths += frontier
    return paths


# ---- typed hits --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PathHit:
    path: Path
    text: str
    score: float

    @property
    def path_id(self) -> str:
        return format_path(self.path)


@dataclass(frozen=True)
class ExampleHit:
    example: PathExample
    score: float


@dataclass(frozen=True)
class EntityHit:
    name: str
    score: float


# ---- paths -------------------------------------------------------------------------------------


class PathRetriever:
    """Relation paths of the graph's schema, ranked by cosine to the masked question less a per-hop penalty.

    With a topic entity, only the paths that reach something from it are candidates.
    """

    def __init__(self, index: VectorIndex, embedder: SentenceEmbedder, graph: GraphStore | None = None,
                 hop_penalty: float = 0.0, max_hops: int = 3) -> None:
        self.index = index
        self.embedder = embedder
        self.graph = graph
        self.hop_penalty = hop_penalty
        self.max_hops = max_hops
        self.paths = [parse_path(item["path"]) for item in index.items]
        self.row_of = {path: row for row, path in enumerate(self.paths)}
        self._hops = np.array([len(p) - 1 for p in self.paths], np.float32)

    @classmethod
    def build(cls, graph: GraphStore, embedder: SentenceEmbedder, folder: FsPath | None = None,
              hop_penalty: float = 0.0, max_hops: int = 3, on_progress: Progress | None = None
              ) -> tuple["PathRetriever", bool]:
        paths = schema_paths(graph, max_hops)
        texts = [verbalise_path(p) for p in paths]
        items = [{"path": format_path(p), "text": t, "hops": len(p)} for p, t in zip(paths, texts)]
        key = content_fingerprint("paths", model_fingerprint(embedder.model_dir),
                                  [f"{i['path']}\t{i['text']}" for i in items])
        index, built = build_or_load(folder, key, texts, items,
                                     lambda t: embed_in_chunks(embedder, t, on_progress),
                                     {"kind": "paths", "model": str(embedder.model_dir), "max_hops": max_hops})
        return cls(index, embedder, graph, hop_penalty, max_hops), built

    def search(self, question: str, k: int = 5, topic: str | None = None) -> list[PathHit]:
        """The k best paths for the question; with `topic`, its mention is masked and only reachable paths compete."""
        return self.search_many([question], k, [topic])[0]

    def search_many(self, questions: list[str], k: int = 5, topics: Sequence[str | None] | None = None
                    ) -> list[list[PathHit]]:
        topics = list(topics) if topics is not None else [None] * len(questions)
        texts = [masked_question(q, t) if t else q for q, t in zip(questions, topics)]
        vectors = self.embedder.embed(texts)
        known = [i for i, t in enumerate(topics) if t]
        reachable: dict[int, list[Path]] = {}
        if known:
            if self.graph is None:
                raise InputError("a topic entity was given but the path retriever has no graph")
            found = self.graph.reachable_paths_many([topics[i] for i in known], self.max_hops)
            reachable = dict(zip(known, found))
        out = []
        for i, vector in enumerate(vectors):
            rows = (np.arange(len(self.paths)) if i not in reachable
                    else np.array([self.row_of[p] for p in reachable[i] if p in self.row_of], np.int64))
            if len(rows) == 0:
                out.append([])
                continue
            scores, ids = self.index.search(vector, len(rows), subset=None if i not in reachable else rows)
            ids = ids[0][ids[0] >= 0]
            adjusted = scores[0][:len(ids)] - self.hop_penalty * self._hops[ids]
            order = np.argsort(-adjusted, kind="stable")[:k]
            out.append([PathHit(self.paths[ids[j]], self.index.items[ids[j]]["text"], float(adjusted[j]))
                        for j in order])
        return out


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

INDEX_KINDS = ("paths", "examples", "entities")


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
        if kind == "paths":
            built_index: PathRetriever | ExampleRetriever | EntityRetriever
            built_index, built = PathRetriever.build(graph, embedder, root / "paths", model.hop_penalty,
                                                     settings.max_hops, progress)
        elif kind == "examples":
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
    if kind == "paths":
        return len(schema_paths(graph, settings.max_hops))
    if kind == "examples":
        return len(examples or [])
    return len(graph.entity_names())


def open_path_retriever(settings: Settings, graph: GraphStore) -> PathRetriever:
    """The path retriever for this graph and model, built on first use."""
    model = path_model(settings)
    embedder = load_embedder(str(model.model_dir))
    retriever, _ = PathRetriever.build(graph, embedder, index_root(settings) / graph_key(graph) / "paths",
                                       model.hop_penalty, settings.max_hops)
    return retriever


def open_entity_retriever(settings: Settings, graph: GraphStore) -> EntityRetriever:
    """The entity-name retriever for this graph and model (a shared helper for linking); built on first use."""
    embedder = load_embedder(str(path_model(settings).model_dir))
    retriever, _ = EntityRetriever.build(graph, embedder, index_root(settings) / graph_key(graph) / "entities")
    return retriever


def open_example_retriever(settings: Settings) -> ExampleRetriever:
    """The example pool `kgqa index build` saved."""
    embedder = load_embedder(str(path_model(settings).model_dir))
    return ExampleRetriever.load(index_root(settings) / "examples", embedder)
