"""Entity linking: find the topic entity of a question."""

from __future__ import annotations

from kgqa.config import Settings
from kgqa.graph.store import GraphStore
from kgqa.linking.names import NameMatchLinker


def make_linker(settings: Settings, graph: GraphStore) -> NameMatchLinker:
    """The linker the settings ask for (today: the name-matching baseline)."""
    return NameMatchLinker(graph)
