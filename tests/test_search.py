"""The path search: exhaustive mode against a brute-force walk, and the beam against exhaustive enumeration."""

from __future__ import annotations

import random

import numpy as np
import pytest

from kgqa.encoder import SentenceEmbedder
from kgqa.graph.embedded import EmbeddedGraph
from kgqa.retrieval.paths import PathRanker, verbalise_path
from kgqa.retrieval.search import PathSearch
from kgqa.types import Path, Step

WORDS = ["river", "author", "capital", "founder", "parent", "member", "coach", "album", "language", "genre",
         "mayor", "border", "teacher", "rival", "partner", "sponsor", "editor", "owner", "pilot", "judge"]


def random_graph(relations: int, triples: int, entities: int, seed: int) -> list[tuple[str, str, str]]:
    rng = random.Random(seed)
    names = [f"{rng.choice(WORDS).title()} {i}" for i in range(entities)]
    rels = [f"has_{a}_{b}" for a, b in zip(rng.sample(WORDS * 3, relations), rng.sample(WORDS * 3, relations))]
    rels = list(dict.fromkeys(rels))
    out = set()
    while len(out) < triples:
        s, o = rng.randrange(entities), int(rng.paretovariate(1.2)) % entities  # a few objects are hubs
        out.add((names[s], rng.choice(rels), names[o]))
    return sorted(out)


def brute_force_paths(triples: list[tuple[str, str, str]], topic: str, max_hops: int, avoid_topic: bool) -> set[Path]:
    """Every path whose walk is non-empty up to its last hop's source: the steps walkable from where each
    prefix leads (with `avoid_topic`, never back through the topic after the first step of a longer walk)."""
    edges: dict[str, list[tuple[Step, str]]] = {}
    for s, r, o in triples:
        edges.setdefault(s, []).append((Step(r), o))
        edges.setdefault(o, []).append((Step(r, True), s))
    found: set[Path] = set()
    frontier: dict[Path, set[str]] = {(): {topic}}
    for hop in range(max_hops):
        grown: dict[Path, set[str]] = {}
        for prefix, nodes in frontier.items():
            sources = nodes - {topic} if prefix and avoid_topic else nodes
            for node in sources:
                for step, target in edges.get(node, []):
                    found.add(prefix + (step,))
                    if target != topic or not avoid_topic:
                        grown.setdefault(prefix + (step,), set()).add(target)
        frontier = grown
    return found


@pytest.fixture(scope="module")
def embedder() -> SentenceEmbedder:
    return SentenceEmbedder()


@pytest.fixture(scope="module")
def world():
    triples = random_graph(relations=25, triples=150, entities=150, seed=3)
    return triples, EmbeddedGraph.from_triples(triples)


@pytest.mark.parametrize("avoid_topic", [False, True])
def test_exhaustive_search_finds_exactly_the_walkable_paths(embedder, avoid_topic):
    triples = random_graph(relations=25, triples=150, entities=150, seed=3)
    graph = EmbeddedGraph.from_triples(triples)
    graph.walk_through_topic = graph.topic_as_answer = not avoid_topic
    search = PathSearch(graph, PathRanker(embedder), max_hops=3, beam_width=0, shortlist=0)
    topics = [triples[0][0], triples[10][2], triples[100][0]]
    found = search.search_many(topics, embedder.embed(["x"] * 3), None)
    for topic, row in zip(topics, found):
        assert {c.path for c in row} == brute_force_paths(triples, topic, 3, avoid_topic)
        assert [c.score for c in row] == sorted((c.score for c in row), reverse=True)


def test_beam_finds_the_exhaustive_best_path(world, embedder):
    """Questions worded from random walkable paths: the beam (with the relation shortlist at work: 50 steps
    > 16) picks the path exhaustive enumeration picks, while scoring far fewer paths."""
    triples, graph = world
    rng = random.Random(7)
    ranker = PathRanker(embedder, hop_penalty=0.1)
    exhaustive = PathSearch(graph, ranker, max_hops=3, beam_width=0, shortlist=0)
    beam = PathSearch(graph, ranker, max_hops=3, beam_width=10, shortlist=16)
    topics, questions = [], []
    for s, _, _ in rng.sample(triples, 20):
        walkable = sorted(brute_force_paths(triples, s, 3, avoid_topic=False), key=str)
        path = rng.choice(walkable)
        topics.append(s)
        questions.append(f"what is the {verbalise_path(path)} of something")
    vectors = embedder.embed(questions)
    full = exhaustive.search_many(topics, vectors, None)
    pruned = beam.search_many(topics, vectors, None)
    same = [f[0].path == p[0].path for f, p in zip(full, pruned)]
    assert np.mean(same) >= 0.95, [(f[0].text, p[0].text) for f, p, ok in zip(full, pruned, same) if not ok]
    assert sum(len(p) for p in pruned) < 0.5 * sum(len(f) for f in full)
    for p in pruned:  # at most every first step, then beam x shortlist per hop
        assert len(p) <= 50 + 2 * 10 * 16


def test_relation_shortlist_keeps_the_steps_nearest_the_question(world, embedder):
    _, graph = world
    search = PathSearch(graph, PathRanker(embedder), max_hops=1, beam_width=10, shortlist=3)
    steps = graph.all_steps()
    question = embedder.embed(["who is the founder of the river"])[0]
    chosen = search.relation_index.shortlist(question, steps, 3)
    scores = {s: float(v) for s, v in zip(steps, search.ranker.score(question, [(s,) for s in steps]))}
    best = sorted(steps, key=lambda s: -scores[s])[:3]
    assert set(chosen) == set(best)


def test_without_the_reranker_a_best_path_that_reaches_nothing_gives_way(tmp_path):
    """spouse|spouse is walkable from A but comes back only to A, which a longer walk never reaches: the
    agent walks the next ranked path that has answers instead of saying it found none."""
    from kgqa.agent import Agent
    from kgqa.config import load_settings

    graph = EmbeddedGraph.from_triples([("Ann Lee", "spouse", "Bob Ray"), ("Bob Ray", "spouse", "Ann Lee"),
                                        ("Ann Lee", "born_in", "Paris")])
    graph.topic_as_answer = False  # a graph whose convention is that a longer walk never ends at its topic
    settings = load_settings(overrides={"cache_dir": tmp_path, "reranker": "none", "linker": "names",
                                        "hop_penalty": 0.0})
    result = Agent(settings, graph).answer("Ann Lee: spouse, then spouse")
    assert len(result.path_candidates[0]["path"].split("|")) == 2      # the best-ranked path ...
    assert graph.expand("Ann Lee", tuple(Step.parse(s) for s in result.path_candidates[0]["path"].split("|"))
                        ).answers == []                                  # ... reaches nothing
    assert result.answers and result.path != result.path_candidates[0]["path"]
    assert "found no answer" not in result.reply
