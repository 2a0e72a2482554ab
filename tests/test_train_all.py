"""`kgqa train all --questions FILE` on a graph of its own: question-answer pairs without paths or brackets
train the linker, retriever and reranker for that graph alone (a few seconds of training each: this checks
the plumbing end to end, not the accuracy)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIRST = ["Ann", "Bob", "Cai", "Dee", "Eli", "Fay", "Gus", "Hal", "Ida", "Jon", "Kim", "Lou"]
LAST = ["Marsh", "Stone", "Rivers", "Hale"]
COUNTRIES = ["Norway", "Peru", "Kenya"]


def family_graph() -> tuple[list[tuple[str, str, str]], list[str]]:
    """Couples with children and nationalities; question-answer lines worded freely about them."""
    rng = random.Random(5)
    people = [f"{f} {l}" for l in LAST for f in FIRST]
    triples, lines = [], []
    for i in range(0, len(people) - 2, 3):
        a, b, child = people[i], people[i + 1], people[i + 2]
        country = rng.choice(COUNTRIES)
        triples += [(a, "spouse", b), (b, "spouse", a), (a, "children", child), (b, "children", child),
                    (child, "nationality", country), (a, "nationality", country)]
        lines += [f"who is {a} married to\t{b}", f"name the husband or wife of {b}\t{a}",
                  f"which kids does {a} have\t{child}", f"where is {child} a citizen of\t{country}",
                  f"what country are the children of {b} from\t{country}"]
    return triples, lines


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
    done = kgqa("train", "all", "--questions", str(questions), "--graph", str(graph), "--max-minutes", "0.05",
                cache=cache)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert "qa.tsv, line" in done.stderr  # the bad line is reported, the others are used
    assert "dropped 1: no entity of the graph found in the question" in done.stderr
    stats = json.loads(kgqa("kg", "stats", "--graph", str(graph), "--json", cache=cache).stdout)
    assert stats["models"]["trained"] == ["linker", "retriever", "reranker"]
    folder = Path(stats["models"]["folder"])
    assert json.loads((folder / "graph.json").read_text())["identity"].startswith("file:")
    # the movie graph has none of them: models belong to the graph they were trained for
    movies = json.loads(kgqa("kg", "stats", "--json", cache=cache).stdout)
    assert movies["models"]["trained"] == [] and movies["models"]["folder"] != str(folder)
    asked = kgqa("ask", "who is Ann Marsh married to", "--graph", str(graph), "--json", cache=cache)
    assert asked.returncode == 0, asked.stderr[-3000:]
    assert "no trained models" not in asked.stderr
    assert json.loads(asked.stdout)["entity"] == "Ann Marsh"
