"""Training questions of every program kind written from a graph (kgqa.program_writer), on a small invented
film graph: every program runs to the result written beside it, mentions sit where their spans say,
every kind appears in its documented share, and a seed always writes the same questions."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from kgqa.graph.embedded import EmbeddedGraph
from kgqa.program import execute
from kgqa.program_writer import KINDS, SHARES, WrittenProgram, kind_targets, literal_steps, write_programs
from kgqa.types import Step

COUNT = 600


def invented_films(taglines: bool = True) -> list[tuple[str, str, str]]:
    """60 films by 8 directors with 2-4 of 20 actors each, a year, 1-2 of 5 genres, a writer, and (when
    `taglines`) a one-off tagline each: a text literal, a leaf of degree 1."""
    rng = random.Random(11)
    directors = [f"Director {c}" for c in "ABCDEFGH"]
    actors = [f"Actor {i:02d}" for i in range(20)]
    genres = ["Noir", "Farce", "Epic", "Musical", "Horror"]
    triples = []
    for i in range(60):
        film = f"Film {i:02d}"
        triples += [(film, "directed_by", rng.choice(directors)), (film, "release_year", str(rng.randint(1975, 2010))),
                    (film, "written_by", rng.choice(directors[:4] + ["Writer X", "Writer Y"]))]
        triples += [(film, "starred_actors", a) for a in rng.sample(actors, rng.randint(2, 4))]
        triples += [(film, "has_genre", g) for g in rng.sample(genres, rng.randint(1, 2))]
        if taglines:
            triples.append((film, "tagline", f"tagline number {i}"))
    return triples


@pytest.fixture(scope="module")
def graph() -> EmbeddedGraph:
    g = EmbeddedGraph.from_triples(invented_films())
    g.walk_through_topic = g.topic_as_answer = False  # the movie graph's conventions
    return g


@pytest.fixture(scope="module")
def written(graph) -> list[WrittenProgram]:
    return write_programs(graph, COUNT, seed=3)


def test_every_program_executes_to_its_written_and_decisive_result(graph, written):
    assert len(written) == COUNT
    for w in written:
        result = execute(graph, w.program)
        assert w.program.kind == w.kind, w
        assert (tuple(result.answers), result.count, result.yes) == (w.answers, w.count, w.yes), w
        if w.kind == "count":
            assert result.count >= 1
        elif w.kind == "yes/no":
            assert result.yes in (True, False)
        else:
            assert result.answers, w


def test_spans_point_at_the_mentions_and_name_the_programs_parts(written):
    for w in written:
        assert w.mentions, w
        names = {"entity": {b.entity for b in w.program.branches}, "excluded": {b.entity for b in w.program.exclude},
                 "value": {c.value for c in w.program.constraints}, "upper": {c.upper for c in w.program.constraints},
                 "ask": {w.program.ask}, "k": {str(w.program.aggregate.k) if w.program.aggregate else None}}
        for start, end, text, role in w.mentions:
            assert w.question[start:end] == text, w
            assert text.casefold() in {n.casefold() for n in names[role] if n}, (w, role)
        mentioned = {t.casefold() for _, _, t, _ in w.mentions}
        assert {b.entity.casefold() for b in w.program.branches + w.program.exclude} <= mentioned, w


def test_all_six_kinds_in_their_documented_shares_and_yes_no_balanced(written):
    kinds = Counter(w.kind for w in written)
    assert set(kinds) == set(KINDS)
    for kind in KINDS:
        assert kinds[kind] == kind_targets(COUNT, KINDS)[kind] == pytest.approx(COUNT * SHARES[kind], abs=1)
    answers = Counter(w.yes for w in written if w.kind == "yes/no")
    assert answers[True] == answers[False]
    assert any(w.program.exclude for w in written) and any(not w.program.exclude for w in written if w.kind == "conjunction")
    superlatives = [w.program.aggregate for w in written if w.kind == "superlative"]
    assert {a.measure for a in superlatives} == {"value", "count"} and {a.op for a in superlatives} == {"min", "max"}
    assert any(a.k > 1 for a in superlatives) and any(a.k == 1 for a in superlatives)
    assert {c.op for w in written for c in w.program.constraints} == {"eq", "lt", "gt", "between"}


def test_the_extra_branch_filter_or_order_changes_the_answers(graph, written):
    for w in written:
        if w.kind in ("conjunction", "filter", "superlative"):
            alone = execute(graph, type(w.program)(w.program.branches[:1]))
            assert set(w.answers) < set(alone.answers), w
            assert len(w.answers) <= (w.program.aggregate.k + 1 if w.program.aggregate else len(w.answers))


def test_literal_steps_are_found_from_the_graph_alone(graph):
    found = literal_steps(graph, random.Random(0))
    assert found == {Step("release_year"): True, Step("tagline"): False}


def test_without_a_literal_step_there_are_no_filters_and_the_shares_renormalise():
    g = EmbeddedGraph.from_triples([t for t in invented_films(taglines=False) if t[1] != "release_year"])
    written = write_programs(g, 300, seed=1)
    kinds = Counter(w.kind for w in written)
    assert "filter" not in kinds and set(kinds) == set(KINDS) - {"filter"}
    targets = kind_targets(300, [k for k in KINDS if k != "filter"])
    assert dict(kinds) == targets and targets["yes/no"] == pytest.approx(300 * SHARES["yes/no"] / (1 - SHARES["filter"]), abs=1)
    assert all(w.program.aggregate.measure == "count" for w in written if w.kind == "superlative")


def test_the_same_seed_writes_the_same_questions_and_another_seed_others(graph, written):
    again = write_programs(graph, COUNT, seed=3)
    assert [(w.question, w.program, w.mentions) for w in again] == [(w.question, w.program, w.mentions) for w in written]
    other = write_programs(graph, COUNT, seed=4)
    assert len({w.question for w in other} - {w.question for w in written}) > COUNT // 2


def test_wordings_vary_and_some_are_lower_case(written):
    by_kind = {kind: [w.question for w in written if w.kind == kind] for kind in KINDS}
    for kind, questions in by_kind.items():
        shapes = {q.split()[0].lower() for q in questions}
        assert len(shapes) >= 4, (kind, shapes)
    assert any(q == q.lower() for q in by_kind["count"]) and any(q != q.lower() for q in by_kind["count"])
