"""The GraphStore interface every backend implements, and the result of walking a path."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from kgqa.types import Path, Step, Triple


@dataclass
class Expansion:
    """The entities reached from one topic entity along one path, with one evidence chain each."""

    topic: str
    path: Path
    evidence: dict[str, list[Triple]] = field(default_factory=dict)

    @property
    def answers(self) -> list[str]:
        return list(self.evidence)


def step_triple(step: Step, source: str, target: str) -> Triple:
    """The stored triple behind walking `step` from `source` to `target`."""
    if step.inverse:
        return Triple(target, step.relation, source)
    return Triple(source, step.relation, target)


class GraphStore(ABC):
    """A knowledge graph kgqa can answer over. Entities are identified by their names."""

    @abstractmethod
    def find_entities(self, name: str) -> list[str]:
        """Entity names equal to `name` ignoring case, best (exact case, then highest degree) first."""

    @abstractmethod
    def entity_names(self) -> list[str]:
        """Every entity name, for building alias indexes."""

    @abstractmethod
    def degree(self, name: str) -> int:
        """Number of triples the entity takes part in (0 when unknown)."""

    @abstractmethod
    def neighbours(self, name: str, step: Step) -> list[str]:
        """Entities one step away from `name`."""

    @abstractmethod
    def expand_many(self, topics: list[str], path: Path) -> list[Expansion]:
        """Walk `path` from each topic (one Expansion per topic, in order); a topic is never its own answer."""

    def expand(self, topic: str, path: Path) -> Expansion:
        return self.expand_many([topic], path)[0]

    @abstractmethod
    def relations(self) -> list[str]:
        """Relation names, sorted."""

    @abstractmethod
    def follows(self) -> dict[Step, list[Step]]:
        """For each step, the steps that can be walked right after it somewhere in the graph."""

    @abstractmethod
    def reachable_paths(self, topic: str, max_hops: int) -> list[Path]:
        """Every path of 1..max_hops steps that reaches at least one entity from `topic`."""

    def reachable_paths_many(self, topics: list[str], max_hops: int) -> list[list[Path]]:
        return [self.reachable_paths(topic, max_hops) for topic in topics]

    @abstractmethod
    def stats(self) -> dict[str, object]:
        """Counts: entities, triples, relations and triples per relation."""

    def close(self) -> None:
        """Release connections; the embedded store has none."""

    def all_steps(self) -> list[Step]:
        return [Step(r, inv) for r in self.relations() for inv in (False, True)]
