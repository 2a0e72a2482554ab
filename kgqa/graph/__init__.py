"""Graph backends behind one interface; `open_graph` picks one from the settings."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from kgqa.config import BUNDLED_GRAPH, NEO4J_SCHEMES, Settings, check_graph_uri
from kgqa.errors import InputError
from kgqa.graph.store import Expansion, GraphStore

__all__ = ["Expansion", "GraphStore", "bundled_graph_file", "open_graph"]


def bundled_graph_file() -> Path:
    """The MetaQA movie KB shipped inside the package (CC BY 3.0, see kgqa/data/ATTRIBUTION.md)."""
    return Path(str(resources.files("kgqa") / "data" / "metaqa_kb.txt.gz"))


def open_graph(settings: Settings) -> GraphStore:
    """The graph the settings name: the bundled movie graph, a triples file, or a Neo4j server."""
    if settings.graph.startswith(NEO4J_SCHEMES):
        check_graph_uri(settings.graph)  # a malformed URI is a clear message before the driver sees it
        from kgqa.graph.neo4j_store import Neo4jGraph

        return Neo4jGraph.connect(settings)
    from kgqa.graph.embedded import EmbeddedGraph

    path = bundled_graph_file() if settings.graph == BUNDLED_GRAPH else Path(settings.graph).expanduser()
    if not path.exists():
        raise InputError(f"graph file {path} does not exist (use --graph FILE, a neo4j:// URI, or 'metaqa')")
    fmt = "pipe" if settings.graph == BUNDLED_GRAPH else settings.graph_format
    graph = EmbeddedGraph.from_file(path, fmt, cache_dir=settings.cache_dir)
    apply_conventions(graph, settings)
    return graph


def apply_conventions(graph: GraphStore, settings: Settings) -> None:
    """Give the store the settings' walk rules: the cap, and whether a walk may come back to its topic."""
    graph.walk_cap = settings.walk_cap
    graph.walk_through_topic = settings.walk_through_topic
    graph.topic_as_answer = settings.topic_as_answer
