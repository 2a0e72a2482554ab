"""Which embedding model ranks paths, and with which hop penalty.

The trained retriever (`kgqa train retriever`) lives in the graph's model folder (`model_store`): a standard
sentence-transformers folder plus `kgqa_retriever.json`, the training record, which carries the hop
penalty chosen on held-out dev. When the folder exists it is used; an explicit `embedder` setting wins.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kgqa.config import Settings
from kgqa.encoder import default_model_path
from kgqa.graph.store import GraphStore
from kgqa.model_store import model_dir as model_dir_of

RETRIEVER_DIR = "retriever"
META_FILE = "kgqa_retriever.json"
UNTRAINED_HOP_PENALTY = 0.1
"""Chosen on MetaQA dev for the packaged MiniLM, which cannot count hops (longer texts score higher)."""


@dataclass(frozen=True)
class PathModel:
    model_dir: Path
    hop_penalty: float
    trained: bool
    meta: dict[str, Any] = field(default_factory=dict, compare=False)


def retriever_dir(settings: Settings, graph: GraphStore) -> Path:
    return model_dir_of(settings, graph, RETRIEVER_DIR)


def read_meta(model_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((Path(model_dir) / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def path_model(settings: Settings, graph: GraphStore) -> PathModel:
    """The embedder for path ranking: settings.embedder, else the retriever trained for this graph, else
    packaged MiniLM."""
    if settings.embedder:
        model_dir = Path(settings.embedder).expanduser()
    elif (retriever_dir(settings, graph) / "model.safetensors").exists():
        model_dir = retriever_dir(settings, graph)
    else:
        model_dir = default_model_path()
    meta = read_meta(model_dir)
    penalty = settings.hop_penalty
    if penalty is None:
        penalty = float(meta.get("hop_penalty", UNTRAINED_HOP_PENALTY))
    return PathModel(model_dir, penalty, bool(meta), meta)
