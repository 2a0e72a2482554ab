"""What the agent asks a language model: which candidate path to walk, how to word the reply, and how a
follow-up question reads on its own.

The model only ever chooses among the retriever's candidates and rewords the graph's answers; when its
output is unusable (unreadable, too slow, prompt over budget) the retriever's best path and the template
reply stand, and the reason is recorded. An unreachable server or an HTTP error is raised: it is a
configuration problem that every further question would hit too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from kgqa.errors import LLMError, LLMOutputError, LLMTimeout
from kgqa.llm.base import LLM, Completion, Request, parse_choice
from kgqa.prompting import ExamplePool, Templates, choice_prompt, reply_prompt, rewrite_prompt
from kgqa.types import PathCandidate, Result

GRACEFUL = (LLMOutputError, LLMTimeout)


@dataclass
class Choice:
    """The candidate to walk for one question, and what choosing it cost."""

    index: int = 0
    """Index into the ranked candidates; 0 (the retriever's best) when the model did not choose."""
    by_llm: bool = False
    reason: str = ""
    """Why the model did not choose, when it did not."""
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ms: float = 0.0
    cut: dict[str, int] = field(default_factory=dict)


class PathChooser:
    """One constrained LLM call per question whose two best candidate paths score within `margin`."""

    def __init__(self, llm: LLM, pool: ExamplePool | None, budget: int = 400, shots: int = 3,
                 max_tokens: int = 12, margin: float = 1.0, templates: Templates | None = None) -> None:
        """templates: the prompt templates (Templates(settings.prompts_dir)); default: the packaged ones."""
        self.llm = llm
        self.templates = templates
        self.pool = pool
        self.budget = budget
        self.shots = shots
        self.max_tokens = max_tokens
        self.margin = margin

    def choose_many(self, questions: list[str], topics: list[str | None], ranked: list[list[PathCandidate]],
                    question_vectors: np.ndarray) -> list[Choice]:
        """`question_vectors`: the questions embedded with their topic masked (few-shot neighbours)."""
        choices = [Choice(reason="no candidate paths" if not c else "one candidate path") for c in ranked]
        todo = []
        for i, candidates in enumerate(ranked):
            if len(candidates) < 2:
                continue
            gap = candidates[0].score - candidates[1].score
            if gap >= self.margin:
                choices[i].reason = f"the retriever is sure (its best path leads by {gap:.2f})"
            else:
                todo.append(i)
        if not todo:
            return choices
        neighbours = (self.pool.nearest(question_vectors[todo], self.shots) if self.pool
                      else [[] for _ in todo])
        prompts, sent = {}, []
        for i, examples in zip(todo, neighbours):
            shown = self.pool.shown_for(questions[i], examples) if self.pool else []
            prompt = choice_prompt(questions[i], topics[i] or "", [c.text for c in ranked[i]], shown,
                                   self.llm.count_tokens, self.budget, self.llm.message_overhead(),
                                   templates=self.templates)
            choices[i].cut = prompt.cut
            if not prompt.fits:
                choices[i].reason = f"prompt of {prompt.tokens} tokens is over the budget of {self.budget}"
                continue
            prompts[i] = prompt
            sent.append(i)
        outputs = self.llm.complete_many([Request(prompts[i].messages, self.max_tokens, prompts[i].ids)
                                          for i in sent])
        for i, output in zip(sent, outputs):
            choice = choices[i]
            if isinstance(output, LLMError):
                if not isinstance(output, GRACEFUL):
                    raise output
                choice.calls, choice.reason = 1, str(output)
                continue
            choice.calls, choice.prompt_tokens, choice.completion_tokens, choice.ms = (
                1, output.prompt_tokens, output.completion_tokens, output.ms)
            try:
                letter = parse_choice(output.text, prompts[i].ids)
            except LLMOutputError as exc:
                choice.reason = str(exc)
                continue
            choice.index, choice.by_llm, choice.reason = prompts[i].ids.index(letter), True, ""
        return choices


def mentions_an_answer(reply: str, answers: list[str]) -> bool:
    text = reply.lower()
    return any(a.lower() in text for a in answers)


class ReplyWriter:
    """The reply worded by the model from the graph's answers and evidence, streamed as it is written.

    A reply that names none of the graph's answers, or a model that fails, leaves the template reply."""

    def __init__(self, llm: LLM, budget: int = 400, max_tokens: int = 80, templates: Templates | None = None) -> None:
        self.llm = llm
        self.templates = templates
        self.budget = budget
        self.max_tokens = max_tokens

    def stream(self, result: Result, template_reply: Callable[[Result], str]) -> Iterator[str]:
        """Yield the reply's text as it arrives; afterwards `result` holds the reply, calls, tokens and time."""
        if not result.answers:
            yield result.reply
            return
        facts = list(dict.fromkeys(tuple(t) for a in result.answers[:10] for t in a.evidence))
        prompt = reply_prompt(result.question, result.answer_names, [list(f) for f in facts], self.llm.count_tokens,
                              self.budget, self.llm.message_overhead(), templates=self.templates)
        if not prompt.fits:
            yield result.reply
            return
        started = time.perf_counter()
        try:
            stream = self.llm.stream(Request(prompt.messages, self.max_tokens))
        except LLMError as exc:
            yield f"[{exc}; from the graph:] {result.reply}"
            return
        failure = ""
        try:
            for delta in stream:
                yield delta
        except LLMError as exc:
            failure = str(exc)
        ms = (time.perf_counter() - started) * 1000
        done = stream.completion or Completion(stream.text)
        result.llm_calls += 1
        result.prompt_tokens += done.prompt_tokens
        result.completion_tokens += done.completion_tokens
        result.timings["llm_ms"] = result.timings.get("llm_ms", 0.0) + ms
        result.timings["total_ms"] = result.timings.get("total_ms", 0.0) + ms
        text = stream.text.strip()
        if not failure and text and mentions_an_answer(text, result.answer_names):
            result.reply = text
            return
        result.reply = template_reply(result)
        why = failure or "the model's reply named none of the graph's answers"
        yield f"\n[{why}; from the graph:] {result.reply}"


@dataclass
class Rewrite:
    """The model's standalone wording of a follow-up ("" when it gave none), and what it cost."""

    text: str = ""
    reason: str = ""
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class QuestionRewriter:
    """One few-shot call: the follow-up rewritten to stand on its own (the caller checks what it names)."""

    def __init__(self, llm: LLM, budget: int = 400, max_tokens: int = 40, templates: Templates | None = None) -> None:
        self.llm = llm
        self.templates = templates
        self.budget = budget
        self.max_tokens = max_tokens

    def rewrite(self, question: str, turns: list[tuple[str, list[str]]]) -> Rewrite:
        """`turns`: the conversation so far, oldest first, as (resolved question, answers)."""
        prompt = rewrite_prompt(question, turns, self.llm.count_tokens, self.budget, self.llm.message_overhead(),
                                templates=self.templates)
        if not prompt.fits:
            return Rewrite(reason=f"prompt of {prompt.tokens} tokens is over the budget of {self.budget}")
        try:
            done = self.llm.complete(Request(prompt.messages, self.max_tokens))
        except GRACEFUL as exc:
            return Rewrite(reason=str(exc), calls=1)
        text = done.text.strip().splitlines()[0].strip() if done.text.strip() else ""
        text = text.removeprefix("Rewritten:").strip().strip('"')
        reason = "" if text else "the model wrote nothing"
        if text.startswith(("Earlier:", "Question:")):
            text, reason = "", "the model repeated the prompt instead of rewriting"
        return Rewrite(text, reason, 1, done.prompt_tokens, done.completion_tokens)
