"""The embedded graph store: numpy CSR adjacency per relation and direction, cached on disk.

Directed relation `d = 2 * r + inverse`: even ids walk a relation forwards, odd ids backwards.
`indptr[d]` and `indices[d]` are the CSR rows of that directed relation over entity ids.
"""

from __future__ import annotations

import hashlib
from pathlib import Path as FsPath

import numpy as np

from kgqa.errors import GraphError
from kgqa.graph.loaders import read_triples
from kgqa.graph.store import Expansion, GraphStore, step_triple
from kgqa.types import Path, Step, Triple

CACHE_VERSION = "csr-v1"


def _gather(indptr: np.ndarray, indices: np.ndarray, frontier: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All CSR neighbours of `frontier`, and for each the position of its source in `frontier`."""
    starts = indptr[frontier]
    counts = indptr[frontier + 1] - starts
    total = int(counts.sum())
    if total == 0:
        return np.empty(0, np.int32), np.empty(0, np.int64)
    source = np.repeat(np.arange(len(frontier)), counts)
    offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    return indices[starts[source] + offsets], source


class EmbeddedGraph(GraphStore):
    """An in-memory graph built from triples; loads from its cache in milliseconds."""

    def __init__(self, names: list[str], relations: list[str], indptr: list[np.ndarray],
                 indices: list[np.ndarray], source: str = "") -> None:
        self.names = names
        self._relations = relations
        self._relation_ids = {r: i for i, r in enumerate(relations)}
        self.indptr = indptr
        self.indices = indices
        self.source = source
        self._by_lower: dict[str, list[int]] | None = None
        self._has_step: np.ndarray | None = None
        self._degree: np.ndarray | None = None

    # ---- building and caching -------------------------------------------------------------

    @classmethod
    def from_triples(cls, triples: list[tuple[str, str, str]], source: str = "") -> "EmbeddedGraph":
        if not triples:
            raise GraphError(f"{source or 'graph'}: no triples")
        ids: dict[str, int] = {}
        rel_ids = {r: i for i, r in enumerate(sorted({t[1] for t in triples}))}
        subj = np.fromiter((ids.setdefault(s, len(ids)) for s, _, _ in triples), np.int32, len(triples))
        rel = np.fromiter((rel_ids[r] for _, r, _ in triples), np.int32, len(triples))
        obj = np.fromiter((ids.setdefault(o, len(ids)) for _, _, o in triples), np.int32, len(triples))
        n = len(ids)
        indptr, indices = [], []
        for r in range(len(rel_ids)):
            mask = rel == r
            for src, dst in ((subj[mask], obj[mask]), (obj[mask], subj[mask])):
                order = np.lexsort((dst, src))
                counts = np.bincount(src, minlength=n)
                indptr.append(np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))
                indices.append(dst[order].astype(np.int32))
        return cls(list(ids), list(rel_ids), indptr, indices, source)

    @classmethod
    def from_file(cls, path: FsPath, fmt: str | None = None, cache_dir: FsPath | None = None) -> "EmbeddedGraph":
        """Load a triples file, through the on-disk cache when one is given."""
        path = FsPath(path)
        cache_file = None
        if cache_dir is not None:
            cache_file = FsPath(cache_dir) / "graphs" / f"{file_fingerprint(path, fmt)}.npz"
            if cache_file.exists():
                return cls.load(cache_file, source=str(path))
        graph = cls.from_triples(read_triples(path, fmt), source=str(path))
        if cache_file is not None:
            graph.save(cache_file)
        return graph

    def save(self, file: FsPath) -> None:
        file.parent.mkdir(parents=True, exist_ok=True)
        arrays = {f"indptr_{d}": a for d, a in enumerate(self.indptr)}
        arrays |= {f"indices_{d}": a for d, a in enumerate(self.indices)}
        arrays["names"] = np.frombuffer("\n".join(self.names).encode("utf-8"), np.uint8)
        arrays["relations"] = np.frombuffer("\n".join(self._relations).encode("utf-8"), np.uint8)
        tmp = file.with_suffix(".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(file)

    @classmethod
    def load(cls, file: FsPath, source: str = "") -> "EmbeddedGraph":
        with np.load(file) as data:
            names = data["names"].tobytes().decode("utf-8").split("\n")
            relations = data["relations"].tobytes().decode("utf-8").split("\n")
            steps = 2 * len(relations)
            indptr = [data[f"indptr_{d}"] for d in range(steps)]
            indices = [data[f"indices_{d}"] for d in range(steps)]
        return cls(names, relations, indptr, indices, source or str(file))

    # ---- small helpers --------------------------------------------------------------------

    def _step_id(self, step: Step) -> int:
        try:
            return 2 * self._relation_ids[step.relation] + int(step.inverse)
        except KeyError:
            raise GraphError(f"unknown relation {step.relation!r}; the graph has: "
                             f"{', '.join(self._relations)}") from None

    def _step(self, d: int) -> Step:
        return Step(self._relations[d // 2], bool(d % 2))

    @property
    def has_step(self) -> np.ndarray:
        """Boolean matrix [entity, directed relation]: can that step be walked from the entity."""
        if self._has_step is None:
            self._has_step = np.stack([np.diff(p) > 0 for p in self.indptr], axis=1)
        return self._has_step

    def _ids(self, name: str) -> list[int]:
        if self._by_lower is None:
            index: dict[str, list[int]] = {}
            for i, n in enumerate(self.names):
                index.setdefault(n.lower(), []).append(i)
            self._by_lower = index
        return self._by_lower.get(name.lower(), [])

    def _id(self, name: str) -> int:
        ids = self._ids(name)
        for i in ids:
            if self.names[i] == name:
                return i
        if ids:
            return ids[0]
        raise GraphError(f"no entity named {name!r} in the graph")

    @property
    def degrees(self) -> np.ndarray:
        if self._degree is None:
            # out-edges (even ids) plus in-edges (odd ids): the triples the entity takes part in
            self._degree = sum(np.diff(self.indptr[d]) for d in range(len(self.indptr)))
        return self._degree

    # ---- GraphStore -----------------------------------------------------------------------

    def find_entities(self, name: str) -> list[str]:
        ids = self._ids(name)
        ids = sorted(ids, key=lambda i: (self.names[i] != name, -int(self.degrees[i])))
        return [self.names[i] for i in ids]

    def entity_names(self) -> list[str]:
        return list(self.names)

    def degree(self, name: str) -> int:
        ids = self._ids(name)
        exact = [i for i in ids if self.names[i] == name]
        return int(self.degrees[exact[0]]) if exact else 0

    def neighbours(self, name: str, step: Step) -> list[str]:
        d = self._step_id(step)
        i = self._id(name)
        return [self.names[j] for j in self.indices[d][self.indptr[d][i]:self.indptr[d][i + 1]]]

    def expand_ids(self, topic_ids: np.ndarray, path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
        """Walk `path` from many topics at once.

        Returns, per hop, (pairs, parent): `pairs[:, 0]` the topic position, `pairs[:, 1]` the entity
        reached, `parent` the row of the previous hop it came from (one parent kept per pair). A walk of two
        or more steps never comes back to its topic: "films whose writers also wrote Birdy" are films other
        than Birdy. A one-step walk may (the triple "Lemmy | starred_actors | Lemmy" answers "what films did
        Lemmy act in": the graph names the film and its star alike).
        """
        n = len(self.names)
        pairs = np.stack([np.arange(len(topic_ids)), topic_ids], axis=1).astype(np.int64)
        hops = [(pairs, np.full(len(pairs), -1))]
        for step in path:
            d = self._step_id(step)
            nbrs, source = _gather(self.indptr[d], self.indices[d], pairs[:, 1])
            if len(path) > 1:
                away = nbrs != topic_ids[pairs[source, 0]]
                nbrs, source = nbrs[away], source[away]
            keys = pairs[source, 0] * n + nbrs
            keys, first = np.unique(keys, return_index=True)
            pairs = np.stack([keys // n, keys % n], axis=1)
            hops.append((pairs, source[first]))
        return hops

    def expand_many(self, topics: list[str], path: Path) -> list[Expansion]:
        topic_ids = np.array([self._id(t) for t in topics], np.int64)
        hops = self.expand_ids(topic_ids, path)
        final, _ = hops[-1]
        rows = np.arange(len(final))
        expansions = [Expansion(self.names[t], path) for t in topic_ids]
        # walk the parent links back for all answers at once: nodes[h][k] = entity at hop h of answer k
        nodes = [final[rows, 1]]
        back = rows
        for h in range(len(path), 0, -1):
            back = hops[h][1][back]
            nodes.append(hops[h - 1][0][back, 1])
        names = [[self.names[i] for i in column.tolist()] for column in reversed(nodes)]
        for k, topic_pos in enumerate(final[rows, 0].tolist()):
            chain = [step_triple(step, names[h][k], names[h + 1][k]) for h, step in enumerate(path)]
            expansions[topic_pos].evidence[names[-1][k]] = chain
        return expansions

    def relations(self) -> list[str]:
        return list(self._relations)

    def follows(self) -> dict[Step, list[Step]]:
        has = self.has_step.astype(np.int32)
        # after walking d we stand on a target of d, i.e. an entity that can walk d's reverse
        reach = (has[:, [d ^ 1 for d in range(has.shape[1])]].T @ has) > 0
        return {self._step(d): [self._step(e) for e in np.flatnonzero(reach[d])] for d in range(has.shape[1])}

    def reachable_paths(self, topic: str, max_hops: int) -> list[Path]:
        start = np.array([self._id(topic)], np.int64)
        found: list[Path] = []
        self._walk(start, (), max_hops, found)
        return found

    def _walk(self, frontier: np.ndarray, prefix: Path, hops_left: int, found: list[Path]) -> None:
        steps = np.flatnonzero(self.has_step[frontier].any(axis=0))
        for d in steps:
            path = prefix + (self._step(int(d)),)
            found.append(path)
            if hops_left > 1:
                nbrs, _ = _gather(self.indptr[d], self.indices[d], frontier)
                self._walk(np.unique(nbrs), path, hops_left - 1, found)

    def stats(self) -> dict[str, object]:
        per_relation = {r: int(len(self.indices[2 * i])) for i, r in enumerate(self._relations)}
        return {"source": self.source, "entities": len(self.names), "triples": sum(per_relation.values()),
                "relations": len(self._relations), "triples_per_relation": per_relation}


def file_fingerprint(path: FsPath, fmt: str | None) -> str:
    """A key that changes when the file's bytes, its format or the cache layout change."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    digest.update(f"{fmt}|{CACHE_VERSION}".encode())
    return digest.hexdigest()[:20]

