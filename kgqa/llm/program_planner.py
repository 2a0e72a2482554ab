"""Planning with an LLM: a question written as a query program, JSON under a schema, checked, run, repaired once.

The model sees the question, the entities and numbers found in it, the ranked relation paths from its
entities, the steps that lead on from the answers, and the few-shot examples nearest the question (questions
with their programs, written from this graph by kgqa.program_writer), within a token budget. Its output is
JSON whose entities, paths and steps can only be the listed ones: a json_schema on servers that take one, a
grammar in the embedded model. The program is checked against the graph's relations and run; when it is
unreadable, fails, or answers nothing, the model is asked once more, shown the error. The answers are always
the graph's: the model only writes the program.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kgqa.errors import InputError, LLMError, LLMOutputError, LLMTimeout
from kgqa.graph.store import GraphStore
from kgqa.llm.base import LLM, Request, count_prompt_tokens
from kgqa.program import AGGREGATES, COMPARISONS, MEASURES, Program, ProgramResult, check_program
from kgqa.prompting import Templates, default_templates
from kgqa.retrieval.paths import verbalise_path, verbalise_step
from kgqa.types import Path, Step, format_path

PLAN_BUDGET = 1000
"""Prompt tokens a plan may take (examples are dropped, farthest first, to fit)."""
POOL_SIZE = 300
"""Example programs written from the graph for the few-shot pool."""


@dataclass
class PlanOptions:
    """What a program may use: the question's entities and numbers, paths from its entities, steps on."""

    entities: list[str]
    numbers: list[str]
    paths: list[Path]
    steps: list[Step]


@dataclass
class Plan:
    """The model's program (None when it gave no usable one, with the reason), and what planning cost."""

    program: Program | None = None
    result: ProgramResult | None = None
    reason: str = ""
    repaired: bool = False
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    attempts: list[str] = field(default_factory=list)


def program_schema(options: PlanOptions) -> dict[str, Any]:
    """The JSON schema of a program over these options only (kgqa.program's JSON form)."""
    names = sorted(set(options.entities))
    branch = {"type": "object", "properties": {"entity": {"type": "string", "enum": names},
                                               "path": {"type": "string", "enum": [format_path(p) for p in options.paths]}},
              "required": ["entity", "path"], "additionalProperties": False}
    steps = [str(s) for s in options.steps] or [str(s) for p in options.paths for s in p[-1:]]
    value = {"type": "string", "enum": options.numbers} if options.numbers else {"type": "string"}
    constraint = {"type": "object", "properties": {"step": {"type": "string", "enum": steps},
                                                   "op": {"type": "string", "enum": list(COMPARISONS)},
                                                   "value": value, "upper": value},
                  "required": ["step", "op", "value"], "additionalProperties": False}
    aggregate = {"type": "object", "properties": {"op": {"type": "string", "enum": list(AGGREGATES)},
                                                  "by": {"type": "string", "enum": steps},
                                                  "measure": {"type": "string", "enum": list(MEASURES)},
                                                  "k": {"type": "integer", "minimum": 1, "maximum": 20}},
                 "required": ["op"], "additionalProperties": False}
    return {"type": "object",
            "properties": {"branches": {"type": "array", "items": branch, "minItems": 1, "maxItems": 3},
                           "exclude": {"type": "array", "items": branch, "maxItems": 2},
                           "constraints": {"type": "array", "items": constraint, "maxItems": 2},
                           "aggregate": aggregate,
                           "ask": {"type": "string", "enum": sorted(set(names) | set(options.numbers))}},
            "required": ["branches"], "additionalProperties": False}


class ProgramPlanner:
    """The LLM planner of one graph: `plan(question, options, run)`."""

    def __init__(self, llm: LLM, graph: GraphStore, embed: Callable[[list[str]], np.ndarray],
                 budget: int = PLAN_BUDGET, shots: int = 3, max_tokens: int = 200,
                 templates: Templates | None = None) -> None:
        self.llm = llm
        self.graph = graph
        self.embed = embed
        self.budget = budget
        self.shots = shots
        self.max_tokens = max_tokens
        self.templates = templates or default_templates()
        self._pool: list[tuple[str, str]] | None = None
        self._vectors: np.ndarray | None = None

    def _examples(self, question: str) -> list[dict[str, str]]:
        """The pool's examples nearest the question (cosine of the embedder's vectors), nearest first."""
        if self._pool is None:
            from kgqa.program_writer import write_programs

            written = write_programs(self.graph, POOL_SIZE, seed=0)
            self._pool = [(w.question, json.dumps(w.program.to_json(), ensure_ascii=False)) for w in written]
            self._vectors = self.embed([q for q, _ in self._pool]) if self._pool else None
        if not self._pool or self._vectors is None or self.shots <= 0:
            return []
        scores = self._vectors @ self.embed([question])[0]
        order = np.argsort(-scores, kind="stable")[:self.shots]
        return [{"question": self._pool[i][0], "program": self._pool[i][1]} for i in order]

    def _messages(self, question: str, options: PlanOptions, error: str = "", previous: str = ""
                  ) -> tuple[list[dict[str, str]], int] | None:
        examples = self._examples(question)
        values = {"question": question, "entities": options.entities, "numbers": options.numbers,
                  "paths": [{"path": format_path(p), "words": verbalise_path(p)} for p in options.paths],
                  "steps": [{"step": str(s), "words": verbalise_step(s)} for s in options.steps],
                  "error": error, "previous": previous}
        while True:
            messages = self.templates.render("plan_program.j2", examples=examples, **values)
            tokens = count_prompt_tokens(self.llm.count_tokens, messages, self.llm.message_overhead())
            if tokens <= self.budget:
                return messages, tokens
            if not examples:
                return None
            examples = examples[:-1]

    def plan(self, question: str, options: PlanOptions, run: Callable[[Program], ProgramResult],
             kind: str | None = None) -> Plan:
        """Ask for the program, check and run it (`run`), and ask once more with the error when it fails.
        `kind`: what the question's words ask for (kgqa.planner.cue_shape); a program of another kind fails."""
        plan = Plan()
        if not options.entities or not options.paths:
            plan.reason = "no entity or path to plan with"
            return plan
        schema = program_schema(options)
        error = previous = ""
        for attempt in range(2):
            built = self._messages(question, options, error, previous)
            if built is None:
                plan.reason = f"the prompt does not fit the budget of {self.budget} tokens"
                return plan
            try:
                done = self.llm.complete(Request(built[0], self.max_tokens, schema=schema))
            except (LLMOutputError, LLMTimeout) as exc:
                plan.reason, plan.calls = str(exc), plan.calls + 1
                return plan
            except LLMError as exc:
                plan.reason = str(exc)
                return plan
            plan.calls += 1
            plan.prompt_tokens += done.prompt_tokens
            plan.completion_tokens += done.completion_tokens
            previous = done.text.strip()
            plan.attempts.append(previous)
            program, result, error = self._checked(previous, run, kind)
            if program is not None:
                plan.program, plan.result, plan.repaired, plan.reason = program, result, attempt == 1, ""
                return plan
            plan.reason = error
        return plan

    def _checked(self, text: str, run: Callable[[Program], ProgramResult], kind: str | None
                 ) -> tuple[Program | None, ProgramResult | None, str]:
        """The program the text holds when it reads, fits the graph, does what the question asks, and answers
        something; else the error."""
        try:
            program = Program.from_json(json.loads(text))
            check_program(program, set(self.graph.relations()))
            if len(set(program.branches + program.exclude)) < len(program.branches + program.exclude):
                return None, None, "a branch is repeated"
            if program.ask is not None and program.ask in {b.entity for b in program.branches}:
                return None, None, "a yes/no asks about another entity than the one its branch starts from"
            if kind is not None and program.kind != kind:
                return None, None, f"it is a {program.kind} program; the question asks for a {kind}"
            result = run(program)
        except json.JSONDecodeError as exc:
            return None, None, f"not JSON ({exc.msg})"
        except InputError as exc:
            return None, None, str(exc)
        if not result.answers and result.count is None and result.yes is None:
            return None, None, "the graph answers nothing to it"
        return program, result, ""


def plan_options(entities: Sequence[str], numbers: Sequence[str], paths: Sequence[Path], steps: Sequence[Step]
                 ) -> PlanOptions:
    """Options without repeats, in order."""
    return PlanOptions(list(dict.fromkeys(entities)), list(dict.fromkeys(numbers)), list(dict.fromkeys(paths)),
                       list(dict.fromkeys(steps)))
