"""Questions written from the graph alone: right by construction, spread over hop counts and paths, in many
shapes, and following the graph's conventions."""

from __future__ import annotations

import random

from kgqa.graph.embedded import EmbeddedGraph
from kgqa.question_writer import class_nouns, misspell, phrase_question, sibling_question, verb_question, write_questions, with_typos
from kgqa.types import Step

from tests.family import family_graph


def family() -> EmbeddedGraph:
    triples, _ = family_graph()
    return EmbeddedGraph.from_triples(triples)


def test_written_questions_carry_the_walks_answers_and_the_topics_span():
    graph = family()
    labels = write_questions(graph, max_hops=3, count=300, seed=1)
    assert len(labels) == 300
    assert sorted({label.example.hops for label in labels}) == [1, 2, 3]
    assert all(90 <= sum(1 for l in labels if l.example.hops == h) <= 110 for h in (1, 2, 3))
    assert len({l.example.path for l in labels}) >= 15
    for label in labels:
        example = label.example
        start, end = label.span
        assert example.question[start:end].casefold() == example.topic.casefold()
        assert set(example.answers) == set(graph.expand(example.topic, example.steps).answers)
    shapes = {label.example.question.replace(label.example.question[label.span[0]:label.span[1]], "E")
              .split(" E")[0] for label in labels}
    assert len(shapes) >= 20  # not one template
    assert write_questions(graph, 3, 300, seed=1) == labels  # a seed gives the same questions


def test_written_questions_follow_the_graphs_conventions():
    graph = family()
    graph.topic_as_answer = False
    labels = write_questions(graph, max_hops=2, count=200, seed=2)
    assert labels and all(label.example.topic not in label.example.answers for label in labels)
    assert any(label.example.path == "spouse|spouse" for label in write_questions(family(), 2, 200, seed=2))
    assert not any(label.example.path == "spouse|spouse" for label in labels)  # it only reaches the topic


def test_typos_move_the_span_with_the_mention():
    labels = write_questions(family(), max_hops=1, count=100, seed=3)
    typed = with_typos(labels, rate=1.0, seed=3)
    changed = [(a, b) for a, b in zip(labels, typed) if a.example.question != b.example.question]
    assert len(changed) >= 90
    for before, after in changed:
        start, end = after.span
        mention = after.example.question[start:end]
        original = before.example.question[slice(*before.span)]
        assert mention != original and mention[0] == original[0] and abs(len(mention) - len(original)) <= 1
        assert after.example.question.replace(mention, original, 1) == before.example.question
        assert after.example.topic == before.example.topic and after.example.answers == before.example.answers
    rng = random.Random(0)
    assert all(abs(len(misspell("Marsh", rng)) - 5) <= 1 for _ in range(50))


def test_a_relation_walked_there_and_back_is_mostly_asked_as_one_same_or_together_phrase():
    labels = write_questions(family(), max_hops=2, count=600, seed=4)
    cues = ("same", "share", "also", "else", "together", "alongside", "fellow", "co-")
    there_and_back = [l for l in labels if l.example.path in ("nationality|nationality_inv", "children_inv|children")]
    others = [l for l in labels if l.example.hops == 1]
    assert len(there_and_back) >= 20 and len(others) >= 100
    worded = sum(any(c in l.example.question for c in cues) for l in there_and_back)
    assert worded >= 0.5 * len(there_and_back)  # SIBLING_SHARE, less the keyword shapes
    assert not any(any(f" {c} " in f" {l.example.question} " for c in ("same", "together", "alongside", "fellow"))
                   for l in others)


def test_a_participle_with_its_doers_is_asked_as_a_verb():
    rng = random.Random(0)
    forward = {verb_question(Step("starred_actors", False), "X", rng) for _ in range(60)}
    backward = {verb_question(Step("starred_actors", True), "X", rng) for _ in range(60)}
    assert {"who starred in X", "which actors starred in X"} <= forward and all(q.endswith(" in X") for q in forward)
    assert "what has X starred in" in backward and all(q.index("X") < q.index("starred in") for q in backward)
    assert verb_question(Step("children", False), "X", rng) is None  # a plain noun has no verb


def studio() -> EmbeddedGraph:
    """Works made by makers, with genres; Ava and Ben made one work together."""
    triples = []
    for i in range(30):
        maker = f"Maker {i % 6}"
        triples += [(f"Work {i}", "directed_by", maker), (f"Work {i}", "has_genre", f"Genre {i % 4}")]
    triples += [("Joint Work", "directed_by", "Ava Lund"), ("Joint Work", "directed_by", "Ben Ode"),
                ("Solo Work", "directed_by", "Ava Lund")]
    return EmbeddedGraph.from_triples(triples)


def test_who_is_asked_only_for_doers_and_what_for_things():
    labels = write_questions(studio(), max_hops=2, count=600, seed=5)
    doers = [l.example.question for l in labels if l.example.path.endswith("directed_by")]
    things = [l.example.question for l in labels if l.example.path.endswith(("has_genre", "directed_by_inv"))]
    assert len(doers) >= 30 and len(things) >= 30
    assert not any(q.lower().startswith(("what is ", "what are ")) for q in doers)
    assert not any(q.lower().startswith("who ") for q in things)
    assert any(q.lower().startswith("who ") for q in doers) and any(q.lower().startswith("what ") for q in things)


def test_a_detour_that_changes_no_answer_is_not_written():
    graph = studio()
    labels = write_questions(graph, max_hops=3, count=900, seed=6)
    detours = [l.example for l in labels if l.example.path == "directed_by|directed_by_inv|directed_by"]
    for example in detours:  # only from Solo Work: its maker Ava also made Joint Work, with Ben
        assert set(example.answers) != set(graph.expand(example.topic, (Step("directed_by", False),)).answers)
    assert {e.topic for e in detours} <= {"Solo Work"}
    assert any(l.example.path == "directed_by|directed_by_inv|has_genre" for l in labels)


def test_fellow_doers_are_asked_with_the_verb():
    rng = random.Random(0)
    path = (Step("starred_actors", True), Step("starred_actors", False))
    asked = [phrase_question("Ann Lee", path, rng)[0] for _ in range(300)]
    assert any(q.startswith(("who starred together with Ann Lee", "who starred alongside Ann Lee")) for q in asked)
    assert any("Ann Lee starred together with who" in q for q in asked)
    assert not any(q.lower().startswith(("what is ", "what are ")) for q in asked)  # the answers are doers
    assert sibling_question(Step("children", True), "X", rng) is None  # a plain noun has no verb


def test_class_nouns_the_graph_does_not_name_are_written_in():
    graph = EmbeddedGraph.from_triples([(f"Track {i}", "song_of", f"Band {i % 3}") for i in range(20)]
                                       + [(f"Track {i}", "has_genre", "Pop") for i in range(20)])
    nouns = {noun for pair in class_nouns(graph) for noun in pair}
    assert "films" in nouns and "songs" not in nouns and "song" not in nouns  # they ask for song_of here
    labels = write_questions(graph, max_hops=2, count=400, seed=7)
    named = [l for l in labels if any(f" {n} " in f" {l.example.question.lower()} " for n in nouns - {"things"})]
    assert len(labels) >= 80 and len(named) >= 0.15 * len(labels)
    assert all(l.example.question[slice(*l.span)].casefold() == l.example.topic.casefold() for l in named)


def test_class_nouns_fit_the_answers():
    labels = write_questions(studio(), max_hops=2, count=600, seed=8)
    people, things = {"people", "persons", "individuals", "figures"}, {"films", "movies", "books", "works", "items"}
    doers = [l.example.question.lower().split() for l in labels if l.example.path.endswith("directed_by")]
    works = [l.example.question.lower().split() for l in labels if l.example.path.endswith("directed_by_inv")]
    assert any(people & set(q) for q in doers) and any(things & set(q) for q in works)
    assert not any(things & set(q) for q in doers) and not any(people & set(q) for q in works)


def test_which_films_asks_for_things():
    from kgqa.grammar import asks_for_things

    assert asks_for_things("which films share the director of X") and asks_for_things("What books did X write")
    assert not asks_for_things("which people directed X") and not asks_for_things("who directed the films of X")
