"""The baseline linker: find entity names inside the question, longest match first, ignoring case."""

from __future__ import annotations

import re
from dataclasses import dataclass

from kgqa.graph.store import GraphStore
from kgqa.types import Entity, Mention

_TOKEN = re.compile(r"\w+|[^\w\s]")


def tokens_with_spans(text: str) -> list[tuple[str, int, int]]:
    return [(m.group().lower(), m.start(), m.end()) for m in _TOKEN.finditer(text)]


def normalise(text: str) -> str:
    """Lower case, one space between word and punctuation tokens: `Paris, Texas` -> `paris , texas`."""
    return " ".join(tok for tok, _, _ in tokens_with_spans(text))


@dataclass
class NameIndex:
    """Normalised entity name -> the entity names that share it (best first)."""

    names: dict[str, list[str]]
    max_tokens: int

    @classmethod
    def build(cls, graph: GraphStore, max_tokens: int = 24) -> "NameIndex":
        index: dict[str, list[str]] = {}
        longest = 1
        for name in graph.entity_names():
            key = normalise(name)
            if key:
                index.setdefault(key, []).append(name)
                longest = max(longest, key.count(" ") + 1)
        return cls(index, min(longest, max_tokens))


class NameMatchLinker:
    """Links the longest span of the question that equals an entity name (case-insensitive)."""

    def __init__(self, graph: GraphStore, index: NameIndex | None = None) -> None:
        self.graph = graph
        self.index = index or NameIndex.build(graph)

    def link(self, question: str) -> list[Mention]:
        """Mentions, best first: longer spans first, then those written exactly as a name, then later ones."""
        toks = tokens_with_spans(question)
        found: list[tuple[int, bool, int, Mention]] = []
        for i in range(len(toks)):
            for j in range(min(len(toks), i + self.index.max_tokens), i, -1):
                key = " ".join(t for t, _, _ in toks[i:j])
                names = self.index.names.get(key)
                if names:
                    start, end = toks[i][1], toks[j - 1][2]
                    ranked = self._rank(names, question[start:end])
                    exact = ranked[0].name == question[start:end]
                    found.append((j - i, exact, start, Mention(question[start:end], start, end, ranked)))
                    break
        found.sort(key=lambda f: (-f[0], not f[1], -f[2]))
        return [m for *_, m in found]

    def link_batch(self, questions: list[str]) -> list[list[Mention]]:
        return [self.link(q) for q in questions]

    def _rank(self, names: list[str], surface: str) -> tuple[Entity, ...]:
        ranked = sorted(names, key=lambda n: (n != surface, n.lower() != surface.lower(), -self.graph.degree(n)))
        return tuple(Entity(name, self.graph.degree(name)) for name in ranked)
