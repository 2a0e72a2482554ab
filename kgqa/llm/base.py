"""The one interface every language-model backend offers, and the reading of its output."""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from kgqa.errors import LLMError, LLMOutputError

Messages = list[dict[str, str]]
"""OpenAI chat messages: [{"role": "system" | "user" | "assistant", "content": ...}]."""


@dataclass
class Request:
    """One chat completion to run. `choices`: the output must be exactly one of these strings; `schema`: JSON."""

    messages: Messages
    max_tokens: int = 16
    choices: list[str] | None = None
    schema: dict | None = None
    """The output must be JSON under this schema (guided decoding where the backend has it)."""


@dataclass
class Completion:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ms: float = 0.0
    guided: str = "off"
    """How the output was constrained: json_schema, json_object, choice, grammar, or off (free text)."""


@dataclass
class Stream:
    """Iterate for the text as it arrives; afterwards `completion` holds the whole text and the token counts."""

    deltas: Iterator[str]
    completion: Completion | None = None
    _parts: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[str]:
        for delta in self.deltas:
            self._parts.append(delta)
            yield delta

    @property
    def text(self) -> str:
        return "".join(self._parts)


class LLM(ABC):
    """A chat model. Implementations: OpenAIHTTP (vLLM, llama.cpp's server, any compatible server) and
    EmbeddedLLM (a GGUF model in this process). Settings `llm = "none"` means no model at all."""

    name: str = "llm"

    @abstractmethod
    def complete(self, request: Request) -> Completion:
        """Run one request; raises an LLMError subclass with a one-sentence message."""

    @abstractmethod
    def stream(self, request: Request) -> Stream:
        """Run one request and hand out its text as it is generated."""

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """How many tokens the model's own tokenizer makes of `text` (no special tokens added)."""

    def complete_many(self, requests: list[Request]) -> list[Completion | LLMError]:
        """Run many requests; a request that fails gives its error in its place. Backends that can serve
        requests concurrently override this."""
        out: list[Completion | LLMError] = []
        for request in requests:
            try:
                out.append(self.complete(request))
            except LLMError as exc:
                out.append(exc)
        return out

    def close(self) -> None:
        """Release connections or memory."""

    def message_overhead(self) -> int:
        """Tokens a chat template adds per message (role markers); ChatML adds 5."""
        return 5


def count_prompt_tokens(count: Callable[[str], int], messages: Messages, per_message: int = 5) -> int:
    """Prompt tokens of chat messages: their contents plus the template's markers (and the assistant cue)."""
    return sum(count(m["content"]) + per_message for m in messages) + 3


CHOICE_KEY = "path"
_LETTER = re.compile(r"\b([A-Z])\b")


def choice_schema(choices: list[str]) -> dict:
    """The JSON schema of a constrained answer: {"path": "<one of choices>"}."""
    return {"type": "object", "properties": {CHOICE_KEY: {"type": "string", "enum": list(choices)}},
            "required": [CHOICE_KEY], "additionalProperties": False}


def choice_grammar(choices: list[str]) -> str:
    """A GBNF grammar (llama.cpp) whose only sentences are the choices."""
    return "root ::= " + " | ".join(json.dumps(c) for c in choices)


def parse_choice(text: str, choices: list[str]) -> str:
    """Read one of `choices` from model output: `B`, `B.`, `Answer: B`, `{"path": "B"}`; else LLMOutputError."""
    stripped = text.strip()
    if stripped in choices:
        return stripped
    if stripped.startswith("{"):
        try:
            value = json.loads(stripped).get(CHOICE_KEY)
        except (json.JSONDecodeError, AttributeError):
            value = None
        if isinstance(value, str) and value.strip() in choices:
            return value.strip()
    found = [m for m in _LETTER.findall(stripped) if m in choices]
    if found and len(set(found)) == 1:
        return found[0]
    shown = stripped[:60] + ("…" if len(stripped) > 60 else "")
    raise LLMOutputError(f"the model answered {shown!r}, which is not one of {', '.join(choices)}")
