"""Training questions of every program kind, written from the graph alone, each with its gold Program.

`write_programs(graph, count, seed)` samples answer sets from the graph (a topic entity and a relation
path of 1..max_hops steps, as kgqa.question_writer does for chains) and builds on them:

    chain        the answer set itself ("the ones directed by X")
    conjunction  two 1-step branches that share an answer: the second entity is found by walking back from
                 an answer of the first (so the intersection is never empty); the same entity with two
                 relations ("written by and directed by X"); or an exclusion, "but not" (a third of them)
    filter       an answer set and a literal-valued step of its answers, compared with eq / lt / gt /
                 between to values that occur among the answers (the filter keeps some, not all)
    count        "how many": the answer set's size (count >= 1)
    superlative  min / max by a numeric literal step, or by how many neighbours a step reaches; k = 1 or
                 top k (2 or 3); kept when ties leave at most k + 1 answers and not every candidate
    yes/no       is an entity among the answers: an answer (yes) or an entity reached by the same last
                 step from another topic (no), half each, so the kind is balanced 50/50

Literal-valued steps are found generically (`literal_steps`): a step whose sampled targets nearly all
parse as numbers is numeric (ordered: every comparison and min / max by value); one whose targets are
nearly all leaves (degree 1, nothing walkable but the way back) is text (eq only).

The result of each program is computed with kgqa.program's own `finish` on batched look-ups
(`answers_many`, `neighbours_many`), so the gold is the reference semantics of `execute`.

Shares of the kinds (`SHARES`): chain 15%, conjunction 20%, filter 15%, count 15%, superlative 15%,
yes/no 20%. A kind the graph cannot give (no literal-valued step: no filter) leaves its share to the
others, in the same proportions. A small graph has few answer sets: a kind short of its share draws
again (up to ROUNDS times), never writing the same question and program twice. Wordings are written from relation words (`relation_words`) in many
shapes: questions and imperatives, entity first or last, keyword strings, lower case. Every mention of
an entity or a literal in the question is recorded with its character span and role (`ROLES`).
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from kgqa.graph.store import GraphStore
from kgqa.program import (Aggregate, Branch, Constraint, Gathered, Program, ProgramResult, compare_key, finish,
                          is_literal)
from kgqa.question_writer import BACKWARD, FORWARD, phrase_question
from kgqa.retrieval.paths import relation_words
from kgqa.types import Path, Step, format_path
from kgqa.weak_labels import answers_many, enumerate_paths

KINDS = ("chain", "conjunction", "filter", "count", "superlative", "yes/no")
SHARES = {"chain": 0.15, "conjunction": 0.20, "filter": 0.15, "count": 0.15, "superlative": 0.15, "yes/no": 0.20}
ROLES = ("entity", "excluded", "value", "upper", "ask", "k")
"""What a mention is: a branch's entity, an excluded branch's entity, a constraint's value (and upper
bound), the entity a yes/no question asks about, the k of a top-k."""
EXCLUSION_SHARE = 1 / 3
MAX_ANSWERS = 50
DEFAULT_TOPICS = 3_000
PATHS_PER_TOPIC = 200
LITERAL_SHARE = 0.9
"""A step is literal-valued when at least this share of its sampled targets look like literals."""
LITERAL_SAMPLE = 300
ATTEMPTS = 6
ROUNDS = 8
"""Candidates drawn per question wanted (some are refused: nothing left, nothing changed, big ties)."""

Mention = tuple[int, int, str, str]
"""(start, end, text, role): question[start:end] == text."""


@dataclass(frozen=True)
class WrittenProgram:
    question: str
    program: Program
    kind: str
    mentions: list[Mention]
    answers: tuple[str, ...] = ()
    """The program's answers (a count's members, a yes/no's deciding answers)."""
    count: int | None = None
    yes: bool | None = None


@dataclass(frozen=True)
class AnswerSet:
    topic: str
    path: Path
    answers: tuple[str, ...]


# ---- the question text: markers for mentions, filled in at the end --------------------------------------

E1, E2, VAL, UPPER, ASK, K = "\x01", "\x02", "\x03", "\x04", "\x05", "\x06"
MARKS = {"e": E1, "e2": E2, "v": VAL, "u": UPPER, "x": ASK, "k": K}


def fill(template: str, values: dict[str, tuple[str, str]], rng: random.Random) -> tuple[str, list[Mention]]:
    """The question from a template with fields {e} {e2} {v} {u} {x} {k}, lower-cased at random, and the
    span of every mention; `values` maps a field to (text, role). Names go in last, as markers, so no
    name is ever read as a template."""
    text = template
    for name, mark in MARKS.items():
        text = text.replace("{" + name + "}", mark)
    if rng.random() < 0.4:
        text = text.lower()
    by_mark = {MARKS[f]: (name if rng.random() < 0.7 else name.lower(), role) for f, (name, role) in values.items()}
    out: list[str] = []
    mentions: list[Mention] = []
    at = 0
    for ch in text:
        name, role = by_mark.get(ch, (ch, ""))
        if role:
            mentions.append((at, at + len(name), name, role))
        out.append(name)
        at += len(name)
    return "".join(out), mentions


def set_phrase(path: Path, marker: str, rng: random.Random) -> str:
    """A noun phrase for the end of `path` walked from the entity at `marker` (question_writer's shapes)."""
    phrase = marker
    for step in path:
        phrase = rng.choice(BACKWARD if step.inverse else FORWARD)(relation_words(step.relation), phrase)
    return phrase


def clause(step: Step, marker: str, rng: random.Random) -> str:
    """How an answer relates to an entity one step away: 'with directed by X' / 'the starred actors of X'."""
    words = relation_words(step.relation)
    if step.inverse:
        return rng.choice([f"with {words} {marker}", f"{words} {marker}", f"whose {words} is {marker}",
                           f"that have {words} {marker}"])
    return rng.choice([f"the {words} of {marker}", f"{words} of {marker}", f"among the {words} of {marker}"])


# ---- wordings per kind ------------------------------------------------------------------------------------

CONJUNCTION = ("what has {a} and {b}", "which ones are {a} and also {b}", "list everything {a} and {b}",
               "find the things {a} as well as {b}", "{a} and {b}", "{a}, {b}: which?",
               "what is both {a} and {b}", "show me those {a} and {b}", "which {a} are also {b}",
               "name what is {a} and {b}")
SAME_STEP_INVERSE = ("what has {w} both {e} and {e2}", "which ones have {w} {e} and {e2}",
                     "{w} {e} and {e2}: what are they", "what do {e} and {e2} share as {w}",
                     "{e} and {e2} together: {w} of what?", "list the things with {w} both {e} and {e2}")
SAME_STEP_FORWARD = ("what are the {w} of both {e} and {e2}", "which {w} do {e} and {e2} have in common",
                     "{w} shared by {e} and {e2}", "common {w} of {e} and {e2}", "{e} and {e2}: shared {w}?")
SAME_ENTITY = ("what has {w} and {w2} {e}", "which ones have both {w} and {w2} {e}",
               "{e}: {w} and also {w2}", "find the things with {w} {e} and {w2} {e}")
EXCLUSION = ("what has {a} but not {b}", "which ones are {a} and not {b}", "{a}, excluding those {b}",
             "list everything {a} except those {b}", "{a} but not {b}", "find the things {a} that are not {b}",
             "what is {a} without being {b}")
FILTER = ("what are {p} with {lw} {c}", "which of {p} have {lw} {c}", "{p} whose {lw} is {c}",
          "list {p} with {lw} {c}", "{p}, {lw} {c}", "show me {p} having {lw} {c}", "{lw} {c}: {p}?",
          "of {p}, which have {lw} {c}", "find {p} with a {lw} {c}")
COMPARE = {"eq": ("{v}", "equal to {v}", "of {v}", "exactly {v}"),
           "lt": ("before {v}", "less than {v}", "below {v}", "under {v}", "smaller than {v}"),
           "gt": ("after {v}", "greater than {v}", "above {v}", "over {v}", "more than {v}"),
           "between": ("between {v} and {u}", "from {v} to {u}", "in the range {v} to {u}")}
COUNT = ("how many are {p}", "how many {p} are there", "count {p}", "number of {p}", "what is the number of {p}",
         "how many things are {p}", "tell me how many are {p}", "{p}: how many?", "the count of {p}")
COUNT_INVERSE = ("how many have {w} {e}", "how many things have {w} {e}", "{e}: how many have {w} it?",
                 "count what has {w} {e}", "for {e}, how many have {w} it")
COUNT_FORWARD = ("how many {w} does {e} have", "how many {w} has {e} got", "{e}: how many {w}?",
                 "count the {w} of {e}", "number of {w} for {e}")
LEAST = ("smallest", "lowest", "least", "minimum")
MOST = ("largest", "highest", "greatest", "maximum")
BY_VALUE = ("which of {p} has the {adj} {lw}", "{p}: the one with the {adj} {lw}",
            "what among {p} has the {adj} {lw}", "find the one of {p} with the {adj} {lw}",
            "{adj} {lw} among {p}", "of {p}, which has the {adj} {lw}")
TOP_K = ("the {k} of {p} with the {adj} {lw}", "which {k} of {p} have the {adj} {lw}",
         "top {k} of {p} by {adj} {lw}", "list {k} of {p} with the {adj} {lw}", "{p}: {k} with the {adj} {lw}")
MOST_WORDS, FEWEST_WORDS = ("most", "largest number of"), ("fewest", "smallest number of")
BY_COUNT = ("which of {p} has the {adj} {n}", "{p}: the one with the {adj} {n}",
            "what among {p} has the {adj} {n}", "of {p}, which has the {adj} {n}")
TOP_K_COUNT = ("the {k} of {p} with the {adj} {n}", "which {k} of {p} have the {adj} {n}")
YES_NO = ("is {x} {p}", "is {x} one of {p}", "is {x} among {p}", "does {p} include {x}", "{x}: is it {p}?",
          "is it true that {x} is {p}", "check whether {x} is one of {p}", "tell me if {x} is among {p}",
          "{p}, is {x} one?")
YES_NO_INVERSE = ("does {x} have {w} {e}", "has {x} got {w} {e}", "is {w} {e} true of {x}",
                  "{x}: {w} {e}?", "{e} and {x}: does {x} have {w} {e}?")
YES_NO_FORWARD = ("is {x} the {w} of {e}", "is {x} among the {w} of {e}", "{e}: is {x} one of its {w}?",
                  "does {e} have {x} as {w}", "does {e} have {w} {x}", "is the {w} of {e} {x}?")
COUNT_WRAP = ("how many {q}", "count {q}", "number of {q}", "{q}: how many?", "tell me how many: {q}",
              "how many are there, {q}")
"""A conjunction's or a filter's question, counted."""
WRAPPED_COUNT_SHARE = 1 / 3


def _count_noun(step: Step) -> str:
    words = relation_words(step.relation)
    return f"things {words} it" if step.inverse else words


# ---- sampling answer sets ---------------------------------------------------------------------------------

def sample_answer_sets(graph: GraphStore, wanted: int, rng: random.Random, max_hops: int, topics: int,
                       max_answers: int = MAX_ANSWERS) -> list[AnswerSet]:
    """About `wanted` answer sets (1..max_answers answers), paths of each length equally often, a path drawn
    with the square root of how many sampled topics walk it (as question_writer), shuffled."""
    names = graph.entity_names()
    sampled = rng.sample(names, min(topics, len(names)))
    found, _ = enumerate_paths(graph, sampled, max_hops, PATHS_PER_TOPIC)
    by_length: dict[int, list[Path]] = defaultdict(list)
    for path in sorted(found, key=format_path):
        by_length[len(path)].append(path)
    picks: dict[Path, set[int]] = defaultdict(set)
    for length, paths in sorted(by_length.items()):
        weights = [math.sqrt(len(found[p])) for p in paths]
        for path in rng.choices(paths, weights, k=2 * wanted // len(by_length) + 1):
            picks[path].add(rng.choice(found[path]))
    out = []
    for path in sorted(picks, key=format_path):
        positions = sorted(picks[path])
        for t, reached in zip(positions, answers_many(graph, [sampled[t] for t in positions], path)):
            if 1 <= len(set(reached)) <= max_answers:
                out.append(AnswerSet(sampled[t], path, tuple(sorted(set(reached)))))
    rng.shuffle(out)
    return out


def literal_steps(graph: GraphStore, rng: random.Random) -> dict[Step, bool]:
    """Literal-valued steps, each mapped to whether it is numeric (ordered); see the module docstring."""
    names = graph.entity_names()
    sources = rng.sample(names, min(len(names), 5_000))
    steps_of = graph.next_steps_many(sources, [()] * len(sources))
    by_step: dict[Step, list[str]] = defaultdict(list)
    for source, steps in zip(sources, steps_of):
        for step in steps:
            by_step[step].append(source)
    out: dict[Step, bool] = {}
    for step in sorted(by_step, key=str):
        picked = by_step[step][:LITERAL_SAMPLE]
        targets = sorted({t for ts in graph.neighbours_many(picked, step) for t in ts})
        if not targets:
            continue
        numeric = sum(is_literal(t) for t in targets) / len(targets)
        if numeric >= LITERAL_SHARE:
            out[step] = True
            continue
        back = step.reverse()
        shown = targets[:LITERAL_SAMPLE]
        leaves = sum(graph.degree(t) == 1 and s == [back]
                     for t, s in zip(shown, graph.next_steps_many(shown, [()] * len(shown))))
        if leaves / len(shown) >= LITERAL_SHARE:
            out[step] = False
    return out


def _evaluate(program: Program, answers: Sequence[str], literals: list[dict[str, list[str]]],
              graph: GraphStore) -> ProgramResult:
    """The program's result from batched look-ups, by kgqa.program's own semantics (`finish`)."""
    gathered = Gathered({a: [] for a in sorted(answers)}, literals)
    return finish(program, gathered, graph.find_entities)


def _lookups(graph: GraphStore, requests: Iterable[tuple[Step, Sequence[str]]]) -> dict[Step, dict[str, list[str]]]:
    """Neighbours along each step for every name asked of it: one `neighbours_many` per step."""
    asked: dict[Step, set[str]] = defaultdict(set)
    for step, names in requests:
        asked[step].update(names)
    out = {}
    for step in sorted(asked, key=str):
        names = sorted(asked[step])
        out[step] = dict(zip(names, graph.neighbours_many(names, step)))
    return out


def _branch_answers(graph: GraphStore, branches: Sequence[Branch]) -> dict[Branch, set[str]]:
    """The answers of many branches, one walk per distinct path."""
    by_path: dict[Path, set[str]] = defaultdict(set)
    for b in branches:
        by_path[b.path].add(b.entity)
    out = {}
    for path in sorted(by_path, key=format_path):
        topics = sorted(by_path[path])
        for topic, reached in zip(topics, answers_many(graph, topics, path)):
            out[Branch(topic, path)] = set(reached)
    return out


# ---- the kinds --------------------------------------------------------------------------------------------

def write_chains(sets: list[AnswerSet], wanted: int, rng: random.Random) -> list[WrittenProgram]:
    out = []
    for s in sets[:wanted]:
        question, (start, end) = phrase_question(s.topic, s.path, rng)
        out.append(WrittenProgram(question, Program((Branch(s.topic, s.path),)), "chain",
                                  [(start, end, question[start:end], "entity")], s.answers))
    return out


def write_counts(sets: list[AnswerSet], wanted: int, rng: random.Random) -> list[WrittenProgram]:
    out = []
    for s in sets[:wanted]:
        program = Program((Branch(s.topic, s.path),), aggregate=Aggregate("count"))
        if len(s.path) == 1 and rng.random() < 0.4:
            step = s.path[0]
            template = rng.choice(COUNT_INVERSE if step.inverse else COUNT_FORWARD).replace("{w}", relation_words(step.relation))
        else:
            template = rng.choice(COUNT).replace("{p}", set_phrase(s.path, "{e}", rng))
        question, mentions = fill(template, {"e": (s.topic, "entity")}, rng)
        out.append(WrittenProgram(question, program, "count", mentions, s.answers, count=len(s.answers)))
    return out


def as_count(w: WrittenProgram, rng: random.Random) -> WrittenProgram:
    """A conjunction or filter question turned into a count of its answers ("how many ...")."""
    template = rng.choice(COUNT_WRAP)
    at = template.index("{q}")
    question = template.replace("{q}", w.question)
    mentions = [(start + at, end + at, text, role) for start, end, text, role in w.mentions]
    program = Program(w.program.branches, w.program.exclude, w.program.constraints, Aggregate("count"))
    return WrittenProgram(question, program, "count", mentions, w.answers, count=len(w.answers))


def write_yes_no(graph: GraphStore, sets: list[AnswerSet], wanted: int, want_yes: bool,
                 rng: random.Random) -> list[WrittenProgram]:
    """Yes (ask an answer) or no (ask an answer of another set ending with the same step) questions."""
    same_end: dict[Step, list[str]] = defaultdict(list)
    for s in sets:
        same_end[s.path[-1]].extend(s.answers[:5])
    out: list[WrittenProgram] = []
    for s in sets:
        if len(out) == wanted:
            break
        inside = {a.casefold() for a in s.answers}
        pool = same_end[s.path[-1]]
        if want_yes:
            ask = rng.choice(s.answers)
        else:
            tries = (rng.choice(pool) for _ in range(10))
            ask = next((e for e in tries if e.casefold() not in inside and e != s.topic), None)
            if ask is None:
                continue
        program = Program((Branch(s.topic, s.path),), ask=ask)
        deciding = tuple(a for a in s.answers if a.casefold() == ask.casefold())  # as `finish` decides
        if len(s.path) == 1 and rng.random() < 0.4:
            step = s.path[0]
            template = rng.choice(YES_NO_INVERSE if step.inverse else YES_NO_FORWARD).replace("{w}", relation_words(step.relation))
        else:
            template = rng.choice(YES_NO).replace("{p}", set_phrase(s.path, "{e}", rng))
        question, mentions = fill(template, {"e": (s.topic, "entity"), "x": (ask, "ask")}, rng)
        out.append(WrittenProgram(question, program, "yes/no", mentions, deciding or s.answers, yes=bool(deciding)))
    return out


def write_conjunctions(graph: GraphStore, sets: list[AnswerSet], wanted: int,
                       rng: random.Random) -> list[WrittenProgram]:
    """Two one-step branches sharing an answer, the same entity by two relations, or an exclusion."""
    one_step = [s for s in sets if len(s.path) == 1][: wanted * ATTEMPTS]
    anchors = [rng.choice(s.answers) for s in one_step]
    anchor_steps = graph.next_steps_many(anchors, [()] * len(anchors)) if anchors else []
    topic_steps = graph.next_steps_many([s.topic for s in one_step], [()] * len(one_step)) if one_step else []
    plans: list[tuple[int, Branch, bool]] = []   # (first set's position, second branch, exclude)
    second_entity: list[tuple[int, Step, str]] = []
    for i, s in enumerate(one_step):
        exclude = rng.random() < EXCLUSION_SHARE
        if rng.random() < 0.25:  # the same entity, another relation
            others = [st for st in topic_steps[i] if st != s.path[0]]
            if others:
                plans.append((i, Branch(s.topic, (rng.choice(others),)), exclude))
            continue
        if anchor_steps[i]:
            second_entity.append((i, rng.choice(anchor_steps[i]), anchors[i]))
    reached = _lookups(graph, [(step, [anchor]) for _, step, anchor in second_entity])
    for i, step, anchor in second_entity:
        s = one_step[i]
        candidates = sorted(e for e in reached[step][anchor] if e != s.topic)
        if candidates:
            plans.append((i, Branch(rng.choice(candidates), (step.reverse(),)),
                          rng.random() < EXCLUSION_SHARE))
    plans.sort(key=lambda p: p[0])
    answers_of = _branch_answers(graph, [b for _, b, _ in plans])
    out: list[WrittenProgram] = []
    for i, second, exclude in plans:
        s = one_step[i]
        if len(out) == wanted:
            break
        first, other = set(s.answers), answers_of[second]
        kept = first - other if exclude else first & other
        if not kept or kept == first or (not exclude and kept == other):
            continue  # the second branch must change something, and leave something
        program = (Program((Branch(s.topic, s.path),), exclude=(second,)) if exclude
                   else Program((Branch(s.topic, s.path), second)))
        question, mentions = _phrase_conjunction(s, second, exclude, rng)
        out.append(WrittenProgram(question, program, "conjunction", mentions, tuple(sorted(kept))))
    return out


def _phrase_conjunction(s: AnswerSet, second: Branch, exclude: bool, rng: random.Random) -> tuple[str, list[Mention]]:
    step, step2 = s.path[0], second.path[0]
    role2 = "excluded" if exclude else "entity"
    if second.entity == s.topic and not exclude and step.inverse and step2.inverse and rng.random() < 0.6:
        template = rng.choice(SAME_ENTITY).replace("{w2}", relation_words(step2.relation))
        template = template.replace("{w}", relation_words(step.relation))
        return fill(template, {"e": (s.topic, "entity")}, rng)
    if step == step2 and not exclude and rng.random() < 0.6:
        template = rng.choice(SAME_STEP_INVERSE if step.inverse else SAME_STEP_FORWARD)
        return fill(template.replace("{w}", relation_words(step.relation)),
                    {"e": (s.topic, "entity"), "e2": (second.entity, "entity")}, rng)
    a, b = clause(step, "{e}", rng), clause(step2, "{e2}", rng)
    template = rng.choice(EXCLUSION if exclude else CONJUNCTION).replace("{a}", a).replace("{b}", b)
    values = {"e": (s.topic, "entity")}
    if second.entity != s.topic:
        values["e2"] = (second.entity, role2)
    else:
        template = template.replace("{e2}", "{e}")
    return fill(template, values, rng)


def write_filters(graph: GraphStore, sets: list[AnswerSet], wanted: int, literal: dict[Step, bool],
                  rng: random.Random) -> list[WrittenProgram]:
    """An answer set, a literal step of its answers, a comparison to values found among them."""
    if not literal:
        return []
    steps = sorted(literal, key=str)
    chosen = [(s, step) for s in sets if len(s.answers) >= 2
              for step in [rng.choice(steps)] if step != s.path[-1]][: wanted * ATTEMPTS]
    values = _lookups(graph, [(step, s.answers) for s, step in chosen])
    out: list[WrittenProgram] = []
    for s, step in chosen:
        if len(out) == wanted:
            break
        found = {a: values[step][a] for a in s.answers}
        distinct = sorted({v for vs in found.values() for v in vs}, key=compare_key)
        if len(distinct) < 2:
            continue
        constraint = _constraint(step, distinct, literal[step], rng)
        program = Program((Branch(s.topic, s.path),), constraints=(constraint,))
        result = _evaluate(program, s.answers, [found], graph)
        if not result.answers or len(result.answers) == len(s.answers):
            continue
        compare = rng.choice(COMPARE[constraint.op])
        template = rng.choice(FILTER).replace("{c}", compare).replace("{lw}", relation_words(step.relation))
        template = template.replace("{p}", set_phrase(s.path, "{e}", rng))
        fields = {"e": (s.topic, "entity"), "v": (constraint.value, "value")}
        if constraint.upper is not None:
            fields["u"] = (constraint.upper, "upper")
        question, mentions = fill(template, fields, rng)
        out.append(WrittenProgram(question, program, "filter", mentions, tuple(result.answers)))
    return out


def _constraint(step: Step, distinct: list[str], numeric: bool, rng: random.Random) -> Constraint:
    """eq on a value that occurs; lt / gt on a threshold inside the range; between two values that occur."""
    op = rng.choice(("eq", "lt", "gt", "between")) if numeric else "eq"
    if op == "eq":
        return Constraint(step, "eq", rng.choice(distinct))
    if op == "lt":
        return Constraint(step, "lt", rng.choice(distinct[1:]))
    if op == "gt":
        return Constraint(step, "gt", rng.choice(distinct[:-1]))
    lo, hi = sorted(rng.sample(range(len(distinct)), 2))
    return Constraint(step, "between", distinct[lo], distinct[hi])


def write_superlatives(graph: GraphStore, sets: list[AnswerSet], wanted: int, literal: dict[Step, bool],
                       follows: dict[Step, list[Step]], rng: random.Random) -> list[WrittenProgram]:
    """min / max by a numeric literal (half of them, when the graph has one) or by a neighbour count."""
    all_numeric = sorted((s for s, n in literal.items() if n), key=str)
    chosen = []
    for s in sets:
        numeric = [step for step in all_numeric if step != s.path[-1]]  # not the literal's own literal
        if len(s.answers) < 2:
            continue
        after = [st for st in follows.get(s.path[-1], []) if st not in literal and st != s.path[-1].reverse()]
        if numeric and (rng.random() < 0.5 or not after):
            chosen.append((s, Aggregate(rng.choice(("min", "max")), rng.choice(numeric), "value", _k(rng))))
        elif after:
            chosen.append((s, Aggregate(rng.choice(("min", "max")), rng.choice(after), "count", _k(rng))))
        if len(chosen) == wanted * ATTEMPTS:
            break
    values = _lookups(graph, [(a.by, s.answers) for s, a in chosen])
    out: list[WrittenProgram] = []
    for s, aggregate in chosen:
        if len(out) == wanted:
            break
        found = {a: values[aggregate.by][a] for a in s.answers}
        measured = [a for a in s.answers if found[a]] if aggregate.measure == "value" else list(s.answers)
        if len(measured) <= aggregate.k or (aggregate.measure == "count" and not any(found.values())):
            continue
        program = Program((Branch(s.topic, s.path),), aggregate=aggregate)
        result = _evaluate(program, s.answers, [found], graph)
        if not result.answers or len(result.answers) > aggregate.k + 1 or len(result.answers) >= len(measured):
            continue
        question, mentions = _phrase_superlative(s, aggregate, rng)
        out.append(WrittenProgram(question, program, "superlative", mentions, tuple(result.answers)))
    return out


def _k(rng: random.Random) -> int:
    return 1 if rng.random() < 0.7 else rng.choice((2, 3))


def _phrase_superlative(s: AnswerSet, aggregate: Aggregate, rng: random.Random) -> tuple[str, list[Mention]]:
    assert aggregate.by is not None
    largest = aggregate.op == "max"
    if aggregate.measure == "value":
        adj = rng.choice(MOST if largest else LEAST)
        template = rng.choice(TOP_K if aggregate.k > 1 else BY_VALUE).replace("{lw}", relation_words(aggregate.by.relation))
    else:
        adj = rng.choice(MOST_WORDS if largest else FEWEST_WORDS)
        template = rng.choice(TOP_K_COUNT if aggregate.k > 1 else BY_COUNT).replace("{n}", _count_noun(aggregate.by))
    template = template.replace("{adj}", adj).replace("{p}", set_phrase(s.path, "{e}", rng))
    fields = {"e": (s.topic, "entity")}
    if aggregate.k > 1:
        fields["k"] = (str(aggregate.k), "k")
    return fill(template, fields, rng)


# ---- all together -----------------------------------------------------------------------------------------

def kind_targets(count: int, available: Sequence[str]) -> dict[str, int]:
    """How many questions of each available kind: SHARES renormalised over them, summing to `count`."""
    total = sum(SHARES[k] for k in available)
    targets = {k: int(count * SHARES[k] / total) for k in available}
    for k in list(available)[: count - sum(targets.values())]:
        targets[k] += 1
    return targets


def write_programs(graph: GraphStore, count: int, seed: int = 0, max_hops: int = 2,
                   topics: int | None = None) -> list[WrittenProgram]:
    """About `count` questions of every kind with gold programs and mention spans (module docstring),
    shuffled; the same graph and seed give the same questions. Topics sampled: `topics`, by default
    max(DEFAULT_TOPICS, count // 2) (one-step answer sets, which conjunctions need, run out otherwise)."""
    if count <= 0 or not graph.entity_names():
        return []
    rng = random.Random(seed)
    literal = literal_steps(graph, rng)
    available = [k for k in KINDS if k != "filter" or literal]
    targets = kind_targets(count, available)
    sets = sample_answer_sets(graph, count * 3, rng, max_hops, topics or max(DEFAULT_TOPICS, count // 2))
    follows = graph.follows()
    writers: dict[str, Callable[[list[AnswerSet], int], list[WrittenProgram]]] = {
        "chain": lambda pool, n: write_chains(pool, n, rng),
        "conjunction": lambda pool, n: write_conjunctions(graph, pool, n, rng),
        "filter": lambda pool, n: write_filters(graph, pool, n, literal, rng),
        "count": lambda pool, n: write_counts(pool, n - int(n * WRAPPED_COUNT_SHARE), rng) + [
            as_count(w, rng) for w in write_conjunctions(graph, pool, int(n * WRAPPED_COUNT_SHARE) // 2, rng)
            + (write_filters(graph, pool, int(n * WRAPPED_COUNT_SHARE) - int(n * WRAPPED_COUNT_SHARE) // 2,
                             literal, rng) if literal else [])],
        "superlative": lambda pool, n: write_superlatives(graph, pool, n, literal, follows, rng),
        "yes": lambda pool, n: write_yes_no(graph, pool, n, True, rng),
        "no": lambda pool, n: write_yes_no(graph, pool, n, False, rng),
    }
    yes_no = targets.pop("yes/no")
    targets |= {"yes": (yes_no + 1) // 2, "no": yes_no // 2}
    out = [w for kind in targets for w in _write_kind(writers[kind], sets, targets[kind], rng)]
    rng.shuffle(out)
    return out


def _write_kind(writer: Callable[[list[AnswerSet], int], list[WrittenProgram]], sets: list[AnswerSet],
                wanted: int, rng: random.Random) -> list[WrittenProgram]:
    """Up to `wanted` questions of one kind, from the pool in a fresh order each round (a small graph has
    few answer sets: a set comes back with another second branch, threshold or wording), no program twice."""
    out: list[WrittenProgram] = []
    seen: set[tuple[str, Program]] = set()
    for _ in range(ROUNDS):
        order = list(sets)
        rng.shuffle(order)
        for w in writer(order, wanted - len(out)):
            if (w.question, w.program) not in seen and len(out) < wanted:
                seen.add((w.question, w.program))
                out.append(w)
        if len(out) == wanted:
            break
    return out
