"""Prompts: Jinja2 templates shipped in kgqa/prompts/, few-shot examples chosen by similarity, and fitting
a prompt into a token budget counted by the model's own tokenizer.

A template has a `system` and a `user` block; `render` turns them into chat messages. The few-shot pool is
a JSONL file of questions with their topic entity and gold relation path (the packaged one holds MetaQA
*dev* questions, built by scripts/build_fewshot_pool.py). Examples are the pool's nearest questions, with
the topic masked, each with a different gold path; each is shown as a small multiple choice like the real
one, its gold path among the pool paths whose wording is closest to it.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import jinja2
import numpy as np

from kgqa.encoder import SentenceEmbedder
from kgqa.errors import InputError
from kgqa.llm.base import Messages, count_prompt_tokens
from kgqa.retrieval.data import read_pool_rows
from kgqa.retrieval.paths import relation_words, verbalise_path
from kgqa.types import parse_path

OPTION_IDS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MASK = "something"
DISTRACTORS = 2
"""Wrong paths shown beside the gold one in each example (4 cost 40 more tokens and were no better on dev)."""
TEMPLATES = jinja2.Environment(loader=jinja2.PackageLoader("kgqa", "prompts"), undefined=jinja2.StrictUndefined,
                               trim_blocks=True, lstrip_blocks=True, autoescape=False)


def render(name: str, **values: object) -> Messages:
    """The chat messages of template `name`: its `system` block, then its `user` block."""
    template = TEMPLATES.get_template(name)
    context = template.new_context(values)
    return [{"role": role, "content": "".join(template.blocks[role](context)).strip()}
            for role in ("system", "user") if role in template.blocks]


def default_pool_file() -> Path:
    return Path(str(resources.files("kgqa") / "data" / "fewshot_metaqa_dev.jsonl"))


def mask_topic(question: str, topic: str) -> str:
    """The question with its topic entity replaced, so that examples are matched on wording alone."""
    return re.sub(re.escape(topic), MASK, question, count=1, flags=re.IGNORECASE) if topic else question


# ---- few-shot examples -----------------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    question: str
    topic: str
    path: str
    source: str = ""


class ExamplePool:
    """Few-shot examples and their question vectors: a small numpy index (cosine similarity)."""

    def __init__(self, examples: list[Example], embedder: SentenceEmbedder, cache_dir: Path | None = None,
                 distractors: int = DISTRACTORS) -> None:
        if not examples:
            raise InputError("the few-shot pool is empty")
        self.examples = examples
        self.embedder = embedder
        self.vectors = self._question_vectors(cache_dir)
        self.paths = sorted({e.path for e in examples})
        path_vectors = embedder.embed([verbalise_path(parse_path(p)) for p in self.paths])
        similar = path_vectors @ path_vectors.T
        np.fill_diagonal(similar, -np.inf)
        self.nearest_paths = {p: [self.paths[j] for j in np.argsort(-similar[i], kind="stable")[:distractors]]
                              for i, p in enumerate(self.paths)}

    @classmethod
    def load(cls, file: Path | str | None, embedder: SentenceEmbedder, cache_dir: Path | None = None) -> "ExamplePool":
        file = Path(file) if file else default_pool_file()
        if not file.exists():
            raise InputError(f"few-shot pool {file} does not exist")
        examples = [Example(row["question"], row.get("topic", ""), row["path"], row.get("source", ""))
                    for row in read_pool_rows(file)]
        return cls(examples, embedder, cache_dir)

    def _question_vectors(self, cache_dir: Path | None) -> np.ndarray:
        texts = [mask_topic(e.question, e.topic) for e in self.examples]
        key = hashlib.sha256(("\n".join(texts) + str(self.embedder.model_dir)).encode()).hexdigest()[:16]
        cache = cache_dir / "fewshot" / f"{key}.npy" if cache_dir else None
        if cache is not None and cache.exists():
            return np.load(cache)
        vectors = self.embedder.embed(texts)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.save(cache, vectors)
        return vectors

    def shown_for(self, question: str, examples: list[Example]) -> list[dict]:
        """The examples of one prompt, their gold letters all different (a rotation seeded by the question)."""
        start = zlib.crc32(question.encode())
        return [self.shown(e, start + turn) for turn, e in enumerate(examples)]

    def nearest(self, question_vectors: np.ndarray, k: int) -> list[list[Example]]:
        """For each (masked) question vector, its k most similar examples with k different gold paths."""
        if k <= 0 or len(question_vectors) == 0:
            return [[] for _ in range(len(question_vectors))]
        scores = question_vectors @ self.vectors.T
        out = []
        for row in scores:
            chosen: list[Example] = []
            paths: set[str] = set()
            for j in np.argsort(-row, kind="stable"):
                example = self.examples[j]
                if example.path not in paths:
                    chosen.append(example)
                    paths.add(example.path)
                    if len(chosen) == k:
                        break
            out.append(chosen)
        return out

    def shown(self, example: Example, gold_at: int = 0) -> dict:
        """An example as the template shows it: options (its gold path among the paths worded most like
        it) and the gold letter, at position `gold_at`."""
        paths = list(self.nearest_paths[example.path])
        gold_at %= len(paths) + 1
        paths.insert(gold_at, example.path)
        return {"topic": example.topic, "question": example.question, "answer": OPTION_IDS[gold_at],
                "options": [{"id": OPTION_IDS[i], "text": verbalise_path(parse_path(p))} for i, p in enumerate(paths)]}


# ---- prompts within a token budget -----------------------------------------------------------


@dataclass
class Prompt:
    messages: Messages
    ids: list[str]
    """The option ids shown (path choice), in candidate order."""
    tokens: int
    """Prompt tokens, counted with the model's tokenizer (contents plus the chat template's markers)."""
    cut: dict[str, int] = field(default_factory=dict)
    """What was left out to fit the budget, e.g. {"examples": 2, "candidates": 1}."""
    fits: bool = True


Counter = Callable[[str], int]


def choice_prompt(question: str, topic: str, candidates: list[str], examples: list[dict], count: Counter,
                  budget: int, per_message: int = 5) -> Prompt:
    """The path-choice prompt; to fit `budget`, drop the least similar examples, then the lowest-ranked
    candidates (never below two)."""
    shots, options = list(examples), list(candidates)[:len(OPTION_IDS)]
    cut = {"examples": 0, "candidates": len(candidates) - len(options)}
    while True:
        shown = [{"id": OPTION_IDS[i], "text": text} for i, text in enumerate(options)]
        messages = render("choose_path.j2", topic=topic, question=question, options=shown, examples=shots)
        tokens = count_prompt_tokens(count, messages, per_message)
        if tokens <= budget:
            return Prompt(messages, [o["id"] for o in shown], tokens, {k: v for k, v in cut.items() if v})
        if shots:
            shots.pop()
            cut["examples"] += 1
        elif len(options) > 2:
            options.pop()
            cut["candidates"] += 1
        else:
            return Prompt(messages, [o["id"] for o in shown], tokens, {k: v for k, v in cut.items() if v}, fits=False)


def reply_prompt(question: str, answers: list[str], facts: list[list[str]], count: Counter, budget: int,
                 per_message: int = 5, max_answers: int = 10, max_facts: int = 12) -> Prompt:
    """The reply prompt; to fit `budget`, drop facts from the end, then answers beyond the first three."""
    names = list(answers[:max_answers])
    shown_facts = [[s, relation_words(r), o] for s, r, o in facts[:max_facts]]
    cut = {"answers": len(answers) - len(names), "facts": len(facts) - len(shown_facts)}
    while True:
        messages = render("reply.j2", question=question, answers=names, more=len(answers) - len(names),
                          facts=shown_facts)
        tokens = count_prompt_tokens(count, messages, per_message)
        if tokens <= budget:
            return Prompt(messages, [], tokens, {k: v for k, v in cut.items() if v})
        if shown_facts:
            shown_facts.pop()
            cut["facts"] += 1
        elif len(names) > 3:
            names.pop()
            cut["answers"] += 1
        else:
            return Prompt(messages, [], tokens, {k: v for k, v in cut.items() if v}, fits=False)
