"""Dialogue benchmarks: conversations asked turn by turn through `kgqa.conversation`, scored per turn.

A dialogue file is JSONL, one dialogue a line: `{"id": ..., "turns": [{"question": ..., "answers": [...],
"follow_up": true, "kind": "pronoun"}, ...]}` (`id`, `follow_up` and `kind` optional; a turn after the
first counts as a follow-up unless it says `"follow_up": false`). Each dialogue starts afresh (/reset);
its turns are asked in order. A turn is right when its top answer is gold (Hits@1); F1 and exact match
of the answer set are kept too. `summarise` gives turn, follow-up-turn, first-turn and dialogue accuracy
(every turn right), and follow-up accuracy per kind. `kgqa eval` runs a benchmark whose TOML says
`format = "dialogues"`; eval/dialogues.py writes the movie set and drives the same functions.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kgqa.errors import InputError
from kgqa.evaluate import ONE_GROUP, answer_metrics


def read_dialogues(file: Path, answer_separator: str = "|") -> list[dict[str, Any]]:
    """The dialogues of a JSONL file, checked: InputError naming the line of the first bad one."""
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{file}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
    dialogues = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{file}, line {number}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: not JSON ({exc.msg})") from None
        turns = data.get("turns") if isinstance(data, dict) else None
        if not (isinstance(turns, list) and turns):
            raise InputError(f'{where}: a dialogue is {{"turns": [{{"question": ..., "answers": [...]}}, ...]}}')
        checked = []
        for i, turn in enumerate(turns):
            if not (isinstance(turn, dict) and isinstance(turn.get("question"), str) and turn["question"].strip()):
                raise InputError(f"{where}: turn {i + 1} has no question")
            answers = turn.get("answers")
            if isinstance(answers, str):
                answers = [a for a in answers.split(answer_separator) if a]
            if not (isinstance(answers, list) and answers and all(isinstance(a, str) for a in answers)):
                raise InputError(f"{where}: turn {i + 1} needs answers (a list of names)")
            checked.append({"question": turn["question"], "answers": answers,
                            "follow_up": bool(turn.get("follow_up", i > 0)), "kind": str(turn.get("kind", ""))})
        dialogues.append({"id": str(data.get("id", f"d{len(dialogues) + 1:03d}")), "turns": checked,
                          "shape": str(data.get("shape", ""))})
    if not dialogues:
        raise InputError(f"{file}: no dialogues in it")
    return dialogues


def run_dialogues(conversation: Any, dialogues: list[dict[str, Any]], memory: bool = True,
                  on_row: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Every turn of every dialogue asked in order (`memory=False`: each turn on its own), one row per turn."""
    rows = []
    for dialogue in dialogues:
        conversation.reset()
        for i, gold in enumerate(dialogue["turns"]):
            if not memory:
                conversation.reset()
            turn = conversation.ask(gold["question"])
            names = turn.result.answer_names
            metrics = answer_metrics(names, gold["answers"])
            row = {"dialogue": dialogue["id"], "shape": dialogue.get("shape", ""), "turn": i + 1,
                   "question": gold["question"], "resolved": turn.resolution.text, "kind": gold["kind"],
                   "follow_up": gold["follow_up"], "predicted": names[:50], "gold": gold["answers"][:50],
                   "rules": list(turn.resolution.rules), "llm_calls": turn.result.llm_calls,
                   "llm_rewrite": turn.resolution.rewrite,
                   "hits@1": metrics["hits@1"], "f1": metrics["f1"], "exact": metrics["exact_match"]}
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return rows


def summarise(rows: list[dict[str, Any]], dialogues: list[dict[str, Any]]) -> dict[str, Any]:
    """Turn, follow-up-turn, first-turn and dialogue accuracy (percent), F1, per-kind follow-up accuracy."""
    def mean(values: list[float]) -> float:
        return round(100 * sum(values) / len(values), 2) if values else 0.0

    follow = [r for r in rows if r["follow_up"]]
    by_dialogue: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_dialogue[r["dialogue"]].append(r)
    kinds: dict[str, list[dict]] = defaultdict(list)
    for r in follow:
        kinds[r["kind"] or "follow-up"].append(r)
    rewrites = [r.get("llm_rewrite") for r in rows if r.get("llm_rewrite")]
    return {"dialogues": len(dialogues), "turns": len(rows), "follow_up_turns": len(follow),
            "turn_accuracy": mean([r["hits@1"] for r in rows]),
            "follow_up_accuracy": mean([r["hits@1"] for r in follow]),
            "first_turn_accuracy": mean([r["hits@1"] for r in rows if r["turn"] == 1]),
            "dialogue_accuracy": mean([float(all(r["hits@1"] for r in rs)) for rs in by_dialogue.values()]),
            "turn_f1": mean([r["f1"] for r in rows]), "follow_up_f1": mean([r["f1"] for r in follow]),
            "follow_up_exact": mean([r["exact"] for r in follow]),
            "llm_calls": sum(r.get("llm_calls", 0) for r in rows),
            "llm_rewrites": {"asked": len(rewrites), "kept": sum(1 for w in rewrites if w.get("kept"))},
            "by_kind": {k: {"turns": len(rs), "hits@1": mean([r["hits@1"] for r in rs]),
                            "f1": mean([r["f1"] for r in rs])} for k, rs in sorted(kinds.items())}}


def markdown(report: dict[str, Any]) -> str:
    """The summary tables of a dialogue run."""
    lines = ["| dialogues | turns | follow-up turns | turn acc | follow-up acc | dialogue acc | follow-up F1 | "
             "follow-up exact |", "|---|---|---|---|---|---|---|---|",
             f"| {report['dialogues']} | {report['turns']} | {report['follow_up_turns']} | {report['turn_accuracy']:.2f} "
             f"| {report['follow_up_accuracy']:.2f} | {report['dialogue_accuracy']:.2f} | {report['follow_up_f1']:.2f} "
             f"| {report['follow_up_exact']:.2f} |", "",
             "| follow-up kind | turns | Hits@1 | F1 |", "|---|---|---|---|"]
    lines += [f"| {k} | {v['turns']} | {v['hits@1']:.2f} | {v['f1']:.2f} |" for k, v in report["by_kind"].items()]
    return "\n".join(lines)


def evaluate_dialogues(bench: Any, split: str, limit: int | None, settings: Any, out_dir: Path,
                       on_progress: Callable[[int], None] | None = None,
                       about: dict[str, Any] | None = None) -> dict[str, Any]:
    """`kgqa eval` of a dialogue benchmark: every dialogue of the split (the first `limit`), through the
    agent's Conversation; predictions.jsonl, report.json (the summary, plus `about` the run) and
    summary.md in `out_dir`."""
    from kgqa.agent import Agent
    from kgqa.conversation import Conversation

    file = bench.split_file(ONE_GROUP, split)
    if not file.is_file():
        raise InputError(f"{file} not found (split {split!r} of {bench.file})")
    dialogues = read_dialogues(file, bench.answer_separator)[:limit or None]
    conversation = Conversation(Agent(settings, many=True))
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "predictions.jsonl").open("w", encoding="utf-8") as predictions:
        def write(row: dict[str, Any]) -> None:
            predictions.write(json.dumps(row, ensure_ascii=False) + "\n")
            predictions.flush()  # no answer already produced is lost
            if on_progress is not None and row["turn"] == 1:
                on_progress(1)

        rows = run_dialogues(conversation, dialogues, on_row=write)
    report = summarise(rows, dialogues) | (about or {})
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out_dir / "summary.md").write_text(f"# {bench.name}, split {split}\n\n{markdown(report)}\n", encoding="utf-8")
    return report
