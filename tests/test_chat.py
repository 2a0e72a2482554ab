"""`kgqa chat` as a person uses it, in a real pseudo-terminal (pexpect), and `kgqa chat --json` from a script."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pexpect = pytest.importorskip("pexpect", reason="pexpect is a dev dependency: pip install -e .[dev]")

TINY = Path(__file__).parent / "data" / "tiny_kb.txt"
UP_ARROW = "\x1b[A"
PROMPT = "\r\n? "
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def spawn(cache: Path, *args: str, env: dict | None = None):
    environment = {**os.environ, "KGQA_CACHE_DIR": str(cache), "COLUMNS": "200", "NO_COLOR": "1", "TERM": "xterm",
                   **(env or {})}
    child = pexpect.spawn(sys.executable, ["-m", "kgqa.cli", "chat", "--graph", str(TINY), *args], env=environment,
                          encoding="utf-8", timeout=60, dimensions=(40, 200))
    child.expect_exact("/help lists commands", timeout=240)  # start-up: imports and models, slow on a loaded machine
    child.expect_exact(PROMPT)
    return child


def say(child, line: str, *expected: str) -> str:
    """Type a line; what is printed before the next prompt (styles removed) says each expected text."""
    child.sendline(line)
    child.expect_exact(PROMPT)
    shown = ANSI.sub("", child.before)
    for text in expected:
        assert text in shown, shown
    return shown


def quit_with_ctrl_d(child) -> None:
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before


def test_a_person_chats_with_follow_ups_and_commands(tmp_path):
    child = spawn(tmp_path)
    say(child, "who directed Kismet", "William Dieterle (Kismet: directed by)")
    say(child, "when was it released", "→ when was Kismet released", "1944 (Kismet: release year)")
    say(child, "/help", "/explain", "/reset", "/history", "/quit")
    say(child, "/bogus", "unknown command /bogus; /help lists the commands")
    say(child, "/history", "1. who directed Kismet  [William Dieterle]",
        "2. when was it released → when was Kismet released  [1944]")
    say(child, "/explain", "explain is on")
    say(child, "who directed it", "→ who directed Kismet", "Kismet | directed_by | William Dieterle")
    say(child, "/reset", "forgot the conversation")
    say(child, "/history", "no questions yet in this conversation")
    child.send("who dir")  # Ctrl-C at the prompt drops the line typed so far, and the chat goes on
    child.expect_exact("who dir")  # echoed: the prompt is reading (a loaded machine may take a moment)
    child.sendintr()
    child.expect_exact(PROMPT)
    say(child, "when was Dishonored released", "1931 (Dishonored: release year)")
    assert child.isalive()
    quit_with_ctrl_d(child)


def hanging_server() -> tuple[socket.socket, int, list[socket.socket]]:
    """A TCP server that accepts connections and never answers: an LLM server that is stuck.
    The list holds the connections accepted so far."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return server, server.getsockname()[1], accepted


def test_ctrl_c_cancels_an_answer_without_leaving(tmp_path):
    server, port, accepted = hanging_server()
    try:  # the LLM is asked for every path choice (margin 2) and never answers: the answer hangs until Ctrl-C
        child = spawn(tmp_path, "--llm", f"http://127.0.0.1:{port}/v1", env={"KGQA_LLM_MARGIN": "2"})
        assert not accepted, "the chat asked the LLM before any question"
        child.sendline("who directed Kismet")
        waited = time.monotonic()
        while not accepted:  # the answer has reached the LLM: it is being computed now
            assert time.monotonic() - waited < 120, "the question never reached the LLM"
            time.sleep(0.05)
        child.sendintr()
        child.expect_exact("cancelled")
        child.expect_exact(PROMPT)
        say(child, "/history", "no questions yet")  # the cancelled question left no turn behind
        assert child.isalive()
        quit_with_ctrl_d(child)
    finally:
        server.close()


def test_history_survives_the_session_and_the_up_arrow_reaches_it(tmp_path):
    child = spawn(tmp_path)
    say(child, "when was Dishonored released", "1931")
    child.sendline("/quit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    history = tmp_path / "chat_history"
    assert "when was Dishonored released" in history.read_text()
    again = spawn(tmp_path)
    again.send(UP_ARROW + UP_ARROW)  # /quit, then the question before it
    again.sendline("")
    again.expect_exact(PROMPT)
    assert "1931 (Dishonored: release year)" in ANSI.sub("", again.before)
    quit_with_ctrl_d(again)


def test_chat_json_is_one_record_per_line_and_nothing_else(tmp_path):
    lines = ["who directed Kismet", "when was it released", "", "/reset", "/nope", "who directed it",
             "what films did marlene dietrich star in", "which of them were released in 1931"]
    done = subprocess.run([sys.executable, "-m", "kgqa.cli", "chat", "--json", "--graph", str(TINY)],
                          input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=300,
                          env={**os.environ, "KGQA_CACHE_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]  # every stdout line is JSON: no banner
    assert len(records) == len([line for line in lines if line])
    first, follow, reset, unknown, alone, films, narrowed = records
    assert first["resolved_question"] == "who directed Kismet" and first["resolved_from"] is None
    assert [a["name"] for a in first["answers"]] == ["William Dieterle"] and first["answers"][0]["evidence"]
    assert follow["question"] == "when was it released" and follow["resolved_question"] == "when was Kismet released"
    assert follow["resolved_from"]["turn"] == 1 and follow["resolved_from"]["entities"] == ["Kismet"]
    assert [a["name"] for a in follow["answers"]] == ["1944"] and "timings" in follow
    assert reset == {"command": "/reset", "message": "forgot the conversation; the next question starts afresh"}
    assert unknown["command"] == "/nope" and "unknown command" in unknown["error"]
    assert alone["resolved_question"] == "who directed it" and alone["turn"] == 1  # forgotten: nothing to refer to
    assert narrowed["resolved_from"]["restricted_to"]["turn"] == films["turn"]
    assert [a["name"] for a in narrowed["answers"]] == ["Dishonored"]
