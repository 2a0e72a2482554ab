"""The alias index: from a mention's text to the graph entities it may name.

Three ways to find candidates, tried in order of cost:
  exact    the normalised mention equals a normalised entity name (case, punctuation, accents and a
           leading article do not count: "the lord of the rings" finds "The Lord of the Rings");
  fuzzy    a name within one or two edits (typos; rapidfuzz over names of about the same length);
  nearest  the closest names in a FAISS index of name embeddings (near-miss wording), built lazily.

The index is built once per graph and cached under `cache_dir/aliases/<hash of the names>`.
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path

import numpy as np

from kgqa.config import Settings
from kgqa.files import write_atomically, write_text_atomically
from kgqa.graph.store import GraphStore

log = logging.getLogger(__name__)

CACHE_VERSION = "aliases-v1"
_WORDS = re.compile(r"[^\W_]+")
_ARTICLES = ("the", "a", "an")


def plain_words(text: str) -> str:
    """Lower case, no accents, words only: `The Lord of the Rings: Return!` -> `the lord of the rings return`."""
    text = unicodedata.normalize("NFKD", text.replace("&", " and "))
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    return " ".join(_WORDS.findall(text))


def normalise_alias(text: str) -> str:
    """The exact-match key: plain words without a leading article (`lord of the rings return`; `amelie`)."""
    words = plain_words(text)
    first, _, rest = words.partition(" ")
    return rest if rest and first in _ARTICLES else words


def edit_budget(key: str) -> int:
    """How many edits a typo may cost: 1 up to 9 characters, 2 up to 19, then 3."""
    return 1 + len(key) // 10


def names_key(names: list[str]) -> str:
    digest = hashlib.sha256(CACHE_VERSION.encode())
    for name in names:
        digest.update(name.encode("utf-8") + b"\n")
    return digest.hexdigest()[:20]


class AliasIndex:
    """Normalised names of a graph's entities, searchable exactly, fuzzily and by embedding."""

    def __init__(self, names: list[str], keys: list[str], cache_dir: Path | None = None) -> None:
        self.names = names
        self.keys = keys
        self.cache_dir = cache_dir
        self.by_key: dict[str, list[int]] = {}
        for i, key in enumerate(keys):
            if key:
                self.by_key.setdefault(key, []).append(i)
        # fuzzy search looks at both forms of a name, with and without its article ("thee unfaithful")
        self._fuzzy_keys: dict[str, list[int]] = {k: list(v) for k, v in self.by_key.items()}
        for i, name in enumerate(names):
            full = plain_words(name)
            if full != keys[i]:
                self._fuzzy_keys.setdefault(full, []).append(i)
        # unique keys sorted by length: the names within an edit budget are one contiguous slice
        self._sorted = sorted(self._fuzzy_keys, key=len)
        lengths = np.array([len(k) for k in self._sorted])
        self._first = np.searchsorted(lengths, np.arange(lengths.max() + 3 if len(lengths) else 1))
        self._faiss = None

    # ---- building and caching ----------------------------------------------------------------

    @classmethod
    def build(cls, names: list[str], cache_dir: Path | None = None) -> "AliasIndex":
        """Normalise every name, through the on-disk cache when `cache_dir` is given."""
        folder = Path(cache_dir) / "aliases" / names_key(names) if cache_dir else None
        keys_file = folder / "keys.txt" if folder else None
        if keys_file is not None and keys_file.exists():
            keys = keys_file.read_text(encoding="utf-8").split("\n")
            if len(keys) == len(names):
                return cls(names, keys, folder)
        keys = [normalise_alias(n) for n in names]
        if keys_file is not None:
            write_text_atomically(keys_file, "\n".join(keys))
        return cls(names, keys, folder)

    # ---- lookups -------------------------------------------------------------------------------

    def exact(self, text: str) -> list[int]:
        """Ids of the names whose normalised form equals the text's."""
        return list(self.by_key.get(normalise_alias(text), ()))

    def fuzzy(self, text: str, limit: int = 10) -> list[tuple[int, float]]:
        """Ids of names within the edit budget (optimal string alignment: a swap is one edit), each with
        the similarity of the text and the whole name (so "the final destinaton" prefers the name with "The")."""
        from rapidfuzz.distance import OSA
        from rapidfuzz.process import extract

        full = plain_words(text)
        best: dict[int, float] = {}
        for query in dict.fromkeys((full, normalise_alias(text))):
            if len(query) < 3:
                continue
            budget = edit_budget(query)
            last = len(self._first) - 1
            lo = self._first[min(last, max(0, len(query) - budget))]
            hi = self._first[min(last, len(query) + budget + 1)]
            for match, _, _ in extract(query, self._sorted[lo:hi], scorer=OSA.distance, score_cutoff=budget,
                                       limit=limit):
                for i in self._fuzzy_keys[match]:
                    if i not in best:
                        best[i] = OSA.normalized_similarity(full, plain_words(self.names[i]))
        return sorted(best.items(), key=lambda kv: -kv[1])

    def nearest(self, texts: list[str], embed: NameEmbedder, k: int = 5,
                min_similarity: float = 0.8) -> list[list[tuple[int, float]]]:
        """For each text, the names whose embeddings are closest (cosine >= min_similarity)."""
        index = self.embedding_index(embed)
        if not texts:
            return []
        scores, ids = index.search(np.ascontiguousarray(embed(texts), dtype=np.float32), k)
        return [[(int(i), float(s)) for s, i in zip(row_s, row_i) if i >= 0 and s >= min_similarity]
                for row_s, row_i in zip(scores, ids)]

    # ---- the embedding index ---------------------------------------------------------------------

    def embedding_file(self, embed: NameEmbedder) -> Path | None:
        """Where the names' embeddings by this model are kept: one file per embedding model's contents."""
        return self.cache_dir / f"names-{embed.fingerprint}.faiss" if self.cache_dir else None

    def embedding_index(self, embed: NameEmbedder, on_progress: Callable[[int, int], None] | None = None,
                        chunk: int = 2048):
        """The FAISS inner-product index over unit-length name embeddings: loaded, or built (minutes) and saved."""
        import faiss

        if self._faiss is not None:
            return self._faiss
        file = self.embedding_file(embed)
        if file is not None and file.exists():
            self._faiss = faiss.read_index(str(file))
            return self._faiss
        log.warning("building the entity-name embedding index for %d names (once per graph; takes minutes "
                    "on a CPU; `kgqa.linking.build_alias_index` builds it ahead of time)", len(self.names))
        first = embed(self.names[:1])
        index = faiss.IndexFlatIP(first.shape[1])
        for start in range(0, len(self.names), chunk):
            index.add(np.ascontiguousarray(embed(self.names[start:start + chunk]), dtype=np.float32))
            if on_progress:
                on_progress(min(start + chunk, len(self.names)), len(self.names))
        if file is not None:
            write_atomically(file, lambda tmp: faiss.write_index(index, str(tmp)))
        self._faiss = index
        return index


class NameEmbedder:
    """The sentence embedder of `model_dir` as a function of texts, loaded on first use; `fingerprint`
    (the model's contents digest) keys the cached name index without loading the model."""

    def __init__(self, model_dir: str | Path | None = None) -> None:
        from kgqa.encoder import default_model_path

        self.model_dir = Path(model_dir) if model_dir else default_model_path()

    @property
    def fingerprint(self) -> str:
        from kgqa.encoder import model_fingerprint

        return model_fingerprint(self.model_dir)

    def __call__(self, texts: list[str]) -> np.ndarray:
        from kgqa.encoder import load_embedder

        return load_embedder(str(self.model_dir)).embed(texts)


def build_alias_index(settings: Settings, graph: GraphStore, embeddings: bool = True,
                      on_progress: Callable[[int, int], None] | None = None) -> AliasIndex:
    """Build (or load) the graph's alias index under settings.cache_dir, with its embedding index if asked."""
    index = AliasIndex.build(graph.entity_names(), settings.cache_dir)
    if embeddings:
        index.embedding_index(NameEmbedder(settings.embedder), on_progress)
    return index
