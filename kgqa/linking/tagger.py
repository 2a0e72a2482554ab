"""The BERT mention tagger: marks the spans of a question that name entities (BIO labels per token).

Training fine-tunes a BERT model with torch (`train_tagger`) and saves a standard model directory
(`save_pretrained`: config.json, model.safetensors, tokenizer.json). Inference (`MentionTagger`) reads that
same directory with the numpy encoder, so answering a question never imports torch.

Training questions mark their mentions with brackets, as MetaQA does: `what movies did [Tom Hanks] act in`.
"""

from __future__ import annotations

import json
import os
import random
import re
import string
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kgqa.encoder import BertEncoder, CleanTokenizer
from kgqa.errors import InputError, ModelError
from kgqa.questions import parse_marked

LABELS = ("O", "B-ENT", "I-ENT")
OUTSIDE, BEGIN, INSIDE = range(3)
IGNORE = -100  # label of special and padding tokens: no loss
METADATA_FILE = "training.json"

_WORD_CHAR = re.compile(r"\w")
# What a user might type instead of a name: questions without an entity, for training the tagger to mark none
_NO_ENTITY_FILLERS = ("it", "this film", "that movie", "him", "her", "them", "someone", "this actor",
                      "the director", "my favourite film", "that one", "the best movie")


# ---- labelled questions --------------------------------------------------------------------------


@dataclass
class LabelledQuestion:
    """A question without brackets, the character spans of its mentions, and its relation path if known."""

    text: str
    spans: list[tuple[int, int]]
    path: str = ""
    topic: str = field(default="", compare=False)


def parse_bracketed(marked: str) -> LabelledQuestion | None:
    """`what does [Tom Cullen] act in` -> text without brackets and the span of `Tom Cullen`; None if unmarked
    (`questions.parse_marked`, the one parser of marked questions)."""
    found = parse_marked(marked)
    if found is None:
        return None
    return LabelledQuestion(found.text, list(found.spans), topic=found.topic)


def read_bracketed_file(path: Path) -> list[LabelledQuestion]:
    """Questions from a TSV whose first column marks mentions with brackets; an optional third column is the path."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such training file")
    examples = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            parts = line.rstrip("\n").split("\t")
            example = parse_bracketed(parts[0])
            if example is None:
                continue
            if len(parts) > 2:
                example.path = parts[2].strip()
            examples.append(example)
    return examples


# ---- augmentation ----------------------------------------------------------------------------------


def add_typo(word: str, rng: random.Random) -> str:
    """One random edit (swap two neighbours, drop, double or replace a letter), never at the first letter."""
    letters = [i for i, ch in enumerate(word) if ch.isalpha() and i > 0]
    if len(word) < 4 or not letters:
        return word
    i = rng.choice(letters)
    op = rng.randrange(4)
    if op == 0 and i + 1 < len(word) and word[i + 1].isalpha() and word[i + 1] != word[i]:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if op == 1:
        return word[:i] + word[i + 1:]
    if op == 2:
        return word[:i] + word[i] + word[i:]
    replacement = rng.choice([c for c in string.ascii_lowercase if c != word[i].lower()])
    return word[:i] + replacement + word[i + 1:]


def _replace_span(ex: LabelledQuestion, k: int, new: str, labelled: bool = True) -> LabelledQuestion:
    """Replace the text of mention k by `new`; `labelled=False` drops it from the mentions (a filler)."""
    start, end = ex.spans[k]
    text = ex.text[:start] + new + ex.text[end:]
    shift = len(new) - (end - start)
    spans = []
    for j, (s, e) in enumerate(ex.spans):
        if j == k:
            if labelled:
                spans.append((start, start + len(new)))
        elif s >= end:
            spans.append((s + shift, e + shift))
        else:
            spans.append((s, e))
    return LabelledQuestion(text, spans, ex.path, ex.topic)


def augment(examples: list[LabelledQuestion], rng: random.Random, typo: float = 0.25, lower: float = 0.25,
            no_entity: float = 0.04, pair: float = 0.04) -> list[LabelledQuestion]:
    """Copies with the noise users add: a typo in a mention, all lower case, no entity, two questions in one."""
    out = []
    for ex in examples:
        roll = rng.random()
        if roll < no_entity:
            ex = _replace_span(ex, 0, rng.choice(_NO_ENTITY_FILLERS), labelled=False)
        elif roll < no_entity + pair and len(examples) > 1:
            other = rng.choice(examples)
            offset = len(ex.text) + len(" and ")
            ex = LabelledQuestion(ex.text + " and " + other.text,
                                  ex.spans + [(s + offset, e + offset) for s, e in other.spans], "", ex.topic)
        if ex.spans and rng.random() < typo:
            k = rng.randrange(len(ex.spans))
            start, end = ex.spans[k]
            words = ex.text[start:end].split(" ")
            w = rng.randrange(len(words))
            words[w] = add_typo(words[w], rng)
            ex = _replace_span(ex, k, " ".join(words))
        if rng.random() < lower:
            ex = LabelledQuestion(ex.text.lower(), list(ex.spans), ex.path, ex.topic)
        out.append(ex)
    return out


def token_labels(offsets: list[tuple[int, int]], special: list[int], spans: list[tuple[int, int]]) -> list[int]:
    """BIO label per token from character spans; special tokens get IGNORE."""
    labels = []
    for (start, end), is_special in zip(offsets, special):
        if is_special or start == end:
            labels.append(IGNORE)
            continue
        label = OUTSIDE
        for s, e in spans:
            if start < e and end > s:
                label = BEGIN if start <= s else INSIDE
                break
        labels.append(label)
    # a span whose first token started before it (e.g. inside a word) still begins with B
    for s, e in spans:
        inside = [i for i, ((a, b), sp) in enumerate(zip(offsets, special)) if not sp and a < e and b > s and a != b]
        if inside:
            labels[inside[0]] = BEGIN
    return labels


# ---- inference (numpy) -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """A tagged mention: character offsets into the question and the tagger's confidence in it."""

    start: int
    end: int
    score: float


def _expand_to_words(text: str, start: int, end: int) -> tuple[int, int]:
    while start > 0 and _WORD_CHAR.match(text[start - 1]) and _WORD_CHAR.match(text[start]):
        start -= 1
    while end < len(text) and _WORD_CHAR.match(text[end]) and _WORD_CHAR.match(text[end - 1]):
        end += 1
    return start, end


def decode_spans(text: str, probs: np.ndarray, offsets: list[tuple[int, int]], special: list[int]) -> list[Span]:
    """Spans from per-token label probabilities: B starts a span (a stray I too), I continues it."""
    labels = probs.argmax(-1)
    spans: list[Span] = []
    current: list[int] = []

    def close() -> None:
        if current:
            start, end = _expand_to_words(text, offsets[current[0]][0], offsets[current[-1]][1])
            score = float(np.mean([probs[i, labels[i]] for i in current]))
            if spans and start < spans[-1].end:  # overlapping after widening to words: merge
                prev = spans.pop()
                start, score = prev.start, min(prev.score, score)
                end = max(end, prev.end)
            spans.append(Span(start, end, score))
            current.clear()

    for i, label in enumerate(labels):
        if special[i] or offsets[i][0] == offsets[i][1]:
            continue
        if label == BEGIN or (label == INSIDE and not current):
            close()
            current.append(i)
        elif label == INSIDE:
            current.append(i)
        else:
            close()
    close()
    return spans


def window_starts(n: int, width: int, stride: int) -> list[int]:
    """Starts of windows of `width` over n word pieces, `stride` apart, the last one ending at the end."""
    if n <= width:
        return [0]
    starts = list(range(0, n - width, stride))
    return starts + [n - width]


def best_window(n: int, width: int, starts: list[int]) -> np.ndarray:
    """For each of n word pieces, the window in which it sits farthest from a cut edge (the question's own
    start and end are not cuts): there it sees the most context on both sides."""
    room = np.full((len(starts), n), -1.0)
    positions = np.arange(n)
    for w, start in enumerate(starts):
        inside = (positions >= start) & (positions < start + width)
        left = positions - start if start > 0 else np.full(n, np.inf)
        right = start + width - 1 - positions if start + width < n else np.full(n, np.inf)
        room[w] = np.where(inside, np.minimum(left, right), -1.0)
    return room.argmax(0)


class MentionTagger:
    """Tags mentions with a fine-tuned BERT token classifier, running on the numpy encoder.

    A question longer than max_length word pieces is read in overlapping windows (half a window apart);
    each word piece takes its labels from the window where it sits farthest from a cut edge."""

    def __init__(self, model_dir: Path, max_length: int = 64, batch_size: int = 64, workers: int | None = None) -> None:
        from tokenizers import Tokenizer

        self.model_dir = Path(model_dir)
        self.workers = workers or min(4, os.cpu_count() or 1)
        self.encoder = BertEncoder(self.model_dir, max_length=max_length)
        self.max_length = max_length
        # the whole question in word pieces: windows are cut from it, not by the tokenizer
        self.tokenizer = CleanTokenizer(Tokenizer.from_str(self.encoder.tokenizer.to_str()))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.pad_id = self.encoder.config.get("pad_token_id", 0)
        try:
            self.weight = self.encoder.heads["classifier.weight"]
            self.bias = self.encoder.heads["classifier.bias"]
        except KeyError:
            raise ModelError(f"{model_dir}: no token-classification head (classifier.weight); "
                             "train one with `kgqa train linker`") from None
        labels = self.encoder.config.get("id2label", {})
        if [labels.get(str(i)) for i in range(len(LABELS))] != list(LABELS):
            raise ModelError(f"{model_dir}: labels {labels} are not the mention tagger's {LABELS}")
        self.batch_size = batch_size
        self.metadata = _read_json(self.model_dir / METADATA_FILE)

    def logits(self, questions: list[str]) -> list[np.ndarray]:
        """Per question, the [tokens, labels] logits over its tokens (special tokens included, no padding)."""
        return [logits for logits, _ in self._run(questions)]

    def tag_batch(self, questions: list[str]) -> list[list[Span]]:
        out = []
        for question, (logits, encoding) in zip(questions, self._run(questions)):
            probs = np.exp(logits - logits.max(-1, keepdims=True))
            probs /= probs.sum(-1, keepdims=True)
            out.append(decode_spans(question, probs, encoding.offsets, encoding.special_tokens_mask))
        return out

    def tag(self, question: str) -> list[Span]:
        return self.tag_batch([question])[0]

    def _windows(self, encoding) -> tuple[int, int, list[int], int]:
        """(leading special tokens, trailing ones, window starts over the pieces between, window width)."""
        special = encoding.special_tokens_mask
        head = next((i for i, s in enumerate(special) if not s), len(special))
        tail = next((i for i, s in enumerate(reversed(special)) if not s), 0) if head < len(special) else 0
        width = max(self.max_length - head - tail, 1)
        return head, tail, window_starts(len(special) - head - tail, width, max(width // 2, 1)), width

    def _run(self, questions: list[str]) -> list[tuple[np.ndarray, object]]:
        """Logits and tokenizer encoding per question; every window of every question in one batched run,
        windows of similar length together so that little is padded.

        Batches run on a few threads: numpy's element-wise steps (GELU, softmax) use one core each, and
        they release the GIL, so two batches at once keep two cores busy."""
        encodings = self.tokenizer.encode_batch(questions)
        layout = [self._windows(e) for e in encodings]
        rows: list[tuple[int, list[int], list[int]]] = []  # (question, ids, type ids) per window
        for q, (encoding, (head, tail, starts, width)) in enumerate(zip(encodings, layout)):
            ids, types, n = encoding.ids, encoding.type_ids, len(encoding.ids)
            for start in starts:
                keep = [*range(head), *range(head + start, min(head + start + width, n - tail)), *range(n - tail, n)]
                rows.append((q, [ids[i] for i in keep], [types[i] for i in keep]))
        order = sorted(range(len(rows)), key=lambda r: len(rows[r][1]))
        batches = [order[start:start + self.batch_size] for start in range(0, len(order), self.batch_size)]

        def run(batch: list[int]) -> list[tuple[int, np.ndarray]]:
            width = max(len(rows[r][1]) for r in batch)
            ids = np.full((len(batch), width), self.pad_id, np.int64)
            types = np.zeros((len(batch), width), np.int64)
            mask = np.zeros((len(batch), width), np.int64)
            for k, r in enumerate(batch):
                length = len(rows[r][1])
                ids[k, :length], types[k, :length], mask[k, :length] = rows[r][1], rows[r][2], 1
            logits = self.encoder.forward(ids, mask, types) @ self.weight.T + self.bias
            return [(r, logits[k, :int(mask[k].sum())]) for k, r in enumerate(batch)]

        if len(batches) > 1 and self.workers > 1:
            with ThreadPoolExecutor(self.workers) as pool:
                done = list(pool.map(run, batches))
        else:
            done = [run(batch) for batch in batches]
        window_logits: list = [None] * len(rows)
        for batch in done:
            for r, logits in batch:
                window_logits[r] = logits
        results, r = [], 0
        for encoding, (head, tail, starts, width) in zip(encodings, layout):
            windows = window_logits[r:r + len(starts)]
            r += len(starts)
            results.append((self._merge(windows, head, tail, starts, width), encoding))
        return results

    @staticmethod
    def _merge(windows: list[np.ndarray], head: int, tail: int, starts: list[int], width: int) -> np.ndarray:
        """One question's logits from its windows' logits (each: head specials, pieces, tail specials)."""
        if len(windows) == 1:
            return windows[0]
        n = starts[-1] + width
        best = best_window(n, width, starts)
        pieces = np.stack([windows[w][head + j - starts[w]] for j, w in enumerate(best.tolist())])
        return np.concatenate([windows[0][:head], pieces, windows[-1][len(windows[-1]) - tail:]])


def _read_json(file: Path) -> dict:
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError):
        return {}


# ---- training (torch) -----------------------------------------------------------------------------------


@dataclass
class TrainConfig:
    base_model: str
    layers: int = 2
    max_length: int = 40
    batch_size: int = 32
    learning_rate: float = 2e-4
    epochs: float = 1.0
    warmup: float = 0.06
    seed: int = 13
    freeze_embeddings: bool = True
    """Keep the word-piece embeddings fixed: a third of the step time, and typos still map to known pieces."""
    time_limit_s: float | None = None
    """Stop after this many seconds of training steps; the learning-rate schedule follows the clock then."""


def _batches(n: int, size: int, lengths: list[int], rng: random.Random) -> list[list[int]]:
    """Shuffled batches of indices; each batch of similar lengths (sorted within pools of 50 batches)."""
    order = list(range(n))
    rng.shuffle(order)
    pool = size * 50
    batches = []
    for start in range(0, n, pool):
        chunk = sorted(order[start:start + pool], key=lambda i: lengths[i])
        batches += [chunk[i:i + size] for i in range(0, len(chunk), size)]
    rng.shuffle(batches)
    return batches


def encode_examples(tokenizer, examples: list[LabelledQuestion], max_length: int) -> list[tuple[list[int], list[int]]]:
    """Token ids and BIO labels for each example (truncated to max_length)."""
    enc = tokenizer([e.text for e in examples], truncation=True, max_length=max_length,
                    return_offsets_mapping=True, return_special_tokens_mask=True)
    out = []
    for i, example in enumerate(examples):
        labels = token_labels(enc["offset_mapping"][i], enc["special_tokens_mask"][i], example.spans)
        out.append((enc["input_ids"][i], labels))
    return out


def span_accuracy(predicted: list[list[Span]], examples: list[LabelledQuestion]) -> dict[str, float]:
    """Share of questions whose tagged spans equal the gold spans exactly, and mention P/R/F1."""
    exact = tp = n_pred = n_gold = 0
    for spans, example in zip(predicted, examples):
        got = {(s.start, s.end) for s in spans}
        gold = set(example.spans)
        exact += got == gold
        tp += len(got & gold)
        n_pred += len(got)
        n_gold += len(gold)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    n = max(len(examples), 1)
    return {"exact_spans": round(exact / n, 4), "precision": round(precision, 4), "recall": round(recall, 4),
            "f1": round(f1, 4)}


def train_tagger(train: list[LabelledQuestion], validation: list[LabelledQuestion], out_dir: Path,
                 config: TrainConfig, on_progress: Callable[[int, int, float], None] | None = None) -> dict:
    """Fine-tune BERT as a BIO token classifier on `train`, save it to `out_dir`, return its metadata.

    `on_progress(step, total_steps, loss)` is called after every optimiser step.
    """
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    started, cpu_started = time.perf_counter(), time.process_time()
    tokenizer = AutoTokenizer.from_pretrained(config.base_model, use_fast=True)
    model = AutoModelForTokenClassification.from_pretrained(
        config.base_model, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)}, num_hidden_layers=config.layers)
    if config.freeze_embeddings:
        model.base_model.embeddings.word_embeddings.weight.requires_grad_(False)
    data = encode_examples(tokenizer, train, config.max_length)
    lengths = [len(ids) for ids, _ in data]
    epochs = max(config.epochs, 1e-9)
    batches: list[list[int]] = []
    while len(batches) < epochs * len(data) / config.batch_size:
        batches += _batches(len(data), config.batch_size, lengths, rng)
    batches = batches[:max(1, round(epochs * len(data) / config.batch_size))]
    total = len(batches)
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.learning_rate,
                                  weight_decay=0.01)
    pad = tokenizer.pad_token_id
    model.train()
    losses: list[float] = []
    steps_done = 0
    loop_started = time.perf_counter()
    for step, batch in enumerate(batches, start=1):
        # progress through training: by steps, or by the clock when a time limit comes first; the learning
        # rate warms up, then falls linearly to zero at the end, so a time-limited run still anneals
        done = (step - 1) / total
        if config.time_limit_s:
            done = max(done, (time.perf_counter() - loop_started) / config.time_limit_s)
        if done >= 1.0:
            break
        for group in optimiser.param_groups:
            group["lr"] = config.learning_rate * min(1.0, (done + 1 / total) / max(config.warmup, 1e-9),
                                                     (1.0 - done) / (1.0 - config.warmup))
        width = max(lengths[i] for i in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
        for row, i in enumerate(batch):
            tokens, tags = data[i]
            ids[row, :len(tokens)] = torch.tensor(tokens)
            labels[row, :len(tags)] = torch.tensor(tags)
        loss = model(input_ids=ids, attention_mask=(ids != pad).long(), labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        optimiser.zero_grad()
        losses.append(float(loss.detach()))
        steps_done = step
        if on_progress:
            on_progress(step, total, float(np.mean(losses[-50:])))
    train_seconds = time.perf_counter() - started

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    metadata = {"task": "mention tagging (BIO)", "labels": list(LABELS), "base_model": str(config.base_model),
                "config": {k: v for k, v in config.__dict__.items() if k != "base_model"},
                "train_questions": len(train), "validation_questions": len(validation), "steps": steps_done,
                "planned_steps": total, "stopped_by_time_limit": steps_done < total,
                "final_loss": round(float(np.mean(losses[-50:])), 4), "train_seconds": round(train_seconds, 1),
                "train_cpu_seconds": round(time.process_time() - cpu_started, 1), "torch_threads": torch.get_num_threads(),
                "torch": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    if validation:
        tagger = MentionTagger(out_dir, max_length=config.max_length)
        metadata["validation"] = span_accuracy(tagger.tag_batch([e.text for e in validation]), validation)
    (out_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    return metadata


def split_validation(examples: Iterable[LabelledQuestion], fraction: float, seed: int
                     ) -> tuple[list[LabelledQuestion], list[LabelledQuestion]]:
    """Hold out whole topic entities (every question about them), so validation measures unseen names."""
    import hashlib

    train, held = [], []
    for example in examples:
        digest = hashlib.sha256(f"{seed}|{example.topic.lower()}".encode()).digest()
        (held if int.from_bytes(digest[:4], "big") / 2**32 < fraction else train).append(example)
    return train, held
