"""The reranker: candidate groups, answer-set selection, the fusion layer, and a tiny trained cross-encoder
(save -> load -> score, numpy vs torch) wired into the agent on the tiny fixture graph."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from kgqa.config import Settings
from kgqa.encoder import SentenceEmbedder
from kgqa.errors import InputError
from kgqa.graph.embedded import EmbeddedGraph
from kgqa.questions import Example
from kgqa.rerank import FEATURES, Fusion, Group, NumpyCrossEncoder, Reranker, collect_groups, load_reranker
from kgqa.rerank.candidates import feature_matrix, mark_question_signals, select_answers
from kgqa.rerank.model import FUSION_FILE, fit_logistic, length_batches, unique_pairs
from kgqa.rerank.train import ListExample, RerankOptions, fine_tune, fit_fusion, group_labels, make_lists
from kgqa.retrieval.paths import PathRanker, verbalise_path
from kgqa.retrieval.search import PathSearch
from kgqa.types import Entity, Mention, PathCandidate, format_path, parse_path

NUMPY_TORCH_TOLERANCE = 1e-4
"""Largest difference allowed between the numpy and the torch logit of one pair (both fp32)."""
BF16_TOLERANCE = 0.05
"""bf16 keeps 8 bits of mantissa: logits agree with fp32 to a few percent of their size."""


@pytest.fixture(scope="module")
def graph():
    graph = EmbeddedGraph.from_file(Path(__file__).parent / "data" / "tiny_kb.txt", "pipe")
    graph.walk_through_topic = graph.topic_as_answer = False  # the tiny movie graph's convention (its .kgqa.toml)
    return graph


def candidate(text: str, score: float) -> PathCandidate:
    path = parse_path(text)
    return PathCandidate(path, verbalise_path(path), score)


def mention(*names: str, confidence: float = 0.9) -> Mention:
    return Mention(names[0], 0, len(names[0]), tuple(Entity(n, 3) for n in names), confidence)


# ---- candidate groups ---------------------------------------------------------------------------------------


def test_groups_cover_topics_and_paths_and_drop_empty_ones(graph):
    mentions = [mention("Kismet", "Dishonored"), None]
    ranked = [[candidate("directed_by", 0.9), candidate("in_language", 0.5)], []]
    extra = {(0, 1): [candidate("directed_by", 0.8), candidate("in_language", 0.4)]}
    groups = collect_groups(graph, mentions, ranked, llm_picks=[1, None], extra_ranked=extra, top_topics=2)
    assert groups[1] == []
    keys = [(g.topic, g.text) for g in groups[0]]
    # Dishonored has no language in the graph: that group reaches nothing and is dropped
    assert keys == [("Kismet", "directed by"), ("Kismet", "in language"), ("Dishonored", "directed by")]
    by_key = {(g.topic, g.text): g for g in groups[0]}
    assert by_key[("Kismet", "directed by")].answers == ["William Dieterle"]
    assert by_key[("Dishonored", "directed by")].answers == ["Josef von Sternberg"]
    assert by_key[("Dishonored", "directed by")].topic_rank == 1
    # the LLM's pick is index 1 of the best topic's paths only
    assert [g.llm_choice for g in groups[0]] == [False, True, False]
    chain = by_key[("Kismet", "directed by")].evidence["William Dieterle"]
    assert [t.as_list() for t in chain] == [["Kismet", "directed_by", "William Dieterle"]]


def test_top_topics_limits_the_candidates(graph):
    groups = collect_groups(graph, [mention("Kismet", "Dishonored")], [[candidate("release_year", 0.9)]],
                            extra_ranked={(0, 1): [candidate("release_year", 0.9)]}, top_topics=1)
    assert [g.topic for g in groups[0]] == ["Kismet"]


def test_multi_hop_group_keeps_every_answer_with_its_chain(graph):
    groups = collect_groups(graph, [mention("Marlene Dietrich")], [[candidate("starred_actors_inv|release_year", 1.0)]])
    (group,) = groups[0]
    assert sorted(group.answers) == ["1931", "1944"]
    assert [t.as_list() for t in group.evidence["1931"]] == [["Dishonored", "starred_actors", "Marlene Dietrich"],
                                                             ["Dishonored", "release_year", "1931"]]


def test_groups_never_walk_back_through_their_topic(graph):
    path = parse_path("directed_by|directed_by_inv|release_year")
    groups = collect_groups(graph, [mention("Kismet"), mention("The Life of Emile Zola")],
                            [[candidate(format_path(path), 1.0)], [candidate(format_path(path), 1.0)]])
    kismet, zola = groups[0][0].evidence, groups[1][0].evidence
    assert list(kismet) == ["1937"] and list(zola) == ["1944"]  # not their own years (1944, 1937)
    assert [t.as_list() for t in kismet["1937"]] == [["Kismet", "directed_by", "William Dieterle"],
                                                     ["The Life of Emile Zola", "directed_by", "William Dieterle"],
                                                     ["The Life of Emile Zola", "release_year", "1937"]]


def test_a_detour_that_reaches_only_its_shortcuts_answers_is_no_candidate():
    triples = [("Solo", "directed_by", "Ava"), ("Joint", "directed_by", "Ava"), ("Joint", "directed_by", "Ben"),
               ("Other", "directed_by", "Cy"), ("Next", "directed_by", "Cy")]
    graph = EmbeddedGraph.from_triples(triples)
    detour = "directed_by|directed_by_inv|directed_by"
    ranked = [candidate(detour, 0.9), candidate("directed_by", 0.8)]
    groups = collect_groups(graph, [mention("Solo"), mention("Other")], [ranked, ranked])
    # from Solo the detour reaches Ben too (Ava made Joint with him); from Other only Cy, as directed_by does
    assert [(format_path(g.path), sorted(g.answers)) for g in groups[0]] == [(detour, ["Ava", "Ben"]),
                                                                             ("directed_by", ["Ava"])]
    assert [format_path(g.path) for g in groups[1]] == ["directed_by"]


def make_group(question: int, topic: str, answers: list[str], score: float, **kw) -> Group:
    group = Group(question, topic, kw.get("topic_rank", 0), 0.9, 3, parse_path(kw.get("path", "directed_by")),
                  kw.get("text", "directed by"), kw.get("retriever", 0.5), kw.get("path_rank", 0))
    group.evidence = {a: [] for a in answers}
    group.score = score
    return group


def test_group_mode_returns_the_winning_group_whole():
    groups = [make_group(0, "A", ["x", "y"], 0.6), make_group(0, "A", ["z"], 0.9), make_group(0, "B", ["w"], 0.7)]
    assert [a.name for a in select_answers(groups, "group")] == ["z"]


def test_threshold_mode_unions_groups_over_the_threshold_best_first():
    groups = [make_group(0, "A", ["x", "y"], 0.6), make_group(0, "A", ["z", "x"], 0.9), make_group(0, "B", ["w"], 0.2)]
    chosen = select_answers(groups, "threshold", 0.5)
    assert [a.name for a in chosen] == ["x", "z", "y"]
    assert chosen[0].score == 0.9 and chosen[0].group is groups[1]  # x takes its best group's score
    # the winning group is always returned, even under the threshold
    assert [a.name for a in select_answers(groups, "threshold", 0.95)] == ["x", "z"]


def test_answers_inside_a_group_ordered_by_degree_when_asked():
    groups = [make_group(0, "A", ["a", "b", "c"], 0.8)]
    degree = {"a": 1, "b": 50, "c": 7}
    assert [a.name for a in select_answers(groups, "group", answer_degree=degree, degree_weight=1.0)] == ["b", "c", "a"]
    assert [a.name for a in select_answers(groups, "group", answer_degree=degree, degree_weight=-1.0)] == ["a", "c", "b"]
    assert [a.name for a in select_answers(groups, "group")] == ["a", "b", "c"]
    assert select_answers([], "group") == []


def test_features_compare_each_group_with_its_question():
    a = make_group(0, "A", ["x"], 0, retriever=0.7)
    b = make_group(0, "A", ["y", "z"], 0, retriever=0.4, path_rank=1, path="directed_by|directed_by_inv")
    c = make_group(1, "C", ["w"], 0, retriever=0.1, topic_rank=1)
    a.cross, b.cross, c.cross = 2.0, -1.0, 0.5
    x = feature_matrix([a, b, c])
    col = {name: i for i, name in enumerate(FEATURES)}
    assert x.shape == (3, len(FEATURES))
    assert x[:, col["cross_gap"]].tolist() == [0.0, -3.0, 0.0]
    assert np.allclose(x[:, col["retriever_gap"]], [0.0, -0.3, 0.0])
    assert x[:, col["hops"]].tolist() == [1.0, 2.0, 1.0]
    assert np.allclose(x[:, col["answers"]], np.log1p([1, 2, 1]))
    assert np.allclose(x[:, col["top_link_confidence"]], [0.9, 0.9, 0.0])


def test_a_path_is_as_strong_as_its_weakest_step_and_there_and_back_wants_a_sameness_word():
    from kgqa.encoder import load_embedder

    embedder = load_embedder(None)  # the packaged MiniLM
    questions = ["who directed [E]", "which films have the same director as [E]"]
    groups = [make_group(0, "A", ["x"], 0, path="directed_by"),
              make_group(0, "A", ["y"], 0, path="directed_by|directed_by_inv|release_year"),
              make_group(1, "A", ["z"], 0, path="directed_by|directed_by_inv"),
              make_group(0, "A", ["w"], 0, path="directed_by|directed_by_inv")]
    mark_question_signals(groups, questions, embedder.embed(questions), embedder.embed)
    one, three, sibling, films = groups
    assert one.weakest_step > three.weakest_step + 0.1  # "release year" is not asked for
    relation = embedder.embed(["directed by", "release year"]) @ embedder.embed(questions[:1])[0]
    assert np.isclose(one.weakest_step, relation[0]) and np.isclose(three.weakest_step, min(relation))
    assert (one.cued, three.cued, sibling.cued) == (False, False, True)
    x = feature_matrix(groups)
    col = {name: i for i, name in enumerate(FEATURES)}
    assert x[:, col["there_and_back"]].tolist() == [0.0, 1.0, 1.0, 1.0]
    assert x[:, col["there_and_back_cued"]].tolist() == [0.0, 0.0, 1.0, 0.0]
    # "who" asks for doers: the films reached by directed_by_inv clash with it; a release year says nothing
    assert x[:, col["who_for_things"]].tolist() == [0.0, 0.0, 0.0, 1.0]
    assert x[:, col["things_for_who"]].tolist() == [0.0, 0.0, 0.0, 0.0]
    directors = make_group(1, "A", ["v"], 0, path="directed_by|directed_by_inv|directed_by")
    mark_question_signals([directors], questions, embedder.embed(questions), embedder.embed)
    assert directors.things_for_who  # "which films" asks for things, the path ends on directors


def test_labels_accept_the_gold_group_or_the_gold_answer_set():
    example = Example("who directed Kismet", "Kismet", "directed_by", ("William Dieterle",))
    groups = [make_group(0, "Kismet", ["William Dieterle"], 0, path="directed_by"),
              make_group(0, "Kismet", ["William Dieterle"], 0, path="written_by"),
              make_group(0, "Kismet", ["Someone"], 0, path="written_by"),
              make_group(0, "kismet", ["William Dieterle", "x"], 0, path="directed_by")]
    assert group_labels(groups, example).tolist() == [1.0, 1.0, 0.0, 0.0]


# ---- fusion layer ----------------------------------------------------------------------------------------------


def test_logistic_regression_separates_and_is_calibrated_on_easy_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3)).astype(np.float32)
    y = (x[:, 0] - 0.5 * x[:, 2] > 0).astype(np.float32)
    weights, bias, mean, scale = fit_logistic(x, y, l2=0.1)
    rows = np.zeros((400, len(FEATURES)), np.float32)
    rows[:, :3] = x  # the fusion reads its own three columns of full feature rows
    p = Fusion(weights, bias, mean, scale, features=FEATURES[:3]).probabilities(rows)
    assert ((p > 0.5) == (y > 0.5)).mean() > 0.97
    assert weights[0] > 0 > weights[2] and abs(weights[1]) < 0.5 * weights[0]


def test_the_retrieval_order_fusion_answers_as_the_agent_without_a_reranker():
    order = Fusion.retrieval_order()
    groups = [make_group(0, "A", ["x"], 0, path_rank=1, retriever=0.9), make_group(0, "A", ["y"], 0, path_rank=0),
              make_group(0, "B", ["z"], 0, topic_rank=1, path_rank=0, retriever=0.99)]
    for g, p in zip(groups, order.probabilities(feature_matrix(groups))):
        g.score = float(p)
    assert [a.name for a in select_answers(groups, order.mode)] == ["y"]  # the best topic's first path
    groups[0].llm_choice = True
    for g, p in zip(groups, order.probabilities(feature_matrix(groups))):
        g.score = float(p)
    assert [a.name for a in select_answers(groups, order.mode)] == ["x"]  # the LLM's choice


def test_fit_fusion_prefers_the_signal_that_finds_the_gold_group():
    examples, groups = [], []
    rng = np.random.default_rng(1)
    for q in range(60):
        examples.append(Example(f"q{q}", "T", "directed_by", ("gold",)))
        right = int(rng.integers(0, 3))
        row = []
        for k in range(3):
            g = make_group(q, "T", ["gold"] if k == right else [f"wrong{k}"], 0,
                           path="directed_by" if k == right else "written_by", retriever=float(rng.random()),
                           path_rank=k)
            g.cross = 3.0 if k == right else float(rng.normal())
            row.append(g)
        groups.append(row)
    fusion, report = fit_fusion(groups, examples)
    assert report["fused_group"]["hits@1"] == 100.0
    assert report["retrieval_only"]["hits@1"] < 60.0
    assert report["weights"]["cross"] > 0
    assert fusion.mode == "group"


def test_fit_fusion_falls_back_to_the_cross_encoder_when_every_held_out_candidate_is_right():
    examples = [Example(f"q{q}", "T", "directed_by", ("gold",)) for q in range(4)]
    groups = []
    for q in range(4):
        g = make_group(q, "T", ["gold"], 0, path="directed_by", retriever=0.5, path_rank=0)
        g.cross = 2.0
        groups.append([g])
    fusion, report = fit_fusion(groups, examples)
    assert "only right candidates" in report["fallback"]
    assert report["chosen"]["hits@1"] == 100.0
    weights = dict(zip(fusion.features, fusion.weights.tolist()))
    assert weights.pop("cross") == 1.0 and not any(weights.values())
    empty_fusion, empty = fit_fusion([[], []], examples[:2])
    assert "no candidates" in empty["fallback"] and empty["chosen"]["hits@1"] == 0.0


# ---- batching helpers -----------------------------------------------------------------------------------------


def test_pairs_are_scored_once_and_batches_respect_their_limits():
    pairs, where = unique_pairs(["q", "q", "r", "q"], ["a", "a", "a", "b"])
    assert pairs == [("q", "a"), ("r", "a"), ("q", "b")] and where.tolist() == [0, 0, 1, 2]
    lengths = [5, 30, 7, 6, 29, 8]
    batches = length_batches(lengths, max_tokens=64, max_rows=3)
    assert sorted(i for b in batches for i in b.tolist()) == list(range(6))
    for batch in batches:
        assert len(batch) <= 3 and max(lengths[i] for i in batch) * len(batch) <= 64
    assert [lengths[i] for b in batches for i in b.tolist()] == sorted(lengths)  # padding-aware: by length


# ---- a tiny trained reranker ----------------------------------------------------------------------------------

LISTS = [ListExample("who directed something", ("directed by", "release year", "starred actors"), "directed_by"),
         ListExample("when was something released", ("release year", "directed by", "in language"), "release_year"),
         ListExample("what films did something act in", ("reverse of starred actors", "starred actors",
                                                         "reverse of directed by"), "starred_actors_inv"),
         ListExample("what language is something in", ("in language", "release year", "directed by"), "in_language")]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A one-layer cross-encoder trained for a few steps on four lists, saved like `kgqa train reranker` saves."""
    options = RerankOptions(layers=1, questions_per_step=4, epochs=8, learning_rate=2e-3, head_lr_factor=5.0,
                            warmup_ratio=0.0)
    model, tokenizer, log = fine_tune(LISTS, options)
    folder = tmp_path_factory.mktemp("reranker")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, log


def test_training_lowers_the_listwise_loss_and_ranks_gold_first(tiny_model):
    folder, log = tiny_model
    assert log["steps"] == 8 and log["loss_last"] < 0.5 * log["loss_first"]
    scorer = NumpyCrossEncoder(folder)
    for example in LISTS:
        logits = scorer.score([example.question] * len(example.texts), list(example.texts))
        assert int(np.argmax(logits)) == 0, example


def test_numpy_and_torch_scores_agree(tiny_model):
    from kgqa.rerank import TorchCrossEncoder

    folder, _ = tiny_model
    questions = ["who directed something", "what films did something act in", "when was something released",
                 "which movies share the screenwriter of something and were released in which years", "x"]
    texts = ["directed by", "reverse of starred actors, then directed by",
             "written by, then reverse of written by, then release year", "release year", "has tags"]
    ours = NumpyCrossEncoder(folder, max_rows=2).score(questions, texts)  # several length buckets
    reference = TorchCrossEncoder(folder, device="cpu").score(questions, texts)
    assert ours.shape == (5,) and ours.dtype == np.float32
    assert np.abs(ours - reference).max() < NUMPY_TORCH_TOLERANCE
    assert np.ptp(ours) > 1e-3  # not a constant
    # bf16 (the GPU path's precision), run here on the CPU: within BF16_TOLERANCE of fp32 and the same order
    bf16 = TorchCrossEncoder(folder, device="cpu", dtype="bfloat16").score(questions, texts)
    assert np.abs(bf16 - ours).max() < BF16_TOLERANCE * max(1.0, np.abs(ours).max())
    assert np.argmax(bf16) == np.argmax(ours)


def test_make_lists_puts_gold_first_and_negatives_reachable(graph):
    examples = [Example("who directed Kismet", "Kismet", "directed_by", ("William Dieterle",)),
                Example("what films did Marlene Dietrich act in", "Marlene Dietrich", "starred_actors_inv",
                            ("Kismet", "Dishonored"))]
    search = PathSearch(graph, PathRanker(SentenceEmbedder()), 2, beam_width=0, shortlist=0)
    lists = make_lists(search, examples, negatives=3, seed=0)
    assert [l.texts[0] for l in lists] == ["directed by", "reverse of starred actors"]
    reachable = {c.text for c in search.search_many(["Kismet"], SentenceEmbedder().embed(["x"]), None)[0]}
    assert len(lists[0].texts) == 4 and set(lists[0].texts) <= reachable
    assert len(set(lists[0].texts)) == 4
    assert lists[0].question == "who directed something"


def write_fusion(folder, weights: dict[str, float], **extra) -> None:
    fusion = Fusion(np.array([weights.get(f, 0.0) for f in FEATURES], np.float32), 0.0,
                    np.zeros(len(FEATURES), np.float32), np.ones(len(FEATURES), np.float32), **extra)
    (folder / FUSION_FILE).write_text(json.dumps(fusion.to_json()))


def test_save_load_score_roundtrip(tiny_model, tmp_path):
    import shutil

    folder = tmp_path / "reranker"
    shutil.copytree(tiny_model[0], folder)
    write_fusion(folder, {"cross": 1.0, "topic_rank": -2.0}, mode="threshold", threshold=0.4)
    reranker = Reranker.load(folder)
    assert reranker.fusion.mode == "threshold" and reranker.fusion.threshold == 0.4
    groups = [[make_group(0, "Kismet", ["William Dieterle"], 0, text="directed by"),
               make_group(0, "Kismet", ["1944"], 0, text="release year", path="release_year"),
               make_group(0, "Dishonored", ["Josef von Sternberg"], 0, text="directed by", topic_rank=1)]]
    selected, ms = reranker.rerank_batch(["who directed something"], groups)
    cross = NumpyCrossEncoder(folder).score(["who directed something"] * 2, ["directed by", "release year"])
    assert [g.cross for g in groups[0]] == pytest.approx([cross[0], cross[1], cross[0]], abs=1e-6)
    expected = 1 / (1 + np.exp(-(np.array([cross[0], cross[1], cross[0]]) - [0, 0, 2])))
    assert [g.score for g in groups[0]] == pytest.approx(expected.tolist(), abs=1e-5)
    assert selected[0][0].name == "William Dieterle" and ms >= 0
    paths = [parse_path("directed_by"), parse_path("release_year")]  # the planner's programs, verbalised
    assert reranker.path_logits("who directed something", paths) == pytest.approx(cross.tolist(), abs=1e-6)


def test_fusion_file_must_match_the_features(tiny_model, tmp_path):
    import shutil

    from kgqa.errors import ModelError

    folder = tmp_path / "reranker"
    shutil.copytree(tiny_model[0], folder)
    data = Fusion.cross_only().to_json()
    data["features"] = data["features"][:-1] + ["a_signal_since_gone"]
    (folder / FUSION_FILE).write_text(json.dumps(data))
    with pytest.raises(ModelError, match=r"no longer computes \(a_signal_since_gone\).*--fusion-only"):
        Reranker.load(folder)
    subset = Fusion(np.array([2.0, -1.0], np.float32), 0.5, np.zeros(2, np.float32), np.ones(2, np.float32),
                    ("hops", "cross"))  # fitted on some of the signals (an older fusion, or written questions)
    (folder / FUSION_FILE).write_text(json.dumps(subset.to_json()))
    loaded = Reranker.load(folder).fusion
    x = np.zeros((1, len(FEATURES)), np.float32)
    x[0, FEATURES.index("hops")], x[0, FEATURES.index("cross")], x[0, FEATURES.index("retriever")] = 3.0, 1.0, 9.0
    assert loaded.features == ("hops", "cross") and np.isclose(loaded.logits(x)[0], 2 * 3 - 1 + 0.5)


def test_settings_turn_the_reranker_on_and_off(tiny_model, tiny_kb, tmp_path):
    import shutil

    from kgqa.errors import ModelError
    from kgqa.rerank import reranker_dir

    settings = Settings(cache_dir=tmp_path)
    graph = EmbeddedGraph.from_file(tiny_kb, cache_dir=tmp_path)
    assert load_reranker(settings, graph) is None  # nothing trained for this graph
    assert load_reranker(replace(settings, reranker=str(tiny_model[0])), graph) is not None
    assert load_reranker(replace(settings, reranker="none"), graph) is None
    with pytest.raises(ModelError, match="no reranker"):
        load_reranker(replace(settings, reranker=str(tmp_path / "missing")), graph)
    shutil.copytree(tiny_model[0], reranker_dir(settings, graph))
    assert load_reranker(settings, graph) is not None  # trained for this graph: used by default


def test_agent_answers_with_the_winning_group(tiny_model, tiny_kb, tmp_path):
    import shutil

    from kgqa.agent import Agent

    folder = tmp_path / "reranker"
    shutil.copytree(tiny_model[0], folder)
    base = Settings(graph=str(tiny_kb), cache_dir=tmp_path / "cache", reranker="none")
    plain = Agent(base)
    # fused score = the retriever's score alone: the reranked agent must answer as retrieval does
    write_fusion(folder, {"retriever": 20.0})
    reranked = Agent(replace(base, reranker=str(folder)), plain.graph)
    questions = ["who directed Kismet", "what films did Marlene Dietrich star in", "what is the capital of France"]
    before, after = plain.answer_batch(questions), reranked.answer_batch(questions)
    for b, a in zip(before, after):
        assert a.answer_names and sorted(a.answer_names) == sorted(b.answer_names) or not b.answers
        assert (a.entity, a.path) == (b.entity, b.path)
        assert "rerank_ms" in a.timings and a.timings["rerank_ms"] >= 0
    assert after[2].answers == [] and after[2].entity is None
    result = after[1]
    scores = [c["rerank"] for c in result.path_candidates]
    assert scores == sorted(scores, reverse=True) and result.path_candidates[0]["path"] == result.path
    for answer in result.answers:  # provenance: each chain runs from the topic to the answer along the path
        assert answer.evidence[0][2] == "Marlene Dietrich" and answer.evidence[0][0] == answer.name
        assert answer.path == result.path and answer.entity == result.entity
    # a fusion that prefers groups with many answers answers from the largest group
    write_fusion(folder, {"answers": 20.0})
    largest = Agent(replace(base, reranker=str(folder)), plain.graph).answer("what films did Marlene Dietrich star in")
    sizes = [c["answers"] for c in largest.path_candidates]
    assert len(largest.answers) == max(sizes) and largest.path_candidates[0]["answers"] == max(sizes)
    assert largest.path == largest.path_candidates[0]["path"]


def test_refit_fusion_keeps_the_cross_encoder_and_records_the_fit(tiny_model, tiny_kb, tmp_path):
    import shutil

    from kgqa.graph import open_graph
    from kgqa.rerank.model import META_FILE
    from kgqa.rerank.train import refit_fusion
    from kgqa.questions import Example

    folder = tmp_path / "reranker"
    shutil.copytree(tiny_model[0], folder)
    weights = (folder / "model.safetensors").read_bytes()
    settings = Settings(graph=str(tiny_kb), cache_dir=tmp_path / "cache")
    held = [Example("who directed Kismet", "Kismet", "directed_by", ("William Dieterle",)),
            Example("when was Dishonored released", "Dishonored", "release_year", ("1931",)),
            Example("what films did Ronald Colman star in", "Ronald Colman", "starred_actors_inv",
                        ("Kismet", "Random Harvest")),
            Example("what language is The Life of Emile Zola in", "The Life of Emile Zola", "in_language",
                        ("French",)),
            Example("who starred in Dishonored", "Dishonored", "starred_actors", ("Marlene Dietrich",)),
            Example("what did William Dieterle direct", "William Dieterle", "directed_by_inv",
                        ("Kismet", "The Life of Emile Zola"))]
    meta = refit_fusion(settings, open_graph(settings), held, folder, RerankOptions(fusion_questions=len(held)))
    assert (folder / "model.safetensors").read_bytes() == weights
    assert meta["held_out"]["questions"] == len(held) and meta["fusion_refit"]["seconds"] >= 0
    assert json.loads((folder / META_FILE).read_text())["held_out"]["groups"] == meta["held_out"]["groups"]
    reranker = Reranker.load(folder)
    assert reranker.fusion.weights.shape == (len(FEATURES),) and np.isfinite(reranker.fusion.weights).all()
    with pytest.raises(InputError, match="no trained reranker"):
        refit_fusion(settings, open_graph(settings), held, tmp_path / "missing")
