"""Scale benchmark: load time, start-up and ask latency on generated graphs of 1M-10M triples.

For each cell of a grid (triples x relations; default 1M and 10M x 20, 200 and 2,000) it

1. generates a graph with `eval/scalegen.py` (typed relations, skewed degrees: a few hubs with a large share
   of the edges), cached under `--work`;
2. writes questions from the generated relations, verbalised (`relation_words`), 1-3 hops, naming a hub
   entity (top degree) or an ordinary one (median degree), with gold answers walked in the generated arrays;
3. per backend, in fresh processes with a fresh cache folder:
   - load: `kgqa kg load FILE` (embedded: builds the cache; neo4j: MERGE into a server of its own), time,
     triples/s and peak RSS of the child,
   - start: `kgqa kg stats --graph FILE --json`, a second process opening the loaded graph,
   - ask: one Python process builds `kgqa.agent.Agent` once (name-matching linker, no reranker, no LLM),
     answers one untimed question, then times `agent.answer(question)` for every question: p50 / p95 per
     group, how many got an answer, Hits@1 against the gold answers (a sanity number), topic and path
     accuracy, mean time per agent stage. Then it asks them all again (`--passes`): the first pass meets
     relation paths the agent has not embedded yet, a later one shows the steady state.

Every step runs under a timeout (`--timeout`; one question under `--question-timeout`), so that a step that
never ends is reported as "no answer in N s" instead of hanging; each step records the machine's load
average before and after. Results go to `--out` (JSON) and a markdown table to stdout (and beside --out).

The Neo4j backend runs its own server (`services/neo4j/start.sh` on `--neo4j-port`, data under --work,
emptied for each cell, stopped afterwards), so no other graph is touched; Neo4j rows also give their
latency as a ratio to the embedded row of the same cell.

    .venv/bin/python eval/bench_scale.py                                   # the whole grid, embedded
    .venv/bin/python eval/bench_scale.py --triples 1000000 --relations 200 --backend both
    .venv/bin/python eval/bench_scale.py --triples 200000 --relations 20 200 --work /tmp/kgqa-scale-small
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

import scalegen
from scalegen import ScaleGraph, ScaleSpec

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the kgqa of this checkout, installed or not (children get it on PYTHONPATH)
NEO4J_DIR = REPO / "services" / "neo4j"
NEO4J_PASSWORD = "kgqa-scale-password"
GROUPS = ("hub", "ordinary")
MAX_WALK_TRIES = 40
GRAPH_CONVENTIONS = "walk_through_topic = false\ntopic_as_answer = false\n"
"""The generated graphs' own settings file: their gold answers follow this convention."""

# ---- running one measured step ------------------------------------------------------------------


@dataclass
class Step:
    """One measured child process: how it ended, how long it took, its peak memory, the machine's load."""

    status: str
    """ok, timeout (no answer in the time allowed) or failed (exit N)."""
    seconds: float
    peak_mb: float
    load_before: float
    load_after: float
    error: str = ""
    stdout: str = field(default="", repr=False)


def run_step(command: list[str], env: dict[str, str], timeout: float, log_stem: Path) -> Step:
    """Run `command` in its own process group; kill it after `timeout` s. stdout/stderr go to log_stem.out/.err.

    Peak memory is the child's own `ru_maxrss` (from wait4), so every step needs a fresh process.
    """
    log_stem.parent.mkdir(parents=True, exist_ok=True)
    out_file, err_file = log_stem.with_suffix(".out"), log_stem.with_suffix(".err")
    load_before = os.getloadavg()[0]
    with out_file.open("wb") as out, err_file.open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=out, stderr=err, start_new_session=True)
        status, usage, timed_out = _wait(proc, started + timeout)
        seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code
    stderr = err_file.read_text(errors="replace").strip().splitlines()
    if timed_out:
        state, error = "timeout", f"no answer in {timeout:g} s"
    elif code != 0:
        state, error = f"failed (exit {code})", stderr[-1] if stderr else ""
    else:
        state, error = "ok", ""
    return Step(state, round(seconds, 3), round(usage.ru_maxrss / 1024, 1), load_before, os.getloadavg()[0],
                error, out_file.read_text(errors="replace"))


def _wait(proc: subprocess.Popen, deadline: float) -> tuple[int, Any, bool]:
    """wait4 the child (for its own rusage), killing its process group at the deadline."""
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            return status, usage, False
        if time.perf_counter() >= deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            _, status, usage = os.wait4(proc.pid, 0)
            return status, usage, True
        time.sleep(0.005)


def kgqa_command() -> list[str]:
    """The `kgqa` console script beside this Python, else `python -m kgqa.cli`."""
    script = Path(sys.executable).parent / "kgqa"
    return [str(script)] if script.exists() else [sys.executable, "-m", "kgqa.cli"]


def child_env(cache_dir: Path, work: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment without the caller's KGQA_* settings or config file: only the cache folder is set,
    and this checkout's kgqa comes first on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KGQA_")}
    config_home = work / "config-empty"
    config_home.mkdir(parents=True, exist_ok=True)
    path = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env | {"KGQA_CACHE_DIR": str(cache_dir), "XDG_CONFIG_HOME": str(config_home),
                  "PYTHONPATH": path} | (extra or {})


# ---- questions with gold answers ----------------------------------------------------------------


class Walker:
    """Walks the generated arrays: random paths from an entity, and the gold answers of a path.

    Steps are kgqa's directed relations: `2r` walks relation r forwards, `2r + 1` backwards. Gold answers
    follow kgqa's rule: a walk of two or more steps never lands on its topic entity.
    """

    def __init__(self, graph: ScaleGraph) -> None:
        n = len(graph.entity_names)
        self.n = n
        rel = graph.relations.astype(np.int64)
        order = np.argsort(rel, kind="stable")
        self.subjects, self.objects = graph.subjects[order], graph.objects[order]
        self.rel_start = np.searchsorted(rel[order], np.arange(len(graph.relation_names) + 1))
        # incidence lists: every triple once from its subject (step 2r) and once from its object (2r + 1)
        source = np.concatenate([graph.subjects, graph.objects])
        by_source = np.argsort(source, kind="stable")
        self.inc_step = np.concatenate([2 * rel, 2 * rel + 1])[by_source]
        self.inc_target = np.concatenate([graph.objects, graph.subjects])[by_source]
        self.inc_start = np.searchsorted(source[by_source], np.arange(n + 1))

    def walk_path(self, rng: np.random.Generator, topic: int, hops: int) -> list[int] | None:
        """A path of `hops` steps that can be walked from `topic` (never straight back, never onto the topic)."""
        for _ in range(MAX_WALK_TRIES):
            node, path = topic, []
            for _ in range(hops):
                lo, hi = self.inc_start[node], self.inc_start[node + 1]
                if hi == lo:
                    break
                i = int(rng.integers(lo, hi))
                step, target = int(self.inc_step[i]), int(self.inc_target[i])
                if (path and step == path[-1] ^ 1) or (hops > 1 and target == topic):
                    break
                path.append(step)
                node = target
            if len(path) == hops:
                return path
        return None

    def gold(self, topic: int, path: list[int]) -> np.ndarray:
        """Sorted entity ids reached from `topic` along `path`."""
        frontier = np.array([topic])
        for step in path:
            r = step // 2
            lo, hi = self.rel_start[r], self.rel_start[r + 1]
            src, dst = (self.subjects, self.objects) if step % 2 == 0 else (self.objects, self.subjects)
            mask = np.zeros(self.n, bool)
            mask[frontier] = True
            frontier = np.unique(dst[lo:hi][mask[src[lo:hi]]])
            if len(path) > 1:
                frontier = frontier[frontier != topic]
        return frontier


def path_text(graph: ScaleGraph, path: list[int]) -> str:
    """kgqa's path syntax: `located_in_region|has_parent_company_inv`."""
    return "|".join(graph.relation_names[s // 2] + ("_inv" if s % 2 else "") for s in path)


def question_text(graph: ScaleGraph, topic: int, path: list[int]) -> str:
    """The path in words around the entity's name: `what is the located in region of the one whose ... is X`."""
    from kgqa.retrieval.paths import relation_words

    phrase = graph.entity_names[topic]
    for step in path:
        words = relation_words(graph.relation_names[step // 2])
        phrase = f"the {words} of {phrase}" if step % 2 == 0 else f"the one whose {words} is {phrase}"
    return f"what is {phrase}"


def topic_candidates(graph: ScaleGraph, group: str, rng: np.random.Generator) -> np.ndarray:
    """Entities to ask about: by degree, highest first (hub), or those of median degree in random order."""
    degrees = graph.degrees
    if group == "hub":
        return np.argsort(-degrees, kind="stable")
    used = np.flatnonzero(degrees > 0)
    median = np.median(degrees[used])
    distance = np.abs(degrees[used] - median) + rng.random(len(used))  # median first, ties in random order
    return used[np.argsort(distance)]


def make_questions(graph: ScaleGraph, per_group: int, seed: int) -> list[dict[str, Any]]:
    """`per_group` questions per group, hops 1, 2, 3, 1, ...; each with its gold answer ids (key `gold`).

    One more ordinary question comes first, marked `warmup`: it is answered untimed.
    """
    rng = np.random.default_rng(seed)
    walker = Walker(graph)
    questions: list[dict[str, Any]] = []
    for group in GROUPS:
        wanted = per_group + (1 if group == "ordinary" else 0)
        made = 0
        for topic in topic_candidates(graph, group, rng)[:50 * wanted].tolist():
            if made == wanted:
                break
            hops = 1 + made % 3
            path = walker.walk_path(rng, topic, hops)
            if path is None:
                continue
            questions.append({"id": f"{group}-{made}", "group": group, "hops": hops,
                              "topic": graph.entity_names[topic], "topic_degree": int(graph.degrees[topic]),
                              "path": path_text(graph, path), "question": question_text(graph, topic, path),
                              "gold": walker.gold(topic, path), "warmup": group == "ordinary" and made == 0})
            made += 1
    return questions


# ---- the ask worker (a child process) -------------------------------------------------------------


class QuestionTimeout(Exception):
    pass


def _on_alarm(signum: int, frame: Any) -> None:
    raise QuestionTimeout


def ask_worker(argv: list[str]) -> None:
    """Child process: build the agent once, answer the questions `--passes` times (the warm-up question once),
    one JSON line per answer, flushed."""
    parser = argparse.ArgumentParser(prog="bench_scale.py ask-worker")
    parser.add_argument("questions", type=Path)
    parser.add_argument("results", type=Path)
    parser.add_argument("--graph", required=True)
    parser.add_argument("--question-timeout", type=float, required=True)
    parser.add_argument("--passes", type=int, default=1)
    args = parser.parse_args(argv)
    from kgqa.agent import Agent
    from kgqa.config import load_settings

    questions = json.loads(args.questions.read_text())
    signal.signal(signal.SIGALRM, _on_alarm)
    with args.results.open("w", encoding="utf-8") as out:
        started = time.perf_counter()
        # the generated gold's convention, for a Neo4j graph too (a server URI has no settings file beside it)
        settings = load_settings(overrides={"graph": args.graph, "cache_dir": os.environ["KGQA_CACHE_DIR"],
                                            "linker": "names", "reranker": "none", "llm": "none",
                                            "walk_through_topic": False, "topic_as_answer": False})
        agent = Agent(settings)
        _write(out, {"agent_build_s": round(time.perf_counter() - started, 3), "settings": settings.to_dict()})
        for pass_ in range(1, args.passes + 1):
            for question in questions:
                if pass_ == 1 or not question["warmup"]:
                    _write(out, answer_one(agent, question, args.question_timeout) | {"pass": pass_})


def answer_one(agent: Any, question: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Time one `agent.answer`, stopped by SIGALRM after `timeout` s."""
    from kgqa.errors import KgqaError

    record: dict[str, Any] = {"id": question["id"]}
    signal.setitimer(signal.ITIMER_REAL, timeout)
    started = time.perf_counter()
    try:
        result = agent.answer(question["question"])
        record.update(status="ok", answers=len(result.answers), top=result.answers[0].name if result.answers else None,
                      entity=result.entity, path=result.path,
                      stages_ms={k: round(v, 1) for k, v in result.timings.items()})
    except QuestionTimeout:
        record.update(status="timeout")
    except KgqaError as exc:
        record.update(status="error", error=str(exc))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    record["ms"] = round((time.perf_counter() - started) * 1000, 2)
    return record


def _write(handle: Any, record: dict[str, Any]) -> None:
    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    handle.flush()


# ---- summarising ------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); inf marks a question that timed out."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def group_summary(questions: list[dict[str, Any]], records: dict[str, dict[str, Any]],
                  name_ids: dict[str, int]) -> dict[str, Any]:
    """Latency, answer rate, Hits@1, topic and path accuracy of one group. A question that timed out, failed or
    was not reached (the step ran out of time) counts as a miss, and as slower than any answered one."""
    done = [(q, records[q["id"]]) for q in questions if q["id"] in records]
    latencies = [records[q["id"]]["ms"] if records.get(q["id"], {}).get("status") == "ok" else math.inf
                 for q in questions]
    ok = [(q, r) for q, r in done if r["status"] == "ok"]
    hits = sum(1 for q, r in ok if r["top"] is not None and _in(q["gold"], name_ids.get(r["top"], -1)))
    summary: dict[str, Any] = {"questions": len(questions), "finished": len(done),
                               "timeouts": sum(r["status"] == "timeout" for _, r in done),
                               "errors": sum(r["status"] == "error" for _, r in done),
                               "answered": sum(1 for _, r in ok if r["answers"]),
                               "hits1": round(100 * hits / len(questions), 1) if questions else None,
                               "topic_acc": round(100 * sum(r["entity"] == q["topic"] for q, r in ok) / len(questions), 1),
                               "path_acc": round(100 * sum(r["path"] == q["path"] for q, r in ok) / len(questions), 1),
                               "mean_topic_degree": round(float(np.mean([q["topic_degree"] for q in questions])), 1),
                               "stage_ms_mean": stage_means([r for _, r in ok])}
    for q in (50, 95):
        value = percentile(latencies, q) if latencies else math.inf
        summary[f"p{q}_ms"] = None if math.isinf(value) else round(value, 1)
    return summary


def stage_means(records: list[dict[str, Any]]) -> dict[str, float]:
    """Mean milliseconds per agent stage (link, retrieve, expand, ...) over the answered questions."""
    stages = sorted({k for r in records for k in r.get("stages_ms", {})})
    return {k: round(float(np.mean([r["stages_ms"].get(k, 0.0) for r in records])), 1) for k in stages}


def _in(sorted_ids: np.ndarray, i: int) -> bool:
    position = np.searchsorted(sorted_ids, i)
    return bool(position < len(sorted_ids) and sorted_ids[position] == i)


# ---- one cell of the grid, per backend ---------------------------------------------------------------


@dataclass
class Cell:
    """A generated graph and its questions, shared by the backends."""

    spec: ScaleSpec
    file: Path
    graph: ScaleGraph
    questions: list[dict[str, Any]]
    info: dict[str, Any]

    @cached_property
    def name_ids(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.graph.entity_names)}


def prepare_cell(spec: ScaleSpec, work: Path, per_group: int) -> Cell:
    """Generate (or reuse) the cell's triples file and write its questions."""
    started = time.perf_counter()
    file = work / "graphs" / f"{spec.name}.txt"
    graph, written = scalegen.ensure_file(spec, file)
    # the generated gold never lets a multi-step walk come back to its topic: the graph says so to kgqa
    file.with_name(file.name + ".kgqa.toml").write_text(GRAPH_CONVENTIONS)
    generated = time.perf_counter()
    questions = make_questions(graph, per_group, spec.seed)
    info = {"file": str(file), "written": written, "generate_s": round(generated - started, 2),
            "questions_s": round(time.perf_counter() - generated, 2), "summary": graph.summary()}
    return Cell(spec, file, graph, questions, info)


def step_record(step: Step) -> dict[str, Any]:
    return {k: v for k, v in asdict(step).items() if k != "stdout"}


def measure_backend(cell: Cell, backend: str, args: argparse.Namespace) -> dict[str, Any]:
    """Load, start and ask on one backend; a step that fails or times out skips the ones that need it."""
    run_dir = args.work / "runs" / cell.spec.name / backend
    cache = run_dir / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    extra = {"KGQA_NEO4J_PASSWORD": NEO4J_PASSWORD} if backend == "neo4j" else {}
    env = child_env(cache, args.work, extra)
    graph_arg = f"bolt://127.0.0.1:{args.neo4j_port}" if backend == "neo4j" else str(cell.file)
    row: dict[str, Any] = {"triples": cell.spec.triples, "relations": cell.spec.relations, "backend": backend,
                           "graph": cell.info}
    load_cmd = [*kgqa_command(), "kg", "load", str(cell.file), "--json"]
    if backend == "neo4j":
        load_cmd += ["--graph", graph_arg]
    load = run_step(load_cmd, env, args.timeout, run_dir / "load")
    row["load"] = step_record(load) | loaded_counts(load)
    if load.status != "ok":
        return row
    row["load"]["triples_per_s"] = round(cell.spec.triples / load.seconds)
    row["load"]["all_triples_loaded"] = row["load"].get("triples") == cell.spec.triples
    start = run_step([*kgqa_command(), "kg", "stats", "--graph", graph_arg, "--json"], env, args.timeout,
                     run_dir / "start")
    row["start"] = step_record(start)
    row["ask"] = measure_ask(cell, graph_arg, env, run_dir, args)
    return row


def loaded_counts(step: Step) -> dict[str, Any]:
    """Entities, triples and relations the load reported (its --json output)."""
    try:
        stats = json.loads(step.stdout)
    except json.JSONDecodeError:
        return {}
    return {k: stats[k] for k in ("entities", "triples", "relations") if k in stats}


def measure_ask(cell: Cell, graph_arg: str, env: dict[str, str], run_dir: Path,
                args: argparse.Namespace) -> dict[str, Any]:
    """The ask worker over the cell's questions; per-group summaries from whatever it finished."""
    questions_file, results_file = run_dir / "questions.json", run_dir / "answers.jsonl"
    timed = [q for q in cell.questions if not q["warmup"]]
    ordered = [q for q in cell.questions if q["warmup"]] + timed
    questions_file.write_text(json.dumps([{k: v for k, v in q.items() if k != "gold"} for q in ordered], indent=1))
    command = [sys.executable, str(Path(__file__).resolve()), "ask-worker", str(questions_file), str(results_file),
               "--graph", graph_arg, "--question-timeout", str(args.question_timeout), "--passes", str(args.passes)]
    step = run_step(command, env, args.timeout, run_dir / "ask")
    lines = [json.loads(line) for line in results_file.read_text().splitlines()] if results_file.exists() else []
    header = lines[0] if lines and "agent_build_s" in lines[0] else {}
    by_pass: dict[int, dict[str, dict[str, Any]]] = {p: {} for p in range(1, args.passes + 1)}
    for record in lines[1:]:
        by_pass[record["pass"]][record["id"]] = record
    warmup = by_pass[1].pop(ordered[0]["id"], None) if ordered and ordered[0]["warmup"] else None
    name_ids = cell.name_ids
    passes = [{g: group_summary([q for q in timed if q["group"] == g], records, name_ids) for g in GROUPS}
              for records in by_pass.values()]
    return step_record(step) | {
        "agent_build_s": header.get("agent_build_s"), "warmup_ms": warmup["ms"] if warmup else None,
        "settings": header.get("settings"), "groups": passes[0], "groups_later_passes": passes[1:]}


# ---- the Neo4j server of the benchmark --------------------------------------------------------------


def neo4j_env(args: argparse.Namespace) -> dict[str, str]:
    return os.environ | {"NEO4J_PORT": str(args.neo4j_port), "NEO4J_DATA": str(args.work / "neo4j-data"),
                         "NEO4J_PASSWORD": NEO4J_PASSWORD, "NEO4J_HEAP": args.neo4j_heap,
                         "NEO4J_PAGECACHE_MB": str(args.neo4j_pagecache_mb), "NEO4J_PYTHON": sys.executable}


def neo4j_start(args: argparse.Namespace) -> None:
    """A fresh server: stop any earlier one on the port, empty its data folder, start it."""
    neo4j_stop(args)
    shutil.rmtree(args.work / "neo4j-data", ignore_errors=True)
    subprocess.run(["bash", str(NEO4J_DIR / "start.sh")], env=neo4j_env(args), check=True, stdout=subprocess.DEVNULL)


def neo4j_peak_mb(args: argparse.Namespace) -> float | None:
    """The server's peak resident memory (VmHWM), while it runs."""
    try:
        pid = (NEO4J_DIR / f"neo4j-{args.neo4j_port}.pid").read_text().strip()
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError):
        pass
    return None


def neo4j_stop(args: argparse.Namespace) -> None:
    subprocess.run(["bash", str(NEO4J_DIR / "stop.sh")], env=neo4j_env(args), check=True, stdout=subprocess.DEVNULL)


def measure_neo4j(cell: Cell, args: argparse.Namespace) -> dict[str, Any]:
    """The Neo4j row of a cell, on a fresh server that is stopped afterwards (also when it failed to start)."""
    try:
        neo4j_start(args)
        return measure_backend(cell, "neo4j", args) | {"server_peak_mb": neo4j_peak_mb(args)}
    except subprocess.CalledProcessError as exc:
        return {"triples": cell.spec.triples, "relations": cell.spec.relations, "backend": "neo4j",
                "graph": cell.info, "error": f"the Neo4j server did not start ({exc})"}
    finally:
        neo4j_stop(args)


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """Neo4j rows: p50 and p95 latency per group divided by the embedded row's of the same cell, for the
    first pass (`first`) and the last (`again`, the steady state, where the store's share is largest)."""
    embedded = {(r["triples"], r["relations"]): r for r in rows if r["backend"] == "embedded"}
    for row in rows:
        base = embedded.get((row["triples"], row["relations"]))
        if row["backend"] != "neo4j" or base is None or "ask" not in row or "ask" not in base:
            continue
        row["ratio_to_embedded"] = {
            name: {f"{g}_{p}": _ratio(mine[g][p], theirs[g][p]) for g in GROUPS for p in ("p50_ms", "p95_ms")}
            for name, mine, theirs in (("first", row["ask"]["groups"], base["ask"]["groups"]),
                                       ("again", _last_pass(row["ask"]), _last_pass(base["ask"])))}


def _last_pass(ask: dict[str, Any]) -> dict[str, Any]:
    return (ask["groups_later_passes"] or [ask["groups"]])[-1]


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


# ---- the table ---------------------------------------------------------------------------------------

COLUMNS = ("triples", "relations", "backend", "load", "triples/s", "load peak MB", "start", "start peak MB",
           "agent build s", "hub p50 / p95 ms", "hub answered", "hub Hits@1", "ordinary p50 / p95 ms",
           "ordinary answered", "ordinary Hits@1", "asked again: p50 ms (hub / ord.)", "again vs embedded: p50 (hub / ord.)",
           "load avg")


def _seconds(step: dict[str, Any] | None) -> str:
    if step is None:
        return "–"
    return f"{step['seconds']:.1f} s" if step["status"] == "ok" else step["error"] or step["status"]


def _latency(group: dict[str, Any]) -> str:
    def show(value: float | None) -> str:
        return "timeout" if value is None else f"{value:,.0f}"

    notes = [f"{group['timeouts']} timed out"] if group["timeouts"] else []
    if group["finished"] < group["questions"]:
        notes.append(f"{group['questions'] - group['finished']} not reached")
    text = f"{show(group['p50_ms'])} / {show(group['p95_ms'])}"
    return text + (f" ({', '.join(notes)})" if notes else "")


def _p50(group: dict[str, Any]) -> str:
    return "timeout" if group["p50_ms"] is None else f"{group['p50_ms']:,.0f}"


def markdown_row(row: dict[str, Any]) -> list[str]:
    load, start, ask = row.get("load"), row.get("start"), row.get("ask")
    cells = [f"{row['triples']:,}", f"{row['relations']:,}", row["backend"], _seconds(load) if load else row["error"],
             f"{load['triples_per_s']:,}" if load and "triples_per_s" in load else "–",
             f"{load['peak_mb']:,.0f}" if load else "–", _seconds(start),
             f"{start['peak_mb']:,.0f}" if start else "–"]
    if ask is None:
        cells += ["–"] * 8
    else:
        build = ask["agent_build_s"]
        cells.append(f"{build:.1f}" if build is not None else ask["error"] or ask["status"])
        for g in GROUPS:
            group = ask["groups"][g]
            cells += [_latency(group), f"{group['answered']}/{group['questions']}", f"{group['hits1']}"]
        later = ask["groups_later_passes"]
        cells.append(" / ".join(_p50(later[-1][g]) for g in GROUPS) if later else "–")
    ratios = row.get("ratio_to_embedded")
    cells.append(f"{ratios['again']['hub_p50_ms']} / {ratios['again']['ordinary_p50_ms']}" if ratios else "–")
    loads = [s[k] for s in (load, start, ask) if s for k in ("load_before", "load_after")]
    cells.append(f"{min(loads):.1f}–{max(loads):.1f}" if loads else "–")
    return cells


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(markdown_row(row)) + " |" for row in rows]
    return "\n".join(lines) + "\n"


# ---- main --------------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--triples", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--relations", type=int, nargs="+", default=[20, 200, 2000])
    parser.add_argument("--backend", choices=("embedded", "neo4j", "both"), default="embedded")
    parser.add_argument("--skew", type=float, default=ScaleSpec.skew, help="Zipf exponent of object choice")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--questions", type=int, default=20, help="timed questions per group (hub, ordinary)")
    parser.add_argument("--passes", type=int, default=2,
                        help="times each question is asked (the first meets paths the agent has not embedded yet)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds one step (load, start, ask) may take")
    parser.add_argument("--question-timeout", type=float, default=120, help="seconds one question may take")
    parser.add_argument("--work", type=Path, default=Path("/tmp/kgqa-scale"), help="graphs, caches and logs")
    parser.add_argument("--out", type=Path, default=None, help="results JSON (default: WORK/scale.json)")
    parser.add_argument("--neo4j-port", type=int, default=7688, help="Bolt port of the benchmark's own server")
    parser.add_argument("--neo4j-heap", default="4g")
    parser.add_argument("--neo4j-pagecache-mb", type=int, default=2048)
    args = parser.parse_args(argv)
    args.work = args.work.resolve()
    args.out = args.out or args.work / "scale.json"
    return args


def run_grid(args: argparse.Namespace) -> list[dict[str, Any]]:
    backends = ("embedded", "neo4j") if args.backend == "both" else (args.backend,)
    rows: list[dict[str, Any]] = []
    for triples in args.triples:
        for relations in args.relations:
            cell = prepare_cell(ScaleSpec(triples, relations, skew=args.skew, seed=args.seed), args.work,
                                args.questions)
            print(f"{cell.spec.name}: {cell.info['summary']}", file=sys.stderr)
            for backend in backends:
                rows.append(measure_neo4j(cell, args) if backend == "neo4j" else measure_backend(cell, backend, args))
                add_ratios(rows)
                print(markdown_table(rows[-1:]).splitlines()[-1], file=sys.stderr)
                write_report(args, rows)
    return rows


def write_report(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    """The JSON report and the markdown table beside it, rewritten after every row."""
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"command": "python eval/bench_scale.py " + " ".join(sys.argv[1:]), "cpus": os.cpu_count(),
              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "rows": rows}
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    args.out.with_suffix(".md").write_text(markdown_table(rows))


def main(argv: list[str]) -> None:
    if argv[:1] == ["ask-worker"]:
        ask_worker(argv[1:])
        return
    args = parse_args(argv)
    rows = run_grid(args)
    print(markdown_table(rows))
    print(f"report: {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
