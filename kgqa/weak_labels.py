"""Weak supervision: give question–answer pairs a topic entity, its mention span and a relation path.

Users often bring question–answer pairs over their own graph, without a gold relation path and without
[marks] on the topic. As GNN-RAG, RoG and SR do, the missing labels are looked up in the graph:

- topic: the row's own (a `topic` field, or a [marked] mention), else the entity names the name-matching
  linker finds in the question, best mention first (at most `max_topics` entities);
- path: the row's own, checked to walk from the topic; else every relation path of up to `max_hops` steps
  walkable from each topic (hop by hop with `next_steps_many`, at most `max_paths_per_topic` paths, the
  shorter first), each walked (`answers_many`: `expand_many` without the evidence) unless its last step
  cannot land on a gold answer, and scored by the F1 of its answers against the gold ones;
- the best F1 wins, then the better topic (the linker's order: a longer mention first, so `schwerin` inside
  `alexandrine_of_mecklenburg-schwerin` comes second), then the shorter path, then the path with fewer
  inverse steps (the direction the graph writes the relation in), then the path's text. A searched label is
  kept when its F1 is above `min_f1`; a given path is kept when its walk reaches anything.

Walks follow the store's conventions (`walk_through_topic`, `topic_as_answer`), so `spouse|spouse` may answer
its own topic only on a graph that allows it. The graph work is batched: for a chunk of questions, one
`next_steps_many` call per hop and one walk per distinct path.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path as FsPath
from typing import Any, Protocol

import numpy as np

from kgqa.errors import InputError
from kgqa.evaluate import percentile
from kgqa.graph.store import GraphStore
from kgqa.questions import Example, MarkedQuestion, parse_marked, question_problem
from kgqa.retrieval.paths import relation_stems, word_stems
from kgqa.types import Mention, Path, Step, format_path, parse_path

DEFAULT_MAX_PATHS = 2_000
"""Paths enumerated from one topic entity at most, so that a hub on a big graph stays bounded."""

DEFAULT_MAX_TOPICS = 5
"""Entities tried per question at most, when the linker finds several."""

MAX_TIES = 20
"""Equally good paths kept beside the chosen one, at most."""

NO_SPAN = (-1, -1)

NO_ENTITY = "no entity of the graph found in the question"
NOT_IN_GRAPH = "topic not in the graph"
GIVEN_PATH_UNKNOWN = "the given path names a relation the graph lacks"
GIVEN_PATH_EMPTY = "the given path reaches nothing from the topic"
OUT_OF_TIME = "not labelled within the time budget"

LABEL_ORDER_SEED = 0
"""Seed of the order questions are labelled in."""


def no_path(max_hops: int) -> str:
    return f"no path up to {max_hops} hops reaches an answer"


def below(min_f1: float) -> str:
    return f"the best path's answer F1 is not above {min_f1:g}"


class Linker(Protocol):
    def link_batch(self, questions: list[str]) -> list[list[Mention]]: ...


# ---- reading question–answer files -------------------------------------------------------------------


@dataclass(frozen=True)
class QARow:
    """One question with its gold answers; topic, path and [marks] when the file gives them."""

    question: str
    answers: tuple[str, ...]
    topic: str = ""
    path: str = ""
    where: str = ""
    """`FILE, line N`, for messages."""


def read_qa_file(file: FsPath | str) -> tuple[list[QARow], list[str]]:
    """The rows of a question–answer file, and one `FILE, line N: why` message per line that is not a row.

    `.jsonl`/`.ndjson`: `{"question": ..., "answers": [...], "topic"?: ..., "path"?: ...}` a line; anything
    else: `question<TAB>answer1|answer2` (more columns ignored). Blank lines are skipped. A missing or
    non-UTF-8 file raises InputError."""
    path = FsPath(file)
    text = _read_text(path)
    parse = _json_row if path.name.lower().endswith((".jsonl", ".ndjson")) else _tsv_row
    rows: list[QARow] = []
    problems: list[str] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}, line {line_no}"
        row = parse(line)
        if isinstance(row, str):
            problems.append(f"{where}: {row}")
        else:
            rows.append(QARow(row.question, row.answers, row.topic, row.path, where))
    return rows, problems


def _read_text(path: FsPath) -> str:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path} is not a file: give a .tsv or .jsonl file of questions and answers")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read it ({exc.strerror})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise InputError(f"{path}, line {line}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from None


def _answers(values: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v.strip() for v in values if v.strip()))


def _checked(question: str, answers: tuple[str, ...], topic: str = "", path: str = "") -> QARow | str:
    problem = question_problem(question)
    if problem:
        return problem
    if not answers:
        return "no answers"
    return QARow(question.strip(), answers, topic.strip(), path.strip())


def _tsv_row(line: str) -> QARow | str:
    parts = line.rstrip("\r\n").split("\t")
    if len(parts) < 2:
        return "expected question<TAB>answers (answers separated by |)"
    return _checked(parts[0], _answers(parts[1].split("|")))


def _json_row(line: str) -> QARow | str:
    try:
        row = json.loads(line)
    except ValueError as exc:
        return f"not JSON ({exc.msg})"
    if not isinstance(row, dict):
        return "expected a JSON object with question and answers"
    question, answers = row.get("question"), row.get("answers")
    if not isinstance(question, str):
        return "no \"question\" string"
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        return "\"answers\" must be a list of strings"
    topic, path = row.get("topic") or "", row.get("path") or ""
    if not isinstance(topic, str) or not isinstance(path, str):
        return "\"topic\" and \"path\" must be strings (a path as `a|b_inv`)"
    return _checked(question, _answers(answers), topic, path)


# ---- the labels ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Label:
    """A kept question: its row's position, the labelled Example, the topic's mention span, the path's F1."""

    row: int
    example: Example
    span: tuple[int, int]
    """Characters of the topic mention in `example.question`; NO_SPAN when the question does not show it."""
    f1: float
    ties: tuple[str, ...] = ()
    """Other paths from the topic with the same F1 and as many steps named (at most MAX_TIES), shorter first."""


@dataclass
class LabelReport:
    """What `label_questions` found: the kept labels, and why the other questions were dropped."""

    labels: list[Label]
    dropped: dict[str, int]
    drops: list[tuple[int, str]]
    """(row, reason) of every dropped question."""
    questions: int
    max_hops: int
    min_f1: float
    seconds: float
    topics_capped: int = 0
    """(question, topic) pairs whose path enumeration stopped at `max_paths_per_topic`."""

    @property
    def examples(self) -> list[Example]:
        return [label.example for label in self.labels]

    @property
    def spans(self) -> list[tuple[int, int]]:
        return [label.span for label in self.labels]

    @property
    def questions_per_second(self) -> float:
        return self.questions / self.seconds if self.seconds > 0 else 0.0

    def f1_stats(self) -> dict[str, Any]:
        """Mean and percentiles of the kept labels' F1, and how many fall in each band."""
        values = [label.f1 for label in self.labels]
        bands = Counter("1" if v >= 1 else "[0.75,1)" if v >= 0.75 else "[0.5,0.75)" if v >= 0.5 else "(0,0.5)"
                        for v in values)
        return {"mean": round(sum(values) / len(values), 4) if values else 0.0,
                "p10": percentile(values, 10), "p50": percentile(values, 50),
                "bands": {b: bands.get(b, 0) for b in ("1", "[0.75,1)", "[0.5,0.75)", "(0,0.5)")},
                "ambiguous": sum(1 for label in self.labels if label.ties)}

    def summary(self) -> dict[str, Any]:
        return {"questions": self.questions, "kept": len(self.labels), "dropped": dict(self.dropped),
                "max_hops": self.max_hops, "min_f1": self.min_f1, "f1": self.f1_stats(),
                "topics_capped": self.topics_capped, "seconds": round(self.seconds, 3),
                "questions_per_second": round(self.questions_per_second, 1),
                "without_span": sum(1 for label in self.labels if label.span == NO_SPAN)}


def marked_question(example: Example, span: tuple[int, int]) -> str:
    """The question with [brackets] around the topic's mention (what linker training reads); unchanged
    when the span is NO_SPAN."""
    start, end = span
    if start < 0:
        return example.question
    q = example.question
    return f"{q[:start]}[{q[start:end]}]{q[end:]}"


def write_labelled_tsv(labels: Sequence[Label], file: FsPath | str) -> int:
    """Write `[marked] question<TAB>answer1|answer2<TAB>path` a line (the benchmark and linker-training
    layout) for every label with a span; returns how many lines were written."""
    lines = [f"{marked_question(label.example, label.span)}\t{'|'.join(label.example.answers)}\t"
             f"{label.example.path}" for label in labels if label.span != NO_SPAN]
    FsPath(file).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return len(lines)


def write_marked_tsv(examples: Sequence[Example], file: FsPath | str) -> int:
    """`write_labelled_tsv` for examples whose question names the topic as written (the first occurrence,
    any case, is marked); the others are left out."""
    labels = []
    for row, example in enumerate(examples):
        found = re.search(re.escape(example.topic), example.question, flags=re.IGNORECASE) if example.topic else None
        if found:
            labels.append(Label(row, example, (found.start(), found.end()), 1.0))
    return write_labelled_tsv(labels, file)


# ---- finding them ----------------------------------------------------------------------------------


@dataclass
class _Task:
    """One question to label: its plain text, gold answers, the topic entities to try (best first, each
    with its span) and the row's own path, if any."""

    row: int
    text: str
    gold: frozenset[str]
    answers: tuple[str, ...]
    topics: list[tuple[str, tuple[int, int]]] = field(default_factory=list)
    path: Path | None = None

    @cached_property
    def words(self) -> frozenset[str]:
        return word_stems(self.text)


def label_questions(graph: GraphStore, rows: Sequence[QARow], max_hops: int = 3, linker: Linker | None = None,
                    max_paths_per_topic: int = DEFAULT_MAX_PATHS, max_topics: int = DEFAULT_MAX_TOPICS,
                    min_f1: float = 0.0, chunk: int = 128, time_limit_s: float | None = None,
                    on_progress: Callable[[int, int], None] = lambda done, total: None,
                    workers: int | None = None) -> LabelReport:
    """Label each row with a topic, its mention span and a relation path (see the module's docstring).

    `linker` finds entity names in questions that have neither a topic nor [marks]: by default the
    name-matching linker over `graph`. Questions are labelled `chunk` at a time, in an order shuffled by a
    fixed seed: once `time_limit_s` has run out the chunks left are dropped as OUT_OF_TIME, and those
    labelled are spread over the whole file (not only its first lines). On the embedded store the chunks
    are shared among `workers` forked processes (default: one per CPU core this process may use); labels
    do not depend on it."""
    started = time.perf_counter()
    if linker is None and any(parse_marked(r.question) is None for r in rows):
        from kgqa.linking.names import NameMatchLinker

        linker = NameMatchLinker(graph, cache_dir=None)
    labels: list[Label] = []
    drops: list[tuple[int, str]] = []
    capped = 0
    order = list(range(len(rows)))
    random.Random(LABEL_ORDER_SEED).shuffle(order)
    chunks = [sorted(order[start:start + chunk]) for start in range(0, len(rows), chunk)]
    job = _ChunkJob(graph, rows, linker, set(graph.relations()), max_hops, max_paths_per_topic, max_topics, min_f1)
    labelled = 0
    for done, (found, chunk_drops, chunk_capped) in enumerate(_run_chunks(job, chunks, workers), start=1):
        capped += chunk_capped
        labels += found
        drops += chunk_drops
        labelled += len(chunks[done - 1])
        on_progress(labelled, len(rows))
        if time_limit_s is not None and time.perf_counter() - started > time_limit_s:
            drops += [(i, OUT_OF_TIME) for rest in chunks[done:] for i in rest]
            break
    labels = resolve_ties(sorted(labels, key=lambda label: label.row))
    drops.sort()
    dropped = dict(Counter(reason for _, reason in drops).most_common())
    return LabelReport(labels, dropped, drops, len(rows), max_hops, min_f1, time.perf_counter() - started, capped)


@dataclass
class _ChunkJob:
    """Everything labelling one chunk of rows needs (what a forked worker inherits)."""

    graph: GraphStore
    rows: Sequence[QARow]
    linker: Linker | None
    relations: set[str]
    max_hops: int
    max_paths: int
    max_topics: int
    min_f1: float

    def __call__(self, positions: list[int]) -> tuple[list[Label], list[tuple[int, str]], int]:
        """The chunk's labels, its drops (row, reason) and how many of its topics hit the path cap."""
        tasks, drops = _tasks(self.graph, self.rows, positions, self.linker, self.max_topics, self.relations)
        found, capped = _label_tasks(self.graph, tasks, self.max_hops, self.max_paths, self.min_f1)
        return ([item for item in found if isinstance(item, Label)],
                drops + [item for item in found if not isinstance(item, Label)], capped)


_JOB: _ChunkJob | None = None
"""The job of a forked labelling worker (set before the fork, so the memory-mapped graph is shared)."""


def _run_job(positions: list[int]) -> tuple[list[Label], list[tuple[int, str]], int]:
    assert _JOB is not None
    return _JOB(positions)


def _run_chunks(job: _ChunkJob, chunks: list[list[int]], workers: int | None) -> Iterator[
        tuple[list[Label], list[tuple[int, str]], int]]:
    """Each chunk's result, in order: in this process, or in forked workers when the store is the embedded
    one (a Neo4j driver's connections must not be shared by forked processes) and there is more than one
    chunk and core. The caller may stop early; the workers then end."""
    global _JOB
    from kgqa.graph.embedded import EmbeddedGraph

    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    forking = "fork" in multiprocessing.get_all_start_methods()
    if workers <= 1 or len(chunks) <= 1 or not forking or not isinstance(job.graph, EmbeddedGraph):
        yield from map(job, chunks)
        return
    _JOB = job
    try:
        with multiprocessing.get_context("fork").Pool(min(workers, len(chunks))) as pool:
            yield from pool.imap(_run_job, chunks)
    finally:
        _JOB = None


def _question_stems(label: Label) -> frozenset[str]:
    """The words of a labelled question outside its topic's mention."""
    start, end = label.span
    text = label.example.question
    return word_stems(text if start < 0 else text[:start] + " " + text[end:])


def relation_evidence(clear: Sequence[tuple[str, frozenset[str]]],
                      smoothing: float = 1.0) -> Callable[[str, frozenset[str]], int]:
    """How well a question's words name a path's relations, from the untied labels' (path, question stems):
    +1 for each distinct relation that some word names, -1 for each that none does, 0 for one no untied path
    has. A word names a relation when the share of the untied questions with the word whose path has the
    relation (add-`smoothing` below) is at least halfway from the relation's share of all untied questions
    to 1."""
    per_relation: dict[str, Counter] = {}
    everything: Counter = Counter()
    base: Counter = Counter()
    for path, stems in clear:
        everything.update(stems)
        for relation in set(path.split("|")):
            per_relation.setdefault(relation, Counter()).update(stems)
            base[relation] += 1

    def named(relation: str, stems: frozenset[str]) -> int:
        seen = per_relation.get(relation)
        if seen is None:
            return 0
        needed = (1 + base[relation] / len(clear)) / 2
        return 1 if any(seen[w] >= needed * (everything[w] + smoothing) for w in stems if seen[w]) else -1

    return lambda path, stems: sum(named(r, stems) for r in set(path.split("|")))


def resolve_ties(labels: Sequence[Label], smoothing: float = 1.0) -> list[Label]:
    """Labels whose path ties with others (the same answers on this question) take the tied path that
    questions worded like them take where nothing ties: multinomial naive Bayes over the question's words,
    fitted on the untied labels ("films written by the writer of X" ties `written_by|written_by_inv` with a longer
    path whose answers happen to match; the untied questions with those words say which is meant). When no
    untied question has any of the tied paths, each relation's own words decide (`relation_evidence`: "the
    religion of the other half of X's other half" is `spouse|spouse|religion`, not `religion`); failing that,
    the old order: the shorter, then fewer inverse steps."""
    clear = [label for label in labels if not label.ties]
    if not clear or len(clear) == len(labels):
        return list(labels)
    fitted = [(label.example.path, _question_stems(label)) for label in clear]
    per_path: Counter = Counter(path for path, _ in fitted)
    words: dict[str, Counter] = {}
    for path, stems in fitted:
        words.setdefault(path, Counter()).update(stems)
    vocabulary = len({w for seen in words.values() for w in seen}) + 1
    totals = {path: sum(seen.values()) for path, seen in words.items()}
    paths = len(per_path) + 1

    def score(path: str, stems: frozenset[str]) -> float:
        """log P(path) + sum of log P(word | path), multinomial with add-`smoothing`."""
        seen = words.get(path, Counter())
        prior = np.log((per_path.get(path, 0) + smoothing) / (len(clear) + smoothing * paths))
        below = totals.get(path, 0) + smoothing * vocabulary
        return float(prior + sum(np.log((seen[w] + smoothing) / below) for w in stems))

    evidence = relation_evidence(fitted, smoothing)
    out = []
    for label in labels:
        if not label.ties:
            out.append(label)
            continue
        stems = _question_stems(label)
        options = (label.example.path,) + label.ties
        if any(path in per_path for path in options):
            chosen = max(options, key=lambda path: (score(path, stems), -options.index(path)))
        else:
            chosen = max(options, key=lambda path: (evidence(path, stems), -options.index(path)))
        example = Example(label.example.question, label.example.topic, chosen, label.example.answers,
                          source=label.example.source)
        out.append(Label(label.row, example, label.span, label.f1, tuple(p for p in options if p != chosen)))
    return out


def _tasks(graph: GraphStore, rows: Sequence[QARow], positions: list[int], linker: Linker | None, max_topics: int,
           relations: set[str]) -> tuple[list[_Task], list[tuple[int, str]]]:
    """The chunk's questions with their topic candidates; the rows that have none, with the reason."""
    tasks: list[_Task] = []
    drops: list[tuple[int, str]] = []
    marked = {i: parse_marked(rows[i].question) for i in positions}
    plain = [i for i in positions if marked[i] is None]
    mentions = dict(zip(plain, linker.link_batch([rows[i].question for i in plain]) if plain else []))
    for i in positions:
        row = rows[i]
        text = marked[i].text if marked[i] else row.question
        problem = question_problem(text)
        path = parse_path(row.path) if row.path else None
        if problem:
            drops.append((i, problem))
            continue
        if path is not None and any(step.relation not in relations for step in path):
            drops.append((i, GIVEN_PATH_UNKNOWN))
            continue
        if row.topic or marked[i]:
            topics = _given_topic(graph, row, marked[i], text, mentions.get(i, []))
            if not topics:
                drops.append((i, NOT_IN_GRAPH))
                continue
        else:
            topics = _linked_topics(mentions[i], max_topics)
            if not topics:
                drops.append((i, NO_ENTITY))
                continue
        gold = frozenset(a.casefold() for a in row.answers)
        tasks.append(_Task(i, text, gold, row.answers, topics, path))
    return tasks, drops


def graph_entity(graph: GraphStore, name: str) -> str | None:
    """The graph's entity named `name` (exactly, else ignoring case), or None."""
    found = graph.find_entities(name)
    if name in found:
        return name
    return found[0] if found else None


def _given_topic(graph: GraphStore, row: QARow, marked: MarkedQuestion | None, text: str,
                 mentions: list[Mention]) -> list[tuple[str, tuple[int, int]]]:
    """The row's own topic (its `topic` field, else the entities its [marked] mention names) with its span."""
    if marked is not None:
        span = marked.spans[0]
        if row.topic:
            entity = graph_entity(graph, row.topic)
            return [(entity, span)] if entity else []
        return [(entity, span) for entity in graph.find_entities(marked.topic)]
    entity = graph_entity(graph, row.topic)
    return [(entity, topic_span(text, entity, mentions))] if entity else []


def topic_span(text: str, entity: str, mentions: list[Mention]) -> tuple[int, int]:
    """Where the question mentions `entity`: a linker mention that may mean it, else the name itself (any
    case, not inside a word), else NO_SPAN."""
    for mention in mentions:
        if any(c.name == entity for c in mention.candidates):
            return mention.start, mention.end
    found = re.search(rf"(?<!\w){re.escape(entity)}(?!\w)", text, flags=re.IGNORECASE)
    return (found.start(), found.end()) if found else NO_SPAN


def _linked_topics(mentions: list[Mention], max_topics: int) -> list[tuple[str, tuple[int, int]]]:
    """Every candidate of every mention, best mention first, each entity once, at most `max_topics`."""
    topics: dict[str, tuple[int, int]] = {}
    for mention in mentions:
        for candidate in mention.candidates:
            topics.setdefault(candidate.name, (mention.start, mention.end))
    return list(topics.items())[:max_topics]


def enumerate_paths(graph: GraphStore, topics: list[str], max_hops: int,
                    max_paths: int = DEFAULT_MAX_PATHS) -> tuple[dict[Path, list[int]], list[bool]]:
    """Every path of 1..max_hops steps walkable from each topic, as path -> the positions of the topics it
    walks from; and per topic whether it hit `max_paths` (shorter paths, then steps in text order, first).

    One `next_steps_many` call per hop for all the topics."""
    found: dict[Path, list[int]] = {}
    counts = [0] * len(topics)
    capped = [False] * len(topics)
    frontier: list[tuple[int, Path]] = [(t, ()) for t in range(len(topics))]
    for _ in range(max_hops):
        if not frontier:
            break
        options = graph.next_steps_many([topics[t] for t, _ in frontier], [prefix for _, prefix in frontier])
        grown: list[tuple[int, Path]] = []
        for (t, prefix), steps in zip(frontier, options):
            room = max_paths - counts[t]
            if len(steps) > room:
                steps, capped[t] = steps[:max(room, 0)], True
            counts[t] += len(steps)
            for step in steps:
                path = prefix + (step,)
                found.setdefault(path, []).append(t)
                grown.append((t, path))
        frontier = grown
    return found, capped


def answers_many(graph: GraphStore, topics: list[str], path: Path) -> list[list[str]]:
    """The answers of `expand_many(topics, path)`, in its order, without building the evidence.

    The embedded store's walk gives the entities reached directly (evidence chains cost ten times the walk
    when a path fans out through a hub); any other store is asked for its expansions."""
    from kgqa.graph.embedded import EmbeddedGraph

    if not isinstance(graph, EmbeddedGraph):
        return [expansion.answers for expansion in graph.expand_many(topics, path)]
    hops, _, _ = graph.walk(np.array([graph._id(t) for t in topics], np.int64), path)
    final = hops[-1][0]
    distinct, which = np.unique(final[:, 1], return_inverse=True)
    names = graph.names(distinct)
    out: list[list[str]] = [[] for _ in topics]
    for position, j in zip(final[:, 0].tolist(), which.tolist()):
        out[position].append(names[j])
    return out


def final_steps(graph: GraphStore, answers: Sequence[Sequence[str]]) -> list[set[Step]]:
    """For each answer set, the steps a walk can end on to land on one of its answers (the reverses of the
    steps walkable from them): a path ending otherwise has F1 0 and need not be walked."""
    entities = [[e for a in group for e in graph.find_entities(a)] for group in answers]
    flat = [e for group in entities for e in group]
    steps = graph.next_steps_many(flat, [()] * len(flat)) if flat else []
    out, at = [], 0
    for group in entities:
        out.append({s.reverse() for found in steps[at:at + len(group)] for s in found})
        at += len(group)
    return out


def steps_named(question_stems: frozenset[str], path: Path) -> int:
    """How many distinct words of the path's relations the question uses (see `word_stems`): between paths
    with the same answers, the one the question names is the better label ("the children of X's parent's
    children" is `children|parents|children`, not `children`; "where was X born" stays `born_in`)."""
    return len(frozenset().union(*(relation_stems(step.relation) for step in path)) & question_stems)


def answer_f1(predicted: Sequence[str], gold: frozenset[str]) -> float:
    """F1 of a walk's answers against the (case-folded) gold answers."""
    pred = {p.casefold() for p in predicted}
    overlap = len(pred & gold)
    if not overlap:
        return 0.0
    precision, recall = overlap / len(pred), overlap / len(gold)
    return 2 * precision * recall / (precision + recall)


def _label_tasks(graph: GraphStore, tasks: list[_Task], max_hops: int, max_paths: int,
                 min_f1: float) -> tuple[list[Label | tuple[int, str]], int]:
    """Score the candidate paths of every (task, topic) pair and pick each task's best; also the number of
    pairs whose enumeration was capped."""
    pairs = [(k, rank) for k, task in enumerate(tasks) for rank in range(len(task.topics))]
    topics = [tasks[k].topics[rank][0] for k, rank in pairs]
    searched = [p for p, (k, _) in enumerate(pairs) if tasks[k].path is None]
    jobs, capped = enumerate_paths(graph, [topics[p] for p in searched], max_hops, max_paths)
    last_steps = final_steps(graph, [task.answers for task in tasks])
    by_path = {path: [searched[t] for t in ts if path[-1] in last_steps[pairs[searched[t]][0]]]
               for path, ts in jobs.items()}
    for p, (k, _) in enumerate(pairs):
        if tasks[k].path is not None:
            by_path.setdefault(tasks[k].path, []).append(p)
    best: dict[int, tuple[float, int]] = {}   # pair -> (F1, steps named) of its best paths
    best_paths: dict[int, list[str]] = {}     # pair -> those paths
    reached: set[int] = set()
    for path, ps in by_path.items():
        if not ps:
            continue
        for p, answers in zip(ps, answers_many(graph, [topics[p] for p in ps], path)):
            if answers:
                reached.add(p)
            task = tasks[pairs[p][0]]
            key = (answer_f1(answers, task.gold), steps_named(task.words, path))
            if p not in best or key > best[p]:
                best[p], best_paths[p] = key, [format_path(path)]
            elif key == best[p]:
                best_paths[p].append(format_path(path))
    of_task: dict[int, list[int]] = {}
    for p, (k, _) in enumerate(pairs):
        of_task.setdefault(k, []).append(p)
    out = [_choose(task, of_task.get(k, []), pairs, best, best_paths, reached, max_hops, min_f1)
           for k, task in enumerate(tasks)]
    return out, sum(capped)


def _choose(task: _Task, mine: list[int], pairs: list[tuple[int, int]], best: dict[int, tuple[float, int]],
            best_paths: dict[int, list[str]], reached: set[int], max_hops: int,
            min_f1: float) -> Label | tuple[int, str]:
    """The task's label from its pairs' best paths: best F1, better topic, more steps named in the question,
    shorter path, fewer inverse steps (a step as the graph writes it), path text."""
    if task.path is not None:
        mine = [p for p in mine if p in reached]
        if not mine:
            return task.row, GIVEN_PATH_EMPTY
    scored = [p for p in mine if p in best]
    if not scored:
        return task.row, no_path(max_hops)
    p = min(scored, key=lambda p: (-best[p][0], pairs[p][1], -best[p][1]))
    f1 = best[p][0]
    if task.path is None and f1 <= min_f1:
        return task.row, no_path(max_hops) if f1 == 0 else below(min_f1)
    path, *ties = sorted(best_paths[p], key=lambda text: (text.count("|"), sum(s.inverse for s in parse_path(text)),
                                                          text))
    topic, span = task.topics[pairs[p][1]]
    example = Example(task.text, topic, path, task.answers, source="weak")
    return Label(task.row, example, span, round(f1, 4), tuple(ties[:MAX_TIES]))
