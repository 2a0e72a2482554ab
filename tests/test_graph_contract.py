"""The GraphStore contract, run against both backends: the embedded CSR store and a real Neo4j server.

Part 1 checks a small hand-made graph (case variants, a self-loop, unicode, hostile names, relation
names with '.', ':' and '-') against hand-written expectations, on each backend in turn, and then
the two backends against each other exhaustively. Part 2 checks the bundled MetaQA KB: the same
look-ups, paths and answer sets (with the same evidence) for 300 MetaQA test questions per hop,
walked from the gold topic entity along the gold path.

The Neo4j tests need a server (see tests/neo4j_testing.py). Neo4j Community has one database, so
each graph lives under its own label: the fixture graph under `KgqaContractFixture` (wiped and
loaded per module), MetaQA under the default `Entity` label that `kgqa --graph bolt://...` reads
(loaded once, and only when it is not already there complete).
"""

from __future__ import annotations

import random
import re
from collections import defaultdict

import pytest

from kgqa.errors import GraphError
from kgqa.graph import bundled_graph_file, open_graph
from kgqa.graph.embedded import EmbeddedGraph
from kgqa.graph.loaders import read_triples
from kgqa.graph.neo4j_load import delete_graph, load_triples
from kgqa.graph.neo4j_store import DEFAULT_LABEL, Neo4jConnection, Neo4jGraph
from kgqa.graph.store import GraphStore
from kgqa.types import Step, Triple, parse_path
from tests.neo4j_testing import metaqa_dir, neo4j_password, neo4j_settings, neo4j_uri

FIXTURE_LABEL = "KgqaContractFixture"
HOSTILE = "Bobby'}) MATCH (n) DETACH DELETE n // `x` $name {"

FIXTURE: list[tuple[str, str, str]] = [
    ("Kismet", "directed_by", "William Dieterle"),
    ("Kismet", "starred_actors", "Marlene Dietrich"),
    ("Kismet", "starred_actors", "Ronald Colman"),
    ("Kismet", "release_year", "1944"),
    ("Portrait of Jennie", "directed_by", "William Dieterle"),
    ("Portrait of Jennie", "starred_actors", "Jennifer Jones"),
    ("Portrait of Jennie", "release_year", "1948"),
    ("Duel in the Sun", "starred_actors", "Jennifer Jones"),
    ("Duel in the Sun", "directed_by", "King Vidor"),
    ("Duel in the Sun", "directed_by", "William Dieterle"),
    ("Kismet", "release_year", "1944"),                      # a duplicate: stored once
    ("Paris", "ns:located.in", "France"),
    ("Paris", "twin-city", "Rome"),
    ("Rome", "twin-city", "Paris"),
    ("PARIS", "directed_by", "Cédric Klapisch"),
    ("PARIS", "release_year", "2008"),
    ("paris", "has_genre", "Drama"),
    ("Amélie", "has_genre", "Comedy"),
    ("AMÉLIE", "has_genre", "Comedy"),
    ("Ouroboros", "eats", "Ouroboros"),
    ("Little Bobby", "written_by", HOSTILE),
]

BACKENDS = ["embedded", "neo4j"]
# MetaQA KB as bundled (kgqa/data/metaqa_kb.txt.gz): distinct triples and entities
METAQA_TRIPLES = 133_582
METAQA_ENTITIES = 43_234
QUESTIONS_PER_HOP = 300


# ---- fixtures ----------------------------------------------------------------------------------


def connection() -> Neo4jConnection:
    return Neo4jConnection(neo4j_uri(), "neo4j", neo4j_password())


@pytest.fixture(scope="module")
def embedded_fixture_graph(tmp_path_factory: pytest.TempPathFactory) -> EmbeddedGraph:
    file = tmp_path_factory.mktemp("contract") / "fixture.tsv"
    file.write_text("".join(f"{s}\t{r}\t{o}\n" for s, r, o in FIXTURE), encoding="utf-8")
    return EmbeddedGraph.from_file(file)


@pytest.fixture(scope="module")
def neo4j_fixture_graph():
    conn = connection()
    delete_graph(conn, FIXTURE_LABEL)
    load_triples(conn, FIXTURE, label=FIXTURE_LABEL)
    yield Neo4jGraph(conn, FIXTURE_LABEL)
    delete_graph(conn, FIXTURE_LABEL)
    conn.close()


@pytest.fixture(params=BACKENDS)
def graph(request) -> GraphStore:
    return request.getfixturevalue(f"{request.param}_fixture_graph")


@pytest.fixture(scope="session")
def metaqa_embedded(metaqa_graph) -> EmbeddedGraph:
    return metaqa_graph  # tests/conftest.py: the bundled KB in the embedded store


def metaqa_complete(graph: Neo4jGraph) -> bool:
    stats = graph.stats()
    return stats["triples"] == METAQA_TRIPLES and stats["entities"] == METAQA_ENTITIES


@pytest.fixture(scope="session")
def metaqa_neo4j():
    """MetaQA under the default label, loaded only when it is not there complete already."""
    conn = connection()
    graph = Neo4jGraph(conn)
    if not metaqa_complete(graph):
        triples = read_triples(bundled_graph_file(), "pipe")
        load_triples(conn, triples)          # MERGE: completes a half-finished load
        graph.refresh()
        if not metaqa_complete(graph):       # something else is under the label: start over
            delete_graph(conn, DEFAULT_LABEL)
            load_triples(conn, triples)
            graph.refresh()
    assert metaqa_complete(graph)
    yield graph
    conn.close()


@pytest.fixture(scope="session")
def metaqa_questions() -> dict[int, list[tuple[str, str, set[str]]]]:
    """(gold topic, gold path, gold answers) of a fixed sample of MetaQA test questions per hop."""
    folder = metaqa_dir()
    if folder is None:
        pytest.skip("MetaQA questions not found: put them in shared/data/metaqa beside the checkout "
                    "or set KGQA_METAQA_DIR")
    sample = {}
    for hop in (1, 2, 3):
        rows = [line.rstrip("\n").split("\t") for line in (folder / f"{hop}hop" / "test.tsv").open(encoding="utf-8")]
        picked = random.Random(hop).sample(rows, QUESTIONS_PER_HOP)
        sample[hop] = [(re.search(r"\[(.+?)\]", q).group(1), p, set(a.split("|"))) for q, a, p in picked]
    return sample


# ---- part 1: the contract on a small graph, per backend -----------------------------------------


def test_find_entities_ignores_case_exact_case_first_then_degree(graph):
    assert graph.find_entities("paris") == ["paris", "Paris", "PARIS"]
    assert graph.find_entities("Paris") == ["Paris", "PARIS", "paris"]
    assert graph.find_entities("PARIS") == ["PARIS", "Paris", "paris"]
    assert graph.find_entities("pArIs") == ["Paris", "PARIS", "paris"]  # degrees 3, 2, 1
    assert graph.find_entities("amélie") == ["Amélie", "AMÉLIE"]         # same degree: first loaded first
    assert graph.find_entities("KISMET") == ["Kismet"]
    assert graph.find_entities("Casablanca") == []


def test_hostile_names_are_data(graph):
    assert graph.find_entities(HOSTILE) == [HOSTILE]
    assert graph.find_entities(HOSTILE.upper()) == [HOSTILE]
    assert graph.expand(HOSTILE, parse_path("written_by_inv")).answers == ["Little Bobby"]
    assert graph.find_entities("Kismet") == ["Kismet"]  # nothing was deleted


def test_degree_counts_triples_exact_name_only(graph):
    assert graph.degree("William Dieterle") == 3
    assert graph.degree("Kismet") == 4         # the duplicate triple counts once
    assert graph.degree("Ouroboros") == 2      # a self-loop: once as subject, once as object
    assert graph.degree("kismet") == 0
    assert graph.degree("Casablanca") == 0


def test_entity_names_in_load_order(graph):
    names = graph.entity_names()
    assert len(names) == len(set(names)) == 24
    assert names[:3] == ["Kismet", "Portrait of Jennie", "Duel in the Sun"]
    assert {"Ouroboros", HOSTILE, "Cédric Klapisch", "2008"} <= set(names)


def test_neighbours(graph):
    movies = ["Kismet", "Portrait of Jennie", "Duel in the Sun"]
    assert graph.neighbours("William Dieterle", Step("directed_by", True)) == movies
    assert graph.neighbours("Duel in the Sun", Step("directed_by")) == ["William Dieterle", "King Vidor"]
    assert graph.neighbours("pArIs", Step("twin-city")) == ["Rome"]     # resolves to the first loaded
    assert graph.neighbours("Kismet", Step("has_genre")) == []
    with pytest.raises(GraphError, match="no entity named"):
        graph.neighbours("Casablanca", Step("directed_by"))


def test_expand_one_hop_with_evidence_in_stored_direction(graph):
    expansion = graph.expand("Jennifer Jones", parse_path("starred_actors_inv"))
    assert expansion.topic == "Jennifer Jones"
    assert expansion.evidence == {
        "Portrait of Jennie": [Triple("Portrait of Jennie", "starred_actors", "Jennifer Jones")],
        "Duel in the Sun": [Triple("Duel in the Sun", "starred_actors", "Jennifer Jones")]}


def test_expand_two_hops_one_chain_per_answer(graph):
    expansion = graph.expand("William Dieterle", parse_path("directed_by_inv|starred_actors"))
    assert set(expansion.answers) == {"Marlene Dietrich", "Ronald Colman", "Jennifer Jones"}
    # Jennifer Jones is reached through two films; the chain kept is the one through the first loaded
    assert expansion.evidence["Jennifer Jones"] == [
        Triple("Portrait of Jennie", "directed_by", "William Dieterle"),
        Triple("Portrait of Jennie", "starred_actors", "Jennifer Jones")]
    for answer, chain in expansion.evidence.items():
        assert len(chain) == 2 and chain[0].object == "William Dieterle" and chain[1].object == answer


def test_longer_walks_never_come_back_to_their_topic(graph):
    assert graph.expand("William Dieterle", parse_path("directed_by_inv|directed_by")).answers == ["King Vidor"]
    assert set(graph.expand("Kismet", parse_path("directed_by|directed_by_inv")).answers) == {
        "Portrait of Jennie", "Duel in the Sun"}
    # Kismet's director's other films' stars: not Kismet's own (Marlene Dietrich, Ronald Colman)
    assert graph.expand("Kismet", parse_path("directed_by|directed_by_inv|starred_actors")).answers == [
        "Jennifer Jones"]
    assert graph.expand("Ouroboros", parse_path("eats|eats_inv")).answers == []


def test_a_one_step_walk_keeps_a_self_loop(graph):
    # the triple itself says it ("Lemmy | starred_actors | Lemmy": a film named after its star)
    expansion = graph.expand("Ouroboros", parse_path("eats"))
    assert expansion.evidence == {"Ouroboros": [Triple("Ouroboros", "eats", "Ouroboros")]}


def test_walks_may_reuse_a_triple(graph):
    # Kismet is reached from Marlene Dietrich only by walking one of Kismet's starring triples twice
    expansion = graph.expand("Marlene Dietrich", parse_path("starred_actors_inv|starred_actors|starred_actors_inv"))
    assert expansion.answers == ["Kismet"]
    films = graph.expand("Jennifer Jones", parse_path("starred_actors_inv|directed_by|directed_by_inv")).answers
    assert set(films) == {"Kismet", "Portrait of Jennie", "Duel in the Sun"}


def test_expand_many_keeps_order_duplicates_and_resolves_case(graph):
    path = parse_path("release_year")
    expansions = graph.expand_many(["kismet", "PARIS", "Kismet", "Portrait of Jennie"], path)
    assert [e.topic for e in expansions] == ["Kismet", "PARIS", "Kismet", "Portrait of Jennie"]
    assert [e.answers for e in expansions] == [["1944"], ["2008"], ["1944"], ["1948"]]
    assert graph.expand_many([], path) == []


def test_relation_names_with_punctuation(graph):
    assert graph.expand("France", parse_path("ns:located.in_inv|twin-city")).evidence == {
        "Rome": [Triple("Paris", "ns:located.in", "France"), Triple("Paris", "twin-city", "Rome")]}


def test_unknown_entity_or_relation_is_a_graph_error(graph):
    with pytest.raises(GraphError, match="no entity named 'Casablanca'"):
        graph.expand_many(["Kismet", "Casablanca"], parse_path("directed_by"))
    hostile = "directed_by`]->() DETACH DELETE"
    with pytest.raises(GraphError, match=re.escape(f"unknown relation {hostile!r}")):
        graph.expand("Kismet", (Step(hostile),))
    with pytest.raises(GraphError, match="unknown relation 'produced_by'"):
        graph.neighbours("Kismet", Step("produced_by"))


def test_relations_and_stats(graph):
    assert graph.relations() == ["directed_by", "eats", "has_genre", "ns:located.in", "release_year",
                                 "starred_actors", "twin-city", "written_by"]
    stats = graph.stats()
    assert (stats["entities"], stats["triples"], stats["relations"]) == (24, len(set(FIXTURE)), 8)
    assert stats["triples_per_relation"]["directed_by"] == 5
    assert stats["triples_per_relation"]["release_year"] == 3


def test_reachable_paths_in_depth_first_step_order(graph):
    assert graph.reachable_paths("1944", 2) == [parse_path(p) for p in (
        "release_year_inv", "release_year_inv|directed_by", "release_year_inv|release_year",
        "release_year_inv|starred_actors")]
    assert graph.reachable_paths("ouroboros", 2) == [parse_path(p) for p in (
        "eats", "eats|eats", "eats|eats_inv", "eats_inv", "eats_inv|eats", "eats_inv|eats_inv")]
    three = graph.reachable_paths("Marlene Dietrich", 3)
    assert parse_path("starred_actors_inv|starred_actors|starred_actors_inv") in three
    assert all(1 <= len(p) <= 3 for p in three) and len(three) == len(set(three))
    with pytest.raises(GraphError, match="no entity named"):
        graph.reachable_paths("Casablanca", 2)


def test_follows(graph):
    follows = graph.follows()
    assert set(follows) == set(graph.all_steps())
    assert follows[Step("directed_by")] == [Step("directed_by", True)]
    assert follows[Step("directed_by", True)] == [Step("directed_by"), Step("release_year"), Step("starred_actors")]
    assert follows[Step("eats")] == [Step("eats"), Step("eats", True)]
    assert follows[Step("twin-city")] == [Step("ns:located.in"), Step("twin-city"), Step("twin-city", True)]


# ---- part 1b: the two backends against each other, exhaustively ---------------------------------


def test_backends_agree_on_every_lookup(embedded_fixture_graph, neo4j_fixture_graph):
    e, n = embedded_fixture_graph, neo4j_fixture_graph
    assert n.entity_names() == e.entity_names()
    assert n.relations() == e.relations()
    assert n.follows() == e.follows()
    assert {k: v for k, v in n.stats().items() if k != "source"} == \
           {k: v for k, v in e.stats().items() if k != "source"}
    for name in e.entity_names():
        for variant in {name, name.lower(), name.upper()}:
            assert n.find_entities(variant) == e.find_entities(variant), variant
            assert n.degree(variant) == e.degree(variant), variant
        for step in e.all_steps():
            assert n.neighbours(name, step) == e.neighbours(name, step), (name, step)


def test_backends_agree_on_every_path_up_to_two_hops(embedded_fixture_graph, neo4j_fixture_graph):
    e, n = embedded_fixture_graph, neo4j_fixture_graph
    names = e.entity_names()
    assert n.reachable_paths_many(names, 2) == e.reachable_paths_many(names, 2)
    paths = sorted({p for found in e.reachable_paths_many(names, 2) for p in found}, key=str)
    assert len(paths) > 40
    for path in paths:
        assert n.expand_many(names, path) == e.expand_many(names, path), path


def test_neo4j_connect_and_open_graph(neo4j_fixture_graph):
    graph = Neo4jGraph.connect(neo4j_settings(), label=FIXTURE_LABEL)
    try:
        assert graph.find_entities("kismet") == ["Kismet"]
    finally:
        graph.close()
    with pytest.raises(GraphError, match="holds no KgqaNothingHere graph: load one with kgqa kg load"):
        Neo4jGraph.connect(neo4j_settings(), label="KgqaNothingHere")


def test_neo4j_load_is_idempotent_and_batched():
    conn = connection()
    label = "KgqaContractLoad"
    try:
        delete_graph(conn, label)
        seen: list[tuple[str, int, int]] = []
        first = load_triples(conn, FIXTURE, label=label, batch_size=4, on_progress=lambda *a: seen.append(a))
        assert (first.triples, first.triples_created, first.entities_created) == (20, 20, 24)
        assert seen[-1] == ("triples", 20, 20) and ("entities", 24, 24) in seen
        assert len([s for s in seen if s[0] == "entities"]) == 6        # 24 entities, 4 per batch
        again = load_triples(conn, FIXTURE, label=label, batch_size=7)
        assert (again.triples_created, again.entities_created) == (0, 0)
        graph = Neo4jGraph(conn, label)
        assert (graph.stats()["triples"], graph.stats()["entities"]) == (20, 24)
        more = load_triples(conn, [("Kismet", "has_genre", "Drama"), ("Gilda", "has_genre", "Drama")], label=label)
        assert (more.triples_created, more.entities_created) == (2, 1)   # Drama was there
        graph.refresh()
        assert graph.entity_names()[-1] == "Gilda"                        # new entities come last
        assert graph.expand("Drama", parse_path("has_genre_inv")).answers == ["Kismet", "paris", "Gilda"]
    finally:
        assert delete_graph(conn, label) == 25
        conn.close()


# ---- part 2: MetaQA ---------------------------------------------------------------------------------


def test_metaqa_counts(metaqa_neo4j, metaqa_embedded):
    assert {k: v for k, v in metaqa_neo4j.stats().items() if k != "source"} == \
           {k: v for k, v in metaqa_embedded.stats().items() if k != "source"}
    assert metaqa_neo4j.relations() == metaqa_embedded.relations()


def test_metaqa_open_graph_reads_the_default_label(metaqa_neo4j):
    graph = open_graph(neo4j_settings())
    try:
        assert isinstance(graph, Neo4jGraph)
        assert graph.find_entities("kismet") == metaqa_neo4j.find_entities("Kismet")
    finally:
        graph.close()


def test_metaqa_entity_lookups(metaqa_neo4j, metaqa_embedded, metaqa_questions):
    topics = sorted({t for hop in metaqa_questions.values() for t, _, _ in hop})
    for topic in random.Random(0).sample(topics, 300):
        for variant in (topic, topic.lower(), topic.upper()):
            assert metaqa_neo4j.find_entities(variant) == metaqa_embedded.find_entities(variant), variant
        assert metaqa_neo4j.degree(topic) == metaqa_embedded.degree(topic), topic


def test_metaqa_entity_names_and_degrees(metaqa_neo4j, metaqa_embedded):
    names = metaqa_neo4j.entity_names()   # also fills the degree cache
    assert names == metaqa_embedded.entity_names()
    for name in random.Random(0).sample(names, 2000):
        assert metaqa_neo4j.degree(name) == metaqa_embedded.degree(name)
    metaqa_neo4j.refresh()


def test_metaqa_follows(metaqa_neo4j, metaqa_embedded):
    assert metaqa_neo4j.follows() == metaqa_embedded.follows()


@pytest.mark.parametrize("hop", [1, 2, 3])
def test_metaqa_gold_paths_same_answers_and_evidence(hop, metaqa_neo4j, metaqa_embedded, metaqa_questions):
    by_path: dict[str, list[int]] = defaultdict(list)
    questions = metaqa_questions[hop]
    for i, (_, path, _) in enumerate(questions):
        by_path[path].append(i)
    compared = gold_covered = 0
    for path, rows in by_path.items():
        topics = [questions[i][0] for i in rows]
        from_neo4j = metaqa_neo4j.expand_many(topics, parse_path(path))
        from_embedded = metaqa_embedded.expand_many(topics, parse_path(path))
        for i, got, want in zip(rows, from_neo4j, from_embedded):
            assert got.answers, (topics, path)
            assert set(got.answers) == set(want.answers), (questions[i][0], path)
            assert got.evidence == want.evidence, (questions[i][0], path)
            compared += 1
            gold_covered += questions[i][2] <= set(got.answers)
    assert compared == QUESTIONS_PER_HOP
    assert gold_covered >= 0.99 * QUESTIONS_PER_HOP   # and the answers are MetaQA's own


@pytest.mark.parametrize("hop", [1, 2, 3])
def test_metaqa_reachable_paths(hop, metaqa_neo4j, metaqa_embedded, metaqa_questions):
    topics = [t for t, _, _ in metaqa_questions[hop][:40]]
    from_neo4j = metaqa_neo4j.reachable_paths_many(topics, 3)
    assert from_neo4j == metaqa_embedded.reachable_paths_many(topics, 3)
    for topic, paths, (_, gold, _) in zip(topics, from_neo4j, metaqa_questions[hop]):
        assert parse_path(gold) in paths, (topic, gold)


def test_metaqa_agent_gives_the_same_results_on_both_backends(metaqa_neo4j, metaqa_embedded, metaqa_questions):
    from kgqa.agent import Agent

    folder = metaqa_dir()
    settings = neo4j_settings(max_hops=2)  # fewer candidate paths to embed; the walk is the same code
    rows = []
    for hop in (1, 2):
        lines = (folder / f"{hop}hop" / "test.tsv").read_text(encoding="utf-8").splitlines()[:15]
        rows += [line.split("\t")[0].replace("[", "").replace("]", "") for line in lines]
    on_neo4j = Agent(settings, graph=metaqa_neo4j).answer_batch(rows)
    on_embedded = Agent(settings, graph=metaqa_embedded).answer_batch(rows)
    metaqa_neo4j.refresh()
    assert sum(bool(r.answers) for r in on_neo4j) >= 25
    for a, b in zip(on_neo4j, on_embedded):
        assert (a.entity, a.path, a.answer_names, [x.evidence for x in a.answers]) == \
               (b.entity, b.path, b.answer_names, [x.evidence for x in b.answers]), a.question
