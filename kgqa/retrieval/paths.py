"""Relation-path retrieval: verbalise paths, embed them once, rank them against a question."""

from __future__ import annotations

import atexit
import re
from functools import lru_cache
from pathlib import Path as FsPath

import numpy as np

from kgqa.encoder import BlendedEmbedder, SentenceEmbedder
from kgqa.files import write_atomically
from kgqa.types import STEP_SEPARATOR, Path, PathCandidate, Step


def relation_words(relation: str) -> str:
    """`directed_by` -> `directed by`; `ns:birthPlace` -> `birth place`."""
    local = re.split(r"[:/#]", relation)[-1]
    local = re.sub(r"([a-z])([A-Z])", r"\1 \2", local)
    return re.sub(r"[_.\-\s]+", " ", local).strip().lower()


def word_stems(text: str) -> frozenset[str]:
    """The words of a text cut to their first five letters (`starring`, `starred` -> `starr`)."""
    return frozenset(word[:5] for word in re.findall(r"[a-z]{3,}", text.lower()))


@lru_cache(maxsize=65_536)
def relation_stems(relation: str) -> frozenset[str]:
    """The `word_stems` of a relation's words: what a question that names the relation shares with it."""
    return word_stems(relation_words(relation))


def verbalise_step(step: Step) -> str:
    words = relation_words(step.relation)
    return f"reverse of {words}" if step.inverse else words


def verbalise_path(path: Path) -> str:
    return STEP_SEPARATOR.join(verbalise_step(step) for step in path)


SAVE_EVERY = 512
"""New path vectors that make `save` rewrite the cache file; the rest are written at exit."""


class PathRanker:
    """Cosine similarity between a question and each path's verbalisation, less a penalty per hop.

    An embedder that was not trained for paths cannot count hops (longer verbalisations score higher),
    so each hop beyond the first costs `hop_penalty`; 0.1 was chosen on MetaQA dev for the packaged
    MiniLM. Path vectors are cached on disk.
    """

    def __init__(self, embedder: SentenceEmbedder, cache_dir: FsPath | None = None,
                 hop_penalty: float = 0.1) -> None:
        """cache_dir: the path vectors are kept in `<cache_dir>/paths/<model contents digest>.npz`."""
        self.embedder = embedder
        self.hop_penalty = hop_penalty
        self.cache_file = cache_file = cache_dir / "paths" / f"{embedder.fingerprint}.npz" if cache_dir else None
        self._vectors: dict[str, np.ndarray] = {}
        self._texts: dict[Path, str] = {}
        self._dirty = False
        self._new = 0
        atexit.register(self._save_at_exit)
        if cache_file is not None and cache_file.exists():
            with np.load(cache_file) as data:
                texts = data["texts"].tobytes().decode("utf-8").split("\n")
                self._vectors = dict(zip(texts, data["vectors"]))

    def path_vectors(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if missing:
            embed = self.embedder.embed_paths if isinstance(self.embedder, BlendedEmbedder) else self.embedder.embed
            self._vectors.update(zip(missing, embed(missing)))
            self._dirty = True
            self._new += len(missing)
        return np.stack([self._vectors[t] for t in texts]) if texts else np.zeros((0, self.embedder.dim))

    def _save_at_exit(self) -> None:
        try:
            self.save(force=True)
        except OSError:  # a cache we cannot write is only slower next time
            pass

    def save(self, force: bool = False) -> None:
        """Write the vectors to the cache file once `SAVE_EVERY` new ones have piled up (or when forced: at exit).

        Rewriting the whole file after every question would cost more than answering it on a big schema.
        """
        if self.cache_file is None or not self._dirty or (self._new < SAVE_EVERY and not force):
            return
        texts = list(self._vectors)

        def write(tmp: FsPath) -> None:
            with tmp.open("wb") as out:
                np.savez(out, texts=np.frombuffer("\n".join(texts).encode("utf-8"), np.uint8),
                         vectors=np.stack([self._vectors[t] for t in texts]))

        write_atomically(self.cache_file, write)
        self._dirty, self._new = False, 0

    def text(self, path: Path) -> str:
        """The path's verbalisation (memoised: the search asks for the same paths again and again)."""
        text = self._texts.get(path)
        if text is None:
            text = self._texts[path] = verbalise_path(path)
        return text

    def score(self, question_vector: np.ndarray, paths: list[Path]) -> np.ndarray:
        """Cosine of the question with each path's text, less `hop_penalty` per hop beyond the first."""
        if not paths:
            return np.zeros(0, np.float32)
        hops = np.array([len(p) - 1 for p in paths], np.float32)
        return self.path_vectors([self.text(p) for p in paths]) @ question_vector - self.hop_penalty * hops

    def rank(self, question_vectors: np.ndarray, paths: list[list[Path]], top_k: int) -> list[list[PathCandidate]]:
        """The top_k of each question's given paths, best first."""
        ranked = []
        for vector, candidates in zip(question_vectors, paths):
            scores = self.score(vector, candidates)
            order = np.argsort(-scores, kind="stable")[:top_k]
            ranked.append([PathCandidate(candidates[i], self.text(candidates[i]), float(scores[i])) for i in order])
        return ranked
