"""Shared fixtures: a hand-made movie graph and an isolated cache folder."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
METAQA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "metaqa"


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test session gets its own cache, so models trained by the user never change what tests see."""
    cache = tmp_path_factory.getbasetemp() / "cache"
    monkeypatch.setenv("KGQA_CACHE_DIR", str(cache))
    return cache


@pytest.fixture
def tiny_kb() -> Path:
    return DATA / "tiny_kb.txt"


@pytest.fixture(scope="session")
def metaqa_graph():
    from kgqa.config import load_settings
    from kgqa.graph import apply_conventions, bundled_graph_file
    from kgqa.graph.embedded import EmbeddedGraph

    graph = EmbeddedGraph.from_file(bundled_graph_file(), "pipe")
    apply_conventions(graph, load_settings(environ={}))  # the bundled graph's own settings: MetaQA's conventions
    return graph
