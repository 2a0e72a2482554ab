"""Written training questions reworded by a language model, few-shot (`prompts/paraphrase_question.j2`), so
that the models also learn wordings that no template of `kgqa.question_writer` has.

`kgqa train all` from the graph alone does this when an LLM is configured (`--llm`). A rewording keeps its
question's topic, path and answers, so its label stays right by construction, provided it still names the
topic: one that drops or changes the name, repeats the question, or runs on is left out and counted.
"""

from __future__ import annotations

import random
import re
import time
from collections import defaultdict
from collections.abc import Callable, Sequence

from kgqa.errors import LLMError
from kgqa.llm.base import LLM, Request
from kgqa.prompting import Templates, default_templates
from kgqa.questions import Example
from kgqa.weak_labels import Label

SOURCE = "reworded by the LLM"
SHARE = 0.1
"""Of the written questions, the share sent to be reworded (spread over their paths)."""
MAX_TOKENS = 40
BATCH = 8
"""Requests sent together (a server runs them at once)."""


def choose_to_reword(labels: Sequence[Label], count: int, seed: int = 0) -> list[Label]:
    """`count` of the labels, taking the paths in turn so that rare paths are reworded too."""
    by_path: dict[str, list[Label]] = defaultdict(list)
    for label in labels:
        if label.span[0] >= 0:
            by_path[label.example.path].append(label)
    rng = random.Random(seed)
    queues = [rng.sample(group, len(group)) for _, group in sorted(by_path.items())]
    chosen: list[Label] = []
    while len(chosen) < count and any(queues):
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(queue.pop())
    return chosen


ASKS = re.compile(r"^(what|which|who|whom|whose|when|where|how|in (what|which)|is|are|was|were|did|does|do|"
                  r"can|could|name|list|tell|show|give|find)\b", re.I)
"""How an English question or request begins (a model that answers instead of rewording does not)."""


def reworded_label(label: Label, text: str, row: int) -> Label | None:
    """The label with its question reworded as `text` (its first line), or None when the rewording is
    unusable: it does not begin as a question or a request, lacks the topic's name as the question wrote
    it, brings in a capitalised word the question lacks (a name from the prompt's examples), repeats the
    question, or is over three times as long."""
    start, end = label.span
    question = label.example.question
    mention = question[start:end]
    line = text.strip().splitlines()[0].strip().strip('"').strip() if text.strip() else ""
    found = re.search(rf"(?<!\w){re.escape(mention)}(?!\w)", line, flags=re.IGNORECASE)
    outside = line[:found.start()] + " " + line[found.end():] if found else line
    new_names = [w for w in re.findall(r"(?<!^)\b[A-Z]\w*", outside.strip()) if w.casefold() not in question.casefold()]
    if not found or not ASKS.match(line) or new_names or line.casefold() == question.casefold() \
            or len(line) > 3 * len(question):
        return None
    example = Example(line, label.example.topic, label.example.path, label.example.answers, SOURCE)
    return Label(row, example, (found.start(), found.end()), label.f1)


def reword_questions(llm: LLM, labels: Sequence[Label], count: int, time_limit_s: float | None = None,
                     seed: int = 0, templates: Templates | None = None,
                     on_progress: Callable[[int, int], None] = lambda done, total: None) -> tuple[list[Label], dict]:
    """Up to `count` of the labels reworded (new rows after the last), and what happened: how many were
    sent, kept, left out as unusable, failed, or not sent in time."""
    templates = templates or default_templates()
    chosen = choose_to_reword(labels, count, seed)
    started = time.perf_counter()
    row = max((label.row for label in labels), default=-1) + 1
    out: list[Label] = []
    report = {"chosen": len(chosen), "sent": 0, "kept": 0, "unusable": 0, "failed": 0, "not_sent_in_time": 0}
    for at in range(0, len(chosen), BATCH):
        if time_limit_s is not None and time.perf_counter() - started > time_limit_s:
            report["not_sent_in_time"] = len(chosen) - at
            break
        on_progress(at, len(chosen))
        batch = chosen[at:at + BATCH]
        requests = [Request(templates.render("paraphrase_question.j2", question=label.example.question,
                                             entity=label.example.question[label.span[0]:label.span[1]]),
                            max_tokens=MAX_TOKENS) for label in batch]
        report["sent"] += len(batch)
        for label, completion in zip(batch, llm.complete_many(requests)):
            if isinstance(completion, LLMError):
                report["failed"] += 1
                continue
            reworded = reworded_label(label, completion.text, row)
            if reworded is None:
                report["unusable"] += 1
                continue
            out.append(reworded)
            row += 1
    report["kept"] = len(out)
    report["seconds"] = round(time.perf_counter() - started, 1)
    return out, report
