"""Path recall: where the gold path lands among the paths reachable from the gold topic entity."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np

from kgqa.graph.store import GraphStore
from kgqa.retrieval.data import PathExample
from kgqa.retrieval.paths import PathRanker, verbalise_path

MISSING = 10**9


def gold_ranks(ranker: PathRanker, graph: GraphStore, examples: Sequence[PathExample], penalties: Sequence[float],
               max_hops: int = 3, batch: int = 256, on_progress: Callable[[int], None] | None = None
               ) -> dict[float, np.ndarray]:
    """For each hop penalty, the 0-based rank of each example's gold path (MISSING when unreachable).

    Ties break as `PathRanker.rank` breaks them (stable order of the reachable paths).
    """
    ranks = {p: np.full(len(examples), MISSING, np.int64) for p in penalties}
    for start in range(0, len(examples), batch):
        chunk = examples[start:start + batch]
        vectors = ranker.embedder.embed([e.masked for e in chunk])
        reachable = graph.reachable_paths_many([e.topic for e in chunk], max_hops)
        for offset, (example, vector, paths) in enumerate(zip(chunk, vectors, reachable)):
            gold = example.steps
            if gold not in paths:
                continue
            g = paths.index(gold)
            cosine = ranker.path_vectors([verbalise_path(p) for p in paths]) @ vector
            hops = np.array([len(p) - 1 for p in paths], np.float32)
            for penalty in penalties:
                scores = cosine - penalty * hops
                before = np.count_nonzero(scores > scores[g]) + np.count_nonzero(scores[:g] == scores[g])
                ranks[penalty][start + offset] = before
        if on_progress:
            on_progress(len(chunk))
    return ranks


def recall_table(examples: Sequence[PathExample], ranks: np.ndarray, ks: Sequence[int] = (1, 5)
                 ) -> dict[str, dict[str, float]]:
    """Recall@k in percent per hop ("1", "2", …) and over all ("all"), with the question counts."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, example in enumerate(examples):
        groups[str(example.hops)].append(i)
        groups["all"].append(i)
    table = {}
    for name in sorted(groups, key=lambda g: (g == "all", g)):
        rows = ranks[groups[name]]
        table[name] = {"questions": len(rows), **{f"recall@{k}": round(100 * float(np.mean(rows < k)), 2) for k in ks}}
    return table
