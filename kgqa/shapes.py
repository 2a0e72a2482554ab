"""The question-shape model: which kind of program a question asks for (chain, conjunction, filter, count,
superlative, yes/no), learned per graph.

It is a multinomial logistic regression over a question's words with its entities and numbers masked
(`<e>`, `<n>`): words and word pairs, the opening word, how many entities and numbers it names, and the
English cue words of `kgqa.planner` as features of their own ("earliest" fires the same feature as
"smallest"), so that what the training wording lacks the cue words still carry. It trains in seconds on
the programs `kgqa.program_writer` writes from the graph alone, so every graph can have one
(`kgqa train shapes`, and `kgqa train all`), saved with the graph's other models under `shapes/`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import sparse

from kgqa.files import write_text_atomically
from kgqa.planner import (AFTER, BEFORE, BETWEEN, BY_COUNT, COUNT, EXCEPT, JOINED, KINDS, LARGEST, NUMBER, SMALLEST,
                          TIME_WORDS, WH_OR_REQUEST, YES_NO)

WEIGHTS_FILE = "model.safetensors"
VOCAB_FILE = "vocab.json"
MIN_COUNT = 2
"""A feature seen fewer times than this in training is left out."""

CUES = {"count": COUNT, "except": EXCEPT, "joined": JOINED, "before": BEFORE, "after": AFTER, "between": BETWEEN,
        "smallest": SMALLEST, "largest": LARGEST, "by_count": BY_COUNT, "time": TIME_WORDS, "wh": WH_OR_REQUEST}
WORDS = ("w=", "b=")
"""Features of the wording itself; training also sees each question without them, so the cue features
carry the decision where a user's wording is unlike the written one."""
TOKEN = re.compile(r"<e>|<n>|[a-z]+(?:'[a-z]+)?|\?")

Span = tuple[int, int, str]
"""(start, end, "e" for an entity or "n" for a number) in the question."""


def masked_text(question: str, spans: Sequence[Span]) -> str:
    """The question lower-cased, each entity read as `<e>` and each number as `<n>`."""
    out, at = [], 0
    for start, end, what in sorted(spans):
        if start < at:
            continue
        out += [question[at:start].lower(), " <e> " if what == "e" else " <n> "]
        at = end
    return "".join(out + [question[at:].lower()])


def features(question: str, spans: Sequence[Span]) -> list[str]:
    """The model's features of a question."""
    text = masked_text(question, spans)
    words = TOKEN.findall(text)
    plain = text.replace("<e>", "something").replace("<n>", "number")
    out = [f"w={w}" for w in words] + [f"b={a}_{b}" for a, b in zip(["^"] + words, words + ["$"])]
    out += [f"first={words[0] if words else ''}", f"entities={min(words.count('<e>'), 3)}",
            f"numbers={min(words.count('<n>'), 2)}"]
    out += [f"cue={name}" for name, pattern in CUES.items() if pattern.search(plain)]
    if YES_NO.match(plain):
        out.append("cue=auxiliary_opening")
    return out


@dataclass
class ShapeModel:
    """Kind probabilities for questions: weights over a feature vocabulary."""

    vocabulary: dict[str, int]
    weights: np.ndarray
    """(features, kinds)"""
    bias: np.ndarray
    kinds: tuple[str, ...] = KINDS

    def _matrix(self, rows: Sequence[list[str]]) -> sparse.csr_matrix:
        return feature_matrix(rows, self.vocabulary)

    def probabilities(self, questions: Sequence[str], spans: Sequence[Sequence[Span]]) -> np.ndarray:
        """(questions, kinds): how likely each kind is for each question."""
        logits = self._matrix([features(q, s) for q, s in zip(questions, spans)]) @ self.weights + self.bias
        return softmax(logits)

    def ranked(self, question: str, spans: Sequence[Span]) -> list[tuple[str, float]]:
        """The kinds for one question, likeliest first, with their probabilities."""
        p = self.probabilities([question], [spans])[0]
        return sorted(((k, float(v)) for k, v in zip(self.kinds, p)), key=lambda kv: -kv[1])

    def save(self, folder: Path) -> None:
        from safetensors.numpy import save_file

        folder.mkdir(parents=True, exist_ok=True)
        write_text_atomically(folder / VOCAB_FILE, json.dumps({"kinds": list(self.kinds),
                                                               "features": sorted(self.vocabulary, key=self.vocabulary.get)},
                                                              ensure_ascii=False) + "\n")
        save_file({"weights": self.weights.astype(np.float32), "bias": self.bias.astype(np.float32)},
                  str(folder / WEIGHTS_FILE))

    @classmethod
    def load(cls, folder: Path) -> ShapeModel | None:
        """The model saved in `folder`, or None when there is none."""
        from safetensors.numpy import load_file

        if not (folder / WEIGHTS_FILE).exists() or not (folder / VOCAB_FILE).exists():
            return None
        vocab = json.loads((folder / VOCAB_FILE).read_text(encoding="utf-8"))
        tensors = load_file(str(folder / WEIGHTS_FILE))
        return cls({f: i for i, f in enumerate(vocab["features"])}, tensors["weights"], tensors["bias"],
                   tuple(vocab["kinds"]))


def feature_matrix(rows: Sequence[list[str]], vocabulary: dict[str, int]) -> sparse.csr_matrix:
    """Rows of features as a binary sparse matrix over the vocabulary (unknown features dropped)."""
    indptr, indices = [0], []
    for row in rows:
        indices += sorted({vocabulary[f] for f in row if f in vocabulary})
        indptr.append(len(indices))
    data = np.ones(len(indices), dtype=np.float32)
    return sparse.csr_matrix((data, indices, indptr), shape=(len(rows), len(vocabulary)))


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def fit(questions: Sequence[str], spans: Sequence[Sequence[Span]], kinds: Sequence[str], epochs: int = 300,
        l2: float = 1e-4, rate: float = 0.1) -> ShapeModel:
    """A shape model fitted to labelled questions: full-batch Adam on the cross-entropy, L2-regularised."""
    rows = [features(q, s) for q, s in zip(questions, spans)]
    rows += [[f for f in row if not f.startswith(WORDS)] for row in rows]  # the cues alone must decide too
    kinds = list(kinds) * 2
    counts: dict[str, int] = {}
    for row in rows:
        for f in set(row):
            counts[f] = counts.get(f, 0) + 1
    vocabulary = {f: i for i, f in enumerate(sorted(f for f, c in counts.items() if c >= MIN_COUNT))}
    x = feature_matrix(rows, vocabulary)
    index = {k: i for i, k in enumerate(KINDS)}
    y = np.zeros((len(rows), len(KINDS)), dtype=np.float32)
    y[np.arange(len(rows)), [index[k] for k in kinds]] = 1.0
    w = np.zeros((len(vocabulary), len(KINDS)), dtype=np.float32)
    b = np.zeros(len(KINDS), dtype=np.float32)
    moments = [np.zeros_like(w), np.zeros_like(w), np.zeros_like(b), np.zeros_like(b)]
    for step in range(1, epochs + 1):
        error = (softmax(x @ w + b) - y) / len(rows)
        grads = (np.asarray(x.T @ error) + l2 * w, error.sum(axis=0))
        for i, (param, grad) in enumerate(zip((w, b), grads)):
            m, v = moments[2 * i], moments[2 * i + 1]
            m[:] = 0.9 * m + 0.1 * grad
            v[:] = 0.999 * v + 0.001 * grad * grad
            param -= rate * (m / (1 - 0.9 ** step)) / (np.sqrt(v / (1 - 0.999 ** step)) + 1e-8)
    return ShapeModel(vocabulary, w, b)


def written_spans(mentions: Sequence[tuple[int, int, str, str]]) -> list[Span]:
    """A written question's mentions (`kgqa.program_writer`) as spans: numbers for values, bounds and k, and
    for an asked value that is a number (as the planner reads them)."""
    return [(start, end, "n" if role in ("value", "upper", "k") or NUMBER.fullmatch(text) else "e")
            for start, end, text, role in mentions]


def train_shape_model(graph, count: int = 6_000, seed: int = 0, max_hops: int = 2) -> tuple[ShapeModel, dict]:
    """A shape model for `graph`, fitted on `count` programs written from it, and its accuracy on a held-out
    tenth of them."""
    from kgqa.program_writer import write_programs

    written = write_programs(graph, count, seed=seed, max_hops=max_hops)
    if not written:
        raise ValueError("the graph gave no questions to learn shapes from")
    held = written[::10]
    train = [w for i, w in enumerate(written) if i % 10]
    model = fit([w.question for w in train], [written_spans(w.mentions) for w in train], [w.kind for w in train])
    p = model.probabilities([w.question for w in held], [written_spans(w.mentions) for w in held])
    right = sum(1 for w, row in zip(held, p) if model.kinds[int(row.argmax())] == w.kind)
    kinds = {k: sum(1 for w in written if w.kind == k) for k in KINDS}
    return model, {"written": len(written), "kinds": kinds, "held_out": len(held),
                   "held_out_accuracy": round(100.0 * right / max(1, len(held)), 2), "seed": seed,
                   "features": len(model.vocabulary)}
