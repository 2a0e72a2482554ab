"""The agent: wires the stages and answers one question or many through the same code."""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path as FsPath

from kgqa.config import Settings
from kgqa.encoder import load_embedder, load_torch_embedder
from kgqa.errors import InputError
from kgqa.graph import GraphStore, open_graph
from kgqa.linking import make_linker
from kgqa.llm import make_llm
from kgqa.llm.tasks import Choice, PathChooser, ReplyWriter
from kgqa.prompting import ExamplePool
from kgqa.rerank import collect_groups, inference_backend, load_reranker, rank_other_topics
from kgqa.retrieval.model import path_model
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

    def __init__(self, settings: Settings, graph: GraphStore | None = None, many: bool = False) -> None:
        """many: the agent will answer many questions (batch, eval), so torch's faster kernels pay off."""
        self.settings = settings
        self.graph = graph or open_graph(settings)
        self.linker = make_linker(settings, self.graph)
        self.path_model = path_model(settings)  # the trained retriever when there is one
        backend = inference_backend(settings, many)
        self.embedder = (load_torch_embedder if backend == "torch" else load_embedder)(str(self.path_model.model_dir))
        cache = settings.cache_dir / "paths" / f"{_model_key(self.embedder.model_dir)}.npz"
        self.ranker = PathRanker(self.embedder, cache_file=cache, hop_penalty=self.path_model.hop_penalty)
        self.llm = make_llm(settings)
        self.chooser: PathChooser | None = None
        self.replier: ReplyWriter | None = None
        if self.llm is not None:
            pool = (None if (settings.fewshot_pool or "").lower() == "none"
                    else ExamplePool.load(settings.fewshot_pool, self.embedder, settings.cache_dir))
            self.chooser = PathChooser(self.llm, pool, budget=settings.llm_prompt_tokens, margin=settings.llm_margin)
            self.replier = ReplyWriter(self.llm, budget=settings.llm_prompt_tokens)
        self.reranker = load_reranker(settings, backend)  # the trained reranker when there is one

    def answer(self, question: str, topic: str | None = None) -> Result:
        return self.answer_batch([question], [topic])[0]

    def answer_batch(self, questions: list[str], topics: list[str | None] | None = None) -> list[Result]:
        """Answer many questions; `topics` optionally gives each question's topic entity (gold linking)."""
        if not questions:
            return []
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
        picks = (self.chooser.choose_many(questions, chosen, ranked, vectors) if self.chooser
                 else [Choice() for _ in questions])
        chose = time.perf_counter()
        if self.reranker is not None:
            stages = {"link_ms": linked - started, "retrieve_ms": retrieved - linked, "llm_ms": chose - retrieved}
            return self._answer_reranked(questions, mentions, ranked, picks, vectors, stages, started)

        by_path: dict[tuple, list[int]] = defaultdict(list)
        for i, candidates in enumerate(ranked):
            if candidates:
                by_path[candidates[picks[i].index].path].append(i)
        expansions = {}
        for path, rows in by_path.items():
            for row, expansion in zip(rows, self.graph.expand_many([chosen[r] for r in rows], path)):
                expansions[row] = expansion
        expanded = time.perf_counter()

        share = 1000.0 / len(questions)
        timings = {"link_ms": (linked - started) * share, "retrieve_ms": (retrieved - linked) * share,
                   "llm_ms": (chose - retrieved) * share,
                   "expand_ms": (expanded - chose) * share, "total_ms": (expanded - started) * share}
        results = []
        for i, question in enumerate(questions):
            result = Result(question=question, entity=chosen[i], timings=dict(timings),
                            mention=mentions[i].text if mentions[i] else None)
            if ranked[i]:
                pick = picks[i]
                best = ranked[i][pick.index]
                result.path = format_path(best.path)
                result.path_candidates = [{"path": format_path(c.path), "text": c.text, "score": round(c.score, 4)}
                                          for c in ranked[i]]
                if pick.by_llm:
                    result.path_candidates[pick.index]["llm_choice"] = True
                elif self.chooser is not None and pick.reason:
                    result.path_candidates[pick.index]["llm_fallback"] = pick.reason
                if pick.cut:
                    result.path_candidates[pick.index]["llm_prompt_cut"] = pick.cut
                result.llm_calls, result.prompt_tokens, result.completion_tokens = (
                    pick.calls, pick.prompt_tokens, pick.completion_tokens)
                expansion = expansions[i]
                result.answers = [Answer(name, round(best.score, 4), expansion.topic, result.path,
                                         [t.as_list() for t in chain])
                                  for name, chain in sorted(expansion.evidence.items())]
            result.reply = write_reply(result)
            results.append(result)
        return results

    def stream_reply(self, result: Result) -> Iterator[str]:
        """The reply worded by the LLM from the graph's answers, streamed; without an LLM, the template reply."""
        if self.replier is None:
            yield result.reply
            return
        yield from self.replier.stream(result, write_reply)

    def _answer_reranked(self, questions: list[str], mentions: list[Mention | None], ranked: list[list],
                         picks: list[Choice], vectors, stages: dict[str, float], started: float) -> list[Result]:
        """Walk the top paths of the top topic candidates, score the groups in one batch, answer with the winner's."""
        began = time.perf_counter()
        top_topics = max(1, self.settings.rerank_topics)
        others = rank_other_topics(self.graph, self.ranker, mentions, vectors, top_topics, self.settings.top_paths,
                                   self.settings.max_hops)
        self.ranker.save()
        groups = collect_groups(self.graph, mentions, ranked, [p.index if p.by_llm else None for p in picks],
                                others, top_topics, self.settings.rerank_margin)
        expanded = time.perf_counter()
        masked = [mask_mention(q, m) for q, m in zip(questions, mentions)]
        selected, rerank_ms = self.reranker.rerank_batch(masked, groups, self.graph.degree)
        share = 1.0 / len(questions)
        timings = {k: v * 1000 * share for k, v in stages.items()}
        timings.update(expand_ms=(expanded - began) * 1000 * share, rerank_ms=rerank_ms * share,
                       total_ms=(time.perf_counter() - started) * 1000 * share)
        results = []
        for i, question in enumerate(questions):
            mention = mentions[i]
            result = Result(question=question, entity=mention.candidates[0].name if mention else None,
                            timings=dict(timings), mention=mention.text if mention else None)
            pick = picks[i]
            result.llm_calls, result.prompt_tokens, result.completion_tokens = (
                pick.calls, pick.prompt_tokens, pick.completion_tokens)
            result.path_candidates = []
            for g in sorted(groups[i], key=lambda g: -g.score):
                entry = {"path": format_path(g.path), "text": g.text, "score": round(g.retriever_score, 4),
                         "topic": g.topic, "rerank": round(g.score, 4), "cross": round(g.cross, 3),
                         "answers": len(g.evidence)}
                if g.topic_rank == 0 and g.path_rank == pick.index:
                    if pick.by_llm:
                        entry["llm_choice"] = True
                    elif self.chooser is not None and pick.reason:
                        entry["llm_fallback"] = pick.reason
                    if pick.cut:
                        entry["llm_prompt_cut"] = pick.cut
                result.path_candidates.append(entry)
            if selected[i]:
                best = selected[i][0].group
                result.entity, result.path = best.topic, format_path(best.path)
                result.answers = [Answer(a.name, round(a.score, 4), a.group.topic, format_path(a.group.path),
                                         [t.as_list() for t in a.group.evidence[a.name]]) for a in selected[i]]
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
