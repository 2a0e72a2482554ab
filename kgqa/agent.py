"""The agent: wires the stages and answers one question or many through the same code."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator

from kgqa.config import Settings
from kgqa.encoder import BlendedEmbedder, clean_text, load_embedder, load_torch_embedder
from kgqa.graph import Expansion, GraphStore, open_graph
from kgqa.linking import NameMatchLinker, make_linker
from kgqa.llm import make_llm
from kgqa.llm.program_planner import ProgramPlanner, plan_options
from kgqa.llm.tasks import Choice, PathChooser, QuestionRewriter, ReplyWriter
from kgqa.model_store import fewshot_pool_file, model_dir, say_models_once
from kgqa.planner import Planner, entity_over_number, mask_all, split_mentions, typed_as_name, wants_two, with_prefixes
from kgqa.program import Program
from kgqa.prompting import ExamplePool, Templates
from kgqa.questions import check_question, mask_span
from kgqa.rerank import collect_groups, inference_backend, load_reranker, mark_question_signals, rank_other_topics
from kgqa.retrieval.model import path_model
from kgqa.retrieval.paths import PathRanker, verbalise_path
from kgqa.retrieval.phrases import known_phrases, phrase_hint
from kgqa.retrieval.search import path_search
from kgqa.shapes import ShapeModel
from kgqa.types import Answer, Entity, Mention, Result, format_path, parse_path

NO_ENTITY_REPLY = "I found no entity I know in the question."


def mask_mention(question: str, mention: Mention | None) -> str:
    """The question with the linked mention masked (`questions.mask_span`)."""
    return question if mention is None else mask_span(question, mention.start, mention.end)


def write_reply(result: Result, limit: int = 10) -> str:
    """A short reply stating only what the graph returned: the answers, a count, or yes/no with its triple."""
    if result.entity is None:
        return NO_ENTITY_REPLY
    how = describe_program(result.program) if result.program else \
        f"{result.entity}: {verbalise_path(parse_path(result.path or ''))}"
    if result.yes is not None:
        if result.yes:
            subject, relation, obj = result.answers[0].evidence[-1]
            return f"Yes: {subject} | {relation} | {obj}"
        found = ", ".join(result.answer_names[:limit]) or "nothing"
        return f"No ({how} gives {found})"
    if not result.answers:
        return f"I know {result.entity}, but found no answer to this question in the graph."
    names = result.answer_names
    total = result.reached if result.capped else len(names)
    shown = ", ".join(names[:limit]) + (f" and {total - limit:,} more" if total > limit else "")
    reply = f"{result.count:,} ({how}): {shown}" if result.count is not None else f"{shown} ({how})"
    if result.capped:
        reply += f"; showing {len(names):,} of {result.reached:,} (the walk passes a hub and was capped)"
    return reply


def describe_program(program: dict) -> str:
    """A program in words: `Tom Hanks: reverse of starred actors, and Meg Ryan: ..., release year after 1990`."""
    def branch(b: dict) -> str:
        return f"{b['entity']}: {verbalise_path(parse_path(b['path']))}"

    text = ", and ".join(branch(b) for b in program["branches"])
    text += "".join(f", but not {branch(b)}" for b in program.get("exclude", []))
    words = {"eq": "=", "lt": "before", "gt": "after", "between": "between"}
    for c in program.get("constraints", []):
        bound = f"{c['value']} and {c['upper']}" if c["op"] == "between" else c["value"]
        text += f", {verbalise_path(parse_path(c['step']))} {words.get(c['op'], c['op'])} {bound}"
    aggregate = program.get("aggregate")
    if aggregate and aggregate["op"] == "count":
        text += ", counted"
    elif aggregate:
        extreme = ("smallest" if aggregate["op"] == "min" else "largest") + (
            f" {aggregate['k']}" if aggregate.get("k", 1) > 1 else "")
        measure = "number of " if aggregate.get("measure") == "count" else ""
        text += f", the {extreme} by {measure}{verbalise_path(parse_path(aggregate['by']))}"
    if program.get("ask"):
        text += f", is {program['ask']} among them"
    return text


class Agent:
    """Link → retrieve paths → walk the graph → answers with evidence."""

    def __init__(self, settings: Settings, graph: GraphStore | None = None, many: bool = False) -> None:
        """many: the agent will answer many questions (batch, eval), so torch's faster kernels pay off."""
        self.settings = settings
        self.graph = graph or open_graph(settings)
        self.linker = make_linker(settings, self.graph)
        say_models_once(settings, self.graph)
        self.phrases = known_phrases(settings.relation_phrases, self.graph.relations())
        self.path_model = path_model(settings, self.graph)  # the trained retriever when there is one
        backend = inference_backend(settings, many)
        load = load_torch_embedder if backend == "torch" else load_embedder
        self.embedder = load(str(self.path_model.model_dir))
        if self.path_model.trained and settings.packaged_weight > 0:  # what fine-tuning forgot, the packaged model knows
            self.embedder = BlendedEmbedder(self.embedder, load(None), settings.packaged_weight)
        self.ranker = PathRanker(self.embedder, settings.cache_dir, self.path_model.hop_penalty)
        self.search = path_search(settings, self.graph, self.ranker)
        self.llm = make_llm(settings)
        self.chooser: PathChooser | None = None
        self.replier: ReplyWriter | None = None
        self.rewriter: QuestionRewriter | None = None  # follow-ups in chat (kgqa.conversation)
        self.program_planner: ProgramPlanner | None = None  # questions beyond one chain, planned by the LLM
        if self.llm is not None:
            pool_file = fewshot_pool_file(settings, self.graph)
            pool = ExamplePool.load(pool_file, self.embedder, settings.cache_dir) if pool_file else None
            templates = Templates(settings.prompts_dir)
            self.chooser = PathChooser(self.llm, pool, budget=settings.llm_prompt_tokens, margin=settings.llm_margin,
                                       templates=templates)
            self.replier = ReplyWriter(self.llm, budget=settings.llm_prompt_tokens, templates=templates)
            self.rewriter = QuestionRewriter(self.llm, budget=settings.llm_prompt_tokens, templates=templates)
            self.program_planner = ProgramPlanner(self.llm, self.graph, self.embedder.embed, templates=templates)
        self.reranker = load_reranker(settings, self.graph, backend)  # the trained reranker when there is one
        self.planner = Planner(self.graph, self._paths_for, ShapeModel.load(model_dir(settings, self.graph, "shapes")),
                               settings.max_hops, self.reranker.path_logits if self.reranker is not None else None)
        self._names: NameMatchLinker | None = None  # extra mentions for questions about two entities

    def answer(self, question: str, topic: str | None = None) -> Result:
        return self.answer_batch([question], [topic])[0]

    def answer_batch(self, questions: list[str], topics: list[str | None] | None = None) -> list[Result]:
        """Answer many questions; `topics` optionally gives each question's topic entity (gold linking)."""
        if not questions:
            return []
        questions = [clean_text(q) for q in questions]  # undecodable bytes read as U+FFFD, offsets kept
        for question in questions:
            check_question(question)
        started = time.perf_counter()
        topics = topics or [None] * len(questions)
        every_mention = [self._named_first(q, found) if t is None else found
                         for q, t, found in zip(questions, topics, self._mentions(questions, topics))]
        mentions = [found[0] if found else None for found in every_mention]
        chosen = [m.candidates[0].name if m else None for m in mentions]
        linked = time.perf_counter()

        vectors = self.embedder.embed([self._retrieval_text(q, m) for q, m in zip(questions, mentions)])
        known = [i for i, t in enumerate(chosen) if t is not None]
        ranked_known = self.search.search_many([chosen[i] for i in known], vectors[known], self.settings.top_paths)
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
            results = self._answer_reranked(questions, mentions, ranked, picks, vectors, stages, started)
            return self._compose_programs(results, every_mention, ranked)

        walked, expansions = self._walk_best(chosen, ranked, picks)
        expanded = time.perf_counter()

        share = 1000.0 / len(questions)
        timings = {"link_ms": (linked - started) * share, "retrieve_ms": (retrieved - linked) * share,
                   "llm_ms": (chose - retrieved) * share,
                   "expand_ms": (expanded - chose) * share, "total_ms": (expanded - started) * share}
        results = []
        for i, question in enumerate(questions):
            if not ranked[i]:
                results.append(self._chain_result(question, mentions[i], picks[i], timings, [], None))
                continue
            best, expansion = ranked[i][walked[i]], expansions[i]
            entries = [{"path": format_path(c.path), "text": c.text, "score": round(c.score, 4)} for c in ranked[i]]
            path = format_path(best.path)
            answers = [Answer(name, round(best.score, 4), expansion.topic, path, [t.as_list() for t in chain])
                       for name, chain in sorted(expansion.evidence.items())]
            results.append(self._chain_result(question, mentions[i], picks[i], timings, entries, picks[i].index,
                                              (chosen[i], path, answers, expansion.capped, expansion.reached)))
        return self._compose_programs(results, every_mention, ranked)

    def _chain_result(self, question: str, mention: Mention | None, pick: Choice, timings: dict[str, float],
                      entries: list[dict], picked: int | None,
                      walked: tuple[str, str, list[Answer], bool, int] | None = None) -> Result:
        """The one way a question's chain becomes a Result (before `_compose_programs` makes it a program):
        its candidate paths (`entries`, the LLM's say marked on `picked`), the LLM's cost, and what the
        chosen walk gave, `walked` = (topic, path, answers, capped, reached); None: no answer."""
        result = Result(question=question, entity=mention.candidates[0].name if mention else None,
                        timings=dict(timings), mention=mention.text if mention else None, path_candidates=entries)
        if picked is not None:
            entry = entries[picked]
            if pick.by_llm:
                entry["llm_choice"] = True
            elif self.chooser is not None and pick.reason:
                entry["llm_fallback"] = pick.reason
            if pick.cut:
                entry["llm_prompt_cut"] = pick.cut
        result.llm_calls, result.prompt_tokens, result.completion_tokens = (
            pick.calls, pick.prompt_tokens, pick.completion_tokens)
        if walked is not None:
            result.entity, result.path, result.answers, result.capped, result.reached = walked
        result.reply = write_reply(result)
        return result

    def _retrieval_text(self, question: str, mention: Mention | None) -> str:
        """What the retriever and reranker read: the question with its topic masked, and the words of any
        relation it names by one of the graph's `relation_phrases`."""
        masked = mask_mention(question, mention)
        return masked + phrase_hint(masked, self.phrases)

    def _compose_programs(self, results: list[Result], every_mention: list[list[Mention]],
                          ranked: list[list]) -> list[Result]:
        """Each answer as a query program: the chain found above, composed by the planner into a conjunction,
        filter, count, superlative or yes/no where the question asks for one (kgqa.planner), and executed."""
        for result, mentions, candidates in zip(results, every_mention, ranked):
            if result.entity is None or result.path is None:
                continue
            chain_paths = [parse_path(result.path)] + [c.path for c in candidates if format_path(c.path) != result.path]
            mentions = mentions + self._more_mentions(result.question, mentions)
            instead = entity_over_number(result.question, mentions, result.entity)
            if instead is not None:  # walk from the entity; the number is a literal
                name = instead.candidates[0].name
                paths = self._paths_for(name, mask_span(result.question, instead.start, instead.end))
                if paths:
                    result.entity, chain_paths = name, paths
                else:
                    instead = None
            mentions, literals = split_mentions(result.question, mentions, result.entity)
            kind, program = self.planner.plan(result.question, mentions, literals, result.entity, chain_paths)
            program = self.planner.narrow_by_class(program, result.question, mentions)
            if kind != "chain" and self.program_planner is not None:  # the LLM writes it; the rules' stands by
                program = self._llm_program(result, kind, mentions, literals, chain_paths) or program
            result.kind, result.program = program.kind, program.to_json()
            same_chain = program.kind == "chain" and format_path(program.branches[0].path) == result.path
            if same_chain and instead is None:
                continue  # the chain found above
            started = time.perf_counter()
            outcome = self.graph.run_program(program)
            result.query = self.graph.program_query(program)
            result.count, result.yes = outcome.count, outcome.yes
            result.path = " & ".join(format_path(b.path) for b in program.branches)
            result.answers = [Answer(name, 1.0, result.entity, result.path, [t.as_list() for t in outcome.evidence[name]])
                              for name in outcome.answers]
            result.capped = result.capped or outcome.capped
            result.timings["program_ms"] = (time.perf_counter() - started) * 1000
            result.reply = write_reply(result)
        return results

    def _llm_program(self, result: Result, kind: str, mentions: list[Mention], literals: list, chain_paths: list
                     ) -> Program | None:
        """The LLM planner's program over the question's entities, numbers and ranked paths, or None (then
        `result.planned_by` says why the rules' program stands)."""
        others = [m.candidates[0].name for m in mentions if m.candidates and m.candidates[0].name != result.entity]
        paths = with_prefixes(chain_paths[:5])
        for name in others[:2]:
            paths += self._paths_for(name, mask_all(result.question, mentions))[:3]
        answers = self.graph.expand(result.entity, chain_paths[0]).answers[:50]
        steps = self.planner.steps_from(answers)[:15]
        options = plan_options([result.entity] + others, [x.text for x in literals], paths, steps)
        plan = self.program_planner.plan(result.question, options, self.graph.run_program, kind)
        result.llm_calls += plan.calls
        result.prompt_tokens += plan.prompt_tokens
        result.completion_tokens += plan.completion_tokens
        if plan.program is None:
            result.planned_by = f"rules ({plan.reason})"
            return None
        result.planned_by = "llm, repaired" if plan.repaired else "llm"
        return plan.program

    def _named_first(self, question: str, mentions: list[Mention]) -> list[Mention]:
        """The mentions with a typed name first (`typed_as_name`): the linker's first, or the longer name
        around it typed exactly, capitals and all ("Truth or Consequences, N.M.", tagged as *M*); else
        another of its mentions typed as a name; else a name the tagger missed (`_more_mentions`; "both"
        linked to the tag *goth* in "movies starring both X and Y", or no mention at all)."""
        if mentions and typed_as_name(question, mentions[0]):
            first = mentions[0]
            around = [m for m in self._exact_names(question) if m.start <= first.start and first.end <= m.end
                      and m.end - m.start > first.end - first.start
                      and question[m.start:m.end].strip() == m.candidates[0].name]  # capitals: not "in The Fog"
            return around[:1] + mentions[1:] if around else mentions
        typed = [m for m in mentions if typed_as_name(question, m)]
        if typed:  # "would you call The Green Pastures a drama": the film, not *The Call*
            return typed[:1] + [m for m in mentions if m is not typed[0]]
        more = sorted(self._more_mentions(question, mentions, always=True), key=lambda m: m.start)
        return more[:1] + mentions + more[1:] if more else mentions

    def _more_mentions(self, question: str, mentions: list[Mention], always: bool = False) -> list[Mention]:
        """Names the linker missed in a question that asks about more than one entity (words join two, or it
        asks yes or no): the tagger learned from questions with one topic. Exact names outside the mentions
        already found (`_exact_names`). always: look whatever the question's words."""
        if not always and not wants_two(mask_all(question, mentions)):
            return []
        taken = [(m.start, m.end) for m in mentions]
        found = []
        for m in self._exact_names(question):
            if any(s < m.end and m.start < e for s, e in taken):
                continue
            taken.append((m.start, m.end))
            found.append(m)
        return found

    def _exact_names(self, question: str) -> list[Mention]:
        """The graph's names typed exactly in the question (name matching, any case), of at least two words
        or capitalised (not "drama" in "a drama")."""
        if self._names is None:
            self._names = NameMatchLinker(self.graph, cache_dir=self.settings.cache_dir)
        found = []
        for m in self._names.link(question):
            text = question[m.start:m.end]
            if m.candidates and m.candidates[0].name.casefold() == text.strip().casefold() \
                    and (" " in text.strip() or text[:1].isupper()):
                found.append(m)
        return found

    def _paths_for(self, entity: str, masked_question: str) -> list:
        """An entity's best paths for a question that masks it (the planner's other branches)."""
        vectors = self.embedder.embed([masked_question])
        return [c.path for c in self.search.search_many([entity], vectors, self.settings.top_paths)[0]]

    def _walk_best(self, topics: list[str | None], ranked: list[list], picks: list[Choice]
                   ) -> tuple[dict[int, int], dict[int, Expansion]]:
        """Walk each question's chosen path; where it reaches nothing, the next ranked path that does.

        Returns, per question with candidates, the index of the path walked and its expansion (a path
        that reaches nothing but the topic can be walkable without answers).
        """
        order = {i: [picks[i].index] + [k for k in range(len(c)) if k != picks[i].index]
                 for i, c in enumerate(ranked) if c}
        tried = {i: 0 for i in order}
        expansions: dict[int, Expansion] = {}
        pending = list(order)
        while pending:
            by_path: dict[tuple, list[int]] = defaultdict(list)
            for i in pending:
                by_path[ranked[i][order[i][tried[i]]].path].append(i)
            pending = []
            for path, rows in by_path.items():
                for row, expansion in zip(rows, self.graph.expand_many([topics[r] for r in rows], path)):
                    if expansion.evidence or tried[row] + 1 == len(order[row]):
                        if expansion.evidence or row not in expansions:
                            expansions[row] = expansion
                        if not expansion.evidence:
                            tried[row] = 0  # nothing anywhere: report the chosen path
                    else:
                        expansions.setdefault(row, expansion)
                        tried[row] += 1
                        pending.append(row)
        return {i: order[i][tried[i]] for i in order}, expansions

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
        others = rank_other_topics(self.search, mentions, vectors, top_topics, self.settings.top_paths)
        self.ranker.save()
        groups = collect_groups(self.graph, mentions, ranked, [p.index if p.by_llm else None for p in picks],
                                others, top_topics, self.settings.rerank_margin)
        expanded = time.perf_counter()
        masked = [self._retrieval_text(q, m) for q, m in zip(questions, mentions)]
        mark_question_signals([g for row in groups for g in row], masked, vectors, self.ranker.path_vectors)
        selected, rerank_ms = self.reranker.rerank_batch(masked, groups, self.graph.degree)
        share = 1.0 / len(questions)
        timings = {k: v * 1000 * share for k, v in stages.items()}
        timings.update(expand_ms=(expanded - began) * 1000 * share, rerank_ms=rerank_ms * share,
                       total_ms=(time.perf_counter() - started) * 1000 * share)
        results = []
        for i, question in enumerate(questions):
            pick, entries, picked = picks[i], [], None
            for g in sorted(groups[i], key=lambda g: -g.score):
                if g.topic_rank == 0 and g.path_rank == pick.index:
                    picked = len(entries)
                entries.append({"path": format_path(g.path), "text": g.text, "score": round(g.retriever_score, 4),
                                "topic": g.topic, "rerank": round(g.score, 4), "cross": round(g.cross, 3),
                                "answers": len(g.evidence)})
            walked = None
            if selected[i]:
                best = selected[i][0].group
                walked = (best.topic, format_path(best.path),
                          [Answer(a.name, round(a.score, 4), a.group.topic, format_path(a.group.path),
                                  [t.as_list() for t in a.group.evidence[a.name]]) for a in selected[i]],
                          best.capped, best.reached)
            results.append(self._chain_result(question, mentions[i], pick, timings, entries, picked, walked))
        return results

    def _mentions(self, questions: list[str], topics: list[str | None]) -> list[list[Mention]]:
        """Every mention the linker finds in each question, the topic's first (a given topic: it alone)."""
        mentions: list[list[Mention]] = []
        linked = self.linker.link_batch([q for q, t in zip(questions, topics) if t is None])
        linked_iter = iter(linked)
        for question, topic in zip(questions, topics):
            if topic is None:
                mentions.append(list(next(linked_iter)))
            else:
                given = self._given(question, topic)
                mentions.append([given] if given else [])
        return mentions

    def _given(self, question: str, topic: str) -> Mention | None:
        """A mention for a topic entity given from outside (the gold-entity evaluation setting)."""
        names = self.graph.find_entities(topic)
        if not names:
            return None
        start = question.lower().find(topic.lower())
        end = start + len(topic) if start >= 0 else -1
        return Mention(topic, start, end, (Entity(names[0], self.graph.degree(names[0])),))
