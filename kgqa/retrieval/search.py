"""Relation-path search: grow paths hop by hop from the topic entity, keeping the best few at each hop.

At every hop the store says which steps can be walked from where each kept partial path leads
(`GraphStore.next_steps_many`, one call per hop for the whole batch); each extension is scored against
the question by the path ranker, every scored path (of any length) competes for the final ranking, and
the best `beam_width` of the new paths are extended at the next hop. Cost follows the beam, not the
number of relations raised to the number of hops. When more than `shortlist` steps can be walked after a
partial path, only the `shortlist` steps nearest the question in the graph's relation index (FAISS, over
the verbalised steps) are scored as extensions. `beam_width = 0` and `shortlist = 0` keep everything:
that is exhaustive enumeration of the walkable paths, the reference the beam is measured against.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kgqa.graph.store import GraphStore
from kgqa.questions import Example
from kgqa.retrieval.index import VectorIndex
from kgqa.retrieval.paths import PathRanker, verbalise_step
from kgqa.types import Path, PathCandidate, Step


class RelationIndex:
    """FAISS inner-product index over the graph's steps (relation x direction), by their verbalisation."""

    def __init__(self, steps: list[Step], ranker: PathRanker) -> None:
        self.steps = steps
        self.row_of = {step: row for row, step in enumerate(steps)}
        vectors = ranker.path_vectors([verbalise_step(s) for s in steps])
        self.index = VectorIndex(vectors, steps)

    def shortlist(self, question_vector: np.ndarray, steps: list[Step], k: int) -> list[Step]:
        """The k of `steps` nearest the question, in their original order."""
        _, ids = self.index.search(question_vector, k, subset=[self.row_of[s] for s in steps])
        chosen = {self.steps[i] for i in ids[0] if i >= 0}
        return [s for s in steps if s in chosen]


class PathSearch:
    """Beam search over the relation paths walkable from each topic entity."""

    def __init__(self, graph: GraphStore, ranker: PathRanker, max_hops: int, beam_width: int = 10,
                 shortlist: int = 32) -> None:
        self.graph = graph
        self.ranker = ranker
        self.max_hops = max_hops
        self.beam_width = beam_width
        self.shortlist = shortlist
        self._relations: RelationIndex | None = None

    @property
    def relation_index(self) -> RelationIndex:
        if self._relations is None:
            self._relations = RelationIndex(self.graph.all_steps(), self.ranker)
        return self._relations

    def search_many(self, topics: list[str], vectors: np.ndarray, top_k: int | None) -> list[list[PathCandidate]]:
        """The top_k paths of each topic for its question vector, best first (None: every path scored)."""
        beams: list[list[Path]] = [[()] for _ in topics]
        scored: list[dict[Path, float]] = [{} for _ in topics]
        for _ in range(self.max_hops):
            rows = [(q, prefix) for q, beam in enumerate(beams) for prefix in beam]
            if not rows:
                break
            options = self.graph.next_steps_many([topics[q] for q, _ in rows], [p for _, p in rows])
            grown: list[list[Path]] = [[] for _ in topics]
            for (q, prefix), steps in zip(rows, options):
                if self.shortlist and len(steps) > self.shortlist:
                    steps = self.relation_index.shortlist(vectors[q], steps, self.shortlist)
                grown[q] += [prefix + (step,) for step in steps]
            for q, paths in enumerate(grown):
                if not paths:
                    beams[q] = []
                    continue
                scores = self.ranker.score(vectors[q], paths)
                scored[q].update(zip(paths, scores.tolist()))
                order = np.argsort(-scores, kind="stable")
                beams[q] = [paths[i] for i in (order[:self.beam_width] if self.beam_width else order)]
        ranked = []
        for found in scored:
            best = sorted(found.items(), key=lambda kv: -kv[1])[:top_k]  # stable: ties keep the search's order
            ranked.append([PathCandidate(path, self.ranker.text(path), score) for path, score in best])
        return ranked


def path_search(settings, graph: GraphStore, ranker: PathRanker) -> PathSearch:
    """The search the settings describe (max_hops, beam_width, relation_shortlist)."""
    return PathSearch(graph, ranker, settings.max_hops, settings.beam_width, settings.relation_shortlist)


def searched_paths(search: PathSearch, examples: Sequence[Example], chunk: int = 256) -> list[list[Path]]:
    """Every path the search scores from each example's topic for its masked question, best first.

    Training draws its negatives from these (the paths the agent would weigh), and recall is measured on them.
    """
    out: list[list[Path]] = []
    for start in range(0, len(examples), chunk):
        part = examples[start:start + chunk]
        vectors = search.ranker.embedder.embed([e.masked for e in part])
        out += [[c.path for c in row] for row in search.search_many([e.topic for e in part], vectors, None)]
    return out
