"""Facts near a topic entity: the triples one step around it, verbalised and ranked against the question.

A small FAISS index is built per query over the topic's neighbourhood (capped, with every relation
represented); fact vectors are kept in a bounded in-memory cache, so asking about the same entity
again embeds nothing new.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from kgqa.encoder import SentenceEmbedder
from kgqa.graph.store import GraphStore, step_triple
from kgqa.retrieval.data import masked_question
from kgqa.retrieval.index import VectorIndex
from kgqa.retrieval.paths import relation_words
from kgqa.types import Triple


@dataclass(frozen=True)
class FactHit:
    triple: Triple
    text: str
    score: float


def verbalise_triple(triple: Triple) -> str:
    """`Kismet|directed_by|William Dieterle` -> `Kismet directed by William Dieterle`."""
    return f"{triple.subject} {relation_words(triple.relation)} {triple.object}"


def neighbourhood(graph: GraphStore, topic: str, max_facts: int = 256) -> list[Triple]:
    """Triples one step from `topic`, taken round-robin over its relations so that none is crowded out."""
    per_step = [[step_triple(step, topic, other) for other in graph.neighbours(topic, step)]
                for step in graph.all_steps()]
    per_step = [triples for triples in per_step if triples]
    facts: list[Triple] = []
    seen: set[Triple] = set()
    depth = 0
    while len(facts) < max_facts and any(depth < len(t) for t in per_step):
        for triples in per_step:
            if depth < len(triples) and triples[depth] not in seen and len(facts) < max_facts:
                facts.append(triples[depth])
                seen.add(triples[depth])
        depth += 1
    return facts


class FactRetriever:
    """The facts around a topic entity that best match the question."""

    def __init__(self, graph: GraphStore, embedder: SentenceEmbedder, max_facts: int = 256,
                 cache_size: int = 50_000) -> None:
        self.graph = graph
        self.embedder = embedder
        self.max_facts = max_facts
        self.cache_size = cache_size
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()

    def _embed(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if missing:
            self._vectors.update(zip(missing, self.embedder.embed(missing)))
            while len(self._vectors) > self.cache_size:
                self._vectors.popitem(last=False)
        return np.stack([self._vectors[t] for t in texts])

    def search(self, question: str, topic: str, k: int = 10) -> list[FactHit]:
        """The k facts about `topic` closest to the question (the topic's mention masked in the question)."""
        facts = neighbourhood(self.graph, topic, self.max_facts)
        if not facts:
            return []
        texts = [verbalise_triple(t) for t in facts]
        index = VectorIndex(self._embed(texts), [{"row": i} for i in range(len(facts))])
        query = self.embedder.embed([masked_question(question, topic)])
        scores, ids = index.search(query, k)
        return [FactHit(facts[j], texts[j], float(s)) for s, j in zip(scores[0], ids[0]) if j >= 0]
