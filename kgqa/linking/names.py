"""The baseline linker: find entity names inside the question, longest match first, ignoring case."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np

from kgqa.files import replace_folder
from kgqa.graph.store import GraphStore
from kgqa.types import Entity, Mention

_TOKEN = re.compile(r"\w+|[^\w\s]")


def tokens_with_spans(text: str) -> list[tuple[str, int, int]]:
    return [(m.group().lower(), m.start(), m.end()) for m in _TOKEN.finditer(text)]


def normalise(text: str) -> str:
    """Lower case, one space between word and punctuation tokens: `Paris, Texas` -> `paris , texas`."""
    return " ".join(tok for tok, _, _ in tokens_with_spans(text))


NAME_INDEX_VERSION = "names-v2"


def key_hash(key: str) -> int:
    """A stable 64-bit hash of a normalised name (Python's own hash() changes with every process)."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "little")


class NameIndex:
    """Normalised entity name -> the entity names that share it, as sorted 64-bit key hashes and a name blob.

    Built once per graph (under `<cache>/linking/<graph>/`) and memory-mapped afterwards, so a graph with
    millions of entities costs no start-up time and no Python dict of millions of strings.
    """

    def __init__(self, hashes: np.ndarray, offsets: np.ndarray, data: np.ndarray, max_tokens: int) -> None:
        self.hashes = hashes
        self.offsets = offsets
        self.data = data
        self.max_tokens = max_tokens

    @classmethod
    def build(cls, graph: GraphStore, cache_dir: Path | None = None, max_tokens: int = 24) -> "NameIndex":
        folder = None
        if cache_dir is not None:
            graph_id = hashlib.sha256(graph.identity().encode("utf-8")).hexdigest()[:20]
            folder = Path(cache_dir) / "linking" / graph_id / NAME_INDEX_VERSION
            if (folder / "meta.json").exists():
                try:
                    return cls.load(folder)
                except (OSError, ValueError, KeyError):
                    pass  # unreadable: build again
        rows: list[tuple[int, str]] = []
        longest = 1
        for name in graph.entity_names():
            key = normalise(name)
            if key:
                rows.append((key_hash(key), name))
                longest = max(longest, key.count(" ") + 1)
        rows.sort(key=lambda r: r[0])  # stable: names of one key keep the graph's order
        encoded = [name.encode("utf-8") for _, name in rows]
        offsets = np.zeros(len(rows) + 1, np.int64)
        np.cumsum([len(b) for b in encoded], out=offsets[1:])
        index = cls(np.array([h for h, _ in rows], np.uint64), offsets, np.frombuffer(b"".join(encoded), np.uint8),
                    min(longest, max_tokens))
        if folder is not None:
            index.save(folder)
        return index

    def save(self, folder: Path) -> None:
        def fill(tmp: Path) -> None:
            for name in ("hashes", "offsets", "data"):
                np.save(tmp / f"{name}.npy", getattr(self, name))
            (tmp / "meta.json").write_text(json.dumps({"max_tokens": self.max_tokens}), encoding="utf-8")

        replace_folder(folder, fill)

    @classmethod
    def load(cls, folder: Path) -> "NameIndex":
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        arrays = [np.load(folder / f"{name}.npy", mmap_mode="r") for name in ("hashes", "offsets", "data")]
        return cls(*arrays, meta["max_tokens"])

    def get(self, key: str) -> list[str]:
        """The entity names whose normalised form is `key`, in the graph's order."""
        h = np.uint64(key_hash(key))
        lo, hi = int(np.searchsorted(self.hashes, h, "left")), int(np.searchsorted(self.hashes, h, "right"))
        names = [bytes(self.data[self.offsets[i]:self.offsets[i + 1]]).decode("utf-8") for i in range(lo, hi)]
        return [n for n in names if normalise(n) == key]  # a hash collision is not a match


class NameMatchLinker:
    """Links the longest span of the question that equals an entity name (case-insensitive)."""

    def __init__(self, graph: GraphStore, index: NameIndex | None = None, cache_dir: Path | None = None) -> None:
        self.graph = graph
        self.index = index or NameIndex.build(graph, cache_dir)

    def link(self, question: str) -> list[Mention]:
        """Mentions, best first: longer spans first, then those written exactly as a name, then later ones."""
        toks = tokens_with_spans(question)
        found: list[tuple[int, bool, int, Mention]] = []
        for i in range(len(toks)):
            for j in range(min(len(toks), i + self.index.max_tokens), i, -1):
                key = " ".join(t for t, _, _ in toks[i:j])
                names = self.index.get(key)
                if names:
                    start, end = toks[i][1], toks[j - 1][2]
                    ranked = self._rank(names, question[start:end])
                    exact = ranked[0].name == question[start:end]
                    found.append((j - i, exact, start, Mention(question[start:end], start, end, ranked)))
                    break
        found.sort(key=lambda f: (-f[0], not f[1], -f[2]))
        return [m for *_, m in found]

    def link_batch(self, questions: list[str]) -> list[list[Mention]]:
        return [self.link(q) for q in questions]

    def _rank(self, names: list[str], surface: str) -> tuple[Entity, ...]:
        ranked = sorted(names, key=lambda n: (n != surface, n.lower() != surface.lower(), -self.graph.degree(n)))
        return tuple(Entity(name, self.graph.degree(name)) for name in ranked)
