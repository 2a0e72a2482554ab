"""Entity linking: find the topic entity of a question."""

from __future__ import annotations

import logging
from pathlib import Path

from kgqa.config import Settings
from kgqa.errors import ModelError
from kgqa.graph.store import GraphStore
from kgqa.model_store import model_dir
from kgqa.linking.aliases import AliasIndex, NameEmbedder, build_alias_index
from kgqa.linking.linker import BertLinker
from kgqa.linking.names import NameMatchLinker

__all__ = ["AliasIndex", "BertLinker", "NameMatchLinker", "build_alias_index", "linker_dir", "make_linker"]

log = logging.getLogger(__name__)


NAME_MATCH = ("names", "none", "off")


def linker_dir(settings: Settings, graph: GraphStore) -> Path:
    """Where `kgqa train linker` saves the fine-tuned tagger for this graph and where the agent looks for it."""
    configured = settings.linker
    if configured and configured.strip().lower() not in NAME_MATCH:
        return Path(configured).expanduser()
    return model_dir(settings, graph, "linker")


def make_linker(settings: Settings, graph: GraphStore) -> BertLinker | NameMatchLinker:
    """The fine-tuned BERT linker when `kgqa train linker` has saved one, else the name-matching baseline.

    `settings.linker`: `names` asks for the baseline; a folder must hold a trained linker.
    """
    configured = (settings.linker or "").strip()
    if configured.lower() in NAME_MATCH:
        return NameMatchLinker(graph, cache_dir=settings.cache_dir)
    folder = linker_dir(settings, graph)
    if configured and not (folder / "model.safetensors").exists():
        raise ModelError(f"{folder}: no trained linker here (run `kgqa train linker --out {folder}`)")
    if not (folder / "model.safetensors").exists():  # nothing trained for this graph (model_store says so)
        return NameMatchLinker(graph, cache_dir=settings.cache_dir)

    # the sentence embedder loads only if a name needs it
    return BertLinker.load(folder, graph, settings.cache_dir, NameEmbedder(settings.embedder))

