"""The question-shape model (kgqa.shapes), trained on the programs written from a small invented film graph:
it learns the written questions, reads questions worded by hand (not the writer's templates) as the kind
they ask for, saves and loads as the graph's own model, and the planner tries the kinds it ranks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kgqa.graph.embedded import EmbeddedGraph
from kgqa.planner import Planner
from kgqa.shapes import ShapeModel, features, masked_text, train_shape_model
from tests.test_program_writer import invented_films

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained():
    g = EmbeddedGraph.from_triples(invented_films())
    g.walk_through_topic = g.topic_as_answer = False
    model, meta = train_shape_model(g, 1_200, seed=2)
    return g, model, meta


def spans_of(question: str, names: list[str], numbers: list[str] = ()) -> list[tuple[int, int, str]]:
    out = [(question.index(n), question.index(n) + len(n), "e") for n in names]
    return out + [(question.index(n), question.index(n) + len(n), "n") for n in numbers]


HAND_WORDED = [  # (question, entity names, numbers, kind): none of these is a program_writer template
    ("who was Film 07 directed by?", ["Film 07"], [], "chain"),
    ("Actor 03 appeared in which films", ["Actor 03"], [], "chain"),
    ("in how many films did Actor 05 appear", ["Actor 05"], [], "count"),
    ("which films with Actor 02 came out after 1990", ["Actor 02"], ["1990"], "filter"),
    ("Director B films released before 1985", ["Director B"], ["1985"], "filter"),
    ("what is the earliest film Director C made", ["Director C"], [], "superlative"),
    ("did Director A direct Film 12?", ["Director A", "Film 12"], [], "yes/no"),
    ("was Film 30 released in 1999", ["Film 30"], ["1999"], "yes/no"),
    ("films starring both Actor 01 and Actor 04", ["Actor 01", "Actor 04"], [], "conjunction"),
    ("which films has Actor 09 made without Actor 11", ["Actor 09", "Actor 11"], [], "conjunction"),
]


def test_it_learns_the_written_questions(trained):
    _, model, meta = trained
    assert meta["written"] >= 1_000 and set(meta["kinds"]) == set(model.kinds)
    assert meta["held_out_accuracy"] >= 95.0


def test_questions_worded_by_hand_read_as_their_kind(trained):
    _, model, _ = trained
    wrong = [(q, model.ranked(q, spans_of(q, names, numbers))[0]) for q, names, numbers, kind in HAND_WORDED
             if model.ranked(q, spans_of(q, names, numbers))[0][0] != kind]
    assert len(wrong) <= 1, wrong


def test_names_and_numbers_are_masked_and_cue_words_are_features():
    q = "Which Director B films came out before 1985?"
    assert masked_text(q, spans_of(q, ["Director B"], ["1985"])) == "which  <e>  films came out before  <n> ?"
    found = features(q, spans_of(q, ["Director B"], ["1985"]))
    assert {"cue=before", "numbers=1", "entities=1", "first=which"} <= set(found)
    assert "w=director" not in found  # the name is not a word of the question's shape


def test_saved_and_loaded_it_gives_the_same_probabilities(trained, tmp_path):
    _, model, _ = trained
    model.save(tmp_path / "shapes")
    again = ShapeModel.load(tmp_path / "shapes")
    questions = [q for q, *_ in HAND_WORDED]
    spans = [spans_of(q, names, numbers) for q, names, numbers, _ in HAND_WORDED]
    assert np.allclose(model.probabilities(questions, spans), again.probabilities(questions, spans), atol=1e-6)
    assert ShapeModel.load(tmp_path / "missing") is None


def test_the_planner_tries_the_cue_words_kind_first_and_the_model_s_next(trained):
    g, model, _ = trained
    without, with_model = Planner(g, lambda e, q: [], None), Planner(g, lambda e, q: [], model)
    assert without.kinds("how many films did Director A direct", [], []) == ["count"]
    kinds = with_model.kinds("how many films did Director A direct", [], [])
    assert kinds[0] == "count" and len(kinds) <= 2


def test_kgqa_train_shapes_saves_the_graph_s_own_model(tmp_path):
    triples = tmp_path / "films.tsv"
    triples.write_text("".join(f"{s}\t{r}\t{o}\n" for s, r, o in invented_films()), encoding="utf-8")
    env = {"KGQA_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "kgqa.cli", "train", "shapes", "--graph", str(triples),
                           "--written", "600", "--json"], capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["held_out_accuracy"] >= 90.0
    stats = subprocess.run([sys.executable, "-m", "kgqa.cli", "kg", "stats", "--graph", str(triples), "--json"],
                           capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert "shapes" in json.loads(stats.stdout)["models"]["trained"], stats.stdout
