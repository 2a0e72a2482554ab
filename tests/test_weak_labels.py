"""Weak labels: topic, mention span and relation path found in a small family graph from question–answer pairs."""

from __future__ import annotations

import json

import pytest

from kgqa.errors import InputError
from kgqa.graph.embedded import EmbeddedGraph
from kgqa.types import Step, parse_path
from kgqa.weak_labels import (GIVEN_PATH_EMPTY, GIVEN_PATH_UNKNOWN, NO_ENTITY, NO_SPAN, NOT_IN_GRAPH, OUT_OF_TIME,
                              QARow, answers_many, below, enumerate_paths, final_steps, label_questions, marked_question,
                              no_path, read_qa_file, resolve_ties, topic_span, write_labelled_tsv)
from kgqa.questions import Example
from kgqa.weak_labels import Label

TRIPLES = [
    ("Ann", "spouse", "Bob"), ("Bob", "spouse", "Ann"),
    ("Ann", "children", "Carl"), ("Bob", "children", "Carl"), ("Carl", "children", "Dora"),
    ("Ann", "relative", "Carl"), ("Ann", "relative", "Dora"),
    ("Carl", "born_in", "Paris"), ("Dora", "born_in", "Rome"),
    ("Paris", "in_country", "France"), ("Rome", "in_country", "Italy"),
    ("Eve", "lives_in", "Oslo"),
]


@pytest.fixture
def graph() -> EmbeddedGraph:
    return EmbeddedGraph.from_triples(TRIPLES, source="family")


def one(graph, question: str, answers: list[str], **kwargs):
    report = label_questions(graph, [QARow(question, tuple(answers))], **kwargs)
    return report, (report.labels[0] if report.labels else None)


@pytest.mark.parametrize("question, answers, topic, path", [
    ("where was Carl born", ["Paris"], "Carl", "born_in"),
    ("where was Ann's child born", ["Paris"], "Ann", "children|born_in"),
    ("in which country was Ann's child born", ["France"], "Ann", "children|born_in|in_country"),
    ("who are Ann's grandchildren", ["Dora"], "Ann", "children|children"),  # beats `relative` (F1 0.67)
])
def test_the_best_f1_path_is_found_for_one_two_and_three_hops(graph, question, answers, topic, path):
    report, label = one(graph, question, answers)
    assert label is not None and report.dropped == {}
    assert (label.example.topic, label.example.path, label.f1) == (topic, path, 1.0)
    assert label.example.source == "weak" and label.example.answers == tuple(answers)


def tied_label(row: int, question: str, path: str, ties: tuple[str, ...] = ()) -> Label:
    """A weak label with F1 1 about the topic X, tied with `ties`."""
    return Label(row, Example(question, "X", path, ("a",), source="weak"), (question.index("X"), question.index("X") + 1),
                 1.0, ties)


def test_a_tie_takes_the_path_that_untied_questions_worded_alike_take():
    label = tied_label
    labels = [label(0, "who wrote the films written by the writer of X", "written_by|written_by_inv|written_by"),
              label(1, "the writers of films written by the writer of X", "written_by|written_by_inv|written_by"),
              label(2, "name the author of X", "written_by"), label(3, "the author of X", "written_by"),
              label(4, "which writers wrote films by the writer of X", "written_by",
                    ("written_by|written_by_inv|written_by",)),
              label(5, "who is the author of X", "written_by|written_by_inv|written_by", ("written_by",))]
    resolved = resolve_ties(labels)
    assert resolved[:4] == labels[:4]  # untied labels stay
    assert resolved[4].example.path == "written_by|written_by_inv|written_by" and resolved[4].ties == ("written_by",)
    assert resolved[5].example.path == "written_by"


def test_the_shorter_path_wins_a_tie(graph):
    # `children|born_in` and `spouse|children|born_in` both reach exactly Paris
    _, label = one(graph, "where was Ann's child born", ["Paris"])
    assert label.example.path == "children|born_in" and label.ties[:1] == ("spouse|children|born_in",)
    # Carl (F1 0.67 by `children`) against Dora (F1 0.67 by `children|children`): the 1-hop path
    _, label = one(graph, "who are Ann's descendants", ["Carl", "Zed"])
    assert (label.example.path, label.f1) == ("children", 0.6667)


def test_between_paths_with_the_same_answers_the_one_the_question_names_wins():
    graph = EmbeddedGraph.from_triples([("Ann", "children", "Carl"), ("Carl", "parents", "Ann"),
                                        ("Ann", "spouse", "Bob"), ("Bob", "children", "Carl")])
    _, label = one(graph, "who are the children of Ann's child's parent", ["Carl"])
    assert label.example.path == "children|parents|children"  # not `children`, which has the same answers
    _, label = one(graph, "who are Ann's kids", ["Carl"])
    assert label.example.path == "children"  # naming nothing, the shorter path


def test_a_longer_mention_wins_a_tie_over_a_name_inside_it():
    graph = EmbeddedGraph.from_triples([("Ann Lee", "children", "Max"), ("Max", "born_in", "Oslo"),
                                        ("Lee", "visited", "Oslo")])
    _, label = one(graph, "where was Ann Lee's child born", ["Oslo"])
    assert (label.example.topic, label.example.path, label.span) == ("Ann Lee", "children|born_in", (10, 17))
    _, label = one(graph, "where did Lee go", ["Oslo"])
    assert (label.example.topic, label.example.path) == ("Lee", "visited")


def test_a_tie_of_the_same_length_prefers_forward_steps_and_lists_the_others(graph):
    _, label = one(graph, "who is Ann married to", ["Bob"])
    assert label.example.path == "spouse" and label.ties[0] == "spouse_inv"
    assert all(t.count("|") >= 1 for t in label.ties[1:])  # then the longer ties, shorter first


def test_a_walk_back_to_its_topic_follows_the_graphs_conventions(graph):
    _, label = one(graph, "who is the spouse of Ann's spouse", ["Ann"])
    assert label is not None and label.example.path == "spouse|spouse"
    # children|relative_inv and relative|relative_inv lead back too, but name no word of the question
    assert {t for t in label.ties if t.count("|") == 1} == {"spouse_inv|spouse", "spouse|spouse_inv", "spouse_inv|spouse_inv"}
    graph.topic_as_answer = False  # a longer walk never ends on its topic
    report, label = one(graph, "who is the spouse of Ann's spouse", ["Ann"])
    assert label is None and report.dropped == {no_path(3): 1}


def test_unreachable_and_unlinkable_questions_are_dropped_and_counted(graph):
    rows = [QARow("what music does Eve like", ("Jazz",)), QARow("who is Zed", ("Ann",)),
            QARow("where was Carl born", ("Paris",)), QARow("what music does Eve love", ("Jazz",))]
    report = label_questions(graph, rows, max_hops=2)
    assert [label.row for label in report.labels] == [2]
    assert report.dropped == {"no path up to 2 hops reaches an answer": 2, NO_ENTITY: 1}
    assert report.drops == [(0, no_path(2)), (1, NO_ENTITY), (3, no_path(2))]
    summary = report.summary()
    assert summary["kept"] == 1 and summary["questions"] == 4 and summary["f1"]["bands"]["1"] == 1


def test_min_f1_drops_a_partial_match(graph):
    report, label = one(graph, "who are Ann's descendants", ["Carl", "Zed"], min_f1=0.7)
    assert label is None and report.dropped == {below(0.7): 1}


def test_the_mention_span_and_the_marked_question(graph):
    _, label = one(graph, "where was carl born", ["Paris"])  # the name-matching linker ignores case
    assert label.example.topic == "Carl" and label.span == (10, 14)
    assert marked_question(label.example, label.span) == "where was [carl] born"
    _, label = one(graph, "and [Carl] was born where", ["Paris"])  # a marked row: its mark is the span
    assert label.example.question == "and Carl was born where" and label.span == (4, 8)


def test_chunks_do_not_change_the_labels(graph):
    rows = [QARow(q, (a,)) for q, a in [("where was Carl born", "Paris"), ("who is Zed", "Ann"),
                                         ("in which country was Ann's child born", "France"),
                                         ("who is Ann married to", "Bob"), ("where was Dora born", "Rome")]]
    whole = label_questions(graph, rows)
    small = label_questions(graph, rows, chunk=2)
    assert whole.labels == small.labels and whole.drops == small.drops
    assert [(label.row, label.example.path) for label in whole.labels] == [
        (0, "born_in"), (2, "children|born_in|in_country"), (3, "spouse"), (4, "born_in")]


def test_labelling_stops_at_its_time_limit_and_says_so(graph):
    rows = [QARow("where was Carl born", ("Paris",)), QARow("who is Ann married to", ("Bob",))]
    report = label_questions(graph, rows, time_limit_s=0.0, chunk=1)  # one chunk, then the time is up
    assert len(report.labels) == 1 and report.dropped == {OUT_OF_TIME: 1}
    seen: list[tuple[int, int]] = []
    done = label_questions(graph, rows, time_limit_s=60.0, chunk=1, on_progress=lambda d, t: seen.append((d, t)))
    assert len(done.labels) == 2 and seen == [(1, 2), (2, 2)]


def test_forked_workers_give_the_same_labels(graph):
    rows = [QARow(q, (a,)) for q, a in [("where was Carl born", "Paris"), ("who is Ann married to", "Bob"),
                                         ("in which country was Ann's child born", "France"),
                                         ("where was Dora born", "Rome"), ("who is Zed", "Ann")]]
    alone = label_questions(graph, rows, chunk=2, workers=1)
    forked = label_questions(graph, rows, chunk=2, workers=2)
    assert forked.labels == alone.labels and forked.drops == alone.drops and len(alone.labels) == 4


def test_the_time_budget_shares_what_is_left_by_the_stages_weights():
    from kgqa.train_all import SHAPES_RESERVE_S, STAGE_OVERHEAD_S, STAGE_WEIGHTS, TimeBudget

    budget = TimeBudget(1000.0)
    assert budget.for_labelling() == 450.0 and TimeBudget(None).for_stage("linker") is None
    share = (1000 - SHAPES_RESERVE_S) * STAGE_WEIGHTS["linker"] / sum(STAGE_WEIGHTS.values()) - STAGE_OVERHEAD_S
    assert abs(budget.for_stage("linker") - share) < 0.5
    assert abs(budget.for_stage("reranker") - (1000 - SHAPES_RESERVE_S - STAGE_OVERHEAD_S)) < 0.5  # the last: all
    budget.started -= 990
    assert budget.for_stage("linker") == 2.0  # never less than MIN_STAGE_S


def test_path_enumeration_is_bounded_per_topic(graph):
    found, capped = enumerate_paths(graph, ["Ann", "Eve"], max_hops=3, max_paths=4)
    ann = [path for path, topics in found.items() if 0 in topics]
    assert len(ann) == 4 and capped == [True, False]
    assert all(len(path) == 1 for path in ann)  # the shorter paths come first
    eve = sorted("|".join(map(str, path)) for path, topics in found.items() if 1 in topics)
    assert eve == ["lives_in", "lives_in|lives_in_inv", "lives_in|lives_in_inv|lives_in"]  # back through Eve
    report = label_questions(graph, [QARow("who is Ann married to", ("Bob",))], max_paths_per_topic=2)
    assert report.topics_capped == 1


def test_only_paths_whose_last_step_can_land_on_an_answer_are_walked(graph):
    assert final_steps(graph, [["paris"], ["Nowhere"], ["Carl", "Oslo"]]) == [
        {Step("born_in"), Step("in_country", True)}, set(),
        {Step("children"), Step("relative"), Step("children", True), Step("born_in", True), Step("lives_in")}]


@pytest.mark.parametrize("through, as_answer", [(True, True), (True, False), (False, True), (False, False)])
def test_answers_many_gives_the_answers_of_expand_many(graph, through, as_answer):
    graph.walk_through_topic, graph.topic_as_answer = through, as_answer
    topics = ["Ann", "Bob", "Carl", "Eve", "Ann"]
    for text in ["spouse|spouse", "children|relative_inv|children", "spouse|children|children_inv", "lives_in"]:
        path = parse_path(text)
        assert answers_many(graph, topics, path) == [e.answers for e in graph.expand_many(topics, path)], text
    assert answers_many(graph, ["Ann"], parse_path("spouse|spouse")) == ([["Ann"]] if as_answer else [[]])


def test_jsonl_rows_with_their_own_topic_and_path(graph, tmp_path):
    rows = [{"question": "where was Carl born", "answers": ["Paris"], "topic": "Carl", "path": "born_in|in_country"},
            {"question": "who did she marry", "answers": ["Bob"], "topic": "Ann"},
            {"question": "where was Carl born", "answers": ["Paris"], "topic": "Nobody"},
            {"question": "where was Carl born", "answers": ["Paris"], "path": "born_in"},
            {"question": "where was Carl born", "answers": ["Paris"], "topic": "carl", "path": "died_in"},
            {"question": "where does Eve live", "answers": ["Oslo"], "topic": "Eve", "path": "born_in"}]
    file = tmp_path / "qa.jsonl"
    file.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    read, problems = read_qa_file(file)
    assert topic_span("Annual report of ann", "Ann", []) == (17, 20)  # not inside a word
    assert problems == [] and read[0].topic == "Carl" and read[0].path == "born_in|in_country"
    report = label_questions(graph, read)
    labels = {label.row: label for label in report.labels}
    # a given path is kept when it walks, whatever its F1 (France is not Paris)
    assert (labels[0].example.path, labels[0].f1, labels[0].span) == ("born_in|in_country", 0.0, (10, 14))
    assert (labels[1].example.topic, labels[1].example.path, labels[1].span) == ("Ann", "spouse", NO_SPAN)
    assert marked_question(labels[1].example, labels[1].span) == "who did she marry"
    assert (labels[3].example.topic, labels[3].example.path, labels[3].f1) == ("Carl", "born_in", 1.0)
    assert report.drops == [(2, NOT_IN_GRAPH), (4, GIVEN_PATH_UNKNOWN), (5, GIVEN_PATH_EMPTY)]


def test_malformed_lines_are_reported_with_file_and_line_and_the_rest_is_read(tmp_path):
    tsv = tmp_path / "qa.tsv"
    tsv.write_text("where was Carl born\tParis\n"
                   "no tab on this line\n"
                   "\n"
                   "\tParis\n"
                   "who is Ann married to\t\n"
                   "who are Ann's children\tCarl| Dora |Carl\textra column\n", encoding="utf-8")
    rows, problems = read_qa_file(tsv)
    assert [(r.question, r.answers) for r in rows] == [("where was Carl born", ("Paris",)),
                                                       ("who are Ann's children", ("Carl", "Dora"))]
    assert rows[1].where == f"{tsv}, line 6"
    assert problems == [f"{tsv}, line 2: expected question<TAB>answers (answers separated by |)",
                        f"{tsv}, line 4: the question is empty", f"{tsv}, line 5: no answers"]
    jsonl = tmp_path / "qa.jsonl"
    jsonl.write_text('{"question": "where was Carl born", "answers": ["Paris"]}\n'
                     '{"question": "x", "answers": "Paris"}\n'
                     '[1, 2]\n'
                     '{"question": "where\n'
                     '{"question": "who is Ann married to", "answers": ["Bob"], "topic": 3}\n'
                     '{"question": "who is Ann married to", "answers": ["Bob"]}\n', encoding="utf-8")
    rows, problems = read_qa_file(jsonl)
    assert [r.question for r in rows] == ["where was Carl born", "who is Ann married to"]
    assert [p.split(": ")[0] for p in problems] == [f"{jsonl}, line {n}" for n in (2, 3, 4, 5)]
    assert "list of strings" in problems[0] and "not JSON" in problems[2]


def test_unreadable_files_raise_one_clear_message(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_qa_file(tmp_path / "missing.tsv")
    latin = tmp_path / "latin.tsv"
    latin.write_bytes("where was Carl born\tParis\nwho is Jos\u00e9\tAnn\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"latin.tsv, line 2: not UTF-8"):
        read_qa_file(latin)


def test_the_labelled_tsv_marks_the_topic(graph, tmp_path):
    rows = [QARow("where was Carl born", ("Paris",)), QARow("who did she marry", ("Bob",), topic="Ann")]
    report = label_questions(graph, rows)
    out = tmp_path / "labelled.tsv"
    assert write_labelled_tsv(report.labels, out) == 1  # the second question does not show its topic
    assert out.read_text(encoding="utf-8") == "where was [Carl] born\tParis\tborn_in\n"


def test_a_tie_no_untied_question_settles_goes_to_the_path_whose_relations_the_words_name():
    label = tied_label
    labels = [label(0, "the other half of X", "spouse"), label(1, "who is the other half of X", "spouse"),
              label(2, "the faith of X's parents", "parents|religion"),
              label(3, "what faith does the father of X hold", "parents|religion"),
              label(4, "the birthplace of X", "born_in"), label(7, "X's other half", "spouse"),
              label(8, "where was X born", "born_in"), label(9, "the parents of X", "parents"),
              # neither `religion` nor `spouse|spouse|religion` is any untied question's path
              label(5, "the faith of the other half of X's other half", "religion", ("spouse|spouse|religion",)),
              label(6, "the faith of X, please", "religion", ("born_in|born_in_inv|religion",))]
    resolved = resolve_ties(sorted(labels, key=lambda label: label.row))
    resolved = {label.row: label for label in resolved}
    assert resolved[5].example.path == "spouse|spouse|religion" and resolved[5].ties == ("religion",)
    assert resolved[6].example.path == "religion"  # no word names `born_in`: the shorter stays
