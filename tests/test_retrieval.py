"""Retrieval: the FAISS vector index, training data, and a retriever trained for a few steps."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from kgqa.config import load_settings
from kgqa.encoder import SentenceEmbedder, default_model_path, model_fingerprint
from kgqa.graph.embedded import EmbeddedGraph
from kgqa.questions import Example
from kgqa.retrieval.data import is_held_out, split_dev, stratified_sample
from kgqa.retrieval.index import VectorIndex
from kgqa.retrieval.model import META_FILE, path_model, retriever_dir
from kgqa.retrieval.paths import PathRanker
from kgqa.retrieval.search import PathSearch
from kgqa.retrieval.train import Triplet, batches_without_duplicates, make_triplets
from kgqa.types import format_path

# questions about the tiny graph (tests/data/tiny_kb.txt), with their gold paths
TRAIN = [
    Example("who directed Kismet", "Kismet", "directed_by"),
    Example("who starred in Random Harvest", "Random Harvest", "starred_actors"),
    Example("what movies did Marlene Dietrich act in", "Marlene Dietrich", "starred_actors_inv"),
    Example("when was Dishonored released", "Dishonored", "release_year"),
    Example("which films did William Dieterle direct", "William Dieterle", "directed_by_inv"),
    Example("who acted together with Ronald Colman", "Ronald Colman", "starred_actors_inv|starred_actors"),
    Example("the films directed by William Dieterle were released in which years", "William Dieterle",
                "directed_by_inv|release_year"),
    Example("what language is The Life of Emile Zola in", "The Life of Emile Zola", "in_language"),
]
HELD = [
    Example("who was the director of Dishonored", "Dishonored", "directed_by"),
    Example("what year did Kismet come out", "Kismet", "release_year"),
    Example("what language is Kismet in", "Kismet", "in_language"),
]


@pytest.fixture(scope="module")
def graph() -> EmbeddedGraph:
    from pathlib import Path

    return EmbeddedGraph.from_file(Path(__file__).parent / "data" / "tiny_kb.txt")


@pytest.fixture(scope="module")
def embedder() -> SentenceEmbedder:
    return SentenceEmbedder()


# ---- data --------------------------------------------------------------------------------------


def test_held_out_slice_is_stable_and_about_a_tenth():
    questions = [f"question number {i}" for i in range(5000)]
    held = [q for q in questions if is_held_out(q)]
    assert 400 < len(held) < 600
    assert held == [q for q in reversed(questions) if is_held_out(q)][::-1]
    train, kept = split_dev([Example(q, "x", "r") for q in questions])
    assert len(train) + len(kept) == 5000 and {e.question for e in kept} == set(held)


def test_stratified_sample_spreads_over_paths():
    examples = [Example(f"q{i}", "t", "common") for i in range(100)] + [Example("rare q", "t", "rare")]
    sample = stratified_sample(examples, 10)
    assert len(sample) == 10
    assert sum(e.path == "rare" for e in sample) == 1


# ---- indexes -----------------------------------------------------------------------------------


def test_vector_index_search_and_subset():
    vectors = np.eye(4, dtype=np.float32)
    index = VectorIndex(vectors, [{"n": i} for i in range(4)])
    scores, ids = index.search(np.array([0.0, 0.9, 0.1, 0.0]), 2)
    assert ids[0].tolist() == [1, 2]
    scores, ids = index.search(np.array([0.0, 0.9, 0.1, 0.0]), 2, subset=[0, 2, 3])
    assert ids[0][0] == 2
    assert index.items[ids[0][0]] == {"n": 2}
    assert index.search(np.array([1.0, 0, 0, 0]), 2, subset=[])[1].shape == (1, 0)


# ---- training ----------------------------------------------------------------------------------


def test_triplets_use_reachable_hard_negatives_and_skip_held_out_paths(graph, embedder):
    triplets = make_triplets(PathSearch(graph, PathRanker(embedder), 2), TRAIN, excluded=["in_language"])
    assert len(triplets) == len(TRAIN) - 1
    for t, e in zip(triplets, [e for e in TRAIN if e.path != "in_language"]):
        assert t.question == e.masked and "something" in t.question
        assert t.negative not in (t.positive, "in language")


def test_batches_never_repeat_a_path_text():
    triplets = [Triplet(f"q{i}", f"p{i % 3}", f"n{i % 2}", "") for i in range(12)]
    batches = batches_without_duplicates(triplets, 4)
    assert sorted(t.question for b in batches for t in b) == sorted(t.question for t in triplets)
    for batch in batches:
        texts = [t.positive for t in batch] + [t.negative for t in batch]
        assert len(texts) == len(set(texts))


@pytest.fixture(scope="module")
def trained(graph, tmp_path_factory):
    """A retriever trained for a few steps on the tiny graph, with in_language kept out of training."""
    from kgqa.retrieval.train import TrainOptions, train_retriever

    out = tmp_path_factory.mktemp("models") / "retriever"
    options = TrainOptions(max_pairs=len(TRAIN), batch_size=4, epochs=3, learning_rate=1e-4, max_hops=2,
                           hold_out_paths=("in_language",))
    meta = train_retriever(graph, TRAIN, HELD, out, options)
    return out, meta


def margins(embedder: SentenceEmbedder, graph, examples) -> np.ndarray:
    """cos(question, gold path) minus the best cos(question, other reachable path)."""
    from kgqa.retrieval.paths import verbalise_path

    exhaustive = PathSearch(graph, PathRanker(embedder), 2, beam_width=0, shortlist=0)
    found = exhaustive.search_many([e.topic for e in examples], embedder.embed([e.masked for e in examples]), None)
    reachable = [[c.path for c in row] for row in found]
    texts = sorted({verbalise_path(p) for paths in reachable for p in paths})
    vectors = dict(zip(texts, embedder.embed(texts)))
    out = []
    for e, paths, question in zip(examples, reachable, embedder.embed([e.masked for e in examples])):
        scores = np.array([vectors[verbalise_path(p)] @ question for p in paths])
        gold = paths.index(e.steps)
        out.append(scores[gold] - np.max(np.delete(scores, gold)))
    return np.array(out)


def test_trained_retriever_is_a_model_folder_the_numpy_encoder_reads(trained):
    from sentence_transformers import SentenceTransformer

    folder, meta = trained
    for name in ("model.safetensors", "tokenizer.json", "config.json", "modules.json", META_FILE):
        assert (folder / name).exists(), name
    stored = json.loads((folder / META_FILE).read_text())
    assert stored["hop_penalty"] == meta["hop_penalty"] in (0.0, 0.02, 0.05, 0.1)
    assert "in_language" not in stored["paths_in_training"] and stored["steps"] > 0
    texts = ["who directed something", "directed by, then reverse of directed by"]
    ours = SentenceEmbedder(folder).embed(texts)
    reference = SentenceTransformer(str(folder), device="cpu").encode(texts)
    assert np.abs(ours - reference).max() < 1e-4
    assert np.abs(ours - SentenceEmbedder().embed(texts)).max() > 1e-3  # the weights did change


def test_training_widens_the_margin_and_keeps_unseen_paths(graph, trained, embedder):
    folder, _ = trained
    tuned = SentenceEmbedder(folder)
    seen = [e for e in TRAIN if e.path != "in_language"]
    assert margins(tuned, graph, seen).mean() > margins(embedder, graph, seen).mean()
    # in_language never took part in training, yet its question still finds it
    search = PathSearch(graph, PathRanker(tuned), 2)
    best = search.search_many(["Kismet"], tuned.embed(["what language is something in"]), 1)[0][0]
    assert format_path(best.path) == "in_language"


def test_a_trained_retriever_is_picked_up_and_forces_a_rebuild(graph, trained, tmp_path):
    folder, meta = trained
    settings = load_settings(overrides={"cache_dir": tmp_path, "max_hops": 2})
    assert path_model(settings, graph).model_dir == default_model_path()
    assert path_model(settings, graph).hop_penalty == 0.1
    shutil.copytree(folder, retriever_dir(settings, graph))
    chosen = path_model(settings, graph)
    assert chosen.model_dir == retriever_dir(settings, graph) and chosen.trained
    assert chosen.hop_penalty == meta["hop_penalty"]
    assert path_model(load_settings(overrides={"cache_dir": tmp_path, "hop_penalty": 0.3}), graph).hop_penalty == 0.3
    assert model_fingerprint(retriever_dir(settings, graph)) != model_fingerprint(default_model_path())
    from kgqa.agent import Agent

    assert Agent(settings, graph).embedder.model_dir == retriever_dir(settings, graph)
    assert Agent(settings, graph).ranker.cache_file.stem.startswith(model_fingerprint(retriever_dir(settings, graph)))
    alone = load_settings(overrides={"cache_dir": tmp_path, "max_hops": 2, "packaged_weight": 0})
    assert Agent(alone, graph).ranker.cache_file.stem == model_fingerprint(retriever_dir(settings, graph))


def test_learning_rate_follows_steps_or_the_clock():
    from kgqa.retrieval.train import lr_factor, training_progress

    assert training_progress(5, 10, 1.0, None) == 0.5
    assert training_progress(5, 10, 90.0, 100.0) == 0.9  # the clock is ahead of the steps
    assert training_progress(5, 10, 1.0, 100.0) == 0.5
    assert lr_factor(0.0, 0.01, 0.1) == pytest.approx(0.1)
    assert lr_factor(0.1, 0.01, 0.1) == pytest.approx(1.0)
    assert lr_factor(0.55, 0.01, 0.1) == pytest.approx(0.5)
    assert lr_factor(1.0, 0.01, 0.1) == 0.0
