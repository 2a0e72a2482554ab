"""The reranker as a model directory: a BERT cross-encoder plus a small fusion layer.

A reranker folder is what `kgqa train reranker` writes:
  config.json, model.safetensors, tokenizer.json, ...   the cross-encoder (kgqa.rerank.torch_model, a
                                                        transformers model: save_pretrained; mean-pooled
                                                        BERT, one logit per text pair)
  fusion.json                                           the fusion layer: logistic regression over the
                                                        cross-encoder logit and the earlier stages' signals,
                                                        and how the answer set is chosen
  kgqa_reranker.json                                    how it was trained and what it scored on held-out dev

Scoring a batch: every (masked question, path text) pair of every question is scored in one call,
duplicates once, sorted by length so each forward pass pads little. On a CPU the numpy BertEncoder runs
it (no torch import, fp32); `TorchCrossEncoder` is the torch twin, bf16 + SDPA + torch.compile on CUDA.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kgqa.encoder import BertEncoder, CleanTokenizer, clean_text
from kgqa.errors import ModelError
from kgqa.rerank.candidates import FEATURES, Group, RankedAnswer, feature_matrix, select_answers
from kgqa.retrieval.paths import verbalise_path
from kgqa.types import Path as PathType

FUSION_FILE = "fusion.json"
META_FILE = "kgqa_reranker.json"
MAX_LENGTH = 64
"""Word pieces per pair: MetaQA dev questions take at most 34, path verbalisations at most 22. A longer pair
loses the start of its question, never its path text (see question_fits)."""


def unique_pairs(questions: Sequence[str], texts: Sequence[str]) -> tuple[list[tuple[str, str]], np.ndarray]:
    """The distinct (question, text) pairs, and for each input pair the index of its distinct pair."""
    index: dict[tuple[str, str], int] = {}
    where = np.fromiter((index.setdefault(pair, len(index)) for pair in zip(questions, texts)), np.int64,
                        len(questions))
    return list(index), where


def question_fits(text_lengths: Sequence[int], max_length: int, specials: int) -> np.ndarray:
    """Per pair, whether cutting its question alone makes it fit max_length (the text, of text_lengths word
    pieces, leaves the question one piece at least). Such pairs lose the question's start, which in a long
    question is the preamble before the asking; the others (a text as long as the pair) are cut longest first."""
    return np.asarray(text_lengths, np.int64) < max_length - specials


def length_batches(lengths: Sequence[int], max_tokens: int, max_rows: int) -> list[np.ndarray]:
    """Row indices sorted by length, cut into batches of at most max_rows rows and max_tokens padded tokens."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    batches, current, longest = [], [], 0
    for i in order.tolist():
        width = max(longest, lengths[i])
        if current and (len(current) + 1 > max_rows or width * (len(current) + 1) > max_tokens):
            batches.append(np.array(current))
            current, width = [], lengths[i]
        current.append(i)
        longest = width
    if current:
        batches.append(np.array(current))
    return batches


class NumpyCrossEncoder:
    """The cross-encoder in numpy: BERT, mean over the pair's tokens, the linear classifier."""

    def __init__(self, model_dir: Path, max_length: int = MAX_LENGTH, max_tokens: int = 8192,
                 max_rows: int = 256) -> None:
        from tokenizers import Tokenizer

        self.encoder = BertEncoder(model_dir, max_length=max_length)
        heads = self.encoder.heads
        if "classifier.weight" not in heads or self.encoder.config.get("kgqa_pooling") != "mean":
            raise ModelError(f"{model_dir}: not a kgqa cross-encoder (no classifier weights or mean pooling)")
        self.classifier = (heads["classifier.weight"], heads["classifier.bias"])
        self.max_length = max_length
        self.max_tokens = max_tokens
        self.max_rows = max_rows
        self.pad_id = self.encoder.config.get("pad_token_id", 0)
        # unpadded copies of the tokenizer: one cuts only the question, from its start; one cuts both
        spec = self.encoder.tokenizer.to_str()
        self.cut_question = CleanTokenizer(Tokenizer.from_str(spec))
        self.cut_question.enable_truncation(max_length, strategy="only_first", direction="left")
        self.cut_both = CleanTokenizer(Tokenizer.from_str(spec))
        self.cut_both.enable_truncation(max_length, strategy="longest_first")
        for tokenizer in (self.cut_question, self.cut_both):
            tokenizer.no_padding()

    def encode_pairs(self, pairs: Sequence[tuple[str, str]]) -> list:
        """Tokenizer encodings of (question, text) pairs, at most max_length word pieces each, unpadded: the
        question is cut (from its start), the text kept whole, unless the text alone fills the pair."""
        texts = self.cut_both.encode_batch([t for _, t in pairs], add_special_tokens=False)
        fits = question_fits([len(e.ids) for e in texts], self.max_length,
                             self.cut_both.num_special_tokens_to_add(True))
        out: list = [None] * len(pairs)
        for tokenizer, rows in ((self.cut_question, np.flatnonzero(fits)), (self.cut_both, np.flatnonzero(~fits))):
            if len(rows):
                for i, encoding in zip(rows.tolist(), tokenizer.encode_batch([pairs[i] for i in rows])):
                    out[i] = encoding
        return out

    def score(self, questions: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        """One logit per (question, text) pair."""
        if not questions:
            return np.zeros(0, np.float32)
        pairs, where = unique_pairs(questions, texts)
        encodings = self.encode_pairs(pairs)
        lengths = [len(e.ids) for e in encodings]
        out = np.zeros(len(pairs), np.float32)
        for rows in length_batches(lengths, self.max_tokens, self.max_rows):
            width = max(lengths[i] for i in rows)
            ids = np.full((len(rows), width), self.pad_id, np.int64)
            mask = np.zeros((len(rows), width), np.int64)
            types = np.zeros((len(rows), width), np.int64)
            for k, i in enumerate(rows.tolist()):
                n = lengths[i]
                ids[k, :n], mask[k, :n], types[k, :n] = encodings[i].ids, 1, encodings[i].type_ids
            hidden = self.encoder.forward(ids, mask, types)
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(1) / np.maximum(weights.sum(1), 1.0)
            out[rows] = (pooled @ self.classifier[0].T + self.classifier[1])[:, 0]
        return out[where]


class TorchCrossEncoder:
    """The same model in torch: fp32 on a CPU; bf16, SDPA attention and torch.compile on CUDA."""

    def __init__(self, model_dir: Path, device: str | None = None, max_length: int = MAX_LENGTH,
                 max_tokens: int = 65536, max_rows: int = 1024, compile: bool | None = None,
                 dtype: str | None = None) -> None:
        """dtype: "bfloat16" or "float32"; default bf16 on CUDA, fp32 on the CPU."""
        import torch
        from transformers import AutoTokenizer
        from transformers.utils import logging as hf_logging

        from kgqa.rerank.torch_model import load_cross_encoder

        hf_logging.disable_progress_bar()  # no "Loading weights" bar on every start
        self.torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        on_gpu = self.device.startswith("cuda")
        self.dtype = getattr(torch, dtype) if dtype else (torch.bfloat16 if on_gpu else torch.float32)
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        self.model = load_cross_encoder(model_dir, self.dtype).to(self.device).eval()
        self.forward = self.model
        if compile if compile is not None else on_gpu:
            self.forward = torch.compile(self.model, dynamic=True)
        self.max_length = max_length
        self.max_tokens = max_tokens if on_gpu else 8192
        self.max_rows = max_rows if on_gpu else 256

    def score(self, questions: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        torch = self.torch
        if not questions:
            return np.zeros(0, np.float32)
        pairs, where = unique_pairs(questions, texts)
        encoded = self.encode_pairs(pairs)
        lengths = [len(ids) for ids in encoded["input_ids"]]
        out = np.zeros(len(pairs), np.float32)
        with torch.inference_mode():
            for rows in length_batches(lengths, self.max_tokens, self.max_rows):
                batch = self.tokenizer.pad({k: [encoded[k][i] for i in rows] for k in encoded},
                                           return_tensors="pt")
                batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
                logits = self.forward(**batch)
                out[rows] = logits.float().cpu().numpy()
        return out[where]

    def encode_pairs(self, pairs: Sequence[tuple[str, str]]) -> dict[str, list]:
        """Token ids etc. of (question, text) pairs, cut as NumpyCrossEncoder.encode_pairs cuts them."""
        pairs = [(clean_text(q), clean_text(t)) for q, t in pairs]
        text_ids = self.tokenizer([t for _, t in pairs], add_special_tokens=False)["input_ids"]
        fits = question_fits([len(ids) for ids in text_ids], self.max_length,
                             self.tokenizer.num_special_tokens_to_add(pair=True))
        out: dict[str, list] = {}
        for strategy, side, rows in (("only_first", "left", np.flatnonzero(fits)),
                                     ("longest_first", "right", np.flatnonzero(~fits))):
            if not len(rows):
                continue
            self.tokenizer.truncation_side = side
            encoded = self.tokenizer([pairs[i][0] for i in rows], [pairs[i][1] for i in rows],
                                     truncation=strategy, max_length=self.max_length)
            for key, values in encoded.items():
                column = out.setdefault(key, [None] * len(pairs))
                for i, value in zip(rows.tolist(), values):
                    column[i] = value
        return out


# ---- the fusion layer ----------------------------------------------------------------------------


@dataclass
class Fusion:
    """Logistic regression over standardised signals (`features`, some or all of FEATURES, whose full rows
    `logits` takes), and how the answer set is taken from the scores."""

    weights: np.ndarray
    bias: float
    mean: np.ndarray
    scale: np.ndarray
    features: tuple[str, ...] = FEATURES
    mode: str = "group"
    threshold: float = 0.5
    degree_weight: float = 0.0
    extra: dict = field(default_factory=dict)

    def logits(self, x: np.ndarray) -> np.ndarray:
        """x: rows of every one of FEATURES (`feature_matrix`); the fusion reads its own."""
        columns = [FEATURES.index(f) for f in self.features]
        return ((x[:, columns] - self.mean) / self.scale) @ self.weights + self.bias

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.logits(x)))

    def to_json(self) -> dict:
        return {"features": list(self.features), "weights": self.weights.tolist(), "bias": self.bias,
                "mean": self.mean.tolist(), "scale": self.scale.tolist(), "mode": self.mode,
                "threshold": self.threshold, "degree_weight": self.degree_weight, **self.extra}

    @classmethod
    def from_json(cls, data: dict) -> "Fusion":
        features = tuple(data["features"])
        unknown = sorted(set(features) - set(FEATURES))
        if unknown:
            raise ModelError(f"the reranker's fusion layer was fitted on signals this kgqa no longer computes "
                             f"({', '.join(unknown)}): fit it again with `kgqa train reranker --fusion-only` (a "
                             "benchmark's models) or `kgqa train all` (a graph's own)")
        known = {"features", "weights", "bias", "mean", "scale", "mode", "threshold", "degree_weight"}
        return cls(np.asarray(data["weights"], np.float32), float(data["bias"]), np.asarray(data["mean"], np.float32),
                   np.asarray(data["scale"], np.float32), features, data.get("mode", "group"),
                   float(data.get("threshold", 0.5)), float(data.get("degree_weight", 0.0)),
                   {k: v for k, v in data.items() if k not in known})

    @classmethod
    def retrieval_order(cls) -> "Fusion":
        """What the agent does without a reranker: the LLM's choice, else the best topic's first path."""
        return cls(np.array([-1.0, -10.0, 20.0], np.float32), 0.0, np.zeros(3, np.float32), np.ones(3, np.float32),
                   ("path_rank", "topic_rank", "llm_choice"))

    @classmethod
    def cross_only(cls) -> "Fusion":
        """The cross-encoder's logit alone (before a fusion layer is trained)."""
        weights = np.zeros(len(FEATURES), np.float32)
        weights[FEATURES.index("cross")] = 1.0
        return cls(weights, 0.0, np.zeros(len(FEATURES), np.float32), np.ones(len(FEATURES), np.float32))


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, iterations: int = 50) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """L2-regularised logistic regression by Newton's method on standardised features.

    Returns (weights, bias, mean, scale) in the form Fusion uses.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    mean = x.mean(0)
    scale = x.std(0)
    scale[scale < 1e-6] = 1.0
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    theta = np.zeros(z.shape[1])
    penalty = np.full(z.shape[1], l2)
    penalty[-1] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ theta, -30, 30)))
        gradient = z.T @ (p - y) + penalty * theta
        hessian = (z * (p * (1 - p))[:, None]).T @ z + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        theta -= step
        if np.abs(step).max() < 1e-7:
            break
    return theta[:-1].astype(np.float32), float(theta[-1]), mean.astype(np.float32), scale.astype(np.float32)


# ---- the reranker ---------------------------------------------------------------------------------


class Reranker:
    """Score groups (cross-encoder + fusion, all questions of a batch at once) and pick each answer set."""

    def __init__(self, model_dir: Path, fusion: Fusion, scorer=None, meta: dict | None = None) -> None:
        self.model_dir = Path(model_dir)
        self.fusion = fusion
        self.scorer = scorer or NumpyCrossEncoder(self.model_dir)
        self.meta = meta or {}

    @classmethod
    def load(cls, model_dir: Path, backend: str = "numpy") -> "Reranker":
        """backend: numpy (CPU, no torch), or torch (CUDA when available: bf16, SDPA, compiled)."""
        model_dir = Path(model_dir)
        if not (model_dir / "model.safetensors").exists():
            raise ModelError(f"{model_dir}: no reranker here (run `kgqa train reranker`)")
        try:
            fusion = Fusion.from_json(json.loads((model_dir / FUSION_FILE).read_text()))
        except FileNotFoundError:
            fusion = Fusion.cross_only()
        except (ValueError, KeyError) as exc:
            raise ModelError(f"{model_dir / FUSION_FILE}: unreadable fusion layer ({exc})") from None
        try:
            meta = json.loads((model_dir / META_FILE).read_text())
        except (OSError, ValueError):
            meta = {}
        scorer = TorchCrossEncoder(model_dir) if backend == "torch" else NumpyCrossEncoder(model_dir)
        return cls(model_dir, fusion, scorer, meta)

    def score(self, masked_questions: Sequence[str], groups: Sequence[Group]) -> None:
        """Set each group's cross-encoder logit and fused score; `masked_questions[g.question]` is its question."""
        if not groups:
            return
        logits = self.scorer.score([masked_questions[g.question] for g in groups], [g.text for g in groups])
        for group, logit in zip(groups, logits.tolist()):
            group.cross = logit
        probabilities = self.fusion.probabilities(feature_matrix(groups))
        for group, p in zip(groups, probabilities.tolist()):
            group.score = p

    def path_logits(self, masked_question: str, paths: Sequence[PathType]) -> list[float]:
        """The cross-encoder's logit of each path's verbalisation for one question (the planner's candidate
        programs, which are not groups)."""
        texts = [verbalise_path(p) for p in paths]
        return self.scorer.score([masked_question] * len(texts), texts).tolist()

    def select(self, groups: Sequence[Group], degree=None) -> list[RankedAnswer]:
        """The answer set of one question's scored groups, best first (degree: name -> graph degree)."""
        return select_answers(groups, self.fusion.mode, self.fusion.threshold, degree, self.fusion.degree_weight)

    def rerank_batch(self, masked_questions: Sequence[str], groups: Sequence[Sequence[Group]],
                     degree=None) -> tuple[list[list[RankedAnswer]], float]:
        """Score every group of every question in one batched call; each question's ranked answers, and the ms."""
        started = time.perf_counter()
        self.score(masked_questions, [g for row in groups for g in row])
        selected = [self.select(row, degree) for row in groups]
        return selected, (time.perf_counter() - started) * 1000
