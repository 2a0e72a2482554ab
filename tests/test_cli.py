"""Each CLI command end to end, through the real `kgqa` entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import METAQA


def kgqa(*args: str, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kgqa.cli", *args], input=stdin, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "COLUMNS": "200", **(env or {})})


def test_ask_bundled_graph_explain():
    done = kgqa("ask", "who directed Kismet", "--explain")
    assert done.returncode == 0, done.stderr
    assert "William Dieterle" in done.stdout
    assert "directed_by" in done.stdout
    assert "Kismet | directed_by | William Dieterle" in done.stdout


def test_ask_json_carries_provenance(tiny_kb):
    done = kgqa("ask", "what films did marlene dietrich star in", "--json", "--graph", str(tiny_kb))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["entity"] == "Marlene Dietrich"
    assert result["path"] == "starred_actors_inv"
    assert sorted(a["name"] for a in result["answers"]) == ["Dishonored", "Kismet"]
    assert all(a["evidence"] for a in result["answers"]) and "total_ms" in result["timings"]


def test_ask_errors_are_one_line_and_nonzero(tmp_path, tiny_kb):
    done = kgqa("ask", "  ")
    assert done.returncode == 1 and "error: the question is empty" in done.stderr
    done = kgqa("ask", "who directed Kismet", "--graph", str(tmp_path / "missing.txt"))
    assert done.returncode == 1 and "does not exist" in done.stderr
    bad = tmp_path / "bad.txt"
    bad.write_text("A|r|B\nbroken line\n")
    done = kgqa("ask", "who directed A", "--graph", str(bad))
    assert done.returncode == 1 and f"{bad}, line 2" in done.stderr
    assert "Traceback" not in done.stderr


def test_no_entity_is_said_not_guessed(tiny_kb):
    done = kgqa("ask", "what is the capital of France", "--graph", str(tiny_kb))
    assert done.returncode == 0 and "found no entity I know" in done.stdout


def test_chat_loop_handles_empty_lines_and_eof(tiny_kb):
    done = kgqa("chat", "--graph", str(tiny_kb), stdin="\nwho directed Kismet\n\nwhen was Dishonored released\n")
    assert done.returncode == 0, done.stderr
    assert "William Dieterle" in done.stdout and "1931" in done.stdout
    done = kgqa("chat", "--graph", str(tiny_kb), stdin="exit\nwho directed Kismet\n")
    assert done.returncode == 0 and "William Dieterle" not in done.stdout


MARKUP_KB = ("Kismet [red]|directed_by|William [/bold] Dieterle\n"
             "Kismet [red]|release_year|1944\n"
             "Dishonored|starred_actors|Marlene [bold]Dietrich\n"
             "Dishonored|release_year|1931\n"
             "Morocco|directed_by|Josef :smile: [/] von Sternberg\n")


def test_names_with_rich_markup_are_printed_as_they_are(tmp_path):
    """Names are text, not Rich markup: "[/bold]" raised a MarkupError, "[red]" and ":smile:" were swallowed."""
    graph = tmp_path / "markup.txt"
    graph.write_text(MARKUP_KB)
    done = kgqa("ask", "who directed Kismet [red]", "--graph", str(graph))
    assert done.returncode == 0, done.stderr
    assert "William [/bold] Dieterle (Kismet [red]: directed by)" in done.stdout
    done = kgqa("ask", "who directed Kismet [red]", "--explain", "--graph", str(graph))
    assert done.returncode == 0, done.stderr
    assert "entity: Kismet [red]  (mention: 'Kismet [red]')" in done.stdout
    assert "Kismet [red] | directed_by | William [/bold] Dieterle" in done.stdout
    done = kgqa("chat", "--explain", "--graph", str(graph),
                stdin="who directed Kismet [red]\nwho starred in Dishonored\nwho directed Morocco\n")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "William [/bold] Dieterle (Kismet [red]: directed by)" in done.stdout  # chat goes on after it
    assert "Marlene [bold]Dietrich (Dishonored: starred actors)" in done.stdout
    assert "Josef :smile: [/] von Sternberg (Morocco: directed by)" in done.stdout


def test_batch_refuses_to_write_over_its_input(tmp_path, tiny_kb):
    src = tmp_path / "q.txt"
    src.write_text("who directed Kismet\n")
    for flag in ("--overwrite", "--resume"):
        done = kgqa("batch", str(src), "-o", str(src), flag, "--graph", str(tiny_kb))
        assert done.returncode == 1 and f"-o {src} is the input file" in done.stderr
        assert src.read_text() == "who directed Kismet\n"


def test_batch_resume_names_the_corrupt_line(tmp_path, tiny_kb):
    src, out = tmp_path / "q.txt", tmp_path / "a.jsonl"
    src.write_text("who directed Kismet\nwhen was Dishonored released\nwho starred in Random Harvest\n")
    out.write_text('{"id": "1", "line": 1}\n{"id": "2", "line\n{"id": "3", "line": 3}\n')
    done = kgqa("batch", str(src), "-o", str(out), "--resume", "--graph", str(tiny_kb))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"error: {out}, line 2: not valid JSON" in done.stderr


def test_batch_command(tmp_path, tiny_kb):
    src = tmp_path / "q.jsonl"
    src.write_text('{"id": "k", "question": "who directed Kismet"}\n{"id": "x", "question": ""}\n')
    out = tmp_path / "a.jsonl"
    done = kgqa("batch", str(src), "-o", str(out), "--graph", str(tiny_kb))
    assert done.returncode == 0, done.stderr
    assert "line 2" in done.stderr and "missing or empty 'question'" in done.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert records[0]["id"] == "k" and records[0]["answers"][0]["name"] == "William Dieterle"
    assert records[1]["error"]
    assert kgqa("batch", str(src), "-o", str(out), "--graph", str(tiny_kb)).returncode == 1  # no silent overwrite


def test_kg_load_and_stats(tmp_path, tiny_kb):
    done = kgqa("kg", "load", str(tiny_kb), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["triples"] == 13
    done = kgqa("kg", "stats", "--json")
    assert json.loads(done.stdout)["triples"] == 133582
    bad = tmp_path / "bad.tsv"
    bad.write_text("a\tb\n")
    done = kgqa("kg", "load", str(bad))
    assert done.returncode == 1 and "line 1" in done.stderr


@pytest.mark.skipif(not METAQA.exists(), reason="MetaQA data folder not found beside the project")
def test_eval_writes_reports(tmp_path):
    out = tmp_path / "report"
    done = kgqa("eval", "metaqa", "--hops", "1,2", "--limit", "20", "--gold-entities", "--out", str(out))
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "report.json").read_text())
    assert set(report["hops"]) == {"1", "2"}
    for hop in report["hops"].values():
        assert hop["questions"] == 20 and hop["topic_accuracy"] == 100.0
        assert 0 <= hop["hits@1"] <= 100 and hop["latency_p95_ms"] >= hop["latency_p50_ms"] > 0
    assert report["hops"]["1"]["hits@1"] >= 80  # 1-hop questions are easy with the gold entity
    assert "| 1 | 20 |" in (out / "summary.md").read_text()
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 40
    assert kgqa("eval", "metaqa", "--hops", "4").returncode == 1
