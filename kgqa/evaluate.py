"""Metrics and the benchmark runner. Which files and metrics a benchmark has lives in eval/benchmarks/."""

from __future__ import annotations

import json
import math
import os
import platform
import time
import tomllib
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kgqa.errors import InputError
from kgqa.questions import Example, parse_marked
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


@dataclass
class Benchmark:
    name: str
    description: str
    data_dir: Path
    hops: list[int]
    splits: dict[str, str]
    answer_separator: str
    topic_marker: tuple[str, str]
    metrics: list[str]
    latency_sample: int

    @classmethod
    def load(cls, name_or_file: str, data_dir: str | None = None) -> "Benchmark":
        file = find_benchmark(name_or_file)
        spec = tomllib.loads(file.read_text())
        env_dir = os.environ.get(f"KGQA_{spec['name'].upper()}_DIR")
        folder = Path(data_dir or env_dir or (file.parent / spec["data_dir"])).resolve()
        return cls(spec["name"], spec.get("description", ""), folder, list(spec["hops"]), dict(spec["splits"]),
                   spec.get("answer_separator", "|"), tuple(spec.get("topic_marker", ["[", "]"])),
                   list(spec["metrics"]), int(spec.get("latency_sample", 100)))

    def examples(self, hop: int, split: str, limit: int | None = None) -> list[Example]:
        if split not in self.splits:
            raise InputError(f"benchmark {self.name} has no split {split!r}; it has {', '.join(self.splits)}")
        file = self.data_dir / self.splits[split].format(hop=hop)
        if not file.exists():
            raise InputError(f"{file} not found: point --data (or KGQA_{self.name.upper()}_DIR) at the data folder")
        examples = []
        with file.open(encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, start=1):
                if limit is not None and len(examples) >= limit:
                    break
                parts = line.rstrip("\n").split("\t")
                marked = parse_marked(parts[0], self.topic_marker)
                if len(parts) < 2 or marked is None:
                    raise InputError(f"{file}, line {line_no}: expected question<TAB>answers with a marked topic")
                answers = tuple(sorted(set(parts[1].split(self.answer_separator))))
                examples.append(Example(marked.text, marked.topic, parts[2] if len(parts) > 2 else "", answers))
        return examples


def find_benchmark(name_or_file: str) -> Path:
    """A benchmark file given directly, or eval/benchmarks/NAME.toml in this checkout or the cwd."""
    candidate = Path(name_or_file)
    if candidate.suffix == ".toml" and candidate.exists():
        return candidate
    for root in (Path.cwd(), Path(__file__).resolve().parent.parent):
        file = root / "eval" / "benchmarks" / f"{name_or_file}.toml"
        if file.exists():
            return file
    raise InputError(f"no benchmark named {name_or_file!r} (looked for eval/benchmarks/{name_or_file}.toml)")


# ---- runner ----------------------------------------------------------------------------------


def evaluate_hop(answer_batch: Callable[[list[str], list[str | None] | None], list[Result]],
                 examples: list[Example], gold_entities: bool, chunk_size: int,
                 on_progress: Callable[[int], None] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Answer every example in chunks; return the hop's aggregate metrics and per-question rows."""
    totals: dict[str, float] = {}
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
            scores["topic_accuracy"] = float(result.entity == example.topic)
            scores["path_accuracy"] = float(result.path == example.path)
            for key, value in scores.items():
                totals[key] = totals.get(key, 0.0) + value
            for key, value in result.timings.items():
                stage_ms[key] = stage_ms.get(key, 0.0) + value
            for key in llm:
                llm[key] += getattr(result, key)
            rows.append({"question": example.question, "gold": sorted(example.answers), "topic": example.topic,
                         "gold_path": example.path, "entity": result.entity, "path": result.path,
                         "answers": result.answer_names[:20], **{k: scores[k] for k in ("hits@1", "f1")},
                         "path_scores": [c["score"] for c in result.path_candidates[:2]],
                         **({"llm_calls": result.llm_calls} if result.llm_calls else {})})
        if on_progress:
            on_progress(len(chunk))
    elapsed = time.perf_counter() - started
    n = max(len(examples), 1)
    metrics = {key: round(100 * value / n, 2) for key, value in totals.items()}
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
    note = (f"continuing {file}: hops {', '.join(sorted(finished, key=int))} already done" if finished else None)
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
    report["hops"] = dict(sorted(report["hops"].items(), key=lambda item: int(item[0])))
    return _write_summary(report, out_dir)


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
        lines.append(f"| {hop} | {values['questions']} | " + " | ".join(str(values.get(c, "")) for c in columns) + " |")
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
