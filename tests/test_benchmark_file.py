"""A user's own benchmark file (issue 11, item 6): a .toml anywhere, run from any folder through the real
`kgqa eval`, with its own graph, its own columns, no hops, no marks, and the defaults for what it leaves out.
A bad file is one line naming the file and the key (or the data file and line), never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kgqa.errors import InputError
from kgqa.evaluate import Benchmark

FAMILY = [("Zorblax Quenn", "spouse", "Mirela Quenn"), ("Mirela Quenn", "spouse", "Zorblax Quenn"),
          ("Zorblax Quenn", "children", "Tavi Quenn"), ("Mirela Quenn", "children", "Tavi Quenn"),
          ("Tavi Quenn", "nationality", "Norvania"), ("Zorblax Quenn", "nationality", "Ostrelia"),
          ("Brannoc Vey", "spouse", "Ilsa Vey"), ("Ilsa Vey", "spouse", "Brannoc Vey"),
          ("Brannoc Vey", "children", "Odo Vey")]
"""Invented names: no other graph (the bundled movie graph least of all) can answer these questions."""


def kgqa(*args: str, cwd: Path, cache: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kgqa.cli", *args], capture_output=True, text=True, timeout=600,
                          cwd=cwd, env={**os.environ, "KGQA_CACHE_DIR": str(cache), "COLUMNS": "200"})


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """A benchmark folder with the family graph in it, and another folder to run kgqa from."""
    bench, elsewhere = tmp_path / "my bench", tmp_path / "elsewhere"
    bench.mkdir()
    elsewhere.mkdir()
    (bench / "family.tsv").write_text("".join(f"{s}\t{r}\t{o}\n" for s, r, o in FAMILY))
    return bench, elsewhere


def report_of(folder: Path) -> dict:
    return json.loads((folder / "report.json").read_text())


def test_own_benchmark_from_another_folder_answers_over_its_own_graph(folders, isolated_cache):
    bench, elsewhere = folders
    (bench / "questions").mkdir()
    (bench / "questions" / "qa.tsv").write_text(
        "q1\twho is Zorblax Quenn married to\tMirela Quenn\tZorblax Quenn\n"
        "q2\twhich kids does Mirela Quenn have\tTavi Quenn\tMirela Quenn\n"
        "\n"  # a blank line is skipped
        "q3\twhere is Tavi Quenn a citizen of\tNorvania\tTavi Quenn\n"
        "q4\twho is Brannoc Vey married to\tIlsa Vey\tBrannoc Vey\n")
    (bench / "fam.toml").write_text('data_dir = "questions"\ngraph = "family.tsv"\nsplits = { test = "qa.tsv" }\n'
                                    'columns = ["id", "question", "answers", "topic"]\nlatency_sample = 1\n')
    done = kgqa("eval", "../my bench/fam.toml", "--out", "run", cwd=elsewhere, cache=isolated_cache)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    report = report_of(elsewhere / "run")
    assert report["benchmark"] == "fam"  # the file's stem
    assert report["settings"]["graph"] == str((bench / "family.tsv").resolve())  # the TOML's graph, from its folder
    assert list(report["hops"]) == ["all"]  # no hops: one group
    group = report["hops"]["all"]
    assert group["questions"] == 4 and group["hits@1"] >= 75  # only the family graph knows these names
    assert group["topic_accuracy"] >= 75 and "topic_questions" not in group  # every question has a topic column
    assert "path_accuracy" not in group  # no path column: no path accuracy, rather than 0
    rows = [json.loads(line) for line in (elsewhere / "run" / "predictions.jsonl").read_text().splitlines()]
    assert [r["hop"] for r in rows] == ["all"] * 4 and rows[0]["topic"] == "Zorblax Quenn"
    assert rows[0]["gold_path"] is None
    summary = (elsewhere / "run" / "summary.md").read_text()
    assert "| all | 4 |" in summary and "no gold path" in summary
    assert "│ all │ 4 " in done.stdout  # the table names the group


def test_stage_accuracies_count_only_questions_with_gold_and_graph_flag_wins(folders, isolated_cache):
    bench, elsewhere = folders
    (bench / "qa.tsv").write_text(
        "which kids does Mirela Quenn have\tTavi Quenn\n"  # no mark, no path: topic and path unknown
        "who is [Zorblax Quenn] married to\tMirela Quenn\tspouse\n"
        "where is [Tavi Quenn] a citizen of\tNorvania\n")
    # the TOML's graph does not exist: --graph must be the one answered over (and the key not even checked)
    (bench / "mixed.toml").write_text('name = "mixed"\ngraph = "no-such-graph.tsv"\nsplits = { test = "qa.tsv" }\n'
                                      'latency_sample = 0\n')
    toml, graph = str(bench / "mixed.toml"), str(bench / "family.tsv")

    done = kgqa("eval", toml, "--graph", graph, "--out", "run", cwd=elsewhere, cache=isolated_cache)
    assert done.returncode == 0, done.stderr[-3000:]
    report = report_of(elsewhere / "run")
    assert report["settings"]["graph"] == graph
    group = report["hops"]["all"]
    assert group["questions"] == 3
    assert group["topic_questions"] == 2 and group["path_questions"] == 1  # what the accuracies are over
    assert "topic_accuracy over the 2 of 3 questions with a gold topic" in (elsewhere / "run" / "summary.md").read_text()
    assert "over the 2 of 3 questions" in done.stdout

    # without --graph the TOML's graph is used, and it is missing: one message naming the file and key
    done = kgqa("eval", toml, "--out", "run2", cwd=elsewhere, cache=isolated_cache)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "mixed.toml: graph" in done.stderr and "no-such-graph.tsv not found" in done.stderr

    # --gold-entities with a question that has no gold topic: one clear message, nothing answered
    done = kgqa("eval", toml, "--graph", graph, "--gold-entities", "--out", "run3", cwd=elsewhere,
                cache=isolated_cache)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "--gold-entities needs the gold topic entity of every question" in done.stderr
    assert "which kids does Mirela Quenn have" in done.stderr and not (elsewhere / "run3").exists()

    # the first question alone: no gold topic and no gold path at all, so neither accuracy is reported
    done = kgqa("eval", toml, "--graph", graph, "--limit", "1", "--out", "run4", cwd=elsewhere, cache=isolated_cache)
    assert done.returncode == 0, done.stderr[-3000:]
    group = report_of(elsewhere / "run4")["hops"]["all"]
    assert group["questions"] == 1 and "hits@1" in group
    assert "topic_accuracy" not in group and "path_accuracy" not in group and "topic_questions" not in group


def test_a_bare_name_is_found_in_the_cwd_eval_benchmarks(folders, isolated_cache):
    bench, elsewhere = folders
    (elsewhere / "eval" / "benchmarks").mkdir(parents=True)
    (elsewhere / "eval" / "benchmarks" / "kin.toml").write_text(
        f'data_dir = {json.dumps(str(bench))}\nhops = [1]\nsplits = {{ test = "{{hop}}.tsv" }}\n')
    done = kgqa("eval", "kin", "--split", "dev", cwd=elsewhere, cache=isolated_cache)
    assert done.returncode == 1 and "benchmark kin has no split 'dev'; it has test" in done.stderr
    done = kgqa("eval", "kin", "--hops", "1", "--out", "r", cwd=elsewhere, cache=isolated_cache)
    assert done.returncode == 1 and f"{bench / '1.tsv'} not found (split 'test' of" in done.stderr
    assert "kin.toml" in done.stderr and "Traceback" not in done.stderr


def test_the_metaqa_definition_is_read_as_before():
    bench = Benchmark.load("metaqa")
    assert bench.name == "metaqa" and bench.hops == [1, 2, 3] and bench.grouped_by_hop
    assert bench.graph == "metaqa" and bench.columns == ("question", "answers", "path")
    assert bench.topic_marker == ("[", "]") and bench.latency_sample == 100
    assert set(bench.splits) == {"test", "dev"} and bench.data_dir.name == "metaqa"


def test_defaults_of_a_minimal_file(tmp_path):
    (tmp_path / "mine.toml").write_text('splits = { test = "t.tsv" }\n')
    (tmp_path / "t.tsv").write_text("who is [Ann] married to\tBob\tspouse\nwhat is x[1 for\tC\n")
    bench = Benchmark.load(str(tmp_path / "mine.toml"))
    assert (bench.name, bench.description, bench.data_dir, bench.hops) == ("mine", "", tmp_path.resolve(), ["all"])
    assert bench.answer_separator == "|" and bench.graph is None and bench.latency_sample == 100
    assert "topic_accuracy" in bench.metrics and "hits@1" in bench.metrics
    first, = bench.examples("all", "test", limit=1)
    assert (first.question, first.topic, first.path, first.answers) == ("who is Ann married to", "Ann", "spouse", ("Bob",))
    with pytest.raises(InputError, match=r"t.tsv, line 2: the topic marks \[ \] do not pair up"):
        bench.examples("all", "test")
    (tmp_path / "mine.toml").write_text('splits = { test = "t.tsv" }\ntopic_marker = []\n')
    taken = Benchmark.load(str(tmp_path / "mine.toml")).examples("all", "test")
    assert [(e.question, e.topic) for e in taken] == [("who is [Ann] married to", ""), ("what is x[1 for", "")]


BAD_FILES = {
    "toml-syntax": ({"b.toml": 'splits = { test = "qa.tsv" \n'}, "b.toml: not valid TOML"),
    "no-splits": ({"b.toml": 'name = "x"\n'}, "b.toml: splits is missing"),
    "hops-not-a-list": ({"b.toml": 'hops = "1"\nsplits = { test = "qa.tsv" }\n'}, "b.toml: hops must be a list"),
    "latency-a-string": ({"b.toml": 'latency_sample = "5"\nsplits = { test = "qa.tsv" }\n'},
                         "b.toml: latency_sample must be a whole number"),
    "splits-not-a-table": ({"b.toml": 'splits = ["qa.tsv"]\n'}, "b.toml: splits must be a table"),
    "unknown-key": ({"b.toml": 'split = { test = "qa.tsv" }\n'}, "b.toml: unknown key 'split' (did you mean 'splits'?)"),
    "unknown-column": ({"b.toml": 'splits = { test = "qa.tsv" }\ncolumns = ["question", "answer"]\n'},
                       "b.toml: columns names an unknown column 'answer' (did you mean 'answers'?)"),
    "no-answers-column": ({"b.toml": 'splits = { test = "qa.tsv" }\ncolumns = ["question", "topic"]\n'},
                          "b.toml: columns needs a 'answers' column"),
    "unknown-metric": ({"b.toml": 'splits = { test = "qa.tsv" }\nmetrics = ["hits@10"]\n'},
                       "b.toml: metrics names an unknown metric 'hits@10'"),
    "hop-without-hops": ({"b.toml": 'splits = { test = "{hop}hop.tsv" }\n'}, "uses {hop}, but the benchmark has no hops"),
    "hops-without-hop": ({"b.toml": 'hops = [1, 2]\nsplits = { test = "qa.tsv" }\n'}, "each file name needs {hop}"),
    "missing-data-file": ({"b.toml": 'splits = { test = "nope.tsv" }\n'}, "nope.tsv not found (split 'test' of"),
    "too-few-columns": ({"b.toml": 'splits = { test = "qa.tsv" }\ncolumns = ["id", "question", "answers"]\n',
                         "qa.tsv": "1\twho is Ann married to\tBob\n2\twho is Bob married to\n"},
                        "qa.tsv, line 2: 2 fields separated by tabs, expected id<TAB>question<TAB>answers"),
    "no-answers": ({"b.toml": 'splits = { test = "qa.tsv" }\n', "qa.tsv": "who is Ann married to\t\n"},
                   "qa.tsv, line 1: no answers"),
    "empty-data-file": ({"b.toml": 'splits = { test = "qa.tsv" }\n', "qa.tsv": "\n"}, "qa.tsv holds no questions"),
    "not-utf8": ({"b.toml": 'splits = { test = "qa.tsv" }\n', "qa.tsv": b"who is \xff\tBob\n"}, "qa.tsv: not UTF-8"),
    "no-such-file": ({}, "benchmark file ../bench/b.toml not found"),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_a_bad_benchmark_file_is_one_clear_message(name, tmp_path, isolated_cache):
    files, says = BAD_FILES[name]
    bench, elsewhere = tmp_path / "bench", tmp_path / "elsewhere"
    bench.mkdir()
    elsewhere.mkdir()
    for file, text in files.items():
        (bench / file).write_bytes(text if isinstance(text, bytes) else text.encode())
    done = kgqa("eval", "../bench/b.toml", "--graph", "metaqa", "--out", "run", cwd=elsewhere, cache=isolated_cache)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert says in done.stderr, done.stderr
    assert done.stderr.strip().startswith("error:") and len(done.stderr.strip().splitlines()) == 1
    assert not (elsewhere / "run").exists()  # nothing written


def test_paraphrases_take_their_questions_path_and_only_training_questions_are_trained_on(folders):
    bench, _ = folders
    dev = ["who is [Zorblax Quenn] married to\tMirela Quenn\tspouse",
           "which kids does [Mirela Quenn] have\tTavi Quenn\tchildren",
           "where is [Tavi Quenn] a citizen of\tNorvania\tnationality"]
    (bench / "dev.tsv").write_text("".join(line + "\n" for line in dev))
    (bench / "reworded.tsv").write_text("[Zorblax Quenn]'s wife or husband\tMirela Quenn\n"
                                        "children of [Mirela Quenn]\tTavi Quenn\n"
                                        "the country of Tavi Quenn\tNorvania\n")  # no marks: the question's topic
    (bench / "b.toml").write_text('splits = { dev = "dev.tsv" }\nparaphrases = { dev = "reworded.tsv" }\n')
    loaded = Benchmark.load(str(bench / "b.toml"))
    pairs = loaded.paraphrase_pairs("all", "dev")
    assert [(o.path, p.path, p.topic) for o, p in pairs] == [
        ("spouse", "spouse", "Zorblax Quenn"), ("children", "children", "Mirela Quenn"),
        ("nationality", "nationality", "Tavi Quenn")]
    assert pairs[0][1].question == "Zorblax Quenn's wife or husband" and pairs[0][1].source == "paraphrase"
    from kgqa.retrieval.data import held_out_paraphrases, is_held_out, training_split

    train, held = training_split(str(bench / "b.toml"))
    trained_wordings = {e.question for e in train if e.source == "paraphrase"}
    held_wordings = {e.question for e in held_out_paraphrases(str(bench / "b.toml"))}
    assert trained_wordings | held_wordings == {p.question for _, p in pairs} and not trained_wordings & held_wordings
    for original, paraphrase in pairs:  # a paraphrase goes where its question goes
        assert (paraphrase.question in held_wordings) == is_held_out(original.question)
    (bench / "reworded.tsv").write_text("one line only\tMirela Quenn\n")
    with pytest.raises(InputError, match="one line per question"):
        Benchmark.load(str(bench / "b.toml")).paraphrase_pairs("all", "dev")
    (bench / "c.toml").write_text('splits = { dev = "dev.tsv" }\nparaphrases = { test = "reworded.tsv" }\n')
    with pytest.raises(InputError, match="paraphrases names split 'test'"):
        Benchmark.load(str(bench / "c.toml"))


def test_a_dialogue_benchmark_scores_turns_follow_ups_and_dialogues(folders, isolated_cache):
    """`format = "dialogues"`: each dialogue asked turn by turn through the conversation, as kgqa chat does."""
    bench, elsewhere = folders
    dialogues = [
        {"id": "a", "turns": [{"question": "who is Zorblax Quenn married to", "answers": ["Mirela Quenn"]},
                              {"question": "which kids does she have", "answers": ["Tavi Quenn"], "kind": "pronoun"}]},
        {"id": "b", "turns": [{"question": "who is Brannoc Vey married to", "answers": ["Ilsa Vey"]},
                              {"question": "where is Tavi Quenn a citizen of", "answers": ["Norvania"],
                               "follow_up": False}]},
    ]
    (bench / "chat.jsonl").write_text("".join(json.dumps(d) + "\n" for d in dialogues))
    (bench / "chat.toml").write_text('format = "dialogues"\ngraph = "family.tsv"\nsplits = { test = "chat.jsonl" }\n')
    done = kgqa("eval", "../my bench/chat.toml", "--out", "run", cwd=elsewhere, cache=isolated_cache)
    assert done.returncode == 0, done.stderr[-3000:]
    report = report_of(elsewhere / "run")
    assert (report["dialogues"], report["turns"], report["follow_up_turns"]) == (2, 4, 1)
    rows = [json.loads(line) for line in (elsewhere / "run" / "predictions.jsonl").read_text().splitlines()]
    follow = next(r for r in rows if r["follow_up"])
    assert follow["resolved"] == "which kids does Mirela Quenn have"  # "she": the answer of the "who" question
    assert report["follow_up_accuracy"] == 100.0 * follow["hits@1"]
    assert report["by_kind"]["pronoun"]["turns"] == 1
    (bench / "bad.jsonl").write_text('{"turns": [{"question": "who is Ilsa Vey married to"}]}\n')
    (bench / "bad.toml").write_text('format = "dialogues"\ngraph = "family.tsv"\nsplits = { test = "bad.jsonl" }\n')
    bad = kgqa("eval", "../my bench/bad.toml", "--out", "run2", cwd=elsewhere, cache=isolated_cache)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "bad.jsonl, line 1: turn 1 needs answers" in bad.stderr
