"""Batch answering: read questions from a file, write one JSONL record per input, resume after a kill.

Inputs: plain text (one question a line), a MetaQA tsv (`question<TAB>answers...`, brackets stripped),
or JSONL with an `id` and a `question`. Every record is flushed to disk as soon as its chunk is
answered, so a killed run loses at most the chunk in flight, and `--resume` skips every id already
written (a half-written last line is dropped first).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kgqa.errors import InputError, KgqaError


@dataclass
class InputRecord:
    id: str
    line: int
    question: str = ""
    error: str | None = None


@dataclass
class BatchSummary:
    answered: int = 0
    skipped_done: int = 0
    bad_lines: list[str] = field(default_factory=list)


def strip_brackets(question: str) -> str:
    return question.replace("[", "").replace("]", "")


def _input_format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if name.endswith(".tsv"):
        return "tsv"
    return "text"


def read_inputs(path: Path) -> Iterator[InputRecord]:
    """Yield one record per non-blank line; unusable lines come back with `error` set."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    fmt = _input_format(path)
    seen: set[str] = set()
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line_no, raw in enumerate(handle, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                continue
            record = _parse_line(fmt, line, line_no)
            if record.error is None and record.id in seen:
                record.error = f"duplicate id {record.id!r}"
            seen.add(record.id)
            yield record


def _parse_line(fmt: str, line: str, line_no: int) -> InputRecord:
    if fmt == "jsonl":
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            return InputRecord(str(line_no), line_no, error=f"not valid JSON ({exc.msg})")
        if not isinstance(data, dict):
            return InputRecord(str(line_no), line_no, error="expected a JSON object with 'id' and 'question'")
        record_id = str(data.get("id", line_no))
        question = data.get("question")
        if not isinstance(question, str) or not question.strip():
            return InputRecord(record_id, line_no, error="missing or empty 'question'")
        return InputRecord(record_id, line_no, question.strip())
    text = line.split("\t")[0] if fmt == "tsv" else line
    question = strip_brackets(text).strip()
    if not question:
        return InputRecord(str(line_no), line_no, error="empty question")
    return InputRecord(str(line_no), line_no, question)


def completed_ids(out_path: Path) -> set[str]:
    """Ids already in the output; a trailing half-written line (from a kill) is cut off first."""
    if not out_path.exists():
        return set()
    data = out_path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with out_path.open("r+b") as handle:
            handle.truncate(end)
    done = set()
    for line in data[:end].decode("utf-8").splitlines():
        if line.strip():
            done.add(str(json.loads(line)["id"]))
    return done


def _chunks(records: Iterator[InputRecord], size: int) -> Iterator[list[InputRecord]]:
    chunk: list[InputRecord] = []
    for record in records:
        chunk.append(record)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def run_batch(answer_batch: Callable[[list[str]], list[Any]], in_path: Path, out_path: Path, *,
              resume: bool = False, overwrite: bool = False, chunk_size: int = 64,
              on_progress: Callable[[int], None] | None = None,
              on_bad_line: Callable[[str], None] | None = None) -> BatchSummary:
    """Answer every question of `in_path` into `out_path` (JSONL)."""
    if out_path.exists() and out_path.stat().st_size > 0 and not (resume or overwrite):
        raise InputError(f"{out_path} already exists: pass --resume to continue it or --overwrite to replace it")
    done = completed_ids(out_path) if resume else set()
    summary = BatchSummary(skipped_done=0)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with out_path.open("a" if resume else "w", encoding="utf-8") as out:
        for chunk in _chunks(read_inputs(in_path), chunk_size):
            todo = [r for r in chunk if r.id not in done]
            summary.skipped_done += len(chunk) - len(todo)
            lines = _answer_chunk(answer_batch, todo, summary, on_bad_line)
            out.write("".join(lines))
            out.flush()
            os.fsync(out.fileno())
            if on_progress:
                on_progress(len(chunk))
    return summary


def _answer_chunk(answer_batch: Callable[[list[str]], list[Any]], todo: list[InputRecord],
                  summary: BatchSummary, on_bad_line: Callable[[str], None] | None) -> list[str]:
    good = [r for r in todo if r.error is None]
    try:
        results = dict(zip((r.id for r in good), answer_batch([r.question for r in good])))
    except InputError:
        results = {}
        for record in good:  # find the question that failed, answer the rest
            try:
                results[record.id] = answer_batch([record.question])[0]
            except InputError as exc:
                record.error = str(exc)
    lines = []
    for record in todo:
        if record.error is not None:
            message = f"line {record.line}: {record.error}"
            summary.bad_lines.append(message)
            if on_bad_line:
                on_bad_line(message)
            payload: dict[str, Any] = {"id": record.id, "line": record.line, "error": record.error}
        else:
            summary.answered += 1
            payload = {"id": record.id, "line": record.line, **results[record.id].to_dict()}
        lines.append(json.dumps(payload, ensure_ascii=False) + "\n")
    return lines


def count_lines(path: Path) -> int:
    try:
        with path.open("rb") as handle:
            return sum(1 for line in handle if line.strip())
    except OSError as exc:
        raise KgqaError(f"{path}: {exc.strerror}") from None
