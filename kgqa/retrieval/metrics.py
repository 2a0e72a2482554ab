"""Path recall: where the gold path lands among the paths the path search scores from the gold topic entity."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np

from kgqa.questions import Example
from kgqa.retrieval.paths import verbalise_path
from kgqa.retrieval.search import PathSearch

MISSING = 10**9


def gold_ranks(search: PathSearch, examples: Sequence[Example], penalties: Sequence[float], batch: int = 256,
               on_progress: Callable[[int], None] | None = None) -> dict[float, np.ndarray]:
    """For each hop penalty, the 0-based rank of each example's gold path among the paths the search scores
    from the gold topic (MISSING when the search does not reach it).

    The beam compares paths of one length at a time, so which paths it scores does not depend on the
    penalty; ties break in the search's order (stable).
    """
    ranker = search.ranker
    ranks = {p: np.full(len(examples), MISSING, np.int64) for p in penalties}
    for start in range(0, len(examples), batch):
        chunk = examples[start:start + batch]
        vectors = ranker.embedder.embed([e.masked for e in chunk])
        found = search.search_many([e.topic for e in chunk], vectors, None)
        for offset, (example, vector, row) in enumerate(zip(chunk, vectors, found)):
            paths = [c.path for c in row]
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


def recall_table(examples: Sequence[Example], ranks: np.ndarray, ks: Sequence[int] = (1, 5)
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
