"""The GraphStore interface every backend implements, and the result of walking a path."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kgqa.types import Path, Step, Triple

if TYPE_CHECKING:
    from kgqa.program import Program, ProgramResult


DEFAULT_WALK_CAP = 10_000
"""Edges one step of a walk may follow from one topic's frontier before the walk is capped (see `Expansion`)."""


@dataclass
class Expansion:
    """The entities reached from one topic entity along one path, with one evidence chain each.

    A step that would follow more than the store's `walk_cap` edges follows the first `walk_cap` of them
    (in storage order) and the walk is `capped`: `reached` then counts the edges the capped step had, so a
    reply can say "showing 50 of 1,204,331". Uncapped, `reached` is the number of answers.
    """

    topic: str
    path: Path
    evidence: dict[str, list[Triple]] = field(default_factory=dict)
    capped: bool = False
    reached: int = 0

    @property
    def answers(self) -> list[str]:
        return list(self.evidence)


def step_triple(step: Step, source: str, target: str) -> Triple:
    """The stored triple behind walking `step` from `source` to `target`."""
    if step.inverse:
        return Triple(target, step.relation, source)
    return Triple(source, step.relation, target)


class GraphStore(ABC):
    """A knowledge graph kgqa can answer over. Entities are identified by their names.

    Walks (`expand_many`, `next_steps_many`) follow the graph's conventions on coming back to the topic
    entity (`avoids_topic`), and each step follows at most `walk_cap` edges per topic.
    """

    walk_cap: int = DEFAULT_WALK_CAP
    walk_through_topic: bool = True
    topic_as_answer: bool = True

    def avoids_topic(self, hop: int, length: int, prefix: bool = False) -> bool:
        """Whether step `hop` (from 0) of a walk of `length` steps must not land on its topic entity: the
        graph's conventions (`walk_through_topic`, `topic_as_answer` settings) for walks of two or more
        steps. A `prefix` is the start of a longer walk, so even its last step is midway. A one-step walk
        may always land on its topic (a self-loop: "what films did Lemmy act in" may answer "Lemmy")."""
        if length < 2 and not prefix:
            return False
        final = hop == length - 1 and not prefix
        return not (self.topic_as_answer if final else self.walk_through_topic)

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

    def neighbours_many(self, names: list[str], step: Step) -> list[list[str]]:
        """`neighbours` of each name, in order (one call for many: constraints and aggregates of programs)."""
        return [self.neighbours(name, step) for name in names]

    def run_program(self, program: "Program") -> "ProgramResult":
        """Execute a query program (see kgqa.program); stores may do it in fewer round trips."""
        from kgqa.program import execute

        return execute(self, program)

    def program_query(self, program: "Program") -> str | None:
        """The query text a store sends for a program (Neo4j: its Cypher), for `--explain`; None without one."""
        return None

    @abstractmethod
    def expand_many(self, topics: list[str], path: Path) -> list[Expansion]:
        """Walk `path` from each topic (one Expansion per topic, in order), by the graph's conventions."""

    def expand(self, topic: str, path: Path) -> Expansion:
        return self.expand_many([topic], path)[0]

    @abstractmethod
    def relations(self) -> list[str]:
        """Relation names, sorted."""

    @abstractmethod
    def follows(self) -> dict[Step, list[Step]]:
        """For each step, the steps that can be walked right after it somewhere in the graph."""

    @abstractmethod
    def next_steps_many(self, topics: list[str], prefixes: list[Path]) -> list[list[Step]]:
        """For each (topic, prefix) pair: the steps that can be walked from the entities the prefix reaches.

        The empty prefix asks for the steps of the topic itself. Steps come sorted by `str`. A step after a
        non-empty prefix is walked from the prefix's entities other than the topic (a longer walk never
        passes back through it). A capped prefix walk looks at its sample only.
        """

    def identity(self) -> str:
        """A key that names this graph's content (what trained models and caches are stored under)."""
        return str(self.stats().get("source", "graph"))

    @abstractmethod
    def stats(self) -> dict[str, object]:
        """Counts: entities, triples, relations and triples per relation."""

    def close(self) -> None:
        """Release connections; the embedded store has none."""

    def all_steps(self) -> list[Step]:
        return [Step(r, inv) for r in self.relations() for inv in (False, True)]
