"""Entity linking: tagger data and decoding, the alias index, disambiguation, train -> save -> load -> tag."""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import replace

import numpy as np
import pytest

from kgqa.config import Settings
from kgqa.errors import ModelError
from kgqa.graph.embedded import EmbeddedGraph
from kgqa.linking import linker_dir, make_linker
from kgqa.linking.aliases import AliasIndex, NameEmbedder, build_alias_index, normalise_alias
from kgqa.linking.linker import BertLinker, RelationWordPrior, StepPrior, _boundary_variants
from kgqa.linking.names import NameMatchLinker
from kgqa.linking.tagger import (BEGIN, IGNORE, INSIDE, OUTSIDE, LabelledQuestion, MentionTagger, Span, TrainConfig,
                                 add_typo, augment, decode_spans, parse_bracketed, split_validation, token_labels,
                                 train_tagger)

TRIPLES = [
    ("Kismet", "directed_by", "William Dieterle"),
    ("Kismet", "starred_actors", "Marlene Dietrich"),
    ("Kismet", "has_tags", "kismet"),  # a tag that differs from the film only in letter case
    ("Black Snake Moan", "directed_by", "Craig Brewer"),
    ("Black Snake Moan", "starred_actors", "Samuel L. Jackson"),
    ("Hustle & Flow", "directed_by", "Craig Brewer"),
    ("The Lord of the Rings", "written_by", "J.R.R. Tolkien"),
    ("Amélie", "directed_by", "Jean-Pierre Jeunet"),
    ("Werner Herzog", "directed_by", "Werner Herzog"),
    ("Fitzcarraldo", "directed_by", "Werner Herzog"),
    ("Fitzcarraldo", "starred_actors", "Klaus Kinski"),
    ("Aguirre", "has_tags", "werner herzog"),
    ("Fitzcarraldo", "has_tags", "werner herzog"),
    ("Nosferatu", "has_tags", "werner herzog"),
    ("The Terror", "directed_by", "Roger Corman"),
    ("The Terror Within", "directed_by", "Thierry Notz"),
    ("Her", "directed_by", "Spike Jonze"),
]

TRAIN_QUESTIONS = [
    ("who directed [Kismet]", "directed_by"),
    ("who is the director of [Black Snake Moan]", "directed_by"),
    ("which person directed [Hustle & Flow]", "directed_by"),
    ("who directed the film [Amélie]", "directed_by"),
    ("who acted in [Fitzcarraldo]", "starred_actors"),
    ("which actors starred in [Kismet]", "starred_actors"),
    ("who starred in [Black Snake Moan]", "starred_actors"),
    ("what films are about [werner herzog]", "has_tags_inv"),
    ("which movies are about [kismet]", "has_tags_inv"),
    ("what movies can be described by [werner herzog]", "has_tags_inv"),
    ("which films did [Werner Herzog] direct", "directed_by_inv"),
    ("what did [Craig Brewer] direct", "directed_by_inv"),
]


@pytest.fixture(scope="module")
def graph() -> EmbeddedGraph:
    return EmbeddedGraph.from_triples(TRIPLES, source="test")


@pytest.fixture(scope="module")
def examples() -> list[LabelledQuestion]:
    out = []
    for marked, path in TRAIN_QUESTIONS:
        example = parse_bracketed(marked)
        example.path = path
        out.append(example)
    return out


@pytest.fixture(scope="module")
def linker_parts(graph, examples, tmp_path_factory):
    aliases = AliasIndex.build(graph.entity_names(), tmp_path_factory.mktemp("cache"))
    return aliases, StepPrior.fit(examples, min_count=1)


def linked(graph, parts, question: str, *spans: tuple[int, int]):
    """Mentions for given spans (the disambiguation path, without the tagger)."""
    aliases, prior = parts
    linker = BertLinker(graph, tagger=None, aliases=aliases, step_prior=prior)
    return linker.link_spans([question], [[Span(s, e, 0.9) for s, e in spans]])[0]


def span_of(question: str, text: str) -> tuple[int, int]:
    start = question.index(text)
    return start, start + len(text)


# ---- training data ---------------------------------------------------------------------------------


def test_parse_bracketed_strips_brackets_and_keeps_offsets():
    ex = parse_bracketed("what does [Tom Cullen] act in")
    assert ex.text == "what does Tom Cullen act in"
    assert [ex.text[s:e] for s, e in ex.spans] == ["Tom Cullen"]
    two = parse_bracketed("[Paris, Texas] and [Amélie ]")
    assert [two.text[s:e] for s, e in two.spans] == ["Paris, Texas", "Amélie"]
    assert parse_bracketed("no mention here") is None
    assert parse_bracketed("broken [bracket") is None


def test_token_labels_mark_begin_inside_outside_and_ignore_specials():
    # [CLS] who directed black snake mo ##an [SEP]
    offsets = [(0, 0), (0, 3), (4, 12), (13, 18), (19, 24), (25, 27), (27, 29), (0, 0)]
    special = [1, 0, 0, 0, 0, 0, 0, 1]
    labels = token_labels(offsets, special, [(13, 29)])
    assert labels == [IGNORE, OUTSIDE, OUTSIDE, BEGIN, INSIDE, INSIDE, INSIDE, IGNORE]


def test_decode_spans_widens_to_whole_words_and_reads_stray_inside_as_begin():
    text = "who directed black snake moan"
    offsets = [(0, 0), (0, 3), (4, 12), (13, 18), (19, 24), (25, 27), (27, 29), (0, 0)]
    special = [1, 0, 0, 0, 0, 0, 0, 1]
    probs = np.full((8, 3), 0.05)
    for i, label in enumerate([OUTSIDE, OUTSIDE, OUTSIDE, INSIDE, INSIDE, OUTSIDE, INSIDE, OUTSIDE]):
        probs[i, label] = 0.9
    spans = decode_spans(text, probs, offsets, special)
    # "black snake" then a lone "##an" that widens to "moan"
    assert [(text[s.start:s.end]) for s in spans] == ["black snake", "moan"]
    assert all(0.8 < s.score <= 1.0 for s in spans)


def test_add_typo_is_one_edit_after_the_first_letter():
    from rapidfuzz.distance import OSA

    rng = random.Random(3)
    for word in ["Kismet", "Fitzcarraldo", "Werner", "Nosferatu"]:
        for _ in range(20):
            typo = add_typo(word, rng)
            assert typo != word and OSA.distance(typo, word) == 1 and typo[0] == word[0]
    assert add_typo("Elf", rng) == "Elf"  # too short to change


def test_augment_keeps_spans_on_the_mention(examples):
    rng = random.Random(0)
    noisy = augment(examples * 30, rng, typo=0.5, lower=0.5, no_entity=0.1, pair=0.1)
    assert any(not e.spans for e in noisy)  # questions with no entity
    assert any(len(e.spans) == 2 for e in noisy)  # two questions in one
    assert any(e.text == e.text.lower() and e.text != o.text for e, o in zip(noisy, examples * 30))
    for e in noisy:
        for start, end in e.spans:
            mention = e.text[start:end]
            assert mention.strip() == mention and mention
            assert normalise_alias(mention)[:1] in {normalise_alias(n)[:1] for n in
                                                    [t[0] for t in TRIPLES] + [t[2] for t in TRIPLES]}


def test_split_validation_holds_out_whole_entities(examples):
    many = [LabelledQuestion(f"q {i} about X{i % 40}", [(8, 10)], topic=f"X{i % 40}") for i in range(400)]
    train, held = split_validation(many, 0.2, seed=1)
    assert held and train
    assert not {e.topic for e in train} & {e.topic for e in held}


# ---- alias index -------------------------------------------------------------------------------------


def test_normalise_alias():
    assert normalise_alias("The Lord of the Rings") == "lord of the rings"
    assert normalise_alias("the lord of the rings!") == "lord of the rings"
    assert normalise_alias("Amélie") == "amelie"
    assert normalise_alias("Hustle & Flow") == normalise_alias("hustle and flow")
    assert normalise_alias("The") == "the"  # a lone article stays


def test_alias_index_exact_fuzzy_and_cache(graph, tmp_path):
    index = AliasIndex.build(graph.entity_names(), tmp_path)
    names = index.names
    assert sorted(names[i] for i in index.exact("KISMET")) == ["Kismet", "kismet"]
    assert [names[i] for i in index.exact("amelie")] == ["Amélie"]
    assert {names[i] for i, _ in index.fuzzy("kismit")} == {"Kismet", "kismet"}
    assert {names[i] for i, _ in index.fuzzy("Blak Snake Maon")} == {"Black Snake Moan"}  # drop + swap
    assert index.fuzzy("Completely Different") == []
    assert index.fuzzy("a very long piece of text, longer than any name in the graph") == []
    cached = list((tmp_path / "aliases").glob("*/keys.txt"))
    assert len(cached) == 1
    again = AliasIndex.build(graph.entity_names(), tmp_path)
    assert again.keys == index.keys
    other = AliasIndex.build(graph.entity_names() + ["Nosferatu the Vampyre"], tmp_path)
    assert len(list((tmp_path / "aliases").glob("*/keys.txt"))) == 2 and len(other.names) == len(names) + 1


def test_alias_index_embedding_neighbours(graph, tmp_path):
    settings = Settings(cache_dir=tmp_path)
    index = build_alias_index(settings, graph)  # builds and saves the FAISS index of name embeddings
    embed = NameEmbedder()
    assert index.embedding_file(embed).exists()
    near = index.nearest(["Lord of the Rings film", "zzzz qqqq"], embed, k=3, min_similarity=0.6)
    assert index.names[near[0][0][0]] == "The Lord of the Rings"
    assert near[1] == []
    # another embedding model gets its own file: the cached vectors are keyed by the model's contents
    other = tmp_path / "other-model"
    shutil.copytree(embed.model_dir, other)
    weights = other / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    assert NameEmbedder(other).fingerprint != embed.fingerprint
    assert not AliasIndex.build(graph.entity_names(), tmp_path).embedding_file(NameEmbedder(other)).exists()


# ---- disambiguation and robustness ---------------------------------------------------------------------


def test_case_decides_when_the_question_uses_case(graph, linker_parts):
    q = "which movies are about kismet and who directed Kismet"
    (first, second) = sorted(linked(graph, linker_parts, q, (23, 29), (len(q) - 6, len(q))), key=lambda m: m.start)
    assert first.candidates[0].name == "kismet"  # exact case, and tags are what "about" asks for
    assert second.candidates[0].name == "Kismet"


def test_lower_case_question_uses_the_relation_the_question_asks_for(graph, linker_parts):
    q = "who directed kismet"
    (m,) = linked(graph, linker_parts, q, span_of(q, "kismet"))
    assert [c.name for c in m.candidates] == ["Kismet", "kismet"]
    q = "which movies are about kismet"
    (m,) = linked(graph, linker_parts, q, span_of(q, "kismet"))
    assert m.candidates[0].name == "kismet"
    q = "which films did werner herzog direct"
    (m,) = linked(graph, linker_parts, q, span_of(q, "werner herzog"))
    assert m.candidates[0].name == "Werner Herzog"
    q = "what movies can be described by werner herzog"
    (m,) = linked(graph, linker_parts, q, span_of(q, "werner herzog"))
    assert m.candidates[0].name == "werner herzog"
    assert 0 < m.confidence <= 0.9


def test_typo_boundary_and_no_entity(graph, linker_parts):
    q = "who directed kismit"
    (m,) = linked(graph, linker_parts, q, span_of(q, "kismit"))
    assert m.candidates[0].name == "Kismet" and m.text == "kismit"
    q = "the film Black Snake Moan starred which actors"
    (m,) = linked(graph, linker_parts, q, span_of(q, "film Black Snake Moan"))  # one word too many
    assert m.text == "Black Snake Moan" and m.candidates[0].name == "Black Snake Moan"
    q = "what is the weather like today"
    assert linked(graph, linker_parts, q, span_of(q, "weather")) == []
    assert linked(graph, linker_parts, q) == []


def test_a_title_cut_short_by_the_tagger_grows_to_the_longest_name(graph, linker_parts):
    q = "what was the genre of The Terror Within"
    (m,) = linked(graph, linker_parts, q, span_of(q, "The Terror"))
    assert m.text == "The Terror Within" and m.candidates[0].name == "The Terror Within"
    q = "who directed the movies Puss in Boots and Black Snake Moan"
    (m,) = linked(graph, linker_parts, q, span_of(q, "Black"), span_of(q, "Snake Moan"))  # split by the tagger
    assert m.text == "Black Snake Moan"


def test_without_a_tagged_span_a_capitalised_name_as_written_is_taken(graph, linker_parts):
    (m,) = linked(graph, linker_parts, "which words describe Her")
    assert m.candidates[0].name == "Her" and m.confidence <= 0.5
    assert linked(graph, linker_parts, "which words describe her") == []  # no capital: no clue
    assert linked(graph, linker_parts, "Her movies are good") == []  # the capital that opens a sentence


def test_two_entities_come_back_most_confident_first(graph, linker_parts):
    q = "who wrote the lord of the rings and who directed Hustle and Flow"
    mentions = linked(graph, linker_parts, q, span_of(q, "the lord of the rings"), span_of(q, "Hustle and Flow"))
    assert {m.candidates[0].name for m in mentions} == {"The Lord of the Rings", "Hustle & Flow"}
    assert mentions[0].confidence >= mentions[1].confidence


def test_boundary_variants_keep_a_word_of_the_span_and_grow_by_at_most_two():
    q = "the film Elf starred which actors"
    variants = [(cost, q[s:e]) for cost, s, e in _boundary_variants(q, 4, 12)]
    assert variants[:4] == [(1, "film"), (1, "Elf"), (1, "the film Elf"), (1, "film Elf starred")]
    assert (2, "the film Elf starred") in variants and all(cost <= 3 for cost, _ in variants)
    q = "who was Made in Britai written by"
    variants = [q[s:e] for _, s, e in _boundary_variants(q, 16, 22)]
    assert "Made in Britai" in variants and all("Britai" in v for v in variants)


def test_step_prior_learns_first_steps_and_round_trips(examples, tmp_path):
    prior = StepPrior.fit(examples, min_count=1)
    q = "who directed Nosferatu"
    probs = prior.probabilities(q, [span_of(q, "Nosferatu")])
    assert max(probs, key=probs.get) == "directed_by"
    assert abs(sum(probs.values()) - 1) < 1e-6
    prior.save(tmp_path / "prior.json")
    again = StepPrior.load(tmp_path / "prior.json")
    assert again.probabilities(q, [span_of(q, "Nosferatu")]) == pytest.approx(probs, abs=1e-3)
    words = RelationWordPrior(["directed_by", "has_tags", "starred_actors"])
    assert set(words.probabilities("which actors were in it", [])) == {"starred_actors", "starred_actors_inv"}
    assert words.probabilities("what is this", []) == {}


# ---- train -> save -> load -> tag ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model(examples, tmp_path_factory):
    """A one-layer tagger trained for a few steps: enough to test the plumbing, not the accuracy."""
    from kgqa.encoder import default_model_path

    out = tmp_path_factory.mktemp("linker")
    config = TrainConfig(str(default_model_path()), layers=1, max_length=32, batch_size=4, learning_rate=1e-3,
                         epochs=2, seed=1)
    meta = train_tagger(augment(examples, random.Random(1)), examples[:4], out, config)
    StepPrior.fit(examples, min_count=1).save(out / "step_prior.json")
    return out, meta


def test_training_saves_a_standard_model_dir(tiny_model):
    out, meta = tiny_model
    for name in ("config.json", "model.safetensors", "tokenizer.json", "training.json"):
        assert (out / name).exists(), name
    saved = json.loads((out / "training.json").read_text())
    assert saved["steps"] == meta["steps"] == 6 and saved["config"]["seed"] == 1
    assert set(saved["validation"]) == {"exact_spans", "precision", "recall", "f1"}
    assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == 1


def test_numpy_tagger_agrees_with_torch(tiny_model):
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    out, _ = tiny_model
    questions = ["who directed Kismet", "what films are about werner herzog",
                 "which actors starred in the movie Black Snake Moan that Craig Brewer directed"]
    tagger = MentionTagger(out)
    numpy_logits = tagger.logits(questions)
    model = AutoModelForTokenClassification.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    for question, mine in zip(questions, numpy_logits):
        with torch.no_grad():
            theirs = model(**tokenizer(question, return_tensors="pt")).logits[0].numpy()
        assert mine.shape == theirs.shape
        np.testing.assert_allclose(mine, theirs, atol=2e-4, rtol=1e-3)
    spans = tagger.tag_batch(questions)
    assert len(spans) == 3 and all(0 <= s.start < s.end <= len(q) for q, row in zip(questions, spans) for s in row)


def test_make_linker_uses_the_model_trained_for_its_graph(tiny_model, graph, tmp_path):
    settings = Settings(cache_dir=tmp_path)
    assert isinstance(make_linker(settings, graph), NameMatchLinker)
    shutil.copytree(tiny_model[0], linker_dir(settings, graph))
    other_graph = EmbeddedGraph.from_triples(TRIPLES[:-1], source="another graph")
    assert linker_dir(settings, other_graph) != linker_dir(settings, graph)
    assert isinstance(make_linker(settings, other_graph), NameMatchLinker)  # not another graph's model
    linker = make_linker(settings, graph)
    assert isinstance(linker, BertLinker)
    out = linker.link_batch(["who directed Kismet", "what is this"])
    assert len(out) == 2 and all(isinstance(m, list) for m in out)
    # the setting: `names` asks for the baseline even with a trained model; a named folder must hold one
    assert isinstance(make_linker(replace(settings, linker="names"), graph), NameMatchLinker)
    assert isinstance(make_linker(replace(settings, linker=str(linker_dir(settings, graph))), graph), BertLinker)
    with pytest.raises(ModelError, match="no trained linker"):
        make_linker(replace(settings, linker=str(tmp_path / "missing")), graph)
