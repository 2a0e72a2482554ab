"""The embedded graph store: one CSR adjacency over all relations, memory-mapped from its cache folder.

Directed relation ("step") `d = 2 * r + inverse`: even ids walk relation r forwards, odd ids backwards;
`D = 2 * relations`. Every triple (s, r, o) is stored twice, as the edges (s, 2r, o) and (o, 2r+1, s),
sorted by (source, step, target). A *pair* is one (source, step) run of edges:

    pair_key[p]      source * D + step, sorted (so an entity's pairs, and one step of it, are found by
                     binary search, and a hub with millions of edges costs no more to look up than a leaf)
    pair_offset[p]   where the pair's edges start in `edge_target`; pair_offset[P] = number of edges
    edge_target[e]   the entity an edge leads to

Entity names are one UTF-8 blob with offsets (no Python list of millions of strings); `lower_*` hold the
lower-cased names sorted, with `lower_order` the entity of each, for case-insensitive look-up by binary
search. The cache folder (`<cache>/graphs/<key>/`, `.npy` arrays plus `meta.json`) is keyed by the
triples file's path, size and modification time, so a second start opens it without reading the file;
`meta.json` records the file's content hash, the graph's identity.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path as FsPath

import numpy as np

from kgqa.errors import GraphError
from kgqa.files import replace_folder
from kgqa.graph.store import DEFAULT_WALK_CAP, Expansion, GraphStore, step_triple
from kgqa.types import Path, Step

CACHE_VERSION = "csr-v2"
ARRAYS = ("pair_key", "pair_offset", "edge_target", "name_offsets", "name_data", "lower_offsets",
          "lower_data", "lower_order")


def _ranges(starts: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions start..start+count-1 of every range, and for each the index of its range."""
    total = int(counts.sum())
    if total == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    owner = np.repeat(np.arange(len(counts)), counts)
    offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    return starts[owner] + offsets, owner


def _blob(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """UTF-8 bytes of many strings, concatenated, with int64 offsets."""
    encoded = [t.encode("utf-8") for t in texts]
    offsets = np.zeros(len(encoded) + 1, np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    return offsets, np.frombuffer(b"".join(encoded), np.uint8).copy()


KNOWN_IDS = 100_000
"""Entity names whose ids are remembered (topics and frontiers are looked up again and again)."""


class EmbeddedGraph(GraphStore):
    """A graph held in (memory-mapped) numpy arrays; opens from its cache in milliseconds."""

    def __init__(self, arrays: dict[str, np.ndarray], relations: list[str], meta: dict | None = None) -> None:
        self.arrays = arrays
        self.pair_key = arrays["pair_key"]
        self.pair_offset = arrays["pair_offset"]
        self.edge_target = arrays["edge_target"]
        self._relations = relations
        self._relation_ids = {r: i for i, r in enumerate(relations)}
        self.steps_count = 2 * len(relations)
        self.meta = meta or {}
        self.entity_count = len(arrays["name_offsets"]) - 1
        self.walk_cap = DEFAULT_WALK_CAP
        self._known_ids: dict[str, int] = {}
        self._step_objects = [Step(relations[d // 2], bool(d % 2)) for d in range(self.steps_count)]
        by_text = sorted(range(self.steps_count), key=lambda d: str(self._step_objects[d]))
        self._text_rank = np.empty(self.steps_count, np.int64)
        self._text_rank[by_text] = np.arange(self.steps_count)
        self._by_text_rank = np.array(by_text, np.int64)

    # ---- building ---------------------------------------------------------------------------------

    @classmethod
    def from_triples(cls, triples: list[tuple[str, str, str]], source: str = "") -> "EmbeddedGraph":
        """A graph from (subject, relation, object) strings (small graphs and tests)."""
        if not triples:
            raise GraphError(f"{source or 'graph'}: no triples")
        ids: dict[str, int] = {}
        for s, _, _ in triples:
            ids.setdefault(s, len(ids))
        for _, _, o in triples:
            ids.setdefault(o, len(ids))
        relations = sorted({r for _, r, _ in triples})
        rel_ids = {r: i for i, r in enumerate(relations)}
        subj = np.array([ids[s] for s, _, _ in triples], np.int64)
        rel = np.array([rel_ids[r] for _, r, _ in triples], np.int64)
        obj = np.array([ids[o] for _, _, o in triples], np.int64)
        content = hashlib.sha256("\n".join("|".join(t) for t in triples).encode("utf-8")).hexdigest()[:20]
        return cls.build(list(ids), relations, subj, rel, obj, {"source": source, "content": content})

    @classmethod
    def from_columns(cls, subjects, relations, objects, meta: dict) -> "EmbeddedGraph":
        """A graph from three Arrow string columns (what `loaders.read_columns` gives)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if len(subjects) == 0:
            raise GraphError(f"{meta.get('source') or 'graph'}: no triples")
        encoded = pc.dictionary_encode(pa.concat_arrays([subjects, objects]))
        entity_ids = encoded.indices.to_numpy().astype(np.int64)
        count = len(subjects)
        rel_encoded = pc.dictionary_encode(relations)
        rel_names = rel_encoded.dictionary.to_pylist()
        order = sorted(range(len(rel_names)), key=lambda i: rel_names[i])
        remap = np.empty(len(rel_names), np.int64)
        remap[order] = np.arange(len(rel_names))
        rel = remap[rel_encoded.indices.to_numpy()]
        names = encoded.dictionary.to_pylist()
        return cls.build(names, [rel_names[i] for i in order], entity_ids[:count], rel, entity_ids[count:], meta)

    @classmethod
    def build(cls, names: list[str], relations: list[str], subj: np.ndarray, rel: np.ndarray, obj: np.ndarray,
              meta: dict) -> "EmbeddedGraph":
        """Sort both directions of every triple into pairs and edges; duplicates collapse."""
        n, steps = len(names), 2 * len(relations)
        source = np.concatenate([subj, obj])
        step = np.concatenate([2 * rel, 2 * rel + 1])
        target = np.concatenate([obj, subj])
        del subj, obj, rel
        if n * n * steps < 2 ** 62:
            combined = np.sort((source * steps + step) * n + target)
            keep = np.ones(len(combined), bool)
            keep[1:] = combined[1:] != combined[:-1]
            combined = combined[keep]
            pair_keys, target = np.divmod(combined, n)
            del combined
        else:  # pragma: no cover - graphs beyond 2**62 (source, step, target) combinations
            order = np.lexsort((target, source * steps + step))
            pair_keys, target = (source * steps + step)[order], target[order]
            keep = np.ones(len(target), bool)
            keep[1:] = (pair_keys[1:] != pair_keys[:-1]) | (target[1:] != target[:-1])
            pair_keys, target = pair_keys[keep], target[keep]
        starts = np.flatnonzero(np.concatenate([[True], pair_keys[1:] != pair_keys[:-1]]))
        lower = [name.lower() for name in names]
        lower_order = np.array(sorted(range(n), key=lower.__getitem__), np.int32)
        name_offsets, name_data = _blob(names)
        lower_offsets, lower_data = _blob([lower[i] for i in lower_order])
        runs = np.diff(np.append(starts, len(target)))
        per_step = np.bincount(pair_keys[starts] % steps, weights=runs, minlength=steps).astype(np.int64)
        arrays = {"pair_key": pair_keys[starts], "pair_offset": np.append(starts, len(target)).astype(np.int64),
                  "edge_target": target.astype(np.int32), "name_offsets": name_offsets, "name_data": name_data,
                  "lower_offsets": lower_offsets, "lower_data": lower_data, "lower_order": lower_order}
        meta = {**meta, "entities": n, "triples": int(per_step[0::2].sum()),
                "triples_per_relation": {r: int(per_step[2 * i]) for i, r in enumerate(relations)}}
        return cls(arrays, list(relations), meta)

    # ---- the cache folder ---------------------------------------------------------------------------

    @classmethod
    def from_file(cls, path: FsPath, fmt: str | None = None, cache_dir: FsPath | None = None) -> "EmbeddedGraph":
        """Open a triples file's cache folder, or read the file (and write the folder when `cache_dir` is given)."""
        from kgqa.graph.loaders import read_columns

        path = FsPath(path)
        folder = FsPath(cache_dir) / "graphs" / file_key(path, fmt) if cache_dir is not None else None
        if folder is not None and (folder / "meta.json").exists():
            try:
                return cls.load(folder)
            except (OSError, ValueError, KeyError):
                pass  # unreadable (an older layout, a cut write): read the file again below
        columns = read_columns(path, fmt)
        graph = cls.from_columns(*columns, meta={"source": str(path), "content": content_hash(path, fmt)})
        if folder is not None:
            graph.save(folder)
            return cls.load(folder)  # memory-mapped, like every later start
        return graph

    def save(self, folder: FsPath) -> None:
        """Write the arrays and meta.json to a temporary folder beside `folder`, then rename it into place."""
        def fill(tmp: FsPath) -> None:
            for name in ARRAYS:
                np.save(tmp / f"{name}.npy", np.ascontiguousarray(self.arrays[name]))
            meta = {**self.meta, "relations": self._relations, "version": CACHE_VERSION}
            (tmp / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")

        replace_folder(folder, fill)

    @classmethod
    def load(cls, folder: FsPath) -> "EmbeddedGraph":
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        if meta.get("version") != CACHE_VERSION:
            raise ValueError(f"{folder}: cache layout {meta.get('version')}, not {CACHE_VERSION}")
        # plain ndarray views of the maps: indexing a np.memmap runs Python code per call (10x slower names)
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r").view(np.ndarray) for name in ARRAYS}
        return cls(arrays, meta.pop("relations"), meta)

    # ---- names ------------------------------------------------------------------------------------

    def name(self, i: int) -> str:
        offsets = self.arrays["name_offsets"]
        return bytes(self.arrays["name_data"][offsets[i]:offsets[i + 1]]).decode("utf-8")

    def names(self, ids: np.ndarray) -> list[str]:
        """`name` of each entity id, in one pass over the offsets."""
        offsets, data = self.arrays["name_offsets"], memoryview(self.arrays["name_data"])
        ids = np.asarray(ids, np.int64)
        return [str(data[a:b], "utf-8") for a, b in zip(offsets[ids].tolist(), offsets[ids + 1].tolist())]

    def _lower(self, rank: int) -> bytes:
        offsets = self.arrays["lower_offsets"]
        return bytes(self.arrays["lower_data"][offsets[rank]:offsets[rank + 1]])

    def _ids(self, name: str) -> list[int]:
        """Entities whose lower-cased name equals `name`'s, in entity order (binary search)."""
        key = name.lower().encode("utf-8")
        lo, hi = 0, self.entity_count
        while lo < hi:
            mid = (lo + hi) // 2
            if self._lower(mid) < key:
                lo = mid + 1
            else:
                hi = mid
        end = lo
        while end < self.entity_count and self._lower(end) == key:
            end += 1
        return sorted(int(i) for i in self.arrays["lower_order"][lo:end])

    def _id(self, name: str) -> int:
        known = self._known_ids.get(name)
        if known is not None:
            return known
        ids = self._ids(name)
        found = next((i for i in ids if self.name(i) == name), ids[0] if ids else None)
        if found is None:
            raise GraphError(f"no entity named {name!r} in the graph")
        if len(self._known_ids) >= KNOWN_IDS:
            self._known_ids.clear()
        self._known_ids[name] = found
        return found

    # ---- steps and walks --------------------------------------------------------------------------

    def _step_id(self, step: Step) -> int:
        try:
            return 2 * self._relation_ids[step.relation] + int(step.inverse)
        except KeyError:
            shown = ", ".join(self._relations[:20]) + (" ..." if len(self._relations) > 20 else "")
            raise GraphError(f"unknown relation {step.relation!r}; the graph has: {shown}") from None

    def _entity_pairs(self, entities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The first pair row of each entity and how many pairs (distinct steps) it has."""
        bounds = np.searchsorted(self.pair_key, np.stack([entities * self.steps_count,
                                                          (entities + 1) * self.steps_count]))
        return bounds[0], bounds[1] - bounds[0]

    def _degrees(self, entities: np.ndarray) -> np.ndarray:
        first, count = self._entity_pairs(entities)
        return self.pair_offset[first + count] - self.pair_offset[first]

    def _runs(self, entities: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
        """Where each entity's edges along step d start in `edge_target`, and how many there are."""
        keys = entities * self.steps_count + d
        rows = np.searchsorted(self.pair_key, keys)
        clipped = np.minimum(rows, len(self.pair_key) - 1)
        found = (rows < len(self.pair_key)) & (self.pair_key[clipped] == keys)
        starts = self.pair_offset[clipped]
        return starts, np.where(found, self.pair_offset[clipped + 1] - starts, 0)

    def walk(self, topic_ids: np.ndarray, path: Path, prefix: bool = False
             ) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray]:
        """Walk `path` from many topics at once, each step capped at `walk_cap` edges per topic.

        Returns (hops, capped, reached): per hop (pairs, parent), `pairs[:, 0]` the topic's position and
        `pairs[:, 1]` the entity reached, `parent` the row of the previous hop it came from (one parent kept
        per pair); per topic whether a step was capped, and the uncapped edge count of the last step.
        A walk of two or more steps (or the `prefix` of one) lands on its topic midway only if
        `walk_through_topic`, and ends there only if `topic_as_answer` (see `avoids_topic`).
        """
        n = self.entity_count
        topic_ids = np.asarray(topic_ids, np.int64)
        pairs = np.stack([np.arange(len(topic_ids)), topic_ids], axis=1)
        hops = [(pairs, np.full(len(pairs), -1))]
        capped = np.zeros(len(topic_ids), bool)
        reached = np.zeros(len(topic_ids), np.int64)
        for hop, step in enumerate(path):
            starts, counts = self._runs(pairs[:, 1], self._step_id(step))
            per_topic = np.bincount(pairs[:, 0], weights=counts, minlength=len(topic_ids)).astype(np.int64)
            reached = per_topic
            if (per_topic > self.walk_cap).any():
                before = np.cumsum(counts) - counts            # edges of earlier rows ...
                first_row = np.searchsorted(pairs[:, 0], pairs[:, 0])
                before -= before[first_row]                     # ... of the same topic
                counts = np.clip(self.walk_cap - before, 0, counts)
                capped |= per_topic > self.walk_cap
            positions, source = _ranges(starts, counts)
            targets = self.edge_target[positions].astype(np.int64)
            if self.avoids_topic(hop, len(path), prefix):
                keep = targets != topic_ids[pairs[source, 0]]
                targets, source = targets[keep], source[keep]
            keys, first = np.unique(pairs[source, 0] * n + targets, return_index=True)
            pairs = np.stack([keys // n, keys % n], axis=1)
            hops.append((pairs, source[first]))
        return hops, capped, reached

    # ---- GraphStore -------------------------------------------------------------------------------

    def find_entities(self, name: str) -> list[str]:
        ids = self._ids(name)
        degrees = self._degrees(np.array(ids, np.int64)) if ids else []
        ranked = sorted(zip(ids, degrees), key=lambda x: (self.name(x[0]) != name, -int(x[1])))
        return [self.name(i) for i, _ in ranked]

    def entity_names(self) -> list[str]:
        offsets = self.arrays["name_offsets"]
        data = bytes(self.arrays["name_data"])
        return [data[a:b].decode("utf-8") for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]

    def degree(self, name: str) -> int:
        exact = [i for i in self._ids(name) if self.name(i) == name]
        return int(self._degrees(np.array(exact[:1], np.int64))[0]) if exact else 0

    def neighbours(self, name: str, step: Step) -> list[str]:
        starts, counts = self._runs(np.array([self._id(name)], np.int64), self._step_id(step))
        return self.names(self.edge_target[starts[0]:starts[0] + counts[0]])

    def neighbours_many(self, names: list[str], step: Step) -> list[list[str]]:
        if not names:
            return []
        starts, counts = self._runs(np.array([self._id(n) for n in names], np.int64), self._step_id(step))
        positions, owner = _ranges(starts, counts)
        targets = self.edge_target[positions].astype(np.int64)
        distinct, which = np.unique(targets, return_inverse=True)
        spelled = self.names(distinct)
        out: list[list[str]] = [[] for _ in names]
        for row, j in zip(owner.tolist(), which.tolist()):
            out[row].append(spelled[j])
        return out

    def expand_many(self, topics: list[str], path: Path) -> list[Expansion]:
        topic_ids = np.array([self._id(t) for t in topics], np.int64)
        hops, capped, reached = self.walk(topic_ids, path)
        final, _ = hops[-1]
        rows = np.arange(len(final))
        expansions = [Expansion(self.name(int(t)), path, capped=bool(c), reached=int(r))
                      for t, c, r in zip(topic_ids, capped, reached)]
        # walk the parent links back for all answers at once: nodes[h][k] = entity at hop h of answer k
        nodes = [final[rows, 1]]
        back = rows
        for h in range(len(path), 0, -1):
            back = hops[h][1][back]
            nodes.append(hops[h - 1][0][back, 1])
        distinct = np.unique(np.concatenate(nodes)) if nodes else np.empty(0, np.int64)
        name_of = dict(zip(distinct.tolist(), self.names(distinct)))
        names = [[name_of[i] for i in column.tolist()] for column in reversed(nodes)]
        for k, topic_pos in enumerate(final[rows, 0].tolist()):
            chain = [step_triple(step, names[h][k], names[h + 1][k]) for h, step in enumerate(path)]
            expansions[topic_pos].evidence[names[-1][k]] = chain
        for expansion in expansions:
            if not expansion.capped:
                expansion.reached = len(expansion.evidence)
        return expansions

    def next_steps_many(self, topics: list[str], prefixes: list[Path]) -> list[list[Step]]:
        out: list[list[Step]] = [[] for _ in topics]
        by_prefix: dict[Path, list[int]] = {}
        for row, prefix in enumerate(prefixes):
            by_prefix.setdefault(tuple(prefix), []).append(row)
        for prefix, rows in by_prefix.items():
            topic_ids = np.array([self._id(topics[r]) for r in rows], np.int64)
            hops, _, _ = self.walk(topic_ids, prefix, prefix=True)
            frontier = hops[-1][0]
            first, count = self._entity_pairs(frontier[:, 1])
            positions, owner = _ranges(first, count)
            ranks = self._text_rank[self.pair_key[positions] % self.steps_count]
            keys = np.unique(frontier[owner, 0] * self.steps_count + ranks)
            for position, rank in zip((keys // self.steps_count).tolist(), (keys % self.steps_count).tolist()):
                out[rows[position]].append(self._step_objects[self._by_text_rank[rank]])
        return out

    def relations(self) -> list[str]:
        return list(self._relations)

    def follows(self) -> dict[Step, list[Step]]:
        from scipy.sparse import csr_matrix

        steps = self.pair_key % self.steps_count
        incidence = csr_matrix((np.ones(len(steps), np.int32), (self.pair_key // self.steps_count, steps)),
                               shape=(self.entity_count, self.steps_count))
        # after walking d we stand on a target of d, i.e. an entity that can walk d's reverse
        reverse = incidence[:, [d ^ 1 for d in range(self.steps_count)]]
        reach = (reverse.T @ incidence).toarray() > 0
        return {self._step_objects[d]: [self._step_objects[e] for e in np.flatnonzero(reach[d])]
                for d in range(self.steps_count)}

    def stats(self) -> dict[str, object]:
        return {"source": self.meta.get("source", ""), "entities": self.entity_count,
                "triples": self.meta["triples"], "relations": len(self._relations),
                "triples_per_relation": dict(self.meta["triples_per_relation"])}

    def identity(self) -> str:
        return f"file:{self.meta.get('content', '')}"


def file_key(path: FsPath, fmt: str | None) -> str:
    """The cache folder's name: the file's resolved path, size and modification time, its format, the layout."""
    stat = path.stat()
    text = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{fmt}|{CACHE_VERSION}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def content_hash(path: FsPath, fmt: str | None) -> str:
    """A hash of the file's bytes and format: the graph's identity, whatever its path."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    digest.update(f"|{fmt}".encode())
    return digest.hexdigest()[:20]
