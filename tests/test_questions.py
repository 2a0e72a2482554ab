"""Marked questions and masking (kgqa/questions.py): the one module that training, few-shot examples and
the agent all mask through."""

from __future__ import annotations

from kgqa.agent import mask_mention
from kgqa.questions import MASK, Example, parse_marked, mask_span, mask_topic, strip_marks
from kgqa.types import Mention


def test_parse_marked_gives_plain_text_and_spans():
    one = parse_marked("what does [Tom Cullen] act in")
    assert one.text == "what does Tom Cullen act in" and one.spans == ((10, 20),) and one.topic == "Tom Cullen"
    two = parse_marked("  [Paris, Texas] and [Amélie ]  ")
    assert two.text == "Paris, Texas and Amélie" and [two.text[s:e] for s, e in two.spans] == ["Paris, Texas", "Amélie"]


def test_parse_marked_refuses_unmarked_or_unbalanced_text():
    assert parse_marked("no mention here") is None
    assert parse_marked("broken [bracket") is None
    assert parse_marked("a [nested [mark]] here") is None


def test_other_marks_are_a_parameter():
    marked = parse_marked("who directed <<Kismet>>", ("<<", ">>"))
    assert marked.text == "who directed Kismet" and marked.topic == "Kismet"
    assert strip_marks("who directed <<Kismet>>", ("<<", ">>")) == "who directed Kismet"
    assert strip_marks("who directed [Kismet]") == "who directed Kismet"


def test_mask_topic_masks_the_first_mention_in_any_case():
    assert mask_topic("what movies did Marlene Dietrich act in", "marlene dietrich") == f"what movies did {MASK} act in"
    assert mask_topic("Kismet or kismet", "KISMET") == f"{MASK} or kismet"
    assert mask_topic("who directed it", "Kismet") == "who directed it"
    assert mask_topic("who directed (1944)", "(1944)") == f"who directed {MASK}"  # regex characters are text
    assert mask_topic("anything", "") == "anything"


def test_training_masking_is_the_agents():
    question = "what movies did Marlene Dietrich act in"
    start = question.find("Marlene Dietrich")
    linked = Mention("Marlene Dietrich", start, start + len("Marlene Dietrich"), ())
    assert Example(question, "marlene dietrich").masked == mask_mention(question, linked) == mask_span(question, start, linked.end)
    assert mask_mention(question, None) == question
    assert mask_span(question, -1, -1) == question


def test_an_example_knows_its_path():
    example = Example("who acted with Ronald Colman", "Ronald Colman", "starred_actors_inv|starred_actors", ("A",))
    assert example.hops == 2 and example.steps[0].inverse and not example.steps[1].inverse
