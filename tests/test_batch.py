"""Batch input parsing, bad lines, and resuming after a kill without losing or duplicating records."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kgqa.batch import completed_ids, read_inputs, run_batch
from kgqa.errors import InputError
from kgqa.types import Result


def fake_free_answers(questions: list[str]) -> list[Result]:
    """Pure bookkeeping tests need no model: echo each question as its own answer."""
    if any("boom" in q for q in questions):
        raise InputError("the question is empty")
    return [Result(question=q, entity=q) for q in questions]


def test_formats(tmp_path):
    text = tmp_path / "q.txt"
    text.write_text("who directed Kismet\n\n  \nwhat films did Marlene Dietrich star in\n")
    assert [(r.id, r.question) for r in read_inputs(text)] == [
        ("1", "who directed Kismet"), ("4", "what films did Marlene Dietrich star in")]
    tsv = tmp_path / "q.tsv"
    tsv.write_text("who directed [Kismet]\tWilliam Dieterle\tdirected_by\n")
    assert [r.question for r in read_inputs(tsv)] == ["who directed Kismet"]
    jsonl = tmp_path / "q.jsonl"
    jsonl.write_text('{"id": "a", "question": "who directed Kismet"}\nnot json\n{"id": "b"}\n'
                     '{"id": "a", "question": "again"}\n[1]\n')
    records = list(read_inputs(jsonl))
    assert [(r.id, r.error is None) for r in records] == [("a", True), ("2", False), ("b", False),
                                                          ("a", False), ("5", False)]
    assert "not valid JSON" in records[1].error and "duplicate id" in records[3].error


def test_bad_lines_are_reported_and_written(tmp_path):
    src = tmp_path / "q.jsonl"
    src.write_text('{"id": 1, "question": "q1"}\n{"id": 2}\n{"id": 3, "question": "boom"}\n{"id": 4, "question": "q4"}\n')
    out = tmp_path / "out.jsonl"
    reported: list[str] = []
    summary = run_batch(fake_free_answers, src, out, chunk_size=10, on_bad_line=reported.append)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == ["1", "2", "3", "4"]
    assert summary.answered == 2 and len(summary.bad_lines) == 2
    assert reported[0].startswith("line 2:") and "error" in records[1] and records[3]["entity"] == "q4"


def test_existing_output_needs_resume_or_overwrite(tmp_path):
    src, out = tmp_path / "q.txt", tmp_path / "out.jsonl"
    src.write_text("q1\nq2\n")
    out.write_text('{"id": "1"}\n')
    with pytest.raises(InputError, match="--resume"):
        run_batch(fake_free_answers, src, out)
    run_batch(fake_free_answers, src, out, resume=True)
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["1", "2"]


def test_half_written_line_is_dropped(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text('{"id": "1"}\n{"id": "2", "que')
    assert completed_ids(out) == {"1"}
    assert out.read_text() == '{"id": "1"}\n'


def test_resume_after_kill(tmp_path, tiny_kb):
    """A real `kgqa batch` run killed mid-way, then resumed: every id exactly once."""
    questions = ["who directed Kismet", "what films did Marlene Dietrich star in", "when was Dishonored released",
                 "who starred in Random Harvest"] * 60
    src = tmp_path / "q.txt"
    src.write_text("\n".join(questions) + "\n")
    out = tmp_path / "out.jsonl"
    env = dict(os.environ, KGQA_BATCH_SIZE="8", KGQA_GRAPH=str(tiny_kb))
    kgqa = [sys.executable, "-m", "kgqa.cli", "batch", str(src), "-o", str(out)]
    proc = subprocess.Popen(kgqa, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and (not out.exists() or out.read_text().count("\n") < 16):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = out.read_text().count("\n")
    assert 16 <= written < len(questions), "the run should have been killed part-way"
    done = subprocess.run(kgqa + ["--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert sorted(ids, key=int) == [str(i) for i in range(1, len(questions) + 1)]
    first = json.loads(out.read_text().splitlines()[0])
    assert first["answers"][0]["name"] == "William Dieterle"
    assert first["answers"][0]["evidence"] == [["Kismet", "directed_by", "William Dieterle"]]
