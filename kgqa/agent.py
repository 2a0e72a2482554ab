"""The agent: wires the stages and answers one question or many through the same code."""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from pathlib import Path as FsPath

from kgqa.config import Settings
from kgqa.encoder import load_embedder
from kgqa.errors import InputError
from kgqa.graph import GraphStore, open_graph
from kgqa.linking.names import NameMatchLinker
from kgqa.retrieval.paths import PathRanker, verbalise_path
from kgqa.types import Answer, Entity, Mention, Result, format_path, parse_path

NO_ENTITY_REPLY = "I found no entity I know in the question."


def _model_key(model_dir: FsPath) -> str:
    weights = model_dir / "model.safetensors"
    stat = weights.stat()
    return hashlib.sha256(f"{weights.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]


def mask_mention(question: str, mention: Mention | None) -> str:
    """The question with the entity mention replaced, so that paths are matched on the wording alone."""
    if mention is None or mention.start < 0:
        return question
    return question[:mention.start] + "something" + question[mention.end:]


def write_reply(result: Result, limit: int = 10) -> str:
    """A short reply stating only what the graph returned."""
    if result.entity is None:
        return NO_ENTITY_REPLY
    if not result.answers:
        return f"I know {result.entity}, but found no answer to this question in the graph."
    names = result.answer_names
    shown = ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")
    return f"{shown} ({result.entity}: {verbalise_path(parse_path(result.path or ''))})"


class Agent:
    """Link → retrieve paths → walk the graph → answers with evidence."""

    def __init__(self, settings: Settings, graph: GraphStore | None = None) -> None:
        self.settings = settings
        self.graph = graph or open_graph(settings)
        self.linker = NameMatchLinker(self.graph)
        self.embedder = load_embedder(settings.embedder)
        cache = settings.cache_dir / "paths" / f"{_model_key(self.embedder.model_dir)}.npz"
        self.ranker = PathRanker(self.embedder, cache_file=cache, hop_penalty=settings.hop_penalty)

    def answer(self, question: str, topic: str | None = None) -> Result:
        return self.answer_batch([question], [topic])[0]

    def answer_batch(self, questions: list[str], topics: list[str | None] | None = None) -> list[Result]:
        """Answer many questions; `topics` optionally gives each question's topic entity (gold linking)."""
        for question in questions:
            if not question.strip():
                raise InputError("the question is empty")
        started = time.perf_counter()
        topics = topics or [None] * len(questions)
        mentions = self._mentions(questions, topics)
        chosen = [m.candidates[0].name if m else None for m in mentions]
        linked = time.perf_counter()

        vectors = self.embedder.embed([mask_mention(q, m) for q, m in zip(questions, mentions)])
        known = [i for i, t in enumerate(chosen) if t is not None]
        paths = self.graph.reachable_paths_many([chosen[i] for i in known], self.settings.max_hops)
        ranked_known = self.ranker.rank(vectors[known], paths, self.settings.top_paths)
        ranked: list[list] = [[] for _ in questions]
        for i, candidates in zip(known, ranked_known):
            ranked[i] = candidates
        self.ranker.save()
        retrieved = time.perf_counter()

        by_path: dict[tuple, list[int]] = defaultdict(list)
        for i, candidates in enumerate(ranked):
            if candidates:
                by_path[candidates[0].path].append(i)
        expansions = {}
        for path, rows in by_path.items():
            for row, expansion in zip(rows, self.graph.expand_many([chosen[r] for r in rows], path)):
                expansions[row] = expansion
        expanded = time.perf_counter()

        share = 1000.0 / len(questions)
        timings = {"link_ms": (linked - started) * share, "retrieve_ms": (retrieved - linked) * share,
                   "expand_ms": (expanded - retrieved) * share, "total_ms": (expanded - started) * share}
        results = []
        for i, question in enumerate(questions):
            result = Result(question=question, entity=chosen[i], timings=dict(timings),
                            mention=mentions[i].text if mentions[i] else None)
            if ranked[i]:
                best = ranked[i][0]
                result.path = format_path(best.path)
                result.path_candidates = [{"path": format_path(c.path), "text": c.text, "score": round(c.score, 4)}
                                          for c in ranked[i]]
                expansion = expansions[i]
                result.answers = [Answer(name, round(best.score, 4), expansion.topic, result.path,
                                         [t.as_list() for t in chain])
                                  for name, chain in sorted(expansion.evidence.items())]
            result.reply = write_reply(result)
            results.append(result)
        return results

    def _mentions(self, questions: list[str], topics: list[str | None]) -> list[Mention | None]:
        mentions: list[Mention | None] = []
        linked = self.linker.link_batch([q for q, t in zip(questions, topics) if t is None])
        linked_iter = iter(linked)
        for question, topic in zip(questions, topics):
            if topic is None:
                found = next(linked_iter)
                mentions.append(found[0] if found else None)
            else:
                mentions.append(self._given(question, topic))
        return mentions

    def _given(self, question: str, topic: str) -> Mention | None:
        """A mention for a topic entity given from outside (the gold-entity evaluation setting)."""
        names = self.graph.find_entities(topic)
        if not names:
            return None
        start = question.lower().find(topic.lower())
        end = start + len(topic) if start >= 0 else -1
        return Mention(topic, start, end, (Entity(names[0], self.graph.degree(names[0])),))
