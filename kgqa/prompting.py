"""Prompts: Jinja2 templates (the top-level prompts/ folder, shipped in the wheel; a `prompts_dir` of one's
own overrides them by name), few-shot examples chosen by similarity, and fitting a prompt into a token
budget counted by the model's own tokenizer.

A template has a `user` block and may have a `system` block; `render` turns them into chat messages. The
few-shot pool is a JSONL file of questions with their topic entity and gold relation path (the packaged one
holds MetaQA *dev* questions, built by scripts/build_fewshot_pool.py). Examples are the pool's nearest questions, with
the topic masked, each with a different gold path; each is shown as a small multiple choice like the real
one, its gold path among the pool paths whose wording is closest to it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import sysconfig
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import jinja2
import numpy as np

from kgqa.encoder import SentenceEmbedder
from kgqa.errors import InputError, ModelError
from kgqa.files import write_atomically
from kgqa.llm.base import Messages, count_prompt_tokens
from kgqa.questions import Example
from kgqa.retrieval.data import read_pool_rows
from kgqa.retrieval.index import VectorIndex
from kgqa.retrieval.paths import relation_words, verbalise_path
from kgqa.types import parse_path

OPTION_IDS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
DISTRACTORS = 2
"""Wrong paths shown beside the gold one in each example (4 cost 40 more tokens and were no better on dev)."""
TEMPLATE_NAMES = ("choose_path.j2", "reply.j2", "rewrite_question.j2", "plan_program.j2", "paraphrase_question.j2")
INSTALLED_PROMPTS = ("share", "kgqa", "prompts")
"""Where a wheel installs prompts/ (pyproject's data-files), below its installation prefix."""


def packaged_prompts_dir() -> Path:
    """The shipped templates: prompts/ of the source checkout kgqa runs from (an editable install), else
    the copy an installed wheel put under <prefix>/share/kgqa/prompts."""
    root = Path(__file__).resolve().parent.parent
    project = root / "pyproject.toml"
    checkout = project.is_file() and 'name = "kgqa"' in project.read_text()
    if checkout and (root / "prompts" / TEMPLATE_NAMES[0]).is_file():
        return root / "prompts"
    try:
        dist = importlib.metadata.distribution("kgqa")
    except importlib.metadata.PackageNotFoundError:
        dist = None
    for file in (dist.files or []) if dist else []:
        if file.name == TEMPLATE_NAMES[0] and tuple(file.parts[-4:-1]) == INSTALLED_PROMPTS:
            return Path(str(dist.locate_file(file))).resolve().parent
    installed = Path(sysconfig.get_path("data")).joinpath(*INSTALLED_PROMPTS)
    if (installed / TEMPLATE_NAMES[0]).is_file():
        return installed
    raise ModelError("the prompt templates (prompts/*.j2) are missing from this installation; reinstall kgqa "
                     "or set prompts_dir to a folder of templates")


class Templates:
    """The prompt templates: those in `folder` (the prompts_dir setting) by name, the packaged ones for the
    rest. Each is checked when loaded, so that a broken template is one message at start-up."""

    def __init__(self, folder: Path | str | None = None) -> None:
        self.folders = [packaged_prompts_dir()]
        if folder:
            folder = Path(folder).expanduser()
            if not folder.is_dir():
                raise InputError(f"prompts_dir {folder} is not a folder (it holds templates such as "
                                 f"{', '.join(TEMPLATE_NAMES)})")
            self.folders.insert(0, folder)
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader([str(f) for f in self.folders]),
                                      undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                                      autoescape=False)
        for name in TEMPLATE_NAMES:
            self.template(name)

    def template(self, name: str) -> jinja2.Template:
        try:
            template = self.env.get_template(name)
        except jinja2.TemplateNotFound:
            raise InputError(f"prompt template {name} is in none of {', '.join(map(str, self.folders))}") from None
        except jinja2.TemplateSyntaxError as exc:
            raise InputError(f"prompt template {exc.filename or name}, line {exc.lineno}: {exc.message}") from None
        if "user" not in template.blocks:
            raise InputError(f"prompt template {template.filename}: no {{% block user %}} (a template has a user "
                             "block and may have a system block)")
        return template

    def render(self, name: str, **values: object) -> Messages:
        """The chat messages of template `name`: its `system` block, then its `user` block."""
        template = self.template(name)
        context = template.new_context(values)
        try:
            return [{"role": role, "content": "".join(template.blocks[role](context)).strip()}
                    for role in ("system", "user") if role in template.blocks]
        except jinja2.UndefinedError as exc:
            raise InputError(f"prompt template {template.filename}: {exc.message} (it is given "
                             f"{', '.join(sorted(values))})") from None


@lru_cache(maxsize=1)
def default_templates() -> Templates:
    return Templates()


def render(name: str, **values: object) -> Messages:
    """The chat messages of packaged template `name`."""
    return default_templates().render(name, **values)


def default_pool_file() -> Path:
    return Path(str(resources.files("kgqa") / "data" / "fewshot_metaqa_dev.jsonl"))


# ---- few-shot examples -----------------------------------------------------------------------


class ExamplePool:
    """Few-shot examples and their masked question vectors, searched by cosine in a FAISS index."""

    def __init__(self, examples: list[Example], embedder: SentenceEmbedder, cache_dir: Path | None = None,
                 distractors: int = DISTRACTORS) -> None:
        if not examples:
            raise InputError("the few-shot pool is empty")
        self.examples = examples
        self.embedder = embedder
        self.vectors = self._question_vectors(cache_dir)
        self.index = VectorIndex(self.vectors, examples)
        self.paths = sorted({e.path for e in examples})
        path_vectors = embedder.embed([verbalise_path(parse_path(p)) for p in self.paths])
        similar = path_vectors @ path_vectors.T
        np.fill_diagonal(similar, -np.inf)
        self.nearest_paths = {p: [self.paths[j] for j in np.argsort(-similar[i], kind="stable")[:distractors]]
                              for i, p in enumerate(self.paths)}

    @classmethod
    def load(cls, file: Path | str, embedder: SentenceEmbedder, cache_dir: Path | None = None) -> "ExamplePool":
        file = Path(file)
        if not file.exists():
            raise InputError(f"few-shot pool {file} does not exist")
        examples = [Example(row["question"], row.get("topic", ""), row["path"], source=row.get("source", ""))
                    for row in read_pool_rows(file)]
        return cls(examples, embedder, cache_dir)

    def _question_vectors(self, cache_dir: Path | None) -> np.ndarray:
        """The masked questions' vectors, cached under a key of the texts and the embedding model's contents
        (not its folder: a retrained model in the same place must not get the old vectors)."""
        texts = [e.masked for e in self.examples]
        key = hashlib.sha256(("\n".join(texts) + "\n" + self.embedder.fingerprint).encode()).hexdigest()[:16]
        cache = cache_dir / "fewshot" / f"{key}.npy" if cache_dir else None
        if cache is not None and cache.exists():
            try:
                vectors = np.load(cache)
                if vectors.shape == (len(texts), self.embedder.dim):
                    return vectors
            except (ValueError, EOFError, OSError):
                pass  # a cut or foreign file: compute again and replace it
        vectors = self.embedder.embed(texts)
        if cache is not None:
            save_atomically(cache, vectors)
        return vectors

    def shown_for(self, question: str, examples: list[Example]) -> list[dict]:
        """The examples of one prompt, their gold letters all different (a rotation seeded by the question)."""
        start = zlib.crc32(question.encode())
        return [self.shown(e, start + turn) for turn, e in enumerate(examples)]

    def nearest(self, question_vectors: np.ndarray, k: int) -> list[list[Example]]:
        """For each (masked) question vector, its k most similar examples with k different gold paths."""
        if k <= 0 or len(question_vectors) == 0:
            return [[] for _ in range(len(question_vectors))]
        return [self._nearest_distinct(vector, k) for vector in question_vectors]

    def _nearest_distinct(self, vector: np.ndarray, k: int) -> list[Example]:
        """Search ever more neighbours until k of them have different gold paths (or the pool is used up)."""
        wanted = min(len(self.examples), 8 * k)
        while True:
            _, ids = self.index.search(vector, wanted)
            chosen: dict[str, Example] = {}
            for j in ids[0]:
                if j >= 0 and self.examples[j].path not in chosen:
                    chosen[self.examples[j].path] = self.examples[j]
                    if len(chosen) == k:
                        return list(chosen.values())
            if wanted >= len(self.examples):
                return list(chosen.values())
            wanted = min(len(self.examples), wanted * 4)

    def shown(self, example: Example, gold_at: int = 0) -> dict:
        """An example as the template shows it: options (its gold path among the paths worded most like
        it) and the gold letter, at position `gold_at`."""
        paths = list(self.nearest_paths[example.path])
        gold_at %= len(paths) + 1
        paths.insert(gold_at, example.path)
        return {"topic": example.topic, "question": example.question, "answer": OPTION_IDS[gold_at],
                "options": [{"id": OPTION_IDS[i], "text": verbalise_path(parse_path(p))} for i, p in enumerate(paths)]}


def save_atomically(file: Path, array: np.ndarray) -> None:
    """`np.save` through `files.write_atomically` (to an open file: given a path, np.save would add `.npy`)."""
    def write(tmp: Path) -> None:
        with tmp.open("wb") as out:
            np.save(out, array)

    write_atomically(file, write)


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
                  budget: int, per_message: int = 5, templates: Templates | None = None) -> Prompt:
    """The path-choice prompt; to fit `budget`, drop the least similar examples, then the lowest-ranked
    candidates (never below two)."""
    templates = templates or default_templates()
    shots, options = list(examples), list(candidates)[:len(OPTION_IDS)]
    cut = {"examples": 0, "candidates": len(candidates) - len(options)}
    while True:
        shown = [{"id": OPTION_IDS[i], "text": text} for i, text in enumerate(options)]
        messages = templates.render("choose_path.j2", topic=topic, question=question, options=shown, examples=shots)
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
                 per_message: int = 5, max_answers: int = 10, max_facts: int = 12,
                 templates: Templates | None = None) -> Prompt:
    """The reply prompt; to fit `budget`, drop facts from the end, then answers beyond the first three."""
    templates = templates or default_templates()
    names = list(answers[:max_answers])
    shown_facts = [[s, relation_words(r), o] for s, r, o in facts[:max_facts]]
    cut = {"answers": len(answers) - len(names), "facts": len(facts) - len(shown_facts)}
    while True:
        messages = templates.render("reply.j2", question=question, answers=names, more=len(answers) - len(names),
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


def rewrite_prompt(question: str, turns: list[tuple[str, list[str]]], count: Counter, budget: int,
                   per_message: int = 5, max_answers: int = 5, templates: Templates | None = None) -> Prompt:
    """The follow-up rewrite prompt: the turns so far (question, answers), oldest dropped first to fit."""
    templates = templates or default_templates()
    shown = [{"question": q, "answers": a[:max_answers], "more": max(0, len(a) - max_answers)} for q, a in turns]
    while True:
        messages = templates.render("rewrite_question.j2", question=question, turns=shown)
        tokens = count_prompt_tokens(count, messages, per_message)
        if tokens <= budget or len(shown) <= 1:
            return Prompt(messages, [], tokens, {"turns": len(turns) - len(shown)} if len(shown) < len(turns) else {},
                          fits=tokens <= budget)
        shown.pop(0)
