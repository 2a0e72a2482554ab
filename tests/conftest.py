"""Shared fixtures: a hand-made movie graph and an isolated cache folder."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
METAQA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "metaqa"


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test run gets its own cache unless KGQA_CACHE_DIR is set (CI sets it to reuse models)."""
    import os

    if "KGQA_CACHE_DIR" not in os.environ:
        monkeypatch.setenv("KGQA_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
    return Path(os.environ["KGQA_CACHE_DIR"])


@pytest.fixture
def tiny_kb() -> Path:
    return DATA / "tiny_kb.txt"


@pytest.fixture(scope="session")
def metaqa_graph():
    from kgqa.graph import bundled_graph_file
    from kgqa.graph.embedded import EmbeddedGraph

    return EmbeddedGraph.from_file(bundled_graph_file(), "pipe")
