"""What goes wrong with a real Neo4j server, and what kgqa says when it does.

Unreachable port, wrong password, unknown database and a query timeout, each through the library
(a GraphError with one sentence) and through the CLI (one `error:` line, exit code 1); transient errors
are retried; answering sessions are read-only. The last test starts a second server (its own port and
data folder), kills it in the middle of a `kgqa batch --graph bolt://...` run, and checks that the run
stops with a clear message and that `--resume` after a restart finishes without losing or duplicating
a record.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from neo4j.exceptions import ClientError, TransientError

from kgqa.config import load_settings
from kgqa.errors import GraphError
from kgqa.graph.neo4j_store import Neo4jConnection, Neo4jGraph
from tests.neo4j_testing import REPO, free_port, neo4j_password, neo4j_settings, neo4j_uri

SLOW_QUERY = "UNWIND range(1, 2000000000) AS x RETURN count(x) AS n"
"""Seconds of work for the server, whatever the data."""


def kgqa(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kgqa.cli", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=timeout, env={**os.environ, "COLUMNS": "80", **(env or {})})


def assert_one_clear_error(done: subprocess.CompletedProcess, *expected: str) -> None:
    """Exit code 1 and exactly one `error:` line that says all of `expected`, and no traceback."""
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert len(errors) == 1, done.stderr
    for text in expected:
        assert text in errors[0], (text, errors[0])
    assert "Traceback" not in done.stderr


# ---- the four failures, library and CLI -------------------------------------------------------------


def test_unreachable_port():
    neo4j_uri()  # skip or fail like every Neo4j test when there is no server at all
    uri = f"bolt://127.0.0.1:{free_port()}"
    with pytest.raises(GraphError) as caught:
        Neo4jGraph.connect(neo4j_settings(uri))
    assert str(caught.value) == (f"cannot reach Neo4j at {uri}: is it running? "
                                 "start it with bash services/neo4j/start.sh")
    done = kgqa("kg", "stats", "--graph", uri, env={"KGQA_NEO4J_PASSWORD": neo4j_password()})
    assert_one_clear_error(done, f"cannot reach Neo4j at {uri}", "bash services/neo4j/start.sh")


def test_wrong_password():
    uri = neo4j_uri()
    with pytest.raises(GraphError, match="refused user 'neo4j': check the password"):
        Neo4jGraph.connect(neo4j_settings(uri, neo4j_password="not-the-password"))
    done = kgqa("ask", "who directed Kismet", "--graph", uri, env={"KGQA_NEO4J_PASSWORD": "not-the-password"})
    assert_one_clear_error(done, f"Neo4j at {uri} refused user 'neo4j'", "KGQA_NEO4J_PASSWORD")
    done = kgqa("kg", "stats", "--graph", uri, env={"KGQA_NEO4J_PASSWORD": ""})
    assert_one_clear_error(done, "needs a password", "KGQA_NEO4J_PASSWORD")


def test_unknown_database():
    uri = neo4j_uri()
    with pytest.raises(GraphError, match="has no database 'moviesdb': check KGQA_NEO4J_DATABASE"):
        Neo4jGraph.connect(neo4j_settings(uri, neo4j_database="moviesdb"))
    done = kgqa("kg", "stats", "--graph", uri,
                env={"KGQA_NEO4J_PASSWORD": neo4j_password(), "KGQA_NEO4J_DATABASE": "moviesdb"})
    assert_one_clear_error(done, "has no database 'moviesdb'", "KGQA_NEO4J_DATABASE")


def test_query_timeout_from_the_settings():
    uri = neo4j_uri()
    settings = load_settings(environ={"KGQA_GRAPH": uri, "KGQA_NEO4J_PASSWORD": neo4j_password(),
                                      "KGQA_NEO4J_TIMEOUT": "0.5"})
    connection = Neo4jConnection.from_settings(settings)
    try:
        assert connection.timeout == 0.5
        with pytest.raises(GraphError, match=r"ran longer than its 0.5 s timeout .* raise KGQA_NEO4J_TIMEOUT"):
            connection.read(lambda tx: tx.run(SLOW_QUERY).single())
        assert connection.read(lambda tx: tx.run("RETURN 42 AS n").single()["n"]) == 42  # still usable
    finally:
        connection.close()


# ---- retries and read-only answering -----------------------------------------------------------------


def test_transient_errors_are_retried_and_others_are_not():
    connection = Neo4jConnection(neo4j_uri(), "neo4j", neo4j_password())
    calls = []

    def flaky(tx):
        calls.append(1)
        if len(calls) == 1:
            raise TransientError("simulated: the server was briefly unavailable")
        return tx.run("RETURN 7 AS n").single()["n"]

    def broken(tx):
        calls.append(1)
        raise ClientError("simulated: a bad query")

    try:
        assert connection.read(flaky) == 7 and len(calls) == 2
        calls.clear()
        with pytest.raises(GraphError):
            connection.read(broken)
        assert len(calls) == 1
    finally:
        connection.close()


def test_answering_sessions_are_read_only():
    connection = Neo4jConnection(neo4j_uri(), "neo4j", neo4j_password())
    try:
        with pytest.raises(GraphError, match="AccessMode|read"):
            connection.read(lambda tx: tx.run("CREATE (:KgqaMustNotExist {name: 'x'})").consume())
        count = connection.read(lambda tx: tx.run("MATCH (n:KgqaMustNotExist) RETURN count(n) AS n").single()["n"])
        assert count == 0
    finally:
        connection.close()


# ---- a server that dies in the middle of a batch ------------------------------------------------------


class SecondServer:
    """Another Neo4j on its own port and data folder, through services/neo4j's scripts."""

    def __init__(self, data: Path) -> None:
        self.port = free_port()
        self.uri = f"bolt://127.0.0.1:{self.port}"
        self.env = {**os.environ, "NEO4J_PORT": str(self.port), "NEO4J_DATA": str(data),
                    "NEO4J_PASSWORD": neo4j_password(), "NEO4J_HEAP": "512m", "NEO4J_PAGECACHE_MB": "64",
                    "NEO4J_PYTHON": sys.executable, "NEO4J_STOP_TIMEOUT": "20", "NEO4J_START_TIMEOUT": "240"}
        self.pid_file = REPO / "services" / "neo4j" / f"neo4j-{self.port}.pid"

    def start(self) -> None:
        done = subprocess.run(["bash", "services/neo4j/start.sh"], cwd=REPO, env=self.env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr

    def kill(self) -> None:
        """SIGKILL, as a crash would: no clean shutdown."""
        pid = int(self.pid_file.read_text())
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists() and \
                Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z":
            time.sleep(0.1)

    def stop(self) -> None:
        subprocess.run(["bash", "services/neo4j/stop.sh"], cwd=REPO, env=self.env, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def second_server(tmp_path_factory: pytest.TempPathFactory):
    neo4j_uri()
    server = SecondServer(tmp_path_factory.mktemp("neo4j-second"))
    server.start()
    yield server
    server.stop()
    (REPO / "services" / "neo4j" / f"neo4j-{server.port}.log").unlink(missing_ok=True)


def movie_graph(folder: Path) -> tuple[Path, Path, set[tuple[str, str, str]]]:
    """A small movie graph and 60 one-hop questions about it."""
    triples = {}
    for i in range(60):
        movie = f"Movie {i}"
        for triple in ((movie, "directed_by", f"Director {i % 9}"), (movie, "starred_actors", f"Actor {i % 13}"),
                       (movie, "starred_actors", f"Actor {(i * 5) % 13}"), (movie, "release_year", str(1950 + i % 20))):
            triples[triple] = None
    graph = folder / "movies.tsv"
    graph.write_text("".join(f"{s}\t{r}\t{o}\n" for s, r, o in triples), encoding="utf-8")
    templates = ["who directed Movie {i}", "which actors starred in Movie {i}", "when was Movie {i} released",
                 "what films did Director {j} direct"]
    questions = folder / "questions.txt"
    questions.write_text("".join(templates[n % 4].format(i=(n * 7) % 60, j=n % 9) + "\n" for n in range(60)))
    return graph, questions, set(triples)


def read_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_kg_load_cli_then_server_dies_mid_batch_and_resume_completes(second_server: SecondServer, tmp_path: Path):
    graph_file, questions, triples = movie_graph(tmp_path)
    # small chunks, so that the batch is still running when the server dies; one-hop questions
    env = {"KGQA_NEO4J_PASSWORD": neo4j_password(), "KGQA_BATCH_SIZE": "2", "KGQA_MAX_HOPS": "1"}

    loaded = kgqa("kg", "load", str(graph_file), "--graph", second_server.uri, "--json", env=env)
    assert loaded.returncode == 0, loaded.stderr
    stats = json.loads(loaded.stdout)
    assert (stats["triples"], stats["triples_created"]) == (len(triples), len(triples))
    again = kgqa("kg", "load", str(graph_file), "--graph", second_server.uri, "--json", env=env)
    assert again.returncode == 0 and json.loads(again.stdout)["triples_created"] == 0  # idempotent

    out = tmp_path / "answers.jsonl"
    command = [sys.executable, "-m", "kgqa.cli", "batch", str(questions), "-o", str(out), "--graph", second_server.uri]
    with open(tmp_path / "stderr.txt", "w") as stderr:
        run = subprocess.Popen(command, cwd=REPO, env={**os.environ, "COLUMNS": "80", **env},
                               stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline and run.poll() is None and \
                    (not out.exists() or out.read_bytes().count(b"\n") < 4):
                time.sleep(0.02)
            assert run.poll() is None, "the batch ended before the server could be killed"
            second_server.kill()
            returncode = run.wait(timeout=120)
        finally:
            if run.poll() is None:
                run.kill()
    failed = subprocess.CompletedProcess(command, returncode, "", (tmp_path / "stderr.txt").read_text())
    assert_one_clear_error(failed, f"lost the connection to Neo4j at {second_server.uri}",
                           "bash services/neo4j/start.sh")
    written = read_records(out)
    assert 4 <= len(written) < 60

    second_server.start()
    resumed = kgqa("batch", str(questions), "-o", str(out), "--graph", second_server.uri, "--resume",
                   env={**env, "KGQA_BATCH_SIZE": "64"})
    assert resumed.returncode == 0, resumed.stderr
    assert f"already done {len(written)}" in resumed.stderr
    records = read_records(out)
    assert [r["id"] for r in records[:len(written)]] == [r["id"] for r in written]
    assert sorted(int(r["id"]) for r in records) == list(range(1, 61))   # none lost, none twice
    for record in records:
        assert "error" not in record and record["answers"], record
        for answer in record["answers"]:
            assert all(tuple(t) in triples for t in answer["evidence"]), answer
