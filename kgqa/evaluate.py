"""Metrics and the benchmark runner. Which files and metrics a benchmark has lives in eval/benchmarks/."""

from __future__ import annotations

import difflib
import json
import math
import os
import platform
import re
import time
import tomllib
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kgqa.config import BUNDLED_GRAPH
from kgqa.errors import InputError
from kgqa.questions import MARKS, Example, parse_marked
from kgqa.types import Result

# ---- metrics ---------------------------------------------------------------------------------


def answer_metrics(predicted: list[str], gold: Collection[str]) -> dict[str, float]:
    """Hits@1 of the ranked answers, and precision/recall/F1/exact match of the answer set."""
    pred, gold = set(predicted), set(gold)
    hit = float(bool(predicted) and predicted[0] in gold)
    overlap = len(pred & gold)
    precision = overlap / len(pred) if pred else 0.0
    recall = overlap / len(gold) if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if overlap else 0.0
    return {"hits@1": hit, "precision": precision, "recall": recall, "f1": f1,
            "exact_match": float(pred == gold)}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = math.ceil(q / 100 * len(ordered))
    return ordered[max(0, min(len(ordered), rank) - 1)]


# ---- benchmark definition --------------------------------------------------------------------

COLUMNS = ("question", "answers", "path", "topic")
"""The TSV columns a benchmark file can name; `id` and names starting with `_` are read and ignored."""

DEFAULT_COLUMNS = ("question", "answers", "path")
"""Without `columns`: question<TAB>answers, and a gold path where a row has a third field."""

METRICS = ("hits@1", "precision", "recall", "f1", "exact_match", "topic_accuracy", "path_accuracy")

ONE_GROUP = "all"
"""The name of the one group of questions of a benchmark without `hops`."""

BENCHMARK_KEYS = {"name": "a string", "description": "a string", "data_dir": "a string (a folder)",
                  "graph": "a string (metaqa, a triples file or a neo4j:// URI)",
                  "hops": "a list of hop counts, e.g. [1, 2, 3]",
                  "splits": 'a table of split names and files, e.g. { test = "test.tsv" }',
                  "columns": 'a list of column names, e.g. ["question", "answers"]',
                  "answer_separator": "a non-empty string", "topic_marker": 'two strings, e.g. ["[", "]"], or []',
                  "metrics": f"a list of metric names ({', '.join(METRICS)})",
                  "latency_sample": "a whole number, 0 or more",
                  "paraphrases": 'a table of split names and files of paraphrases, e.g. { dev = "dev_paraphrased.tsv" }',
                  "format": '"questions" (a question a line) or "dialogues" (JSONL, a dialogue a line: kgqa.dialogue_eval)'}


@dataclass
class Benchmark:
    """A benchmark file (eval/benchmarks/*.toml or any .toml): where its questions are and how to read them."""

    name: str
    description: str
    data_dir: Path
    hops: list[int | str]
    """The hop counts whose questions are kept apart; [ONE_GROUP] for a benchmark without `hops`."""
    splits: dict[str, str]
    answer_separator: str
    topic_marker: tuple[str, str] | None
    """None: questions are taken as written."""
    metrics: list[str]
    latency_sample: int
    columns: tuple[str, ...] = DEFAULT_COLUMNS
    min_fields: int = 2
    """Fields a row must have: every named column, or question and answers for the default columns."""
    graph: str | None = None
    """The graph the questions are about (`metaqa`, a triples file made absolute, or a URI), if named."""
    file: Path | None = None
    paraphrases: dict[str, str] = field(default_factory=dict)
    """Per split, a file of `question<TAB>answers` lines, each another wording of the split's question on the
    same line (training data only: `paraphrase_pairs`)."""
    format: str = "questions"
    """"dialogues": each split is a JSONL file of dialogues, asked turn by turn (kgqa.dialogue_eval)."""

    @property
    def grouped_by_hop(self) -> bool:
        return self.hops != [ONE_GROUP]

    @classmethod
    def load(cls, name_or_file: str, data_dir: str | None = None) -> "Benchmark":
        file = find_benchmark(name_or_file)
        try:
            spec = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"{file}: not valid TOML ({exc})") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{file}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
        return cls.from_spec(spec, file, data_dir)

    @classmethod
    def from_spec(cls, spec: dict[str, Any], file: Path, data_dir: str | None = None) -> "Benchmark":
        def bad(key: str, why: str = "") -> InputError:
            return InputError(f"{file}: {key} {why or 'must be ' + BENCHMARK_KEYS[key]}")

        unknown = sorted(set(spec) - set(BENCHMARK_KEYS))
        if unknown:
            close = difflib.get_close_matches(unknown[0], BENCHMARK_KEYS, n=1)
            raise InputError(f"{file}: unknown key {unknown[0]!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                             + f"; the keys are {', '.join(BENCHMARK_KEYS)}")
        for key in ("name", "description", "data_dir", "graph", "answer_separator"):
            if key in spec and not (isinstance(spec[key], str) and (spec[key] or key == "description")):
                raise bad(key)
        name = spec.get("name", file.stem)
        if "splits" not in spec:
            raise bad("splits", 'is missing: name the question file of each split, e.g. splits = { test = "test.tsv" }')
        splits = spec["splits"]
        if not (isinstance(splits, dict) and splits and all(isinstance(v, str) and v for v in splits.values())):
            raise bad("splits")
        hops: list[int | str] = [ONE_GROUP]
        if "hops" in spec:
            raw = spec["hops"]
            if not (isinstance(raw, list) and raw and all(type(h) is int and h > 0 for h in raw)
                    and len(set(raw)) == len(raw)):
                raise bad("hops")
            hops = list(raw)
        for split, pattern in splits.items():
            if ("{hop}" in pattern) != ("hops" in spec):
                raise bad("splits", f"{split} = {pattern!r}: " + (
                    "with hops, each file name needs {hop} (e.g. \"{hop}hop/test.tsv\")" if "hops" in spec
                    else "uses {hop}, but the benchmark has no hops"))
        columns = spec.get("columns", DEFAULT_COLUMNS)
        if not (isinstance(columns, list | tuple) and all(isinstance(c, str) for c in columns)):
            raise bad("columns")
        for column in columns:
            if column not in COLUMNS and column != "id" and not column.startswith("_"):
                close = difflib.get_close_matches(column, COLUMNS, n=1)
                raise bad("columns", f"names an unknown column {column!r}" + (
                    f" (did you mean {close[0]!r}?)" if close else "") + f"; the columns read are "
                    f"{', '.join(COLUMNS)}; name a column to skip id, _ or _anything")
        for column in COLUMNS:
            if list(columns).count(column) > 1:
                raise bad("columns", f"names {column!r} twice")
        for column in ("question", "answers"):
            if column not in columns:
                raise bad("columns", f"needs a {column!r} column")
        marker = spec.get("topic_marker", list(MARKS))
        if not (isinstance(marker, list) and (marker == [] or (
                len(marker) == 2 and all(isinstance(m, str) and m for m in marker) and marker[0] != marker[1]))):
            raise bad("topic_marker")
        metrics = spec.get("metrics", list(METRICS))
        if not (isinstance(metrics, list) and all(isinstance(m, str) for m in metrics)):
            raise bad("metrics")
        unknown_metrics = [m for m in metrics if m not in METRICS]
        if unknown_metrics:
            raise bad("metrics", f"names an unknown metric {unknown_metrics[0]!r}; the metrics are {', '.join(METRICS)}")
        latency = spec.get("latency_sample", 100)
        if type(latency) is not int or latency < 0:
            raise bad("latency_sample")
        env_dir = os.environ.get(f"KGQA_{re.sub(r'[^A-Z0-9]', '_', name.upper())}_DIR")
        folder = Path(data_dir or env_dir or (file.parent / Path(spec.get("data_dir", ".")).expanduser())).resolve()
        graph = spec.get("graph")
        if graph is not None and graph != BUNDLED_GRAPH and "://" not in graph:
            graph = str((file.parent / Path(graph).expanduser()).resolve())
        paraphrases = spec.get("paraphrases", {})
        if not (isinstance(paraphrases, dict) and all(isinstance(v, str) and v for v in paraphrases.values())):
            raise bad("paraphrases")
        unknown_splits = sorted(set(paraphrases) - set(splits))
        if unknown_splits:
            raise bad("paraphrases", f"names split {unknown_splits[0]!r}, which splits does not have")
        form = spec.get("format", "questions")
        if form not in ("questions", "dialogues"):
            raise bad("format")
        if form == "dialogues" and "hops" in spec:
            raise bad("hops", "does not go with format = \"dialogues\" (a dialogue's turns are of any kind)")
        return cls(name, spec.get("description", ""), folder, hops, dict(splits), spec.get("answer_separator", "|"),
                   tuple(marker) if marker else None, list(metrics), latency, tuple(columns),
                   len(columns) if "columns" in spec else 2, graph, file, dict(paraphrases), form)

    def graph_to_answer_over(self) -> str | None:
        """The benchmark's own graph for `kgqa eval` (when --graph is not given), checked to exist."""
        if self.graph is not None and self.graph != BUNDLED_GRAPH and "://" not in self.graph \
                and not Path(self.graph).exists():
            raise InputError(f"{self.file}: graph {self.graph} not found (give --graph, or fix the graph key; "
                             "a relative path is read from the benchmark file's folder)")
        return self.graph

    def split_file(self, hop: int | str, split: str) -> Path:
        if split not in self.splits:
            raise InputError(f"benchmark {self.name} has no split {split!r}; it has {', '.join(self.splits)}")
        return self.data_dir / self.splits[split].replace("{hop}", str(hop))

    def examples(self, hop: int | str, split: str, limit: int | None = None) -> list[Example]:
        file = self.split_file(hop, split)
        if not file.is_file():
            where = f"split {split!r} of {self.file}" if self.file else f"split {split!r}"
            raise InputError(f"{file} not found ({where}): point --data (or "
                             f"KGQA_{re.sub(r'[^A-Z0-9]', '_', self.name.upper())}_DIR) at the data folder")
        examples = []
        try:
            with file.open(encoding="utf-8") as handle:
                for line_no, line in enumerate(handle, start=1):
                    if limit is not None and len(examples) >= limit:
                        break
                    line = line.rstrip("\r\n")
                    if not line.strip():
                        continue
                    examples.append(self._example(line.split("\t"), file, line_no))
        except UnicodeDecodeError as exc:
            raise InputError(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        if not examples and limit != 0:
            raise InputError(f"{file} holds no questions (split {split!r} of benchmark {self.name})")
        return examples

    def paraphrase_pairs(self, hop: int | str, split: str) -> list[tuple[Example, Example]]:
        """(question, paraphrase) for each line of the split's paraphrase file (none when the benchmark or
        this hop has no such file); a paraphrase takes its question's path, and its topic unless it marks one."""
        pattern = self.paraphrases.get(split)
        file = self.data_dir / pattern.replace("{hop}", str(hop)) if pattern else None
        if file is None or not file.is_file():
            return []
        originals = self.examples(hop, split)
        reader = replace(self, columns=("question", "answers"), min_fields=2)
        pairs = []
        with file.open(encoding="utf-8") as handle:
            lines = [line.rstrip("\r\n") for line in handle]
        if len(lines) != len(originals):
            raise InputError(f"{file}: {len(lines)} lines, but split {split!r} has {len(originals)} questions "
                             "(a paraphrase file has one line per question, in the same order)")
        for line_no, (line, original) in enumerate(zip(lines, originals), start=1):
            wording = reader._example(line.split("\t"), file, line_no)
            pairs.append((original, Example(wording.question, wording.topic or original.topic, original.path,
                                            wording.answers, "paraphrase")))
        return pairs

    def _example(self, parts: list[str], file: Path, line_no: int) -> Example:
        if len(parts) < self.min_fields:
            expected = "<TAB>".join(self.columns[:self.min_fields])
            raise InputError(f"{file}, line {line_no}: {len(parts)} field{'s' if len(parts) != 1 else ''} "
                             f"separated by tabs, expected {expected}")
        fields = dict(zip(self.columns, parts))
        question, topic = fields["question"], fields.get("topic", "").strip()
        if self.topic_marker is not None and any(m in question for m in self.topic_marker):
            marked = parse_marked(question, self.topic_marker)
            if marked is None:
                raise InputError(f"{file}, line {line_no}: the topic marks {' '.join(self.topic_marker)} do not "
                                 "pair up (set topic_marker = [] to take questions as written)")
            question, topic = marked.text, topic or marked.topic
        question = question.strip()
        if not question:
            raise InputError(f"{file}, line {line_no}: the question is empty")
        answers = tuple(sorted(set(a for a in fields["answers"].split(self.answer_separator) if a)))
        if not answers:
            raise InputError(f"{file}, line {line_no}: no answers")
        return Example(question, topic, fields.get("path", "").strip(), answers)


def find_benchmark(name_or_file: str) -> Path:
    """A benchmark file given by its path (anywhere), or NAME: eval/benchmarks/NAME.toml in the cwd or this checkout."""
    candidate = Path(name_or_file).expanduser()
    if candidate.suffix == ".toml" or len(candidate.parts) > 1:
        if not candidate.is_file():
            raise InputError(f"benchmark file {name_or_file} not found" if not candidate.exists()
                             else f"benchmark file {name_or_file} is not a file")
        return candidate.resolve()
    for root in (Path.cwd(), Path(__file__).resolve().parent.parent):
        file = root / "eval" / "benchmarks" / f"{name_or_file}.toml"
        if file.is_file():
            return file.resolve()
    raise InputError(f"no benchmark named {name_or_file!r} (looked for eval/benchmarks/{name_or_file}.toml; "
                     "or give the path of a .toml file)")


# ---- runner ----------------------------------------------------------------------------------


def evaluate_hop(answer_batch: Callable[[list[str], list[str | None] | None], list[Result]],
                 examples: list[Example], gold_entities: bool, chunk_size: int,
                 on_progress: Callable[[int], None] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Answer every example in chunks; return the hop's aggregate metrics and per-question rows."""
    totals: dict[str, float] = {}
    counted: dict[str, int] = {}
    rows = []
    stage_ms: dict[str, float] = {}
    llm = {"llm_calls": 0.0, "prompt_tokens": 0.0, "completion_tokens": 0.0}
    started = time.perf_counter()
    for start in range(0, len(examples), chunk_size):
        chunk = examples[start:start + chunk_size]
        topics = [e.topic for e in chunk] if gold_entities else None
        results = answer_batch([e.question for e in chunk], topics)
        for example, result in zip(chunk, results):
            scores = answer_metrics(result.answer_names, example.answers)
            # stage accuracies count only the questions whose gold topic / path the benchmark gives
            scores["topic_accuracy"] = float(result.entity == example.topic) if example.topic else None
            scores["path_accuracy"] = float(result.path == example.path) if example.path else None
            for key, value in scores.items():
                totals.setdefault(key, 0.0)
                if value is not None:
                    totals[key] += value
                    counted[key] = counted.get(key, 0) + 1
            for key, value in result.timings.items():
                stage_ms[key] = stage_ms.get(key, 0.0) + value
            for key in llm:
                llm[key] += getattr(result, key)
            rows.append({"question": example.question, "gold": sorted(example.answers), "topic": example.topic or None,
                         "gold_path": example.path or None, "entity": result.entity, "path": result.path,
                         "answers": result.answer_names[:20], **{k: scores[k] for k in ("hits@1", "f1")},
                         "path_scores": [c["score"] for c in result.path_candidates[:2]],
                         **({"llm_calls": result.llm_calls} if result.llm_calls else {})})
        if on_progress:
            on_progress(len(chunk))
    elapsed = time.perf_counter() - started
    n = max(len(examples), 1)
    metrics: dict[str, Any] = {key: round(100 * value / counted[key], 2) for key, value in totals.items()
                               if counted.get(key)}  # no gold topic (path) at all: no topic (path) accuracy
    for key, gold in (("topic_accuracy", "topic_questions"), ("path_accuracy", "path_questions")):
        if 0 < counted.get(key, 0) < len(examples):
            metrics[gold] = counted[key]  # the accuracy is over this many questions, those with gold
    return {"questions": len(examples), **metrics,
            "throughput_qps": round(len(examples) / elapsed, 1) if elapsed else 0.0, "seconds": round(elapsed, 1),
            "stage_ms_mean": {k: round(v / n, 3) for k, v in stage_ms.items()},
            "per_question_mean": {k: round(v / n, 3) for k, v in llm.items()}}, rows


def measure_latency(answer_one: Callable[[str, str | None], Result], examples: list[Example],
                    gold_entities: bool) -> dict[str, float]:
    """p50/p95 of answering single questions one at a time, as chat does."""
    times = []
    for example in examples:
        started = time.perf_counter()
        answer_one(example.question, example.topic if gold_entities else None)
        times.append((time.perf_counter() - started) * 1000)
    return {"latency_p50_ms": round(percentile(times, 50), 2), "latency_p95_ms": round(percentile(times, 95), 2),
            "latency_sample": len(times)}


def environment() -> dict[str, Any]:
    return {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S")}


def write_report(report: dict[str, Any], rows: list[dict[str, Any]], out_dir: Path) -> tuple[Path, Path]:
    """report.json, predictions.jsonl and summary.md in `out_dir`, all at once."""
    _make_dir(out_dir)
    with (out_dir / "predictions.jsonl").open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return _write_summary(report, out_dir)


# ---- a run written hop by hop, and resumed -------------------------------------------------------------

RUN_OPTIONS = ("benchmark", "split", "gold_entities", "limit", "settings")
"""What must be the same for --resume to add hops to an earlier report."""


def _make_dir(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {out_dir}: cannot create the folder ({exc.strerror})") from None
    if not out_dir.is_dir():
        raise InputError(f"--out {out_dir} is not a folder")


def _replace(path: Path, text: str) -> None:
    """Write `text` to `path` atomically: a kill leaves the old file or the new one, never half of one."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _write_summary(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    json_file, md_file = out_dir / "report.json", out_dir / "summary.md"
    _replace(json_file, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    _replace(md_file, markdown_summary(report))
    return json_file, md_file


def _plain(value: Any) -> Any:
    """`value` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(value))


def _difference(key: str, before: Any, now: Any) -> str:
    if isinstance(before, dict) and isinstance(now, dict):
        changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
        if changed:
            k = changed[0]
            return f"setting {k} was {before.get(k)!r}, now {now.get(k)!r}"
    return f"{key} was {before!r}, now {now!r}"


def open_run(out_dir: Path, report: dict[str, Any], resume: bool) -> tuple[dict[str, Any], str | None]:
    """The report this run fills in, and a note for the user.

    Without `resume`, a folder that already holds a report is refused. With it, the earlier report's
    finished hops are kept (with their predictions; rows of a hop that did not finish are dropped), when it
    was made with the same options; a folder without a report starts a new run."""
    _make_dir(out_dir)
    file, predictions = out_dir / "report.json", out_dir / "predictions.jsonl"
    if file.exists() and not resume:
        raise InputError(f"{out_dir} already holds an eval report: pass --resume to continue it, "
                         "or choose another --out")
    if not file.exists():
        predictions.write_text("", encoding="utf-8")  # rows of a hop that never finished, if any
        note = f"{file} does not exist yet: starting from the first hop" if resume else None
        return report, note
    try:
        earlier = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{file} is not a kgqa eval report ({exc}): choose another --out") from None
    if not isinstance(earlier, dict) or not isinstance(earlier.get("hops"), dict):
        raise InputError(f"{file} is not a kgqa eval report (no 'hops'): choose another --out")
    for key in RUN_OPTIONS:
        if _plain(earlier.get(key)) != _plain(report[key]):
            raise InputError(f"{file} was made with other options ({_difference(key, earlier.get(key), report[key])}): "
                             "resume with the same options, or choose another --out")
    finished = set(earlier["hops"])
    _keep_rows(predictions, finished)
    resumed = [*earlier.get("resumed", []), {"command": report["command"], "date": report["environment"]["date"]}]
    note = (f"continuing {file}: hops {', '.join(sorted(finished, key=_hop_order))} already done" if finished else None)
    return {**earlier, "resumed": resumed}, note


def _keep_rows(predictions: Path, hops: set[str]) -> None:
    """Keep the prediction rows of finished hops only (a kill may have cut a hop's rows short)."""
    if not predictions.exists():
        if hops:
            raise InputError(f"{predictions} is missing, but {predictions.parent / 'report.json'} has hops "
                             f"{', '.join(sorted(hops))}: choose another --out")
        return
    kept = []
    for raw in predictions.read_bytes().split(b"\n"):
        try:
            row = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue  # a row cut by a kill, or a blank line
        if isinstance(row, dict) and str(row.get("hop")) in hops:
            kept.append(raw.decode("utf-8") + "\n")
    _replace(predictions, "".join(kept))


def write_hop(out_dir: Path, report: dict[str, Any], hop: int, metrics: dict[str, Any],
              rows: list[dict[str, Any]]) -> tuple[Path, Path]:
    """Add one finished hop: its prediction rows (appended, on disk first), then report.json and summary.md."""
    with (out_dir / "predictions.jsonl").open("a", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps({"hop": hop, **row}, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    report["hops"][str(hop)] = metrics
    report["hops"] = dict(sorted(report["hops"].items(), key=lambda item: _hop_order(item[0])))
    return _write_summary(report, out_dir)


def _hop_order(hop: str) -> tuple[int, int | str]:
    """Hops in numeric order; a group that is not a hop count (`all`) after them."""
    return (0, int(hop)) if hop.isdigit() else (1, hop)


def markdown_summary(report: dict[str, Any]) -> str:
    hops = report["hops"]
    columns = ["hits@1", "f1", "precision", "recall", "exact_match", "topic_accuracy", "path_accuracy",
               "throughput_qps", "latency_p50_ms", "latency_p95_ms"]
    lines = [f"# {report['benchmark']} — split {report['split']}"
             f"{' (gold topic entities)' if report['gold_entities'] else ''}", "",
             f"Command: `{report['command']}`", "",
             "| hop | questions | " + " | ".join(columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    for hop, values in hops.items():
        lines.append(f"| {hop} | {values['questions']} | " + " | ".join(str(values.get(c, "—")) for c in columns) + " |")
    gold_notes = [note for hop, values in hops.items() for note in _gold_notes(hop, values)]
    if gold_notes:
        lines += ["", "Stage accuracies count only the questions whose gold topic or path the benchmark gives ("
                  "—: none): " + "; ".join(gold_notes) + "."]
    seconds = [values["seconds"] for values in hops.values() if "seconds" in values]
    if seconds:
        lines += ["", f"Answering took {sum(seconds):.0f} s in all ({' + '.join(f'{x:.0f}' for x in seconds)} s per hop; "
                      "batched, without model loading and the one-at-a-time latency sample)."]
    lines += ["", "Mean stage time per question (ms, batched): " + "; ".join(
        f"hop {hop}: " + ", ".join(f"{k} {v}" for k, v in values["stage_ms_mean"].items())
        for hop, values in hops.items()), "",
        "LLM use per question (mean): " + "; ".join(
        f"hop {hop}: " + ", ".join(f"{k} {v}" for k, v in values.get("per_question_mean", {}).items())
        for hop, values in hops.items()), "",
        "Configuration: `" + json.dumps(report["settings"], sort_keys=True) + "`", ""]
    return "\n".join(lines)


def _gold_notes(hop: str, values: dict[str, Any]) -> list[str]:
    notes = []
    for key, gold, what in (("topic_accuracy", "topic_questions", "topic"), ("path_accuracy", "path_questions", "path")):
        if key not in values and values.get("questions"):
            notes.append(f"hop {hop}: no gold {what}")
        elif gold in values:
            notes.append(f"hop {hop}: {key} over the {values[gold]} of {values['questions']} questions with a gold {what}")
    return notes
