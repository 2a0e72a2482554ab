"""Candidate answers for the reranker, grouped by (topic entity, relation path), with the earlier stages' signals.

One question has a few topic-entity candidates (the linker's ranked Mention.candidates), each with its
retriever-ranked top-k paths; walking one path from one topic gives a *group*: the answers it reaches with
their evidence chains. Answers of a group share the path text, so the cross-encoder scores a group once
(one (masked question, path text) pair, shared by every topic that reaches the same path); per-answer
signals (the answer's degree) only order answers inside a group.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from kgqa.graph.store import GraphStore
from kgqa.types import Mention, Path, PathCandidate, Triple, shortcut

FEATURES = ("cross", "cross_gap", "retriever", "retriever_gap", "path_rank", "topic_rank", "link_confidence",
            "top_link_confidence", "topic_degree", "hops", "answers", "llm_choice", "weakest_step", "there_and_back",
            "there_and_back_cued", "who_for_things", "things_for_who")
"""The signals fused with the cross-encoder score, as `feature_matrix` computes them; a fusion layer reads the
ones it was fitted on (`Fusion.features`: all of them, or an older layer's fewer)."""

SAMENESS_CUES = frozenset({"same", "share", "shares", "shared", "sharing", "also", "too", "else", "other", "others",
                           "together", "alongside", "fellow", "both", "co"})
"""English words that ask for the others sharing something with the topic ("the same director as X", "who
else starred with X", "co-authors"): what a relation walked there and straight back (`r|r_inv`) means."""


@dataclass
class Group:
    """The answers one topic candidate reaches along one path, and what each stage said about them."""

    question: int
    """Index of the question in its batch."""
    topic: str
    topic_rank: int
    link_confidence: float
    topic_degree: int
    path: Path
    text: str
    retriever_score: float
    path_rank: int
    llm_choice: bool = False
    weakest_step: float = 0.0
    """The lowest similarity between the question and one of the path's relations (`mark_question_signals`):
    a path with a step the question never asks for scores low, however well its other steps match."""
    cued: bool = False
    """The question uses a SAMENESS_CUES word."""
    who_for_things: bool = False
    """The question asks "who" and the path ends on things (`kgqa.grammar.answer_kind`: "what")."""
    things_for_who: bool = False
    """The question asks for a class of things ("which films", `kgqa.grammar.asks_for_things`) and the path
    ends on doers (`answer_kind`: "who")."""
    evidence: dict[str, list[Triple]] = field(default_factory=dict)
    cross: float = 0.0
    """The cross-encoder's logit for (masked question, path text)."""
    score: float = 0.0
    """The fused score: the probability that this group is the question's answer set."""
    capped: bool = False
    """The walk was capped (a hub): `reached` counts the edges of its last step, `evidence` holds a sample."""
    reached: int = 0

    @property
    def answers(self) -> list[str]:
        return list(self.evidence)


def topic_candidates(mention: Mention | None, limit: int) -> list[tuple[int, str, int]]:
    """(rank, name, degree) of the linker's best `limit` entities for the mention."""
    if mention is None:
        return []
    return [(rank, e.name, e.degree) for rank, e in enumerate(mention.candidates[:limit])]


def rank_other_topics(search, mentions: Sequence[Mention | None], question_vectors: np.ndarray, top_topics: int,
                      top_paths: int) -> dict[tuple[int, int], list[PathCandidate]]:
    """The searched paths of every topic candidate after the best one: {(question, rank): paths}, in one batch."""
    rows = [(i, rank, name) for i, mention in enumerate(mentions)
            for rank, name, _ in topic_candidates(mention, top_topics) if rank > 0]
    if not rows:
        return {}
    ranked = search.search_many([name for _, _, name in rows], question_vectors[[i for i, _, _ in rows]], top_paths)
    return {(i, rank): candidates for (i, rank, _), candidates in zip(rows, ranked)}


def collect_groups(graph: GraphStore, mentions: Sequence[Mention | None], ranked: Sequence[Sequence[PathCandidate]],
                   llm_picks: Sequence[int | None] | None = None, extra_ranked: dict | None = None,
                   top_topics: int = 2, margin: float | None = None) -> list[list[Group]]:
    """The groups of every question: its top topic candidates x their ranked paths, walked in batches.

    `ranked[i]` are the paths of question i's best topic; `extra_ranked[(i, rank)]` those of its other
    topic candidates. `llm_picks[i]`, when not None, is the index in `ranked[i]` that the LLM chose.
    With `margin`, a path whose retriever score trails the question's best by more than that is left out
    (the LLM's pick always stays): the cross-encoder costs one BERT pass per distinct path, and a path the
    retriever puts far behind is next to never the answer. Groups that reach no answer are dropped.
    """
    extra_ranked = extra_ranked or {}
    groups: list[list[Group]] = [[] for _ in mentions]
    for i, mention in enumerate(mentions):
        confidence = float(mention.confidence) if mention is not None else 0.0
        for rank, name, degree in topic_candidates(mention, top_topics):
            paths = ranked[i] if rank == 0 else extra_ranked.get((i, rank), [])
            pick = llm_picks[i] if llm_picks is not None and rank == 0 else None
            for path_rank, candidate in enumerate(paths):
                groups[i].append(Group(i, name, rank, confidence, degree, candidate.path, candidate.text,
                                       float(candidate.score), path_rank, llm_choice=pick == path_rank))
        if margin is not None and groups[i]:
            best = max(g.retriever_score for g in groups[i])
            groups[i] = [g for g in groups[i] if g.retriever_score >= best - margin or g.llm_choice]
    expand_groups(graph, [g for row in groups for g in row])
    return drop_idle_detours(graph, [[g for g in row if g.evidence] for row in groups])


def drop_idle_detours(graph: GraphStore, groups: list[list[Group]]) -> list[list[Group]]:
    """The groups less those whose path is a detour (`kgqa.types.shortcut`) reaching just what its shortcut
    reaches from the same topic: "the directors of the films by X's director" is X's director again, and
    the question that walk seems to fit asks for the films."""
    by_path: dict[Path, list[Group]] = defaultdict(list)
    for group in (g for row in groups for g in row):
        shorter = shortcut(group.path)
        if shorter is not None:
            by_path[shorter].append(group)
    idle: set[int] = set()
    for path, members in by_path.items():
        for group, expansion in zip(members, graph.expand_many([g.topic for g in members], path)):
            if set(expansion.answers) == set(group.evidence):
                idle.add(id(group))
    return [[g for g in row if id(g) not in idle] for row in groups] if idle else groups


def there_and_back(path: Path) -> bool:
    """Whether the path walks a relation and straight back (`directed_by|directed_by_inv`)."""
    return any(b == a.reverse() for a, b in zip(path, path[1:]))


def mark_question_signals(groups: Sequence[Group], masked_questions: Sequence[str], question_vectors: np.ndarray,
                          relation_vectors: Callable[[list[str]], np.ndarray]) -> None:
    """Set each group's `weakest_step` (question vector against the vector of each relation's words, from
    `relation_vectors`; the lowest), `cued` (its masked question uses a SAMENESS_CUES word),
    `who_for_things` and `things_for_who`."""
    from kgqa.grammar import answer_kind, asks_for_things
    from kgqa.retrieval.paths import relation_words

    if not groups:
        return
    relations = sorted({step.relation for g in groups for step in g.path})
    vectors = dict(zip(relations, relation_vectors([relation_words(r) for r in relations])))
    words = [set(re.findall(r"[a-z]+", q.lower())) for q in masked_questions]
    things = [asks_for_things(q) for q in masked_questions]
    for g in groups:
        q = question_vectors[g.question]
        g.weakest_step = min(float(vectors[step.relation] @ q) for step in g.path)
        g.cued = bool(SAMENESS_CUES & words[g.question])
        kind = answer_kind(g.path[-1])
        g.who_for_things = bool({"who", "whom"} & words[g.question]) and kind == "what"
        g.things_for_who = things[g.question] and kind == "who"


def expand_groups(graph: GraphStore, groups: Sequence[Group]) -> None:
    """Fill each group's evidence, walking every path once for all the topics that take it.

    The store's walks never come back through their topic ("the films directed by the director of X" are
    his *other* films; on MetaQA dev 3-hop, walking the gold path from the gold topic gives the gold answer
    set for 52% of questions when walks may return to the topic, 100% when they may not).
    """
    by_path: dict[Path, list[Group]] = defaultdict(list)
    for group in groups:
        by_path[group.path].append(group)
    for path, members in by_path.items():
        for group, expansion in zip(members, graph.expand_many([g.topic for g in members], path)):
            group.evidence, group.capped, group.reached = expansion.evidence, expansion.capped, expansion.reached


def feature_matrix(groups: Sequence[Group]) -> np.ndarray:
    """One row of FEATURES per group; the *_gap features compare a group with the best of its question."""
    if not groups:
        return np.zeros((0, len(FEATURES)), np.float32)
    best_cross: dict[int, float] = {}
    best_retriever: dict[tuple[int, int], float] = {}
    for g in groups:
        best_cross[g.question] = max(best_cross.get(g.question, -math.inf), g.cross)
        key = (g.question, g.topic_rank)
        best_retriever[key] = max(best_retriever.get(key, -math.inf), g.retriever_score)
    rows = []
    for g in groups:
        back = there_and_back(g.path)
        rows.append([g.cross, g.cross - best_cross[g.question], g.retriever_score,
                     g.retriever_score - best_retriever[(g.question, g.topic_rank)], math.log1p(g.path_rank),
                     float(g.topic_rank), g.link_confidence, g.link_confidence * (g.topic_rank == 0),
                     math.log1p(g.topic_degree), float(len(g.path)), math.log1p(len(g.evidence)), float(g.llm_choice),
                     g.weakest_step, float(back), float(back and g.cued), float(g.who_for_things),
                     float(g.things_for_who)])
    return np.asarray(rows, np.float32)


# ---- the answer set ---------------------------------------------------------------------------------


@dataclass
class RankedAnswer:
    name: str
    score: float
    group: Group


def select_answers(groups: Sequence[Group], mode: str = "group", threshold: float = 0.5,
                   answer_degree: Mapping[str, int] | Callable[[str], int] | None = None,
                   degree_weight: float = 0.0) -> list[RankedAnswer]:
    """The answer set of one question from its scored groups, best first.

    mode "group": every answer of the best-scored group. mode "threshold": also the answers of every other
    group whose score reaches `threshold` (an answer takes its best group's score and evidence).
    Inside a score, answers are ordered by `degree_weight` x log(1 + degree), then by name; `answer_degree`
    is a mapping or a function (the graph's `degree`), asked only for the chosen answers.
    """
    if not groups:
        return []
    ordered = sorted(groups, key=lambda g: -g.score)
    chosen = [ordered[0]]
    if mode == "threshold":
        chosen += [g for g in ordered[1:] if g.score >= threshold]
    best: dict[str, RankedAnswer] = {}
    for group in chosen:
        for name in group.evidence:
            if name not in best:
                best[name] = RankedAnswer(name, group.score, group)
    if not degree_weight or answer_degree is None:
        return sorted(best.values(), key=lambda a: (-a.score, a.name))
    degree = answer_degree if callable(answer_degree) else (lambda name: answer_degree.get(name, 0))
    return sorted(best.values(), key=lambda a: (-a.score, -degree_weight * math.log1p(degree(a.name)), a.name))
