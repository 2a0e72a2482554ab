"""Entity linking: find the topic entity of a question."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from kgqa.config import Settings
from kgqa.errors import ModelError
from kgqa.graph.store import GraphStore
from kgqa.linking.aliases import AliasIndex, build_alias_index
from kgqa.linking.linker import BertLinker
from kgqa.linking.names import NameMatchLinker

__all__ = ["AliasIndex", "BertLinker", "NameMatchLinker", "build_alias_index", "linker_dir", "make_linker"]

log = logging.getLogger(__name__)
_fallback_said = False


NAME_MATCH = ("names", "none", "off")


def linker_dir(settings: Settings) -> Path:
    """Where `kgqa train linker` saves the fine-tuned tagger and where the agent looks for it."""
    configured = settings.linker
    if configured and configured.strip().lower() not in NAME_MATCH:
        return Path(configured).expanduser()
    return settings.models_dir / "linker"


def make_linker(settings: Settings, graph: GraphStore) -> BertLinker | NameMatchLinker:
    """The fine-tuned BERT linker when `kgqa train linker` has saved one, else the name-matching baseline.

    `settings.linker`: `names` asks for the baseline; a folder must hold a trained linker.
    """
    global _fallback_said
    configured = (settings.linker or "").strip()
    if configured.lower() in NAME_MATCH:
        return NameMatchLinker(graph, cache_dir=settings.cache_dir)
    model_dir = linker_dir(settings)
    if configured and not (model_dir / "model.safetensors").exists():
        raise ModelError(f"{model_dir}: no trained linker here (run `kgqa train linker --out {model_dir}`)")
    if not (model_dir / "model.safetensors").exists():
        if not _fallback_said:
            log.warning("no trained entity linker in %s (run `kgqa train linker`); "
                        "using the name-matching linker", model_dir)
            _fallback_said = True
        return NameMatchLinker(graph, cache_dir=settings.cache_dir)

    def embed(texts: list[str]) -> np.ndarray:  # the sentence embedder loads only if a name needs it
        from kgqa.encoder import load_embedder

        return load_embedder(settings.embedder).embed(texts)

    return BertLinker.load(model_dir, graph, settings.cache_dir, embed)

