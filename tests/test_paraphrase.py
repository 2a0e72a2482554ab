"""Written questions reworded by a language model (kgqa.paraphrase): which are sent, which rewordings are
kept, and a real run with the embedded SmolLM2 model."""

from __future__ import annotations

from kgqa.paraphrase import SOURCE, choose_to_reword, reword_questions, reworded_label
from kgqa.question_writer import write_questions
from kgqa.questions import Example
from kgqa.weak_labels import Label
from tests.family import family_graph
from tests.test_llm import embedded  # noqa: F401  (the session's embedded model)


def label(question: str, topic: str, path: str = "spouse", row: int = 0) -> Label:
    start = question.index(topic)
    return Label(row, Example(question, topic, path, ("Bob",)), (start, start + len(topic)), 1.0)


def test_a_rewording_keeps_its_label_only_when_it_still_names_the_topic():
    written = label("what is the spouse of Ann Marsh", "Ann Marsh")
    kept = reworded_label(written, ' "Who is ann marsh married to?"\nmore text', 7)
    assert kept is not None and kept.example.question == "Who is ann marsh married to?"
    assert kept.example.question[kept.span[0]:kept.span[1]] == "ann marsh" and kept.row == 7
    assert (kept.example.path, kept.example.answers, kept.example.source) == ("spouse", ("Bob",), SOURCE)
    assert reworded_label(written, "who is she married to", 7) is None  # the name is gone
    assert reworded_label(written, "What is the spouse of Ann Marsh", 7) is None  # the same question
    assert reworded_label(written, "who married Ann Marshall", 7) is None  # another name
    assert reworded_label(written, "", 7) is None
    assert reworded_label(written, "The answer is Ann Marsh's husband", 7) is None  # an answer, not a question
    assert reworded_label(written, "which songs did Ann Marsh sing with Nina Simone", 7) is None  # a new name


def test_the_paths_are_taken_in_turn():
    labels = [label(f"q{i} about Ann", "Ann", "spouse", i) for i in range(10)] + \
        [label("the children of Ann", "Ann", "children", 10)]
    chosen = choose_to_reword(labels, 2)
    assert sorted(c.example.path for c in chosen) == ["children", "spouse"]
    assert len(choose_to_reword(labels, 50)) == 11


def test_the_embedded_model_rewords_written_questions(embedded):  # noqa: F811
    from kgqa.graph.embedded import EmbeddedGraph

    triples, _ = family_graph()
    labels = write_questions(EmbeddedGraph.from_triples(triples), max_hops=1, count=40, seed=3)
    out, report = reword_questions(embedded, labels, 8)
    assert report["sent"] == 8 and report["kept"] + report["unusable"] + report["failed"] == 8
    assert report["failed"] == 0 and len(out) == report["kept"]
    # SmolLM2-135M mostly answers instead of rewording (1 of 24 MetaQA questions kept): whatever it keeps
    # must still be a question about the same topic
    written = {l.example.question for l in labels}
    for reworded in out:
        question, (start, end) = reworded.example.question, reworded.span
        assert question not in written and reworded.row >= len(labels)
        assert question[start:end].casefold() == reworded.example.topic.casefold()
