"""Trained models belong to a graph: `<cache>/models/<graph key>/{linker,retriever,reranker,shapes}`.

The key is a digest of the graph's `identity()`: the triples file's content, or the Neo4j URI (credentials
masked), database and label. So a model trained on one graph is never used to answer over another, and
training on a user's graph leaves the movie models alone. Each graph folder holds `graph.json`, which says
what graph it belongs to (for `kgqa kg stats`).

Models trained before models were kept per graph lie directly in `<cache>/models/<kind>`; they were
always trained for the bundled movie graph, and move into its folder the first time it is opened.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from kgqa.config import BUNDLED_GRAPH, Settings
from kgqa.files import write_text_atomically
from kgqa.graph.store import GraphStore

MODEL_KINDS = ("linker", "retriever", "reranker", "shapes")
GRAPH_FILE = "graph.json"
WEIGHTS = "model.safetensors"

log = logging.getLogger(__name__)
_said: set[str] = set()


def graph_key(identity: str) -> str:
    """The folder name of a graph's models."""
    return hashlib.sha256(identity.encode("utf-8")).hexdigest()[:16]


def graph_models_dir(settings: Settings, graph: GraphStore) -> Path:
    """The folder of the models trained for `graph` (which may not exist yet)."""
    folder = settings.cache_dir / "models" / graph_key(graph.identity())
    if settings.graph == BUNDLED_GRAPH:
        _adopt_flat_models(settings.cache_dir / "models", folder)
    return folder


def model_dir(settings: Settings, graph: GraphStore, kind: str) -> Path:
    """Where `kgqa train <kind>` saves its model for this graph, and where the agent looks for it."""
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}")
    return graph_models_dir(settings, graph) / kind


FEWSHOT_FILE = "fewshot.jsonl"


def fewshot_file(settings: Settings, graph: GraphStore) -> Path:
    """Where `kgqa train all` writes the graph's own few-shot pool (its training questions)."""
    return graph_models_dir(settings, graph) / FEWSHOT_FILE


def fewshot_pool_file(settings: Settings, graph: GraphStore) -> Path | None:
    """The few-shot pool the LLM gets for this graph: the configured one; else the graph's own; else, for the
    bundled movie graph, the packaged MetaQA dev pool; else none (a pool from another graph would teach the
    LLM that graph's paths). None also when `fewshot_pool = "none"`."""
    if settings.fewshot_pool:
        return None if settings.fewshot_pool.lower() == "none" else Path(settings.fewshot_pool)
    own = fewshot_file(settings, graph)
    if own.exists():
        return own
    if settings.graph == BUNDLED_GRAPH:
        from kgqa.prompting import default_pool_file

        return default_pool_file()
    return None


def trained_kinds(settings: Settings, graph: GraphStore) -> list[str]:
    """The kinds of model trained for this graph."""
    folder = graph_models_dir(settings, graph)
    return [kind for kind in MODEL_KINDS if (folder / kind / WEIGHTS).exists()]


def record_graph(settings: Settings, graph: GraphStore) -> None:
    """Write `graph.json` beside a graph's models: which graph they were trained for."""
    folder = graph_models_dir(settings, graph)
    stats = graph.stats()
    write_text_atomically(folder / GRAPH_FILE, json.dumps(
        {"identity": graph.identity(), "source": str(stats.get("source", "")), "triples": stats.get("triples"),
         "relations": stats.get("relations")}, indent=2, ensure_ascii=False) + "\n")


def say_models_once(settings: Settings, graph: GraphStore) -> None:
    """Log, once per graph and process, which trained models answer over this graph, or that none do."""
    identity = graph.identity()
    if identity in _said:
        return
    _said.add(identity)
    kinds = trained_kinds(settings, graph)
    folder = graph_models_dir(settings, graph)
    if kinds:
        log.info("trained models for this graph: %s (%s)", ", ".join(kinds), folder)
    else:
        log.warning("no trained models for this graph yet (`kgqa train` saves them in %s); using the untrained "
                    "name-matching linker and the packaged embedder", folder)


def _adopt_flat_models(models_root: Path, folder: Path) -> None:
    """Move models of the flat, pre-graph layout (`<cache>/models/<kind>`) into the bundled graph's folder."""
    for kind in MODEL_KINDS:
        old, new = models_root / kind, folder / kind
        if (old / WEIGHTS).exists() and not new.exists():
            folder.mkdir(parents=True, exist_ok=True)
            try:
                old.rename(new)
                log.info("moved the trained %s from %s to the movie graph's models in %s", kind, old, new)
            except OSError:  # another process moved it first
                pass
