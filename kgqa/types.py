"""The nouns of kgqa: what flows between the stages and what an answer carries."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

INVERSE_SUFFIX = "_inv"


@dataclass(frozen=True)
class Step:
    """One hop of a relation path: a relation walked forwards or backwards."""

    relation: str
    inverse: bool = False

    @classmethod
    def parse(cls, text: str) -> "Step":
        if text.endswith(INVERSE_SUFFIX):
            return cls(text[: -len(INVERSE_SUFFIX)], True)
        return cls(text, False)

    def __str__(self) -> str:
        return self.relation + (INVERSE_SUFFIX if self.inverse else "")

    def reverse(self) -> "Step":
        """The same relation walked the other way."""
        return Step(self.relation, not self.inverse)


Path = tuple[Step, ...]
STEP_SEPARATOR = ", then "
"""Between the steps of a verbalised path: "starred actors, then reverse of starred actors"."""


def parse_path(text: str) -> Path:
    """`starred_actors_inv|directed_by` -> (Step(starred_actors, inverse), Step(directed_by))."""
    return tuple(Step.parse(part) for part in text.split("|") if part)


def format_path(path: Path) -> str:
    return "|".join(str(step) for step in path)


def shortcut(path: Path) -> Path | None:
    """The path without the detour of a step walked back and then again (`r|r_inv|r` -> `r`), or None when
    it has none. Where a detour reaches the same answers as its shortcut, it asks nothing the shorter walk
    does not: questions are neither written for it nor answered by it."""
    for i in range(len(path) - 2):
        if path[i + 1] == path[i].reverse() and path[i + 2] == path[i]:
            return path[:i + 1] + path[i + 3:]
    return None


@dataclass(frozen=True)
class Triple:
    subject: str
    relation: str
    object: str

    def as_list(self) -> list[str]:
        return [self.subject, self.relation, self.object]


@dataclass(frozen=True)
class Entity:
    name: str
    degree: int = 0


@dataclass(frozen=True)
class Mention:
    """A span of the question that names an entity, with the entities it may mean."""

    text: str
    start: int
    end: int
    candidates: tuple[Entity, ...]
    confidence: float = 1.0


@dataclass(frozen=True)
class PathCandidate:
    path: Path
    text: str
    score: float


@dataclass
class Answer:
    """One answer with the graph evidence that produced it."""

    name: str
    score: float
    entity: str
    path: str
    evidence: list[list[str]]


@dataclass
class Result:
    """Everything kgqa says about one question."""

    question: str
    answers: list[Answer] = field(default_factory=list)
    entity: str | None = None
    mention: str | None = None
    path: str | None = None
    path_candidates: list[dict[str, Any]] = field(default_factory=list)
    reply: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    capped: bool = False
    """The walk passed a hub and was capped: `answers` hold a sample of the `reached` edges' ends."""
    reached: int = 0
    kind: str = "chain"
    """What the question's program does: chain, conjunction, filter, count, superlative or yes/no."""
    program: dict[str, Any] | None = None
    """The query program answered (kgqa.program, as JSON); a chain is one branch."""
    count: int | None = None
    """A count program's number (its members are the answers)."""
    yes: bool | None = None
    """A yes/no program's answer (the deciding answers carry the evidence either way)."""
    query: str | None = None
    """The query the store ran for the program (Neo4j: one Cypher query), for `--explain`."""
    planned_by: str = "rules"
    """Who wrote a non-chain program: "rules" (kgqa.planner), "llm" or "llm, repaired" (kgqa.llm.program_planner);
    with the LLM's reason when its program was not used ("rules: the graph answers nothing to it")."""

    @property
    def answer_names(self) -> list[str]:
        return [a.name for a in self.answers]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
