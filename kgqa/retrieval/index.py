"""An exact FAISS inner-product index over unit-length vectors (so scores are cosines), each row with a payload.

Used where the agent searches vectors at run time: the graph's relation vocabulary (`retrieval.search`)
and the few-shot example pool (`prompting.ExamplePool`). Entity names have their own on-disk index
(`linking.aliases`). On a host with faiss-gpu and a GPU the index moves to the GPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import faiss
import numpy as np


def to_gpu(index: faiss.Index) -> faiss.Index:
    """The index on GPU 0 when faiss was built with GPU support and a GPU is visible; else unchanged."""
    if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() == 0:
        return index
    try:  # pragma: no cover - needs faiss-gpu and CUDA
        return faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    except RuntimeError:  # pragma: no cover
        return index


class VectorIndex:
    """Exact inner-product search over normalised vectors, each row carrying an item."""

    def __init__(self, vectors: np.ndarray, items: list[Any]) -> None:
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
