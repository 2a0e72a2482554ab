"""The scale benchmark's graph generator and harness (eval/scalegen.py, eval/bench_scale.py), on small sizes."""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "eval"))

import bench_scale  # noqa: E402
import scalegen  # noqa: E402
from kgqa.graph.embedded import EmbeddedGraph  # noqa: E402
from kgqa.graph.loaders import read_triples  # noqa: E402
from kgqa.types import parse_path  # noqa: E402

SPEC = scalegen.ScaleSpec(triples=20_000, relations=40, seed=3)


@pytest.fixture(scope="module")
def graph() -> scalegen.ScaleGraph:
    return scalegen.generate(SPEC)


@pytest.fixture(scope="module")
def store(graph) -> EmbeddedGraph:
    """kgqa's embedded store over the same triples, uncapped."""
    store = EmbeddedGraph.from_triples([(graph.entity_names[s], graph.relation_names[r], graph.entity_names[o])
                                        for s, r, o in zip(graph.subjects, graph.relations, graph.objects)])
    store.walk_cap = 10 ** 9
    store.walk_through_topic = store.topic_as_answer = False  # the generated graphs' convention
    return store


@pytest.fixture(scope="module")
def written(graph, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("scale") / "g.txt"
    scalegen.write_triples(graph, path)
    return path


def test_same_spec_same_bytes_other_seed_other_graph(written, tmp_path):
    again = tmp_path / "again.txt"
    scalegen.write_triples(scalegen.generate(SPEC), again)
    assert again.read_bytes() == written.read_bytes()
    other = scalegen.generate(scalegen.ScaleSpec(triples=20_000, relations=40, seed=4))
    assert other.entity_names[:10] != scalegen.generate(SPEC).entity_names[:10]


def test_file_has_the_asked_triples_and_relations_and_kgqa_reads_it(written, graph):
    triples = read_triples(written)  # the loader's rules: one-word relations, no `_inv`, three fields
    assert len(triples) == SPEC.triples  # distinct: the loader collapses duplicates
    relations = {r for _, r, _ in triples}
    assert len(relations) == SPEC.relations
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)+", r) and not r.endswith("_inv") for r in relations)
    assert all(s != o for s, _, o in triples)
    names = {s for s, _, _ in triples} | {o for _, _, o in triples}
    assert all(re.fullmatch(r"[A-Z][a-z]+ [A-Z][a-z]+ \d{1,2}", n) for n in names)
    assert len({n.lower() for n in graph.entity_names}) == len(graph.entity_names)


def test_relations_are_typed(graph):
    """Every triple of a relation goes from its domain class to its range class."""
    assert (graph.entity_class[graph.subjects] == graph.domain[graph.relations]).all()
    assert (graph.entity_class[graph.objects] == graph.range[graph.relations]).all()
    for r, name in enumerate(graph.relation_names):
        assert name.endswith("_" + graph.class_names[graph.range[r]])


def test_degrees_and_relation_frequencies_are_skewed(graph):
    degrees = graph.degrees[graph.degrees > 0]
    assert degrees.max() > 0.02 * 2 * SPEC.triples  # a hub holds a few per cent of all edge ends
    assert degrees.max() > 100 * np.median(degrees)
    counts = graph.relation_counts()
    assert counts.max() > 10 * np.median(counts)
    flat = scalegen.generate(scalegen.ScaleSpec(triples=20_000, relations=40, skew=0.0, subject_skew=0.0, seed=3))
    assert flat.degrees.max() < degrees.max() / 2


def test_power_law_ranks_stay_in_range_and_favour_the_top():
    rng = np.random.default_rng(0)
    sizes = np.full(100_000, 1000)
    ranks = scalegen.power_law_ranks(rng, sizes, 1.2)
    assert ranks.min() == 0 and ranks.max() < 1000
    counts = Counter(ranks.tolist())
    assert counts[0] > 5 * counts[10] > 0


def test_gold_answers_match_the_embedded_store(graph, store):
    """The benchmark's gold walk follows kgqa's rules (no multi-hop walk lands on its topic)."""
    questions = bench_scale.make_questions(graph, per_group=6, seed=1)
    assert Counter(q["group"] for q in questions) == {"hub": 6, "ordinary": 7}
    assert [q["hops"] for q in questions if q["group"] == "hub"] == [1, 2, 3, 1, 2, 3]
    hub_degree = min(q["topic_degree"] for q in questions if q["group"] == "hub")
    assert all(q["topic_degree"] < hub_degree for q in questions if q["group"] == "ordinary")
    for q in questions:
        assert q["topic"] in q["question"]
        expansion = store.expand_many([q["topic"]], parse_path(q["path"]))[0]
        assert sorted(graph.entity_names[i] for i in q["gold"]) == sorted(expansion.evidence)


def test_gold_of_a_walk_there_and_back_leaves_out_the_topic(graph, store):
    """"The others that share the hub's X": a two-step walk out and back never answers its own topic."""
    walker = bench_scale.Walker(graph)
    hub = int(np.argmax(graph.degrees))
    step = int(walker.inc_step[walker.inc_start[hub]])
    there, back = walker.gold(hub, [step]), walker.gold(hub, [step, step ^ 1])
    assert len(there) > 0 and len(back) > 0 and hub not in back
    path = bench_scale.path_text(graph, [step, step ^ 1])
    expansion = store.expand_many([graph.entity_names[hub]], parse_path(path))[0]
    assert sorted(graph.entity_names[i] for i in back) == sorted(expansion.evidence)


def test_a_step_past_its_timeout_is_killed_and_reported(tmp_path):
    step = bench_scale.run_step([sys.executable, "-c", "import time; time.sleep(30)"], {}, 0.5, tmp_path / "slow")
    assert step.status == "timeout" and step.seconds < 5 and step.error == "no answer in 0.5 s"
    step = bench_scale.run_step([sys.executable, "-c", "x = bytearray(200 * 2**20); print('done')"], {}, 30,
                                tmp_path / "big")
    assert step.status == "ok" and step.stdout.strip() == "done" and step.peak_mb > 200


def test_summary_counts_timeouts_as_slowest_and_misses():
    questions = [{"id": str(i), "topic": "A", "path": "r", "topic_degree": 1, "gold": np.array([1, 2])}
                 for i in range(5)]  # "4" was never reached
    records = {"0": {"status": "ok", "ms": 10.0, "answers": 1, "top": "B", "entity": "A", "path": "r"},
               "1": {"status": "ok", "ms": 20.0, "answers": 1, "top": "X", "entity": "A", "path": "r"},
               "2": {"status": "ok", "ms": 30.0, "answers": 0, "top": None, "entity": "A", "path": "s"},
               "3": {"status": "timeout", "ms": 900.0}}
    summary = bench_scale.group_summary(questions, records, {"B": 1, "X": 7})
    assert summary["hits1"] == 20.0 and summary["answered"] == 2 and summary["timeouts"] == 1
    assert summary["finished"] == 4
    assert summary["p50_ms"] == 30.0 and summary["p95_ms"] is None  # slower than the answered ones: the last two
    assert summary["path_acc"] == 40.0
    assert bench_scale._latency(summary) == "30 / timeout (1 timed out, 1 not reached)"
