"""Query programs (kgqa.program) on both stores: conjunction, exclusion, literal filters, counts,
superlatives and yes/no over a small invented film graph, checked against hand-written answers and
evidence, and the embedded store and a real Neo4j server against each other."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kgqa.errors import InputError
from kgqa.graph.embedded import EmbeddedGraph
from kgqa.graph.store import GraphStore
from kgqa.program import Aggregate, Branch, Constraint, Program, check_program, compare_key, execute
from kgqa.types import Step, Triple, parse_path
from tests.test_graph_contract import loaded_neo4j_graph

LABEL = "KgqaProgramFixture"
FILMS = [  # title, director, year, rating, actors
    ("Harbour Lights", "Ona Brisk", "1993", "7.9", ["Tam Hollis", "Meg Arden"]),
    ("Salt Road", "Ona Brisk", "1998", "8.1", ["Tam Hollis"]),
    ("Quiet Field", "Ona Brisk", "1993", "6.5", ["Meg Arden", "Rex Pell"]),
    ("Night Ferry", "Ivo Grant", "2001", "7.0", ["Tam Hollis", "Meg Arden", "Rex Pell"]),
    ("Glass Orchard", "Ivo Grant", "1987", "10", ["Rex Pell"]),
]
TRIPLES = [t for title, director, year, rating, actors in FILMS
           for t in [(title, "directed_by", director), (title, "release_year", year), (title, "rating", rating)]
           + [(title, "starred_actors", actor) for actor in actors]]


@pytest.fixture(scope="module")
def embedded_graph() -> EmbeddedGraph:
    return EmbeddedGraph.from_triples(TRIPLES)


@pytest.fixture(scope="module")
def neo4j_graph() -> Iterator[GraphStore]:
    yield from loaded_neo4j_graph(LABEL, TRIPLES)


@pytest.fixture(params=["embedded", "neo4j"])
def graph(request) -> GraphStore:
    return request.getfixturevalue(f"{request.param}_graph")


def chain(entity: str, path: str) -> Branch:
    return Branch(entity, parse_path(path))


def test_two_entities_intersect_and_every_answer_keeps_both_branches_triples(graph):
    program = Program((chain("Tam Hollis", "starred_actors_inv"), chain("Meg Arden", "starred_actors_inv")))
    result = graph.run_program(program)
    assert result.answers == ["Harbour Lights", "Night Ferry"] and program.kind == "conjunction"
    assert result.evidence["Night Ferry"] == [Triple("Night Ferry", "starred_actors", "Tam Hollis"),
                                              Triple("Night Ferry", "starred_actors", "Meg Arden")]


def test_not_subtracts_a_branch(graph):
    program = Program((chain("Tam Hollis", "starred_actors_inv"),), exclude=(chain("Ona Brisk", "directed_by_inv"),))
    assert graph.run_program(program).answers == ["Night Ferry"]


def test_literal_filters_compare_numbers_as_numbers(graph):
    by_ona = chain("Ona Brisk", "directed_by_inv")
    year = Step("release_year")
    in_1993 = graph.run_program(Program((by_ona,), constraints=(Constraint(year, "eq", "1993"),)))
    assert in_1993.answers == ["Harbour Lights", "Quiet Field"] and in_1993.program.kind == "filter"
    assert in_1993.evidence["Quiet Field"][-1] == Triple("Quiet Field", "release_year", "1993")
    assert graph.run_program(Program((by_ona,), constraints=(Constraint(year, "gt", "1995"),))).answers == ["Salt Road"]
    rated = Program((chain("Rex Pell", "starred_actors_inv"),), constraints=(Constraint(Step("rating"), "between", "6.9", "10"),))
    assert graph.run_program(rated).answers == ["Glass Orchard", "Night Ferry"]  # "10" > "7.0" as numbers


def test_count_counts_the_members_and_keeps_them(graph):
    result = graph.run_program(Program((chain("Ona Brisk", "directed_by_inv"),), aggregate=Aggregate("count")))
    assert result.count == 3 and result.answers == ["Harbour Lights", "Quiet Field", "Salt Road"]
    assert result.program.kind == "count"


def test_superlatives_by_a_literal_or_by_how_many_neighbours(graph):
    films = (chain("Tam Hollis", "starred_actors_inv"),)
    earliest = graph.run_program(Program(films, aggregate=Aggregate("min", Step("release_year"))))
    assert earliest.answers == ["Harbour Lights"] and earliest.program.kind == "superlative"
    assert earliest.evidence["Harbour Lights"][-1] == Triple("Harbour Lights", "release_year", "1993")
    top_two = graph.run_program(Program(films, aggregate=Aggregate("max", Step("rating"), k=2)))
    assert top_two.answers == ["Salt Road", "Harbour Lights"]
    biggest_cast = graph.run_program(Program((chain("Ivo Grant", "directed_by_inv"),),
                                             aggregate=Aggregate("max", Step("starred_actors"), "count")))
    assert biggest_cast.answers == ["Night Ferry"] and len(biggest_cast.evidence["Night Ferry"]) == 1 + 3
    tie = graph.run_program(Program((chain("Ona Brisk", "directed_by_inv"),), aggregate=Aggregate("min", Step("release_year"))))
    assert tie.answers == ["Harbour Lights", "Quiet Field"]  # both 1993: a tie keeps both


def test_yes_no_with_the_deciding_triples_either_way(graph):
    films = (chain("Ona Brisk", "directed_by_inv"),)
    yes = graph.run_program(Program(films, ask="salt road"))
    assert yes.yes is True and yes.answers == ["Salt Road"] and yes.program.kind == "yes/no"
    assert yes.evidence["Salt Road"] == [Triple("Salt Road", "directed_by", "Ona Brisk")]
    no = graph.run_program(Program(films, ask="Night Ferry"))
    assert no.yes is False and no.answers == ["Harbour Lights", "Quiet Field", "Salt Road"]


def test_both_stores_give_the_same_results(embedded_graph, neo4j_graph):
    films = chain("Meg Arden", "starred_actors_inv")
    programs = [Program((films,)), Program((films, chain("Rex Pell", "starred_actors_inv"))),
                Program((films,), exclude=(chain("Ivo Grant", "directed_by_inv"),)),
                Program((chain("Tam Hollis", "starred_actors_inv|directed_by"),)),
                Program((films,), constraints=(Constraint(Step("release_year"), "lt", "2000"),
                                               Constraint(Step("rating"), "gt", "7"))),
                Program((films,), aggregate=Aggregate("count")),
                Program((films,), aggregate=Aggregate("max", Step("release_year"), k=2)),
                Program((films,), aggregate=Aggregate("min", Step("starred_actors"), "count")),
                Program((films,), ask="Quiet Field"), Program((films,), ask="Glass Orchard")]
    for program in programs:
        mine, theirs = embedded_graph.run_program(program), neo4j_graph.run_program(program)
        assert (mine.answers, mine.count, mine.yes, mine.evidence) == \
            (theirs.answers, theirs.count, theirs.yes, theirs.evidence), program


def test_programs_round_trip_through_json_and_bad_ones_say_what_is_wrong(embedded_graph):
    program = Program((chain("Ona Brisk", "directed_by_inv"),), exclude=(chain("Rex Pell", "starred_actors_inv"),),
                      constraints=(Constraint(Step("release_year"), "between", "1990", "1999"),),
                      aggregate=Aggregate("max", Step("rating"), k=1))
    assert Program.from_json(program.to_json()) == program
    assert execute(embedded_graph, program).answers == ["Salt Road"]
    for bad, message in [([], "JSON object"), ({"branches": []}, "at least one branch"),
                         ({"branches": [{"entity": "X"}]}, "a branch is"),
                         ({"branches": [{"entity": "X", "path": "a"}], "ask": "Y", "aggregate": {"op": "count"}},
                          "no aggregate"),
                         ({"branches": [{"entity": "X", "path": "a"}], "sort": 1}, "no field 'sort'")]:
        with pytest.raises(InputError, match=message):
            Program.from_json(bad)
    with pytest.raises(InputError, match="does not have"):
        check_program(Program((chain("Ona Brisk", "produced_by_inv"),)), set(embedded_graph.relations()))
    with pytest.raises(InputError, match="needs value and upper"):
        check_program(Program((chain("Ona Brisk", "directed_by_inv"),),
                              constraints=(Constraint(Step("rating"), "between", "1"),)), set(embedded_graph.relations()))


def test_literals_order_numbers_by_value_and_text_after_them():
    assert compare_key("1994") < compare_key("2001") and compare_key("10") > compare_key("9.5")
    assert compare_key("1,204") == compare_key("1204") and compare_key("9") < compare_key("abc")
    assert compare_key("Apple") == compare_key("apple")


def test_neo4j_runs_a_program_in_one_parameterised_read_only_query(neo4j_graph, monkeypatch):
    from kgqa.graph.neo4j_program import program_query

    program = Program((chain("Meg Arden", "starred_actors_inv"), chain("Tam Hollis", "starred_actors_inv")),
                      exclude=(chain("Ivo Grant", "directed_by_inv"),),
                      constraints=(Constraint(Step("rating"), "gt", "7"),), aggregate=Aggregate("count"))
    sent = []
    original = neo4j_graph._read_all
    monkeypatch.setattr(neo4j_graph, "_read_all", lambda query, **params: sent.append(query) or original(query, **params))
    result = neo4j_graph.run_program(program)
    assert result.count == 1 and result.answers == ["Harbour Lights"] and len(sent) == 1
    text = program_query(neo4j_graph, program)
    assert not any(name in text for name in ("Meg Arden", "Tam Hollis", "Ivo Grant", "7"))
    assert not any(word in text.upper() for word in ("CREATE", "MERGE", "DELETE", "SET ", "REMOVE"))
    with pytest.raises(Exception, match="no entity named 'Nobody Known'"):
        neo4j_graph.run_program(Program((chain("Nobody Known", "starred_actors_inv"),)))
