"""The reranker: one fused, batched score per candidate answer group (topic entity x relation path).

`kgqa train reranker` fine-tunes a BERT cross-encoder on (masked question, path verbalisation) pairs of the
benchmark's dev split and fits a fusion layer on dev's held-out slice; the agent uses the saved folder
(the graph's model folder, see `model_store`, or `settings.reranker`) when there is one.
"""

from __future__ import annotations

import logging
from pathlib import Path

from kgqa.config import Settings, mask_uri
from kgqa.graph.store import GraphStore
from kgqa.model_store import model_dir
from kgqa.rerank.candidates import (FEATURES, Group, collect_groups, mark_question_signals, rank_other_topics,
                                    select_answers)
from kgqa.rerank.model import Fusion, NumpyCrossEncoder, Reranker, TorchCrossEncoder

__all__ = ["FEATURES", "Fusion", "Group", "NumpyCrossEncoder", "Reranker", "TorchCrossEncoder", "collect_groups",
           "inference_backend", "load_reranker", "mark_question_signals", "rank_other_topics", "reranker_dir",
           "select_answers"]

RERANKER_DIR = "reranker"
OFF = ("none", "off", "")

log = logging.getLogger(__name__)


def reranker_dir(settings: Settings, graph: GraphStore) -> Path:
    """Where `kgqa train reranker` saves the model for this graph and where the agent looks for it."""
    configured = getattr(settings, "reranker", None)
    if configured and configured.lower() not in OFF:
        return Path(configured).expanduser()
    return model_dir(settings, graph, RERANKER_DIR)


BACKENDS = ("auto", "numpy", "torch")


def inference_backend(settings: Settings, many: bool) -> str:
    """numpy or torch, from `settings.backend`; auto picks torch for many questions (a batch or eval run,
    where its ~2x faster CPU kernels repay its import time) when it is installed."""
    import importlib.util

    from kgqa.errors import InputError

    choice = (settings.backend or "auto").strip().lower()
    if choice not in BACKENDS:
        raise InputError(f"setting backend: {settings.backend!r} is not one of {', '.join(BACKENDS)}")
    if choice == "auto":
        return "torch" if many and importlib.util.find_spec("torch") is not None else "numpy"
    return choice


def load_reranker(settings: Settings, graph: GraphStore, backend: str = "numpy") -> Reranker | None:
    """The trained reranker, or None when the setting says `none` or nothing has been trained yet.

    A folder named explicitly by `settings.reranker` must hold a reranker; the default folder may be empty.
    """
    configured = getattr(settings, "reranker", None)
    if configured is not None and configured.strip().lower() in OFF:
        return None
    folder = reranker_dir(settings, graph)
    if not configured and not (folder / "model.safetensors").exists():
        return None
    reranker = Reranker.load(folder, backend)
    trained_with = reranker.meta.get("retriever")
    if trained_with and trained_with != reranker_context(settings, graph).get("retriever"):
        log.warning("the reranker in %s was fitted with another path retriever (%s); rerun `kgqa train reranker` "
                    "for calibrated scores", folder, trained_with)
    return reranker


def reranker_context(settings: Settings, graph: GraphStore) -> dict:
    """What the fusion layer's signals depend on: which retriever and linker produced them."""
    from kgqa.retrieval.model import path_model

    from kgqa.linking import NAME_MATCH, linker_dir

    model = path_model(settings, graph)
    chosen = (settings.linker or "").strip().lower()
    trained_linker = chosen not in NAME_MATCH and (linker_dir(settings, graph) / "model.safetensors").exists()
    # the retriever by its training record, not its folder: a copied or moved model is the same model
    retriever = f"trained {model.meta.get('created', '?')}" if model.trained else f"untrained {model.model_dir.name}"
    return {"retriever": retriever,
            "hop_penalty": model.hop_penalty, "linker": "trained" if trained_linker else "name match",
            "llm": mask_uri(settings.llm) if settings.llm else settings.llm}
