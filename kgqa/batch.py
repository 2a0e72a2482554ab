"""Batch answering: read questions from a file, write one JSONL record per non-blank input line, resume
after a kill.

Inputs: plain text (one question a line), a MetaQA tsv (`question<TAB>answers...`, brackets stripped),
or JSONL with an optional `id` (a string or an integer; 2 and "2" are different ids) and a `question`.
Blank lines get no record. Every record is flushed to disk as soon as its chunk is answered, so a killed
run loses at most the chunk in flight, and `--resume` skips every input already written.

Resume recognises an input by its id; a line without a usable id (invalid JSON, no id, a duplicate id)
by its line number. A half-written last record (from a kill) is dropped and answered again; any other
line of the output that is not a record stops the run with a message naming the file and line.

One question cannot stop a run: when a chunk fails, its questions are answered one at a time and the
one that fails gets an error record. Only a server that is gone (unreachable after retries, or refusing
the configured login or route) stops the run, after writing what was answered; `--resume` then continues.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kgqa.errors import GraphError, InputError, KgqaError, LLMResponseError, LLMTimeout, LLMUnavailable, ModelError
from kgqa.questions import question_problem, strip_marks

RECORD_START = b'{"id": '
"""How every record this module writes begins (json.dumps keeps the key order)."""
RETRY_DELAYS = (2.0, 5.0)
"""Seconds to wait before each retry of a question whose server is unreachable; then the run stops."""
TRANSIENT_HTTP = {429, 502, 503, 504}
CONFIG_HTTP = {401, 403, 404}


@dataclass
class InputRecord:
    id: str | int | None
    """The id written in the record; None for a line that has no usable id."""
    line: int
    question: str = ""
    error: str | None = None
    duplicate: bool = False

    @property
    def key(self) -> str:
        """How resume recognises this input among the records written: its id, else its line."""
        if self.id is None or self.duplicate:
            return f"line:{self.line}"
        return id_key(self.id)


@dataclass
class BatchSummary:
    answered: int = 0
    skipped_done: int = 0
    blank_lines: int = 0
    bad_lines: list[str] = field(default_factory=list)
    """Input lines that could not be asked (invalid JSON, no question, duplicate id, empty question)."""
    failed: list[str] = field(default_factory=list)
    """Questions whose answering failed (an error record was written)."""


class BatchStopped(KgqaError):
    """The server the agent needs is gone; what was answered is on disk and --resume continues."""


def id_key(value: str | int) -> str:
    """The resume key of an id, keeping its JSON type: 2 and "2" differ."""
    return "id:" + json.dumps(value, ensure_ascii=False)


def usable_id(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _input_format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if name.endswith(".tsv"):
        return "tsv"
    return "text"


def check_input_file(path: Path) -> None:
    """One message for an input that is missing or not a file."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path} is not a file: give a .txt, .tsv or .jsonl file of questions")


def read_inputs(path: Path, on_blank: Callable[[], None] | None = None) -> Iterator[InputRecord]:
    """Yield one record per non-blank line (lines end at "\\n" only); unusable lines come back with `error` set."""
    check_input_file(path)
    fmt = _input_format(path)
    seen: set[str] = set()
    with path.open(encoding="utf-8-sig", errors="replace", newline="\n") as handle:
        for line_no, raw in enumerate(handle, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                if on_blank:
                    on_blank()
                continue
            record = _parse_line(fmt, line, line_no)
            if record.id is not None:
                key = id_key(record.id)
                if key in seen:
                    record.duplicate = True
                    record.error = f"duplicate id {record.id!r} (an earlier line has it)"
                seen.add(key)
            yield record


def _parse_line(fmt: str, line: str, line_no: int) -> InputRecord:
    if fmt == "jsonl":
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            return InputRecord(None, line_no, error=f"not valid JSON ({exc.msg}, column {exc.colno})")
        if not isinstance(data, dict):
            return InputRecord(None, line_no, error="expected a JSON object with 'id' and 'question'")
        record_id = data.get("id")
        if record_id is not None and not usable_id(record_id):
            return InputRecord(None, line_no, error=f"'id' must be a string or an integer, not {record_id!r}")
        question = data.get("question")
        if not isinstance(question, str) or not question.strip():
            return InputRecord(record_id, line_no, error="missing or empty 'question'")
        return InputRecord(record_id, line_no, question.strip(), error=question_problem(question.strip()))
    text = line.split("\t")[0] if fmt == "tsv" else line
    question = strip_marks(text).strip()
    if not question:
        return InputRecord(str(line_no), line_no, error="empty question")
    return InputRecord(str(line_no), line_no, question, error=question_problem(question))


# ---- the output: what is done, and a half-written last record ---------------------------------------


def _decode_record(raw: bytes) -> tuple[dict[str, Any] | None, str]:
    """The record on one output line, or None and why it is not one."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg}, column {exc.colno})"
    if not isinstance(data, dict) or "id" not in data:
        return None, "not a kgqa batch record (no 'id')"
    if not isinstance(data.get("line", 0), int):
        return None, "not a kgqa batch record ('line' is not a number)"
    return data, ""


def _looks_cut(raw: bytes) -> bool:
    """A prefix of a record this module wrote (a write cut short by a kill)."""
    raw = raw.rstrip(b"\r")
    return raw.startswith(RECORD_START) or RECORD_START.startswith(raw)


def completed_keys(out_path: Path, on_note: Callable[[str], None] | None = None) -> set[str]:
    """Keys (see InputRecord.key) of the records already in the output.

    A half-written last record, with or without its newline, is cut off first (it is answered again);
    any other line that is not a record raises an InputError naming the file and line."""
    if not out_path.exists():
        return set()
    try:
        data = out_path.read_bytes()
    except OSError as exc:
        raise InputError(f"{out_path}: cannot read it ({exc.strerror})") from None
    lines = data.split(b"\n")  # records never contain a raw "\n"; U+2028 or U+0085 are not line ends here
    tail = lines.pop()  # after the last newline: b"" when the file ends with one
    records: list[dict[str, Any]] = []
    cut_at: int | None = None
    cut_line = len(lines) + 1
    offset = 0
    for line_no, raw in enumerate(lines, start=1):
        start, offset = offset, offset + len(raw) + 1
        if not raw.strip():
            continue
        record, why = _decode_record(raw)
        if record is None:
            if line_no == len(lines) and not tail.strip() and _looks_cut(raw):
                cut_at, cut_line = start, line_no
                break
            raise InputError(f"{out_path}, line {line_no}: {why}; repair or delete that line, "
                             "or start again with --overwrite")
        records.append(record)
    if cut_at is None and tail.strip():
        record, why = _decode_record(tail)
        if record is not None:  # complete, only its newline is missing
            with out_path.open("ab") as handle:
                handle.write(b"\n")
            records.append(record)
        elif _looks_cut(tail):
            cut_at = len(data) - len(tail)
        else:
            raise InputError(f"{out_path}, line {len(lines) + 1}: {why}; repair or delete that line, "
                             "or start again with --overwrite")
    if cut_at is not None:
        with out_path.open("r+b") as handle:
            handle.truncate(cut_at)
        if on_note:
            on_note(f"{out_path}, line {cut_line}: dropped a half-written record; its question is answered again")
    return _keys(records)


def _keys(records: list[dict[str, Any]]) -> set[str]:
    """The same keys read_inputs gives: an id the first time it is seen, else the line."""
    keys: set[str] = set()
    ids: set[str] = set()
    for record in records:
        value = record["id"]
        if usable_id(value) and id_key(value) not in ids:
            ids.add(id_key(value))
            keys.add(id_key(value))
        else:
            keys.add(f"line:{record.get('line')}")
    return keys


# ---- answering ----------------------------------------------------------------------------------------


def transient(exc: BaseException) -> bool:
    """A server that cannot be reached now, after its client's own retries: worth trying again later."""
    if isinstance(exc, LLMUnavailable):
        return not isinstance(exc, LLMTimeout)  # a slow answer is this question's problem
    if isinstance(exc, LLMResponseError):
        return exc.status in TRANSIENT_HTTP
    if isinstance(exc, GraphError):
        cause = exc.__cause__
        names = {c.__name__ for c in type(cause).__mro__} if cause is not None else set()
        return bool(names & {"ServiceUnavailable", "SessionExpired"}) or isinstance(cause, OSError)
    return False


def stops_the_run(exc: BaseException) -> bool:
    """Errors every further question would hit too: an unreachable server, a refused login, model or
    route, a missing model. Anything else is the question's own failure."""
    return (transient(exc) or isinstance(exc, ModelError)
            or (isinstance(exc, LLMResponseError) and exc.status in CONFIG_HTTP))


def describe(exc: BaseException) -> str:
    """One line for an error record."""
    if isinstance(exc, KgqaError):
        return str(exc)
    return f"internal error ({type(exc).__name__}: {exc})"


def _with_retries(call: Callable[[], Any], delays: Sequence[float], sleep: Callable[[float], None]) -> Any:
    """`call()`, tried again after each delay while its server is unreachable."""
    for delay in (*delays, None):
        try:
            return call()
        except Exception as exc:
            if delay is None or not transient(exc):
                raise
            sleep(delay)
    raise AssertionError("unreachable")


def _answer_chunk(answer_batch: Callable[[list[str]], list[Any]], todo: list[InputRecord],
                  delays: Sequence[float], sleep: Callable[[float], None]
                  ) -> tuple[dict[str, Any], BaseException | None]:
    """Result or exception by key for the askable records of `todo`, in input order, up to the question
    at which the run must stop; and the error that stops it (None: the chunk is done)."""
    good = [r for r in todo if r.error is None]
    if not good:
        return {}, None
    try:
        results = _with_retries(lambda: answer_batch([r.question for r in good]), delays, sleep)
        if len(results) != len(good):
            raise RuntimeError(f"{len(results)} results for {len(good)} questions")
        return dict(zip((r.key for r in good), results)), None
    except Exception as exc:
        if stops_the_run(exc):
            return {}, exc
    outcomes: dict[str, Any] = {}
    for record in good:  # one failing question: find it, answer the others
        try:
            outcomes[record.key] = _with_retries(lambda: answer_batch([record.question])[0], delays, sleep)
        except Exception as exc:
            if stops_the_run(exc):
                return outcomes, exc
            outcomes[record.key] = exc
    return outcomes, None


def _record_line(record: InputRecord, outcome: Any, summary: BatchSummary,
                 on_bad_line: Callable[[str], None] | None) -> str:
    if record.error is None and not isinstance(outcome, BaseException):
        summary.answered += 1
        payload: dict[str, Any] = {"id": record.id, "line": record.line, **outcome.to_dict()}
        return json.dumps(payload, ensure_ascii=False) + "\n"
    if record.error is not None or isinstance(outcome, InputError):
        error = record.error if record.error is not None else str(outcome)
        message = f"line {record.line}: {error}"
        summary.bad_lines.append(message)
    else:
        error = describe(outcome)
        message = f"line {record.line}: could not answer: {error}"
        summary.failed.append(message)
    if on_bad_line:
        on_bad_line(message)
    payload = {"id": record.id, "line": record.line}
    if record.question:
        payload["question"] = record.question
    payload["error"] = error
    return json.dumps(payload, ensure_ascii=False) + "\n"


def _chunks(records: Iterator[InputRecord], size: int) -> Iterator[list[InputRecord]]:
    chunk: list[InputRecord] = []
    for record in records:
        chunk.append(record)
        if len(chunk) >= max(1, size):
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_output(in_path: Path, out_path: Path, resume: bool, overwrite: bool) -> None:
    """Refuse an output that is the input, a folder, or an earlier run's file without --resume/--overwrite."""
    if resume and overwrite:
        raise InputError("--resume and --overwrite exclude each other")
    check_input_file(in_path)
    if not out_path.exists():
        return
    if _same_file(in_path, out_path):
        raise InputError(f"-o {out_path} is the input file: write the answers to another file")
    if out_path.is_dir():
        raise InputError(f"-o {out_path} is a folder: name a .jsonl file to write")
    if out_path.stat().st_size > 0 and not (resume or overwrite):
        raise InputError(f"{out_path} already exists: pass --resume to continue it or --overwrite to replace it")


def run_batch(answer_batch: Callable[[list[str]], list[Any]], in_path: Path, out_path: Path, *,
              resume: bool = False, overwrite: bool = False, chunk_size: int = 64,
              on_progress: Callable[[int], None] | None = None,
              on_bad_line: Callable[[str], None] | None = None,
              on_note: Callable[[str], None] | None = None,
              retry_delays: Sequence[float] = RETRY_DELAYS,
              sleep: Callable[[float], None] = time.sleep) -> BatchSummary:
    """Answer every question of `in_path` into `out_path` (JSONL); see the module docstring.

    Raises BatchStopped, after writing every record answered before it, when the server is gone."""
    check_output(in_path, out_path, resume, overwrite)
    done = completed_keys(out_path, on_note) if resume else set()
    summary = BatchSummary()
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out = out_path.open("a" if resume else "w", encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{out_path}: cannot write it ({exc.strerror})") from None

    def blank() -> None:
        summary.blank_lines += 1

    with out:
        for chunk in _chunks(read_inputs(in_path, on_blank=blank), chunk_size):
            todo = [r for r in chunk if r.key not in done]
            summary.skipped_done += len(chunk) - len(todo)
            outcomes, stop = _answer_chunk(answer_batch, todo, retry_delays, sleep)
            lines = []
            for record in todo:
                if record.error is None and record.key not in outcomes:
                    break  # the run stops at this question; --resume asks it again
                lines.append(_record_line(record, outcomes.get(record.key), summary, on_bad_line))
            out.write("".join(lines))
            out.flush()
            os.fsync(out.fileno())
            if on_progress:
                on_progress(len(chunk) if stop is None else len(chunk) - len(todo) + len(lines))
            if stop is not None:
                raise BatchStopped(f"{describe(stop)} (the run stopped; the answers so far are in {out_path}: "
                                   "continue with --resume)")
    return summary


def count_lines(path: Path) -> int:
    """Non-blank lines of `path` (for a progress bar)."""
    check_input_file(path)
    try:
        with path.open("rb") as handle:
            return sum(1 for line in handle if line.strip())
    except OSError as exc:
        raise InputError(f"{path}: cannot read it ({exc.strerror})") from None

