"""Query programs: the typed unit a question becomes, beyond one relation chain.

A program is one or more branches (an entity and a relation path walked from it) whose answers are
intersected, less the answers of its `exclude` branches ("not"); then constraints on literal-valued
relations (equals, before, after, between: years, ratings, any ordered literal); then at most one
aggregate (count; the earliest/latest or least/most by a literal, or by how many neighbours a step has;
top k); or a yes/no form (`ask`: is this entity among the answers). A chain question is a one-branch
program. Every answer keeps its evidence: each branch's triples, the constraint's and the aggregate's.

`GraphStore.run_program` executes one (the embedded store with numpy walks; Neo4j in one Cypher query);
`execute` here is the store-agnostic reference both must agree with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from kgqa.errors import InputError
from kgqa.types import Path, Step, Triple, format_path, parse_path

COMPARISONS = ("eq", "lt", "gt", "between")
"""Constraint operators: equals, before (less than), after (greater than), between (inclusive)."""

AGGREGATES = ("count", "min", "max")
"""count: how many answers; min / max: the answers with the smallest / largest measure (k of them)."""

MEASURES = ("value", "count")
"""What min / max order by: the literal reached by `by` (the smallest of several), or how many entities
`by` reaches from the answer."""


@dataclass(frozen=True)
class Branch:
    entity: str
    path: Path

    def to_json(self) -> dict[str, str]:
        return {"entity": self.entity, "path": format_path(self.path)}


@dataclass(frozen=True)
class Constraint:
    """Keep an answer when a literal one `step` away from it compares true to `value` (and `upper`)."""

    step: Step
    op: str
    value: str
    upper: str | None = None

    def holds(self, literal: str) -> bool:
        if self.op == "eq":
            return compare_key(literal) == compare_key(self.value)
        if self.op == "lt":
            return compare_key(literal) < compare_key(self.value)
        if self.op == "gt":
            return compare_key(literal) > compare_key(self.value)
        return compare_key(self.value) <= compare_key(literal) <= compare_key(self.upper or self.value)

    def to_json(self) -> dict[str, Any]:
        out = {"step": str(self.step), "op": self.op, "value": self.value}
        return out | ({"upper": self.upper} if self.upper is not None else {})


@dataclass(frozen=True)
class Aggregate:
    op: str
    by: Step | None = None
    measure: str = "value"
    k: int = 1

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.op}
        if self.op != "count":
            out |= {"by": str(self.by), "measure": self.measure, "k": self.k}
        return out


@dataclass(frozen=True)
class Program:
    branches: tuple[Branch, ...]
    exclude: tuple[Branch, ...] = ()
    constraints: tuple[Constraint, ...] = ()
    aggregate: Aggregate | None = None
    ask: str | None = None
    """Yes/no: is this entity among the answers."""

    @property
    def kind(self) -> str:
        """chain, conjunction, filter, count, superlative or yes/no (what the program mainly does)."""
        if self.ask is not None:
            return "yes/no"
        if self.aggregate is not None:
            return "count" if self.aggregate.op == "count" else "superlative"
        if self.constraints:
            return "filter"
        return "conjunction" if len(self.branches) > 1 or self.exclude else "chain"

    def steps(self) -> list[Step]:
        """Every step the program walks (for checking them against the schema)."""
        out = [s for b in self.branches + self.exclude for s in b.path] + [c.step for c in self.constraints]
        return out + ([self.aggregate.by] if self.aggregate and self.aggregate.by else [])

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"branches": [b.to_json() for b in self.branches]}
        if self.exclude:
            out["exclude"] = [b.to_json() for b in self.exclude]
        if self.constraints:
            out["constraints"] = [c.to_json() for c in self.constraints]
        if self.aggregate:
            out["aggregate"] = self.aggregate.to_json()
        if self.ask is not None:
            out["ask"] = self.ask
        return out

    @classmethod
    def from_json(cls, data: Any) -> "Program":
        """A program from its JSON form (what an LLM planner writes); InputError naming what is wrong."""
        if not isinstance(data, dict):
            raise InputError("a program is a JSON object with branches")
        unknown = sorted(set(data) - {"branches", "exclude", "constraints", "aggregate", "ask"})
        if unknown:
            raise InputError(f"a program has no field {unknown[0]!r}")
        branches = tuple(_branch(b) for b in _list(data, "branches"))
        if not branches:
            raise InputError("a program needs at least one branch")
        exclude = tuple(_branch(b) for b in _list(data, "exclude"))
        constraints = tuple(_constraint(c) for c in _list(data, "constraints"))
        aggregate = _aggregate(data["aggregate"]) if data.get("aggregate") is not None else None
        ask = data.get("ask")
        if ask is not None and not (isinstance(ask, str) and ask.strip()):
            raise InputError("ask must name an entity")
        if ask is not None and aggregate is not None:
            raise InputError("a yes/no program has no aggregate")
        return cls(branches, exclude, constraints, aggregate, ask)


@dataclass
class ProgramResult:
    """What a program gives: the answers in order, each with its evidence; a count or a yes/no."""

    program: Program
    answers: list[str] = field(default_factory=list)
    evidence: dict[str, list[Triple]] = field(default_factory=dict)
    count: int | None = None
    yes: bool | None = None
    capped: bool = False
    """A branch walk was capped (see `Expansion`): the answers are a sample."""


def compare_key(value: str) -> tuple[int, float, str]:
    """How literals order: numbers (years, ratings, "1,204") by value, before any text, text by case-folded
    content; so "1994" < "2001" and "8.1" > "7.9"."""
    text = value.strip()
    try:
        number = float(text.replace(",", "")) if text else math.nan
    except ValueError:
        number = math.nan
    if not math.isnan(number):
        return (0, number, "")
    return (1, 0.0, text.casefold())


def is_literal(value: str) -> bool:
    """A number (a year, a rating, "1,204") rather than an entity or text: what `compare_key` orders first."""
    return compare_key(value)[0] == 0


def check_program(program: Program, relations: set[str]) -> None:
    """Refuse a program that names a relation the graph lacks, or an operator kgqa does not know."""
    for step in program.steps():
        if step.relation not in relations:
            raise InputError(f"the program walks {step.relation!r}, which the graph does not have")
    for c in program.constraints:
        if c.op not in COMPARISONS:
            raise InputError(f"unknown comparison {c.op!r}; kgqa knows {', '.join(COMPARISONS)}")
        if c.op == "between" and c.upper is None:
            raise InputError("a between constraint needs value and upper")
    a = program.aggregate
    if a is not None:
        if a.op not in AGGREGATES:
            raise InputError(f"unknown aggregate {a.op!r}; kgqa knows {', '.join(AGGREGATES)}")
        if a.op != "count" and (a.by is None or a.measure not in MEASURES or a.k < 1):
            raise InputError(f"a {a.op} aggregate needs by (a step), a measure ({' or '.join(MEASURES)}) and k >= 1")


@dataclass
class Gathered:
    """What a store reads for a program: the candidates (the branches' common answers less the excluded
    ones, by name, with each branch's chain), the literals one step away from each candidate for every
    constraint and then the aggregate's `by`, and whether a walk was capped."""

    candidates: dict[str, list[Triple]]
    literals: list[dict[str, list[str]]]
    capped: bool = False


def lookup_steps(program: Program) -> list[Step]:
    """The steps whose far ends a program compares or orders by: each constraint's, then the aggregate's."""
    by = program.aggregate.by if program.aggregate and program.aggregate.op != "count" else None
    return [c.step for c in program.constraints] + ([by] if by else [])


def execute(graph: Any, program: Program) -> ProgramResult:
    """Run a program over any GraphStore with its walking primitives (the reference semantics)."""
    check_program(program, set(graph.relations()))
    return finish(program, gather(graph, program), graph.find_entities)


def gather(graph: Any, program: Program) -> Gathered:
    """`Gathered` from a store's walks: one `expand` per branch, one `neighbours_many` per looked-up step."""
    capped = False
    evidence: dict[str, list[Triple]] | None = None
    for branch in program.branches:
        expansion = graph.expand(branch.entity, branch.path)
        capped |= expansion.capped
        if evidence is None:
            evidence = {a: list(chain) for a, chain in expansion.evidence.items()}
        else:
            evidence = {a: chain + expansion.evidence[a] for a, chain in evidence.items() if a in expansion.evidence}
    for branch in program.exclude:
        expansion = graph.expand(branch.entity, branch.path)
        capped |= expansion.capped
        evidence = {a: chain for a, chain in (evidence or {}).items() if a not in expansion.evidence}
    candidates = dict(sorted((evidence or {}).items()))
    names = list(candidates)
    literals = [dict(zip(names, graph.neighbours_many(names, step))) for step in lookup_steps(program)]
    return Gathered(candidates, literals, capped)


def finish(program: Program, gathered: Gathered, find_entities: Any) -> ProgramResult:
    """Apply the constraints, the aggregate and the yes/no question to what a store gathered (the part both
    stores share, so that literals compare and order the same way on each)."""
    result = ProgramResult(program, capped=gathered.capped)
    evidence = dict(gathered.candidates)
    names = list(evidence)
    for constraint, literals in zip(program.constraints, gathered.literals):
        kept = []
        for name in names:
            hit = next((v for v in literals.get(name, []) if constraint.holds(v)), None)
            if hit is not None:
                evidence[name] = evidence[name] + [_step_triple(constraint.step, name, hit)]
                kept.append(name)
        names = kept
    evidence = {n: evidence[n] for n in names}
    aggregate = program.aggregate
    if aggregate is not None and aggregate.op == "count":
        result.count = len(names)
    elif aggregate is not None:
        names, evidence = _extremes(names, evidence, aggregate, gathered.literals[-1])
    result.answers, result.evidence = names, evidence
    if program.ask is not None:
        wanted = {e.casefold() for e in find_entities(program.ask)} or {program.ask.casefold()}
        result.yes = any(n.casefold() in wanted for n in names)
        if result.yes:
            result.answers = [n for n in names if n.casefold() in wanted]
            result.evidence = {n: evidence[n] for n in result.answers}
    return result


def _extremes(names: list[str], evidence: dict[str, list[Triple]], aggregate: Aggregate,
              reached: dict[str, list[str]]) -> tuple[list[str], dict[str, list[Triple]]]:
    """The k answers with the smallest (min) or largest (max) measure; ties with the k-th are kept."""
    assert aggregate.by is not None
    measured: list[tuple[tuple[int, float, str], str, list[Triple]]] = []
    for name in names:
        values = reached.get(name, [])
        if aggregate.measure == "count":
            key = (0, float(len(values)), "")
            triples = [_step_triple(aggregate.by, name, v) for v in values]
        elif values:
            value = min(values, key=compare_key)
            key, triples = compare_key(value), [_step_triple(aggregate.by, name, value)]
        else:
            continue  # no literal: it cannot be the earliest or the latest
        measured.append((key, name, triples))
    if not measured:
        return [], {}
    largest = aggregate.op == "max"
    measured.sort(key=lambda m: m[1])
    measured.sort(key=lambda m: m[0], reverse=largest)
    cut = measured[min(aggregate.k, len(measured)) - 1][0]
    chosen = [m for m in measured if (m[0] >= cut if largest else m[0] <= cut)]
    return [m[1] for m in chosen], {m[1]: evidence[m[1]] + m[2] for m in chosen}


def _step_triple(step: Step, source: str, target: str) -> Triple:
    return Triple(target, step.relation, source) if step.inverse else Triple(source, step.relation, target)


def _list(data: dict, key: str) -> list:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise InputError(f"{key} must be a list")
    return value


def _step(text: Any, what: str) -> Step:
    if not (isinstance(text, str) and text.strip()):
        raise InputError(f"{what} must be a relation step such as directed_by or directed_by_inv")
    path = parse_path(text.strip())
    if len(path) != 1:
        raise InputError(f"{what} must be one step, not {text!r}")
    return path[0]


def _branch(data: Any) -> Branch:
    if not (isinstance(data, dict) and isinstance(data.get("entity"), str) and data["entity"].strip()
            and isinstance(data.get("path"), str) and data["path"].strip()):
        raise InputError('a branch is {"entity": NAME, "path": "relation|relation_inv"}')
    return Branch(data["entity"].strip(), parse_path(data["path"].strip()))


def _constraint(data: Any) -> Constraint:
    if not isinstance(data, dict):
        raise InputError('a constraint is {"step": ..., "op": ..., "value": ...}')
    value, upper = data.get("value"), data.get("upper")
    if not isinstance(value, str | int | float) or (upper is not None and not isinstance(upper, str | int | float)):
        raise InputError("a constraint's value (and upper) must be text or a number")
    return Constraint(_step(data.get("step"), "a constraint's step"), str(data.get("op")), str(value),
                      None if upper is None else str(upper))


def _aggregate(data: Any) -> Aggregate:
    if not isinstance(data, dict) or not isinstance(data.get("op"), str):
        raise InputError('an aggregate is {"op": "count"} or {"op": "min" | "max", "by": STEP, "measure": ..., "k": ...}')
    if data["op"] == "count":
        return Aggregate("count")
    k = data.get("k", 1)
    if type(k) is not int:
        raise InputError("an aggregate's k must be a whole number")
    return Aggregate(data["op"], _step(data.get("by"), "an aggregate's by"), str(data.get("measure", "value")), k)
