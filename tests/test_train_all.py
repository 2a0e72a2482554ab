"""`kgqa train all` on a graph of its own: from question-answer pairs without paths or brackets, or from the
graph alone, it trains the linker, retriever and reranker for that graph (seconds of training each)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.family import family_graph

REPO = Path(__file__).resolve().parents[1]


def kgqa(*args: str, cache: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kgqa.cli", *args], capture_output=True, text=True, timeout=900,
                          cwd=REPO, env={**os.environ, "KGQA_CACHE_DIR": str(cache), "COLUMNS": "300"})


def test_train_all_from_question_answer_pairs_gives_the_graph_its_own_models(tmp_path):
    triples, lines = family_graph()
    graph = tmp_path / "family.tsv"
    graph.write_text("".join(f"{s}\t{r}\t{o}\n" for s, r, o in triples))
    questions = tmp_path / "qa.tsv"
    questions.write_text("\n".join(lines + ["a line without answers", "who is Zed Nobody married to\tAnn Marsh"]) + "\n")
    cache = tmp_path / "cache"
    done = kgqa("train", "all", "--questions", str(questions), "--graph", str(graph), "--max-minutes", "0.2",
                cache=cache)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert "qa.tsv, line" in done.stderr  # the bad line is reported, the others are used
    assert "dropped 1: no entity of the graph found in the question" in done.stderr
    stats = json.loads(kgqa("kg", "stats", "--graph", str(graph), "--json", cache=cache).stdout)
    assert stats["models"]["trained"] == ["linker", "retriever", "reranker", "shapes"]
    folder = Path(stats["models"]["folder"])
    assert json.loads((folder / "graph.json").read_text())["identity"].startswith("file:")
    # the movie graph has none of them: models belong to the graph they were trained for
    movies = json.loads(kgqa("kg", "stats", "--json", cache=cache).stdout)
    assert movies["models"]["trained"] == [] and movies["models"]["folder"] != str(folder)
    asked = kgqa("ask", "who is Ann Marsh married to", "--graph", str(graph), "--json", cache=cache)
    assert asked.returncode == 0, asked.stderr[-3000:]
    assert "no trained models" not in asked.stderr
    assert json.loads(asked.stdout)["entity"] == "Ann Marsh"


def batch_hits(questions: Path, graph: Path, gold: list[set[str]], cache: Path, out: Path) -> int:
    """How many questions of the file get a gold answer first, answered by `kgqa batch`."""
    done = kgqa("batch", str(questions), "-o", str(out), "--overwrite", "--graph", str(graph), cache=cache)
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == len(gold)
    return sum(1 for r, g in zip(records, gold) if r.get("answers") and r["answers"][0]["name"] in g)


def test_train_all_from_the_graph_alone_answers_freely_worded_questions_better_than_untrained(tmp_path):
    triples, lines = family_graph()
    graph = tmp_path / "family.tsv"
    graph.write_text("".join(f"{s}\t{r}\t{o}\n" for s, r, o in triples))
    questions = tmp_path / "questions.txt"  # worded by hand, never read by training
    questions.write_text("".join(line.split("\t")[0] + "\n" for line in lines))
    gold = [set(line.split("\t")[1].split("|")) for line in lines]
    cache = tmp_path / "cache"
    untrained = batch_hits(questions, graph, gold, cache, tmp_path / "untrained.jsonl")
    done = kgqa("train", "all", "--graph", str(graph), "--written", "400", "--max-minutes", "0.4", cache=cache)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "400 questions written from the graph" in done.stdout
    stats = json.loads(kgqa("kg", "stats", "--graph", str(graph), "--json", cache=cache).stdout)
    assert stats["models"]["trained"] == ["linker", "retriever", "reranker", "shapes"]
    pool = [json.loads(line) for line in (Path(stats["models"]["folder"]) / "fewshot.jsonl").read_text().splitlines()]
    assert pool and {step.removesuffix("_inv") for row in pool for step in row["path"].split("|")} <= \
        {"spouse", "children", "nationality"}  # the graph's own few-shot pool, not the movie one
    trained = batch_hits(questions, graph, gold, cache, tmp_path / "trained.jsonl")
    assert trained >= untrained + 8 and trained >= 0.9 * len(gold), (untrained, trained)


def test_the_llm_gets_the_graphs_own_few_shot_pool_and_never_the_movie_one_for_another_graph(tmp_path):
    from kgqa.config import BUNDLED_GRAPH, Settings
    from kgqa.graph.embedded import EmbeddedGraph
    from kgqa.model_store import fewshot_file, fewshot_pool_file
    from kgqa.prompting import default_pool_file
    from kgqa.question_writer import write_questions
    from kgqa.train_all import write_fewshot_pool

    triples, _ = family_graph()
    graph = EmbeddedGraph.from_triples(triples)
    settings = Settings(cache_dir=tmp_path, graph=str(tmp_path / "family.tsv"))
    assert fewshot_pool_file(settings, graph) is None  # no pool of its own yet: none, not MetaQA's
    written = write_fewshot_pool(fewshot_file(settings, graph), [l.example for l in write_questions(graph, 2, 50)])
    assert written == 50 and fewshot_pool_file(settings, graph) == fewshot_file(settings, graph)
    other = EmbeddedGraph.from_triples(triples[:-1])
    assert fewshot_pool_file(settings, other) is None  # another graph never gets this one's pool
    assert fewshot_pool_file(Settings(cache_dir=tmp_path, graph=BUNDLED_GRAPH), other) == default_pool_file()
    assert fewshot_pool_file(Settings(cache_dir=tmp_path, fewshot_pool="none"), graph) is None
