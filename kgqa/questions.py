"""Questions as data: the labelled row every file of questions becomes, topic marks, and masking.

One home for three things that must never disagree between training, few-shot prompts and answering:

- `Example`, the one row type: a question with what is known about it (topic, gold path, answers).
- Marked questions: training and benchmark files mark the topic mention, e.g. `what does [Tom Cullen] act
  in`. `parse_marked` gives the plain text and the mention spans; `strip_marks` just drops the marks.
- Masking: the path models see the question with the topic mention replaced by `MASK`, so that paths are
  matched on the wording alone (`mask_span`, `mask_topic`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kgqa.errors import InputError
from kgqa.types import Path, parse_path

MASK = "something"
"""What replaces the topic mention in every question a path model sees."""

MARKS = ("[", "]")
"""The default topic marks of training and benchmark files."""


@dataclass(frozen=True)
class Example:
    """A question and what is known about it: its topic entity, gold relation path (`a|b`) and answers."""

    question: str
    topic: str = ""
    path: str = ""
    answers: tuple[str, ...] = ()
    source: str = ""

    @property
    def steps(self) -> Path:
        return parse_path(self.path)

    @property
    def hops(self) -> int:
        return len(self.steps)

    @property
    def masked(self) -> str:
        return mask_topic(self.question, self.topic)


@dataclass(frozen=True)
class MarkedQuestion:
    """A question without its marks, and the character spans of the mentions that were marked."""

    text: str
    spans: tuple[tuple[int, int], ...]

    @property
    def topic(self) -> str:
        """The first marked mention."""
        start, end = self.spans[0]
        return self.text[start:end]


def parse_marked(marked: str, marks: tuple[str, str] = MARKS) -> MarkedQuestion | None:
    """`what does [Tom Cullen] act in` -> the text without marks and the span of `Tom Cullen`.

    None when nothing is marked or the marks do not pair up. Whitespace inside a mark and around the
    question is dropped, the spans staying aligned with the text."""
    opening, closing = marks
    pattern = re.compile(f"{re.escape(opening)}([^{re.escape(opening + closing)}]+){re.escape(closing)}")
    pieces, spans, length, last = [], [], 0, 0
    for match in pattern.finditer(marked):
        before = marked[last:match.start()]
        inner = match.group(1)
        lead = len(inner) - len(inner.lstrip())
        length += len(before)
        spans.append((length + lead, length + lead + len(inner.strip())))
        pieces += [before, inner]
        length += len(inner)
        last = match.end()
    pieces.append(marked[last:])
    plain = "".join(pieces)
    if not spans or opening in plain or closing in plain:
        return None
    lead = len(plain) - len(plain.lstrip())
    return MarkedQuestion(plain.strip(), tuple((s - lead, e - lead) for s, e in spans))


def strip_marks(question: str, marks: tuple[str, str] = MARKS) -> str:
    """The question without its topic marks (a question with none is returned as it is)."""
    return question.replace(marks[0], "").replace(marks[1], "")


def mask_span(question: str, start: int, end: int) -> str:
    """The question with characters start..end (a mention) replaced by MASK; unchanged when start < 0."""
    if start < 0:
        return question
    return question[:start] + MASK + question[end:]


def mask_topic(question: str, topic: str) -> str:
    """The question with the first occurrence of `topic` (any case) replaced by MASK."""
    if not topic:
        return question
    found = re.search(re.escape(topic), question, flags=re.IGNORECASE)
    return mask_span(question, found.start(), found.end()) if found else question


MAX_QUESTION_CHARS = 1000
"""The longest question kgqa takes. MetaQA questions take at most ~150 characters; a thousand is a long
paragraph: in English some 200-250 word pieces, 7 or 8 tagger windows, within the retriever's 256 pieces.
Longer, it is more likely a pasted document than a question: refused with one clear message, rather than
answered from whichever part of it the models happen to read."""


def question_problem(question: str) -> str | None:
    """Why `question` cannot be asked (empty, or longer than MAX_QUESTION_CHARS), or None."""
    if not question.strip():
        return "the question is empty"
    if len(question) > MAX_QUESTION_CHARS:
        return (f"the question is {len(question):,} characters long; kgqa takes questions of at most "
                f"{MAX_QUESTION_CHARS:,} characters: ask it in fewer words")
    return None


def check_question(question: str) -> None:
    """InputError with question_problem's message, if there is one."""
    problem = question_problem(question)
    if problem:
        raise InputError(problem)
