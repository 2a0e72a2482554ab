"""Batch input parsing, bad lines, ids, the output on resume, one failing question, and resuming after a kill."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from neo4j.exceptions import ClientError, ServiceUnavailable

from kgqa.batch import completed_keys, read_inputs, run_batch, stops_the_run, transient
from kgqa.errors import GraphError, InputError, LLMResponseError, LLMTimeout, LLMUnavailable
from kgqa.types import Result

REPO = Path(__file__).resolve().parents[1]


def echo_answers(questions: list[str]) -> list[Result]:
    """Pure bookkeeping tests need no model: echo each question as its own answer."""
    return [Result(question=q, entity=q) for q in questions]


def records(path: Path) -> list[dict]:
    """The output's records, split at "\\n" only (as JSON Lines is)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line]


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
                     '{"id": "a", "question": "again"}\n[1]\n{"id": [1], "question": "x"}\n')
    found = list(read_inputs(jsonl))
    assert [(r.id, r.error is None) for r in found] == [("a", True), (None, False), ("b", False),
                                                        ("a", False), (None, False), (None, False)]
    assert "not valid JSON" in found[1].error and "duplicate id" in found[3].error
    assert "must be a string or an integer" in found[5].error


def test_bad_lines_are_reported_and_written(tmp_path):
    src = tmp_path / "q.jsonl"
    src.write_text('{"id": 1, "question": "q1"}\n{"id": 2}\n{"id": 3, "question": "   "}\n{"id": 4, "question": "q4"}\n')
    out = tmp_path / "out.jsonl"
    reported: list[str] = []
    summary = run_batch(echo_answers, src, out, chunk_size=10, on_bad_line=reported.append)
    written = records(out)
    assert [r["id"] for r in written] == [1, 2, 3, 4]
    assert summary.answered == 2 and len(summary.bad_lines) == 2
    assert reported[0].startswith("line 2:") and "error" in written[1] and written[3]["entity"] == "q4"


# ---- item 9: every non-blank line gets a record, ids keep their type, duplicates survive resume ----------


def test_blank_lines_get_no_record_and_are_counted(tmp_path):
    src, out = tmp_path / "q.txt", tmp_path / "out.jsonl"
    src.write_text("q1\n\n   \nq4\n\n")
    summary = run_batch(echo_answers, src, out)
    assert [(r["id"], r["line"]) for r in records(out)] == [("1", 1), ("4", 4)]
    assert summary.blank_lines == 3
    readme = (REPO / "README.md").read_text()
    assert "one JSON record per non-blank input line" in readme and "Blank lines get no record" in readme


def test_invalid_json_does_not_take_the_next_lines_id(tmp_path):
    src, out = tmp_path / "q.jsonl", tmp_path / "out.jsonl"
    src.write_text('not json\n{"id": "1", "question": "q2"}\n{"question": "q3"}\n{"id": 3, "question": "q4"}\n')
    summary = run_batch(echo_answers, src, out)
    written = records(out)
    assert [(r["id"], r["line"]) for r in written] == [(None, 1), ("1", 2), (None, 3), (3, 4)]
    assert "error" in written[0] and [r.get("entity") for r in written[1:]] == ["q2", "q3", "q4"]
    assert summary.answered == 3
    run_batch(echo_answers, src, out, resume=True)  # lines without an id are recognised by their line
    assert len(records(out)) == 4


def test_ids_2_and_string_2_are_different(tmp_path):
    src, out = tmp_path / "q.jsonl", tmp_path / "out.jsonl"
    src.write_text('{"id": 2, "question": "number"}\n{"id": "2", "question": "string"}\n{"id": 2, "question": "again"}\n')
    run_batch(echo_answers, src, out)
    written = records(out)
    assert [(r["id"], r.get("entity")) for r in written] == [(2, "number"), ("2", "string"), (2, None)]
    assert "duplicate id 2" in written[2]["error"]


def test_a_duplicates_error_record_survives_resume(tmp_path):
    src, out = tmp_path / "q.jsonl", tmp_path / "out.jsonl"
    src.write_text('{"id": "a", "question": "first"}\n{"id": "b", "question": "second"}\n'
                   '{"id": "a", "question": "duplicate"}\n')
    run_batch(echo_answers, src, out)
    complete = out.read_text()
    out.write_text(complete.split("\n", 1)[0] + "\n")  # as if killed after the first record
    run_batch(echo_answers, src, out, resume=True)
    assert out.read_text() == complete
    run_batch(echo_answers, src, out, resume=True)  # nothing left to do
    assert out.read_text() == complete


def test_output_that_is_the_input_is_refused(tmp_path):
    src = tmp_path / "q.txt"
    src.write_text("who directed Kismet\n")
    for flags in ({}, {"overwrite": True}, {"resume": True}):
        with pytest.raises(InputError, match="is the input file"):
            run_batch(echo_answers, src, tmp_path / "." / "q.txt", **flags)
    assert src.read_text() == "who directed Kismet\n"


def test_existing_output_needs_resume_or_overwrite(tmp_path):
    src, out = tmp_path / "q.txt", tmp_path / "out.jsonl"
    src.write_text("q1\nq2\n")
    out.write_text('{"id": "1", "line": 1}\n')
    with pytest.raises(InputError, match="--resume"):
        run_batch(echo_answers, src, out)
    run_batch(echo_answers, src, out, resume=True)
    assert [r["id"] for r in records(out)] == ["1", "2"]


# ---- item 4: the output read back on --resume -------------------------------------------------------------


def test_half_written_line_is_dropped(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text('{"id": "1", "line": 1}\n{"id": "2", "que')
    assert completed_keys(out) == {'id:"1"'}
    assert out.read_text() == '{"id": "1", "line": 1}\n'


def test_a_cut_last_record_ending_in_a_newline_is_answered_again(tmp_path):
    src, out = tmp_path / "q.txt", tmp_path / "out.jsonl"
    src.write_text("q1\nq2\nq3\n")
    out.write_text('{"id": "1", "line": 1, "entity": "q1"}\n{"id": "2", "line": 2, "ent\n')
    notes: list[str] = []
    run_batch(echo_answers, src, out, resume=True, on_note=notes.append)
    assert [(r["id"], r["entity"]) for r in records(out)] == [("1", "q1"), ("2", "q2"), ("3", "q3")]
    assert notes == [f"{out}, line 2: dropped a half-written record; its question is answered again"]


def test_a_complete_last_record_without_its_newline_is_kept(tmp_path):
    src, out = tmp_path / "q.txt", tmp_path / "out.jsonl"
    src.write_text("q1\nq2\n")
    out.write_text('{"id": "1", "line": 1, "entity": "kept"}')
    run_batch(echo_answers, src, out, resume=True)
    assert [(r["id"], r["entity"]) for r in records(out)] == [("1", "kept"), ("2", "q2")]


@pytest.mark.parametrize("content, line", [
    ('{"id": "1", "line": 1}\n{"id": "2", "li\n{"id": "3", "line": 3}\n', 2),   # cut, but not last
    ('{"id": "1", "line": 1}\nsome notes\n', 2),                                # not a record at all
    ('{"id": "1", "line": 1}\n[1, 2]\n{"id": "3", "line": 3}\n', 2),
    ('{"id": "1", "line": 1}\nsome notes', 2),                                  # not ours, no newline
])
def test_a_corrupt_output_line_is_one_message_naming_file_and_line(tmp_path, content, line):
    src, out = tmp_path / "q.txt", tmp_path / "out.jsonl"
    src.write_text("q1\nq2\nq3\n")
    out.write_text(content)
    with pytest.raises(InputError) as caught:
        run_batch(echo_answers, src, out, resume=True)
    assert str(caught.value).startswith(f"{out}, line {line}: ") and "--overwrite" in str(caught.value)
    assert out.read_text() == content  # nothing of the user's file is cut


def test_records_with_line_separators_resume(tmp_path):
    """U+2028 and U+0085 are written raw (ensure_ascii=False); str.splitlines would split there, JSON does not."""
    src, out = tmp_path / "q.jsonl", tmp_path / "out.jsonl"
    src.write_text('{"id": "a", "question": "who directed\\u2028Kismet"}\n'
                   '{"id": "b", "question": "when was\\u0085Dishonored released"}\n'
                   '{"id": "c", "question": "q3"}\n')
    run_batch(echo_answers, src, out)
    text = out.read_text(encoding="utf-8")
    assert "\u2028" in text and "\u0085" in text
    out.write_text(text.rsplit("\n", 2)[0] + "\n", encoding="utf-8")  # killed before the last record
    run_batch(echo_answers, src, out, resume=True)
    assert out.read_text(encoding="utf-8") == text


# ---- item 8: one question cannot stop a run; a server that is gone does --------------------------------


def test_which_errors_stop_the_run():
    gone = GraphError("lost the connection")
    gone.__cause__ = ServiceUnavailable("connection refused")
    rejected = GraphError("rejected a query")
    rejected.__cause__ = ClientError("bad query")
    assert transient(gone) and stops_the_run(gone)
    assert not stops_the_run(rejected) and not stops_the_run(GraphError("no entity named 'x'"))
    assert stops_the_run(LLMUnavailable("not reachable")) and not stops_the_run(LLMTimeout("slow"))
    assert stops_the_run(LLMResponseError("busy", 503)) and stops_the_run(LLMResponseError("no route", 404))
    assert not stops_the_run(LLMResponseError("prompt too long", 400))
    assert not stops_the_run(TypeError("a bug"))


def test_an_unreachable_server_is_retried_before_the_run_stops(tmp_path):
    """Pure retry bookkeeping: a server down for the first two tries, then back."""
    src, out = tmp_path / "q.txt", tmp_path / "out.jsonl"
    src.write_text("q1\nq2\n")
    tries, waits = [], []

    def down_then_up(questions: list[str]) -> list[Result]:
        tries.append(list(questions))
        if len(tries) <= 2:
            raise LLMUnavailable("LLM server is not reachable")
        return echo_answers(questions)

    run_batch(down_then_up, src, out, retry_delays=(0.5, 1.0, 2.0), sleep=waits.append)
    assert waits == [0.5, 1.0] and len(tries) == 3
    assert [r["entity"] for r in records(out)] == ["q1", "q2"]


# The LLM-server tests need llama-cpp-python's server and the packaged SmolLM2 (tests/test_llm.py).

def llm_server(tmp_path: Path, n_ctx: int) -> tuple[subprocess.Popen, str]:
    from tests.test_llm import REQUIRE, free_port, missing_message

    message = missing_message()
    if message:
        if REQUIRE:
            pytest.fail(message + " (KGQA_REQUIRE_SERVERS=1)")
        pytest.skip(message)
    import httpx

    from kgqa.llm.embedded import packaged_model

    port = free_port()
    log = tmp_path / "llm-server.log"
    with log.open("w") as sink:
        process = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(packaged_model()),
                                    "--model_alias", "smollm2", "--host", "127.0.0.1", "--port", str(port),
                                    "--n_ctx", str(n_ctx), "--n_threads", "1", "--n_threads_batch", "1",
                                    "--seed", "0"], stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 180
    while True:
        if process.poll() is not None:
            pytest.fail(f"the llama.cpp server exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the llama.cpp server did not start in 180 s: {log.read_text()[-2000:]}")
        time.sleep(0.3)


@pytest.fixture
def small_context_llm(tmp_path):
    """A real OpenAI-compatible server whose context (384 tokens) a long question overflows: HTTP 400."""
    process, url = llm_server(tmp_path, 384)
    yield url
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def kgqa_batch(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    # the LLM is asked for every question, with room in the prompt budget for a long question and few-shot
    # examples (the tiny graph has no pool of its own: the packaged one is named)
    from kgqa.prompting import default_pool_file

    return subprocess.run([sys.executable, "-m", "kgqa.cli", "batch", *args], capture_output=True, text=True,
                          timeout=600, cwd=REPO, env={**os.environ, "COLUMNS": "300", "KGQA_LLM_MARGIN": "2",
                                                      "KGQA_LLM_PROMPT_TOKENS": "4000", "KGQA_LLM_MODEL": "smollm2",
                                                      "KGQA_FEWSHOT_POOL": str(default_pool_file()), **(env or {})})


QUESTIONS = ["who directed Kismet", "when was Dishonored released",
             "who directed Kismet " + " ".join(["please tell me quickly"] * 42),  # within 1,000 characters, over the server's context
             "who starred in Random Harvest"]


def test_a_question_the_real_agent_fails_on_gets_an_error_record(tmp_path, tiny_kb, small_context_llm):
    src, out = tmp_path / "q.txt", tmp_path / "out.jsonl"
    src.write_text("\n".join(QUESTIONS) + "\n")
    args = (str(src), "-o", str(out), "--graph", str(tiny_kb), "--llm", small_context_llm)
    done = kgqa_batch(*args)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    # llama.cpp's server refuses a prompt past its context with HTTP 400, or fails on it with a 500
    assert re.search(r"line 3: could not answer: LLM server answered HTTP (400|500)", done.stderr), done.stderr
    assert "answered 3, failed 1" in done.stderr
    written = records(out)
    assert [r["id"] for r in written] == ["1", "2", "3", "4"]
    assert re.search(r"HTTP (400|500)", written[2]["error"]) and written[2]["question"] == QUESTIONS[2]
    assert all(r["answers"] and r["llm_calls"] == 1 for r in written[:2] + written[3:])
    again = kgqa_batch(*args, "--resume")  # the failed question is done: resume does not stick on it
    assert again.returncode == 0 and "already done 4" in again.stderr
    assert records(out) == written


def test_a_server_that_is_gone_stops_the_run_and_resume_finishes_it(tmp_path, tiny_kb, small_context_llm):
    from tests.test_llm import closed_port_url

    src, out = tmp_path / "q.jsonl", tmp_path / "out.jsonl"
    src.write_text('{"id": "a", "question": "who directed Kismet"}\nnot json\n'
                   '{"id": "b", "question": "when was Dishonored released"}\n')
    down = kgqa_batch(str(src), "-o", str(out), "--graph", str(tiny_kb), "--llm", closed_port_url())
    errors = [line for line in down.stderr.splitlines() if line.startswith("error:")]
    assert down.returncode == 1 and "Traceback" not in down.stderr
    assert len(errors) == 1 and "is not reachable" in errors[0] and "continue with --resume" in errors[0]
    assert out.read_text() == ""  # no error record for a question the server never saw
    resumed = kgqa_batch(str(src), "-o", str(out), "--graph", str(tiny_kb), "--llm", small_context_llm, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    written = records(out)
    assert [(r["id"], r["line"]) for r in written] == [("a", 1), (None, 2), ("b", 3)]
    assert written[0]["answers"] and "error" in written[1] and written[2]["answers"]


# ---- a real run killed and resumed ------------------------------------------------------------------------


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
    ids = [r["id"] for r in records(out)]
    assert sorted(ids, key=int) == [str(i) for i in range(1, len(questions) + 1)]
    first = records(out)[0]
    assert first["answers"][0]["name"] == "William Dieterle"
    assert first["answers"][0]["evidence"] == [["Kismet", "directed_by", "William Dieterle"]]
