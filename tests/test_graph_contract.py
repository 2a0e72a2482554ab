"""The GraphStore contract, run against both backends: the embedded CSR store and a real Neo4j server.

Part 1 checks a small hand-made graph (case variants, a self-loop, unicode, hostile names, relation
names with '.', ':' and '-') against hand-written expectations, on each backend in turn, and then
the two backends against each other exhaustively; a hub graph (one entity with more relationships
than Neo4j's dense-node threshold) does the same with walks capped at `walk_cap`, and a wide graph
(41 relations: more steps than `next_steps_many` names in its queries) checks that it sends one query
text whatever relations it walks; the beams run with both shapes of that query (typed and dynamic
steps). Part 2 checks the bundled MetaQA KB: the same look-ups, next steps (a 3-hop beam) and
answer sets (with the same evidence, uncapped and capped) for 300 MetaQA test questions per hop,
walked from the gold topic entity along the gold path.

The Neo4j tests need a server (see tests/neo4j_testing.py). Neo4j Community has one database, so
each graph lives under its own label: the fixture graph under `KgqaContractFixture` and the hub
graph under `KgqaContractHub` (wiped and loaded per module), MetaQA under the default `Entity` label that `kgqa --graph bolt://...` reads
(loaded once, and only when it is not already there complete).
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Iterator

import pytest

from kgqa.errors import GraphError
from kgqa.graph import bundled_graph_file, open_graph
from kgqa.graph.embedded import EmbeddedGraph
from kgqa.graph.loaders import read_triples
from kgqa.graph.neo4j_load import delete_graph, load_triples
from kgqa.graph.neo4j_store import DEFAULT_LABEL, Neo4jConnection, Neo4jGraph, mask_uri
from kgqa.graph.store import DEFAULT_WALK_CAP, GraphStore
from kgqa.types import Path, Step, Triple, parse_path
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

HUB_LABEL = "KgqaContractHub"
HUB_FANS = 200                    # a dense node in Neo4j, with more relationships than 2 per step
HUB_RELATIONS = 30                # 2 x (30 + 2) steps: the most next_steps_many names in its queries


def hub_triples() -> list[tuple[str, str, str]]:
    """Hub follows Fan 0..199 (loaded in that order); each fan has a relation of its own (fan k: r{k % 30})
    leading to a leaf, fan 50 alone `sings`, and every fan follows Fan 0 back (Fan 0 follows itself)."""
    triples = [("Hub", "follows", f"Fan {k}") for k in range(HUB_FANS)]
    triples += [(f"Fan {k}", f"r{k % HUB_RELATIONS:02d}", f"Leaf {k % 7}") for k in range(HUB_FANS)]
    triples += [("Fan 50", "sings", "Song"), ("Hub", "r00", "Leaf 0")]
    triples += [(f"Fan {k}", "follows", "Fan 0") for k in range(HUB_FANS)]
    return triples


WIDE_LABEL = "KgqaContractWide"


def wide_triples() -> list[tuple[str, str, str]]:
    """Center r00..r39 Leaf 0..39, each leaf s End: 41 relations, 82 steps."""
    return [("Center", f"r{k:02d}", f"Leaf {k}") for k in range(40)] + [(f"Leaf {k}", "s", "End") for k in range(40)]


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


def loaded_neo4j_graph(label: str, triples) -> Iterator[Neo4jGraph]:
    """The triples under their own label on the test server for one module, removed afterwards."""
    conn = connection()
    delete_graph(conn, label)
    load_triples(conn, triples, label=label)
    yield Neo4jGraph(conn, label)
    delete_graph(conn, label)
    conn.close()


@pytest.fixture(scope="module")
def neo4j_fixture_graph():
    yield from loaded_neo4j_graph(FIXTURE_LABEL, FIXTURE)


@pytest.fixture(params=BACKENDS)
def graph(request) -> GraphStore:
    return request.getfixturevalue(f"{request.param}_fixture_graph")


@pytest.fixture(scope="module")
def embedded_hub_graph() -> EmbeddedGraph:
    return EmbeddedGraph.from_triples(hub_triples(), source="hub")


@pytest.fixture(scope="module")
def neo4j_hub_graph():
    yield from loaded_neo4j_graph(HUB_LABEL, hub_triples())


@pytest.fixture(scope="module")
def neo4j_wide_graph():
    yield from loaded_neo4j_graph(WIDE_LABEL, wide_triples())


@pytest.fixture(params=BACKENDS)
def hub(request) -> GraphStore:
    """The hub graph on one backend, with walk_cap restored afterwards."""
    graph = request.getfixturevalue(f"{request.param}_hub_graph")
    yield graph
    graph.walk_cap = DEFAULT_WALK_CAP


@pytest.fixture(params=["typed", "dynamic"])
def step_types(request, monkeypatch) -> str:
    """Both shapes of `next_steps_many`'s query: typed steps (what a small schema gets) and dynamic ones."""
    import kgqa.graph.neo4j_store as store

    if request.param == "dynamic":
        monkeypatch.setattr(store, "TYPED_STEPS", 0)
    return request.param


def beam(graph: GraphStore, topics: list[str], hops: int) -> list[tuple[str, Path, list[Step]]]:
    """Every (topic, prefix, next steps) of a full beam of `hops` hops: the steps of every topic, then of
    every prefix so found, one `next_steps_many` call per hop."""
    rows: list[tuple[str, Path]] = [(t, ()) for t in topics]
    found = []
    for hop in range(hops):
        steps = graph.next_steps_many([t for t, _ in rows], [p for _, p in rows])
        found += [(t, p, s) for (t, p), s in zip(rows, steps)]
        rows = [(t, p + (step,)) for (t, p), s in zip(rows, steps) for step in s]
    return found


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
    graph.walk_through_topic = graph.topic_as_answer = False  # MetaQA's conventions, as on the embedded twin
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


@pytest.fixture
def movie_conventions(graph):
    """The graph with MetaQA's conventions for one test: a longer walk never comes back to its topic."""
    graph.walk_through_topic = graph.topic_as_answer = False
    yield graph
    graph.walk_through_topic = graph.topic_as_answer = True


def test_longer_walks_never_come_back_to_their_topic_when_the_graph_says_so(movie_conventions):
    graph = movie_conventions
    assert graph.expand("William Dieterle", parse_path("directed_by_inv|directed_by")).answers == ["King Vidor"]
    assert set(graph.expand("Kismet", parse_path("directed_by|directed_by_inv")).answers) == {
        "Portrait of Jennie", "Duel in the Sun"}
    # Kismet's director's other films' stars: not Kismet's own (Marlene Dietrich, Ronald Colman)
    assert graph.expand("Kismet", parse_path("directed_by|directed_by_inv|starred_actors")).answers == [
        "Jennifer Jones"]
    assert graph.expand("Ouroboros", parse_path("eats|eats_inv")).answers == []
    assert graph.next_steps_many(["Ouroboros"], [parse_path("eats")]) == [[]]  # nothing but the topic there


def test_by_default_a_longer_walk_may_come_back_through_and_to_its_topic(graph):
    assert sorted(graph.expand("William Dieterle", parse_path("directed_by_inv|directed_by")).answers) == [
        "King Vidor", "William Dieterle"]
    assert set(graph.expand("Kismet", parse_path("directed_by|directed_by_inv")).answers) == {
        "Kismet", "Portrait of Jennie", "Duel in the Sun"}
    assert graph.expand("Ouroboros", parse_path("eats|eats_inv")).answers == ["Ouroboros"]
    graph.topic_as_answer = False  # through the topic yes, to it no
    try:
        assert graph.expand("Ouroboros", parse_path("eats|eats_inv")).answers == []
        assert set(graph.expand("Kismet", parse_path("directed_by|directed_by_inv|starred_actors")).answers) >= {
            "Jennifer Jones", "Marlene Dietrich"}
    finally:
        graph.topic_as_answer = True


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


def test_next_steps_of_topics_and_prefixes_sorted_by_name(graph):
    assert graph.next_steps_many(["1944"], [()]) == [[Step("release_year", True)]]
    assert graph.next_steps_many(["1944"], [parse_path("release_year_inv")]) == [
        [Step("directed_by"), Step("release_year"), Step("starred_actors")]]   # Kismet's (sorted by str)
    assert graph.next_steps_many(["paris", "pArIs"], [(), ()]) == [
        [Step("has_genre")], [Step("ns:located.in"), Step("twin-city"), Step("twin-city", True)]]
    rows = [("William Dieterle", parse_path("directed_by_inv")), ("Kismet", ()), ("William Dieterle", ()),
            ("William Dieterle", parse_path("directed_by_inv|starred_actors"))]
    assert graph.next_steps_many([t for t, _ in rows], [p for _, p in rows]) == [
        [Step("directed_by"), Step("release_year"), Step("starred_actors")],
        [Step("directed_by"), Step("release_year"), Step("starred_actors")],
        [Step("directed_by", True)],
        [Step("starred_actors", True)]]
    assert graph.next_steps_many([HOSTILE], [()]) == [[Step("written_by", True)]]
    assert graph.next_steps_many([], []) == []


def test_next_steps_never_pass_back_through_the_topic_when_the_graph_says_so(movie_conventions):
    graph = movie_conventions
    assert graph.next_steps_many(["Ouroboros"], [()]) == [[Step("eats"), Step("eats", True)]]
    # a one-step walk may end on the topic (expand keeps the self-loop), a longer one never passes it
    assert graph.expand("Ouroboros", parse_path("eats")).answers == ["Ouroboros"]
    assert graph.next_steps_many(["Ouroboros", "Ouroboros"], [parse_path("eats"), parse_path("eats_inv")]) == [[], []]
    # Rome's twin is Paris, whose twin is Rome again: that walk ends nowhere
    assert graph.next_steps_many(["Rome"], [parse_path("twin-city|twin-city")]) == [[]]
    # 1944 can walk release_year_inv, though only back to Kismet: listed, and the walk answers nothing
    assert graph.next_steps_many(["Kismet"], [parse_path("release_year")]) == [[Step("release_year", True)]]
    assert graph.expand("Kismet", parse_path("release_year|release_year_inv")).answers == []
    assert graph.next_steps_many(["Kismet"], [parse_path("has_genre")]) == [[]]      # reaches nothing


def test_next_steps_unknown_entity_or_relation_is_a_graph_error(graph):
    with pytest.raises(GraphError, match="no entity named 'Casablanca'"):
        graph.next_steps_many(["Kismet", "Casablanca"], [(), ()])
    with pytest.raises(GraphError, match="unknown relation 'produced_by'"):
        graph.next_steps_many(["Kismet"], [parse_path("produced_by")])


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


def test_backends_agree_on_every_path_up_to_three_hops(embedded_fixture_graph, neo4j_fixture_graph, step_types):
    e, n = embedded_fixture_graph, neo4j_fixture_graph
    assert n.typed_steps() == (step_types == "typed")
    names = e.entity_names()
    found = beam(e, names, 3)
    assert beam(n, names, 3) == found
    paths = sorted({p + (s,) for _, p, steps in found for s in steps}, key=str)
    assert len(paths) > 60 and max(map(len, paths)) == 3
    for path in paths:
        assert n.expand_many(names, path) == e.expand_many(names, path), path


def test_neo4j_next_steps_in_chunks_of_rows(embedded_fixture_graph, neo4j_fixture_graph, monkeypatch):
    import kgqa.graph.neo4j_store as store

    names = embedded_fixture_graph.entity_names()
    rows = [(t, p) for t in names for p in [(), parse_path("directed_by_inv"), parse_path("starred_actors")]]
    rows = [(t, p) for t, p in rows if not p or embedded_fixture_graph.expand(t, p[:1]).answers]
    monkeypatch.setattr(store, "ROWS_PER_QUERY", 4)
    assert len(rows) > 8
    assert neo4j_fixture_graph.next_steps_many([t for t, _ in rows], [p for _, p in rows]) == \
           embedded_fixture_graph.next_steps_many([t for t, _ in rows], [p for _, p in rows])


def test_a_step_is_listed_when_an_entity_the_prefix_reaches_can_walk_it(graph):
    for topic, prefix, steps in beam(graph, graph.entity_names(), 2):
        if prefix:   # what a longer walk may pass through: the prefix's answers (the topic too, by default)
            frontier = [x for x in graph.expand(topic, prefix).answers
                        if graph.walk_through_topic or x != graph.expand(topic, ()).topic]
        else:
            frontier = [topic]
        walkable = [step for step in graph.all_steps() if any(graph.neighbours(x, step) for x in frontier)]
        assert steps == sorted(walkable, key=str), (topic, prefix)


# ---- part 1c: walks capped at walk_cap, on a hub ---------------------------------------------------


def test_a_capped_walk_follows_the_first_walk_cap_edges_and_says_how_many_there_were(hub):
    every = hub.expand("Hub", parse_path("follows"))
    assert (every.capped, every.reached, len(every.answers)) == (False, HUB_FANS, HUB_FANS)
    hub.walk_cap = 7
    capped = hub.expand("Hub", parse_path("follows"))
    assert (capped.capped, capped.reached) == (True, HUB_FANS)
    assert capped.answers == [f"Fan {k}" for k in range(7)]          # storage order: first loaded first
    assert capped.evidence == {a: every.evidence[a] for a in capped.answers}
    small = hub.expand("Fan 3", parse_path("follows"))                # one edge: not capped
    assert (small.capped, small.reached, small.answers) == (False, 1, ["Fan 0"])


def test_the_cap_is_per_topic_and_per_step(hub):
    hub.walk_cap = 7
    hub.walk_through_topic = hub.topic_as_answer = False  # a longer walk never comes back to the Hub
    walks = hub.expand_many(["Hub", "Fan 3", "Hub"], parse_path("follows|r00"))
    # from Hub, step 1 follows Fan 0..6 of 200, of which only Fan 0 walks r00; from Fan 3: Fan 0, r00
    assert [(e.capped, e.reached, e.answers) for e in walks] == [
        (True, 1, ["Leaf 0"]), (False, 1, ["Leaf 0"]), (True, 1, ["Leaf 0"])]
    assert walks[0].evidence == {"Leaf 0": [Triple("Hub", "follows", "Fan 0"), Triple("Fan 0", "r00", "Leaf 0")]}
    # a second step over the cap: Fan 0 is followed by the Hub and every fan, Fan 1..6 by the Hub; the
    # first 7 of those 207 edges reach the Hub (the topic: dropped after the cap) and Fan 0..5
    back = hub.expand("Hub", parse_path("follows|follows_inv"))
    assert (back.capped, back.reached, back.answers) == (True, HUB_FANS + 1 + 6, [f"Fan {k}" for k in range(6)])
    hub.walk_cap = DEFAULT_WALK_CAP   # uncapped, Fan 0, 30, ..., 180 walk r00, to all 7 leaves
    assert len(hub.expand("Hub", parse_path("follows|r00")).answers) == 7
    hub.walk_through_topic = hub.topic_as_answer = True


def test_next_steps_look_at_the_sample_only(hub):
    after_fans = hub.next_steps_many(["Hub"], [parse_path("follows")])[0]
    assert Step("sings") in after_fans and Step("r29") in after_fans
    hub.walk_cap = 7
    sampled = hub.next_steps_many(["Hub", "Hub"], [parse_path("follows"), ()])
    assert sampled[0] == sorted({Step("follows"), Step("follows", True)} |
                                {Step(f"r{k:02d}") for k in range(7)}, key=str)
    assert sampled[1] == [Step("follows"), Step("r00")]             # the topic's own steps: all of them


def test_hub_steps_are_found_without_scanning(hub):
    # Hub and Fan 0 have more relationships than next_steps_many scans: with typed steps (the hub graph
    # has at most TYPED_STEPS steps) theirs come from existence checks
    assert min(hub.degree("Hub"), hub.degree("Fan 0")) > 2 * len(hub.all_steps())
    assert hub.next_steps_many(["Hub", "Fan 0"], [(), ()]) == [
        [Step("follows"), Step("r00")], [Step("follows"), Step("follows", True), Step("r00")]]


@pytest.mark.parametrize("cap", [1, 7, 60, DEFAULT_WALK_CAP])
def test_backends_agree_on_capped_walks(cap, embedded_hub_graph, neo4j_hub_graph, step_types):
    e, n = embedded_hub_graph, neo4j_hub_graph
    e.walk_cap = n.walk_cap = cap
    try:
        names = e.entity_names()
        found = beam(e, names, 3)
        assert beam(n, names, 3) == found
        topics = ["Hub", "Fan 0", "Fan 50", "Leaf 0"]
        paths = sorted({p + (s,) for t, p, steps in found for s in steps if t in topics and len(p) < 2}, key=str)
        capped = 0
        for path in paths:
            got, want = n.expand_many(names, path), e.expand_many(names, path)
            assert got == want, path
            capped += sum(x.capped for x in got)
        assert (capped > 0) == (cap < HUB_FANS + 1)
    finally:
        e.walk_cap = n.walk_cap = DEFAULT_WALK_CAP


def test_backends_agree_on_a_graph_with_many_relations(neo4j_wide_graph, monkeypatch):
    import kgqa.graph.neo4j_store as store

    n, e = neo4j_wide_graph, EmbeddedGraph.from_triples(wide_triples())
    assert len(n.all_steps()) == 82 and n.relations() == e.relations() and not n.typed_steps()
    want = {k: v for k, v in e.stats().items() if k != "source"}
    assert {k: v for k, v in n.stats().items() if k != "source"} == want        # from the count store
    monkeypatch.setattr(store, "COUNT_STORE_RELATIONS", 8)
    assert {k: v for k, v in n.stats().items() if k != "source"} == want        # by one scan of the graph
    topics = ["Center", "Center", "End", "Leaf 3", "End"]
    prefixes = [parse_path("r05"), (), parse_path("s_inv"), parse_path("r03_inv|r07"), parse_path("s_inv|r17_inv")]
    found = n.next_steps_many(topics, prefixes)
    assert found == e.next_steps_many(topics, prefixes)
    assert found[0] == [Step("r05", True), Step("s")] and found[3] == [Step("r07", True), Step("s")]
    assert [len(f) for f in found] == [2, 40, 41, 2, 40]
    assert n.expand_many(topics[:2], parse_path("r05|s")) == e.expand_many(topics[:2], parse_path("r05|s"))


def test_neo4j_next_steps_send_one_query_text_per_prefix_length(neo4j_wide_graph, monkeypatch):
    # the steps walked are parameters: batches that walk different relations send the same text, so
    # that Neo4j plans it once (a text naming the batch's steps is planned anew for nearly every batch);
    # a schema this wide gets dynamic types, so no text names a relation
    graph = neo4j_wide_graph
    sent: list[str] = []
    read_all = graph._read_all

    def capture(query: str, **params: object) -> list:
        sent.append(query)
        return read_all(query, **params)

    monkeypatch.setattr(graph, "_read_all", capture)
    batches = [(["Center", "End"], [parse_path("r05"), parse_path("s_inv")]),
               (["Leaf 3"], [parse_path("r03_inv")]),
               (["Center", "Center", "End"], [parse_path("r11|s"), parse_path("r39|s"), parse_path("s_inv|r17_inv")]),
               (["Leaf 0"], [parse_path("s|s_inv")])]
    found = [graph.next_steps_many(topics, prefixes) for topics, prefixes in batches]
    assert found[0] == [[Step("r05", True), Step("s")], [Step(f"r{k:02d}", True) for k in range(40)] + [Step("s")]]
    assert found[2] == [[Step("s", True)], [Step("s", True)], [Step(f"r{k:02d}") for k in range(40)]]
    assert sent[0] == sent[1] and sent[2] == sent[3] and sent[0] != sent[2]
    assert sent == [graph.next_steps_query(1)] * 2 + [graph.next_steps_query(2)] * 2
    assert not any(f"`{r}`" in text for r in graph.relations() for text in sent)   # no relation named


def test_neo4j_connect_and_open_graph(neo4j_fixture_graph):
    graph = Neo4jGraph.connect(neo4j_settings(walk_cap=3), label=FIXTURE_LABEL)
    try:
        assert graph.find_entities("kismet") == ["Kismet"]
        assert graph.walk_cap == 3
        assert graph.identity() == f"neo4j:{neo4j_uri()}/neo4j/{FIXTURE_LABEL}"
        assert graph.identity() != Neo4jGraph(graph.connection).identity()     # another label, another graph
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
def test_metaqa_next_steps_of_a_three_hop_beam(hop, metaqa_neo4j, metaqa_embedded, metaqa_questions, step_types):
    topics = [t for t, _, _ in metaqa_questions[hop][:40]]
    found = beam(metaqa_embedded, topics, 3)
    assert beam(metaqa_neo4j, topics, 3) == found
    steps = {(t, p): s for t, p, s in found}
    assert len(steps) > 400
    for topic, gold, _ in metaqa_questions[hop][:40]:      # the gold path is among what the beam can walk
        path = parse_path(gold)
        for h in range(len(path)):
            assert path[h] in steps[(topic, path[:h])], (topic, gold)


@pytest.mark.parametrize("hop", [1, 2, 3])
def test_metaqa_capped_walks_same_sample_and_counts(hop, metaqa_neo4j, metaqa_embedded, metaqa_questions):
    by_path: dict[str, list[str]] = defaultdict(list)
    for topic, path, _ in metaqa_questions[hop]:
        by_path[path].append(topic)
    metaqa_neo4j.walk_cap = metaqa_embedded.walk_cap = 10
    try:
        capped = 0
        for path, topics in by_path.items():
            got = metaqa_neo4j.expand_many(topics, parse_path(path))
            want = metaqa_embedded.expand_many(topics, parse_path(path))
            for a, b in zip(got, want):
                assert (a.capped, a.reached, a.evidence) == (b.capped, b.reached, b.evidence), (a.topic, path)
                assert len(a.answers) <= 10 and (a.capped or a.reached == len(a.answers))
                capped += a.capped
        assert capped >= 5
    finally:
        metaqa_neo4j.walk_cap = metaqa_embedded.walk_cap = DEFAULT_WALK_CAP


def test_mask_uri():
    assert mask_uri("bolt://neo4j:secret@db.example:7687") == "bolt://***@db.example:7687"
    assert mask_uri("neo4j+s://u@db.example?policy=eu") == "neo4j+s://***@db.example?policy=eu"
    assert mask_uri("bolt://127.0.0.1:7687") == "bolt://127.0.0.1:7687"


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
