"""FAISS vector indexes kept on disk with a fingerprint, rebuilt only when what they index changes.

A `VectorIndex` is a FAISS inner-product index (vectors are L2-normalised, so scores are cosines) plus
one JSON payload per row. It is saved as a folder: `index.faiss`, `items.json`, `meta.json`. The
fingerprint in `meta.json` hashes the embedding model and the exact texts that were embedded, so a new
graph (other paths or names), a new example pool or a retrained model means a rebuild, and nothing
else does.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from kgqa.errors import ModelError

INDEX_VERSION = "faiss-flat-ip-v1"


def model_fingerprint(model_dir: Path) -> str:
    """Changes when the model's weights file changes (path, size, modification time)."""
    weights = Path(model_dir) / "model.safetensors"
    if not weights.exists():
        raise ModelError(f"{model_dir}: no model.safetensors; is this a model directory?")
    stat = weights.stat()
    return hashlib.sha256(f"{weights.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]


def content_fingerprint(kind: str, model_key: str, texts: Sequence[str], extra: str = "") -> str:
    digest = hashlib.sha256(f"{INDEX_VERSION}|{kind}|{model_key}|{extra}|{len(texts)}\n".encode())
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()[:20]


def to_gpu(index: faiss.Index) -> faiss.Index:
    """The index on GPU 0 when faiss was built with GPU support and a GPU is visible; else unchanged."""
    if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() == 0:
        return index
    try:  # pragma: no cover - needs faiss-gpu and CUDA
        return faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    except RuntimeError:  # pragma: no cover
        return index


class VectorIndex:
    """Exact inner-product search over normalised vectors, each row carrying a JSON payload."""

    def __init__(self, vectors: np.ndarray, items: list[dict[str, Any]], fingerprint: str = "",
                 meta: dict[str, Any] | None = None) -> None:
        if len(vectors) != len(items):
            raise ValueError(f"{len(vectors)} vectors but {len(items)} items")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.dim = vectors.shape[1] if vectors.ndim == 2 and vectors.shape[1] else 1
        cpu_index = faiss.IndexFlatIP(self.dim)
        if len(vectors):
            cpu_index.add(vectors)
        self.index = to_gpu(cpu_index)
        self._cpu_index = cpu_index
        self.items = items
        self.fingerprint = fingerprint
        self.meta = meta or {}

    def __len__(self) -> int:
        return len(self.items)

    def search(self, queries: np.ndarray, k: int, subset: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Scores and row ids [queries, k], best first; -1 ids pad when fewer rows exist.

        `subset` restricts the search to those rows (e.g. the paths reachable from one topic entity).
        """
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = max(1, min(k, len(self.items) if subset is None else len(subset)))
        if subset is None:
            if not self.items:
                return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
            return self.index.search(queries, k)
        if len(subset) == 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(np.asarray(subset, np.int64)))
        return self._cpu_index.search(queries, k, params=params)

    def vectors(self) -> np.ndarray:
        return self._cpu_index.reconstruct_n(0, self._cpu_index.ntotal) if len(self) else np.zeros((0, self.dim), np.float32)

    # ---- disk ------------------------------------------------------------------------------

    def save(self, folder: Path) -> None:
        """Write the folder atomically enough: each file goes to a temporary name first."""
        folder.mkdir(parents=True, exist_ok=True)
        files = {"index.faiss": None, "items.json": json.dumps(self.items, ensure_ascii=False),
                 "meta.json": json.dumps({**self.meta, "fingerprint": self.fingerprint, "rows": len(self),
                                          "dim": self.dim, "version": INDEX_VERSION}, indent=2)}
        for name, text in files.items():
            tmp = folder / f".{name}.tmp"
            if text is None:
                faiss.write_index(self._cpu_index, str(tmp))
            else:
                tmp.write_text(text, encoding="utf-8")
        # meta.json last: a folder whose meta names the fingerprint is complete
        for name in files:
            (folder / f".{name}.tmp").replace(folder / name)

    @classmethod
    def load(cls, folder: Path) -> "VectorIndex":
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        items = json.loads((folder / "items.json").read_text(encoding="utf-8"))
        cpu_index = faiss.read_index(str(folder / "index.faiss"))
        index = cls.__new__(cls)
        index._cpu_index = cpu_index
        index.index = to_gpu(cpu_index)
        index.dim = cpu_index.d
        index.items = items
        index.fingerprint = meta.pop("fingerprint", "")
        index.meta = meta
        if cpu_index.ntotal != len(items):
            raise ModelError(f"{folder}: index has {cpu_index.ntotal} rows but items.json {len(items)}")
        return index


def stored_fingerprint(folder: Path) -> str | None:
    try:
        return json.loads((folder / "meta.json").read_text(encoding="utf-8")).get("fingerprint")
    except (OSError, ValueError):
        return None


def build_or_load(folder: Path | None, fingerprint: str, texts: list[str], items: list[dict[str, Any]],
                  embed: Callable[[list[str]], np.ndarray], meta: dict[str, Any] | None = None
                  ) -> tuple[VectorIndex, bool]:
    """The index stored in `folder` when its fingerprint matches, else a fresh one (saved there).

    Returns (index, built): `built` is False when it came from disk.
    """
    if folder is not None and stored_fingerprint(folder) == fingerprint:
        try:
            return VectorIndex.load(folder), False
        except (OSError, ValueError, RuntimeError, ModelError):
            pass  # unreadable: rebuild below
    started = time.perf_counter()
    vectors = embed(texts)
    index = VectorIndex(vectors, items, fingerprint,
                        {**(meta or {}), "build_seconds": round(time.perf_counter() - started, 2),
                         "built_at": time.strftime("%Y-%m-%d %H:%M:%S")})
    if folder is not None:
        index.save(folder)
    return index, True
