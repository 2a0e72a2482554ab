"""The embedded graph store against expansions computed by hand."""

from __future__ import annotations

import time

import numpy as np
import pytest

from kgqa.errors import GraphError
from kgqa.graph.embedded import EmbeddedGraph
from kgqa.types import Step, Triple, parse_path


@pytest.fixture
def graph(tiny_kb) -> EmbeddedGraph:
    """The tiny movie graph, with MetaQA's conventions: a longer walk never comes back to its topic."""
    graph = EmbeddedGraph.from_file(tiny_kb)
    graph.walk_through_topic = graph.topic_as_answer = False
    return graph


def test_duplicates_collapse_and_counts(graph):
    stats = graph.stats()
    assert stats["triples"] == 13  # 14 lines, one duplicate
    assert stats["entities"] == 14
    assert stats["relations"] == 4
    assert stats["triples_per_relation"]["starred_actors"] == 4


def test_find_entities_ignores_case(graph):
    assert graph.find_entities("kismet") == ["Kismet"]
    assert graph.find_entities("KISMET") == ["Kismet"]
    assert graph.find_entities("Casablanca") == []


def test_neighbours_both_directions(graph):
    assert sorted(graph.neighbours("Kismet", Step("starred_actors"))) == ["Marlene Dietrich", "Ronald Colman"]
    assert sorted(graph.neighbours("Marlene Dietrich", Step("starred_actors", True))) == ["Dishonored", "Kismet"]


def test_one_hop_with_evidence(graph):
    expansion = graph.expand("Kismet", parse_path("directed_by"))
    assert expansion.answers == ["William Dieterle"]
    assert expansion.evidence["William Dieterle"] == [Triple("Kismet", "directed_by", "William Dieterle")]


def test_two_hops_backwards_then_forwards(graph):
    # films Marlene Dietrich starred in, then their release years
    expansion = graph.expand("Marlene Dietrich", parse_path("starred_actors_inv|release_year"))
    assert sorted(expansion.answers) == ["1931", "1944"]
    assert expansion.evidence["1931"] == [Triple("Dishonored", "starred_actors", "Marlene Dietrich"),
                                          Triple("Dishonored", "release_year", "1931")]


def test_topic_is_never_its_own_answer(graph):
    # films sharing an actor with Kismet: Kismet itself is excluded
    expansion = graph.expand("Kismet", parse_path("starred_actors|starred_actors_inv"))
    assert sorted(expansion.answers) == ["Dishonored", "Random Harvest"]


def test_the_graphs_conventions_decide_whether_a_walk_comes_back_to_its_topic(tiny_kb):
    graph = EmbeddedGraph.from_file(tiny_kb)  # no convention: a walk may come back
    assert graph.walk_through_topic and graph.topic_as_answer
    shared = parse_path("starred_actors|starred_actors_inv")
    assert sorted(graph.expand("Kismet", shared).answers) == ["Dishonored", "Kismet", "Random Harvest"]
    languages = parse_path("directed_by|directed_by_inv|in_language")
    assert sorted(graph.expand("Kismet", languages).answers) == ["English", "French"]  # through Kismet again
    graph.topic_as_answer = False  # may pass through, may not end there
    assert sorted(graph.expand("Kismet", shared).answers) == ["Dishonored", "Random Harvest"]
    assert sorted(graph.expand("Kismet", languages).answers) == ["English", "French"]
    graph.walk_through_topic, graph.topic_as_answer = False, True  # may end there, not pass through
    assert sorted(graph.expand("Kismet", shared).answers) == ["Dishonored", "Kismet", "Random Harvest"]
    assert sorted(graph.expand("Kismet", languages).answers) == ["French"]
    # the next steps after a prefix: the prefix is midway, so walk_through_topic decides
    graph.walk_through_topic = True
    through = graph.next_steps_many(["Kismet"], [parse_path("directed_by|directed_by_inv")])[0]
    graph.walk_through_topic = False
    assert set(graph.next_steps_many(["Kismet"], [parse_path("directed_by|directed_by_inv")])[0]) < set(through)


def test_three_hops(graph):
    # Kismet -> its director -> his other films -> their languages. The walk does not come back through
    # Kismet, so Kismet's own language (English, not spoken in his other film) is not an answer.
    expansion = graph.expand("Kismet", parse_path("directed_by|directed_by_inv|in_language"))
    assert sorted(expansion.answers) == ["French"]
    chain = expansion.evidence["French"]
    assert chain[-1] == Triple("The Life of Emile Zola", "in_language", "French")
    assert len(chain) == 3


def test_expand_many_matches_one_at_a_time(graph):
    topics = ["Kismet", "Dishonored", "Random Harvest", "Kismet"]
    path = parse_path("starred_actors|starred_actors_inv|release_year")
    many = graph.expand_many(topics, path)
    assert [sorted(e.answers) for e in many] == [sorted(graph.expand(t, path).answers) for t in topics]
    assert sorted(many[2].answers) == ["1944"]  # via Ronald Colman to Kismet; not back to itself (1942)


def test_unknown_relation_and_entity_are_clear_errors(graph):
    with pytest.raises(GraphError, match="unknown relation 'born_in'"):
        graph.expand("Kismet", parse_path("born_in"))
    with pytest.raises(GraphError, match="no entity named 'Casablanca'"):
        graph.expand("Casablanca", parse_path("directed_by"))


def test_next_steps_and_follows(graph):
    steps = graph.next_steps_many(["William Dieterle", "William Dieterle", "Kismet"],
                                  [(), parse_path("directed_by_inv"), parse_path("starred_actors")])
    assert steps[0] == [Step("directed_by", True)]          # a director starred in nothing here
    assert steps[1] == sorted([Step("directed_by"), Step("in_language"), Step("release_year"),
                               Step("starred_actors")], key=str)
    # from Kismet's stars, onwards: Kismet itself is never walked through again, so only the stars'
    # other films' steps count (Dishonored, Random Harvest: starred_actors reversed)
    assert steps[2] == [Step("starred_actors", True)]
    follows = graph.follows()
    assert Step("release_year") in follows[Step("directed_by", True)]
    assert follows[Step("release_year")] == [Step("release_year", True)]


def test_walks_are_capped_per_topic_and_say_so():
    hub = [("Hub", "links", f"leaf {i:03d}") for i in range(250)] + [("Small", "links", "leaf 001")]
    graph = EmbeddedGraph.from_triples(hub)
    graph.walk_cap = 100
    big, small = graph.expand_many(["Hub", "Small"], parse_path("links"))
    assert big.capped and big.reached == 250 and len(big.answers) == 100
    assert set(big.answers) <= {f"leaf {i:03d}" for i in range(250)}
    assert not small.capped and small.reached == 1 and small.answers == ["leaf 001"]
    # two hops: the leaves' way back to the hubs is capped as well, the evidence chains stay true
    back = graph.expand("Small", parse_path("links|links_inv"))
    assert sorted(back.answers) == ["Hub", "Small"] and back.evidence["Hub"][-1] == Triple("Hub", "links", "leaf 001")
    assert graph.next_steps_many(["Small"], [parse_path("links")]) == [[Step("links", True)]]


def test_cache_round_trip_is_fast_and_equal(tiny_kb, tmp_path):
    built = EmbeddedGraph.from_file(tiny_kb, cache_dir=tmp_path)
    assert len([p for p in (tmp_path / "graphs").iterdir() if (p / "meta.json").exists()]) == 1
    started = time.perf_counter()
    loaded = EmbeddedGraph.from_file(tiny_kb, cache_dir=tmp_path)
    assert time.perf_counter() - started < 1.0
    assert loaded.entity_names() == built.entity_names()
    assert loaded.stats() == built.stats()
    assert loaded.identity() == built.identity()


def test_second_start_does_not_read_the_triples_file(tiny_kb, tmp_path, monkeypatch):
    import kgqa.graph.loaders as loaders

    copy = tmp_path / "kb.txt"
    copy.write_bytes(tiny_kb.read_bytes())
    EmbeddedGraph.from_file(copy, cache_dir=tmp_path / "c")
    opened = []
    real_open = open

    def spy(file, *args, **kwargs):
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", spy)
    monkeypatch.setattr(loaders, "read_columns", lambda *a, **k: pytest.fail("the triples were read again"))
    again = EmbeddedGraph.from_file(copy, cache_dir=tmp_path / "c")
    assert again.expand("Kismet", parse_path("directed_by")).answers == ["William Dieterle"]
    assert str(copy) not in opened


def test_cache_rebuilds_when_file_changes(tiny_kb, tmp_path):
    copy = tmp_path / "kb.txt"
    copy.write_text(tiny_kb.read_text())
    EmbeddedGraph.from_file(copy, cache_dir=tmp_path / "c")
    copy.write_text(tiny_kb.read_text() + "Casablanca|directed_by|Michael Curtiz\n")
    assert EmbeddedGraph.from_file(copy, cache_dir=tmp_path / "c").find_entities("casablanca") == ["Casablanca"]


def test_same_content_same_identity_whatever_the_path(tiny_kb, tmp_path):
    copy = tmp_path / "elsewhere.txt"
    copy.write_bytes(tiny_kb.read_bytes())
    a = EmbeddedGraph.from_file(tiny_kb, cache_dir=tmp_path / "c")
    b = EmbeddedGraph.from_file(copy, cache_dir=tmp_path / "c")
    assert a.identity() == b.identity()
    copy.write_text(copy.read_text() + "Gilda|release_year|1946\n")
    assert EmbeddedGraph.from_file(copy, cache_dir=tmp_path / "c").identity() != a.identity()


def test_names_with_newlines_bars_and_accents_survive_the_cache(tmp_path):
    graph = EmbeddedGraph.from_triples([("Café Müller", "r", "a\nb"), ("ΟΔΟΣ", "r", "x")])
    graph.save(tmp_path / "g")
    loaded = EmbeddedGraph.load(tmp_path / "g")
    assert loaded.entity_names() == ["Café Müller", "ΟΔΟΣ", "a\nb", "x"]
    assert loaded.find_entities("café müller") == ["Café Müller"]
    assert loaded.neighbours("ΟΔΟΣ", Step("r")) == ["x"]


def test_metaqa_examples(metaqa_graph):
    assert metaqa_graph.stats()["triples"] == 133582
    assert metaqa_graph.stats()["entities"] == 43234
    assert metaqa_graph.expand("Kismet", parse_path("directed_by")).answers == ["William Dieterle"]
    # a 3-hop MetaQA test question: languages of films sharing a director with Catch Me If You Can
    answers = metaqa_graph.expand("Catch Me If You Can", parse_path("directed_by|directed_by_inv|in_language")).answers
    assert sorted(answers) == ["German", "Japanese", "Mende", "Polish"]


def test_names_spell_many_ids_like_name_on_a_mapped_cache(tmp_path):
    triples = tmp_path / "kb.tsv"
    triples.write_text("Amélie\tdirected_by\tJean-Pierre Jeunet\nAmélie\tin_language\tFrançais\n", encoding="utf-8")
    EmbeddedGraph.from_file(triples, cache_dir=tmp_path)
    loaded = EmbeddedGraph.from_file(triples, cache_dir=tmp_path)  # memory-mapped arrays
    ids = np.array([2, 0, 1, 2], np.int64)
    assert loaded.names(ids) == [loaded.name(i) for i in ids.tolist()]
    assert sorted(loaded.names(np.arange(loaded.entity_count))) == ["Amélie", "Français", "Jean-Pierre Jeunet"]
