"""Long questions (issue 14, item 14): the mention tagger reads a question past its 64 word pieces in
overlapping windows, the cross-encoder cuts the question and never the path text, and a question past
MAX_QUESTION_CHARS is refused in one sentence. The model tests use the trained linker and reranker of the
user's cache (`kgqa train linker`, `kgqa train reranker`) and skip when they are absent."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from kgqa.config import Settings
from kgqa.errors import InputError
from kgqa.linking.tagger import MentionTagger, best_window, decode_spans, window_starts
from kgqa.questions import MAX_QUESTION_CHARS, check_question
from kgqa.rerank.model import MAX_LENGTH, NumpyCrossEncoder

# read at import, before conftest points KGQA_CACHE_DIR at an empty per-session cache
USER_CACHE = Path(os.environ["KGQA_CACHE_DIR"]) if os.environ.get("KGQA_CACHE_DIR") else Settings().cache_dir

PREAMBLE = ("I have been thinking about old films a lot lately, because my grandmother used to take me to the "
            "cinema every Sunday when I was a child and we would sit in the back row with a bag of sweets and "
            "watch whatever was showing, and now that she is gone I want to find some of the films we saw "
            "together, so I made a list of the ones I remember and I am trying to learn more about each of "
            "them, starting with the people who made them. ")
"""About 90 words, 90 word pieces: whatever follows it lies past the tagger's and cross-encoder's 64."""

SHORT = ["who directed Kismet", "what movies did Tom Hanks act in", "what films are about werner herzog",
         "which actors starred in the movie Black Snake Moan that Craig Brewer directed",
         "the films that share directors with the film Black Snake Moan were in which languages",
         "what is the weather like", ""]


def trained(name: str, graph) -> Path:
    """The model of this kind trained for the bundled movie graph in the user's cache."""
    from kgqa.model_store import model_dir

    folder = model_dir(Settings(cache_dir=USER_CACHE), graph, name)
    if not (folder / "model.safetensors").exists():
        pytest.skip(f"no trained {name} in {folder}: run `kgqa train {name}` to run these tests")
    return folder


@pytest.fixture(scope="module")
def tagger(metaqa_graph) -> MentionTagger:
    return MentionTagger(trained("linker", metaqa_graph))


@pytest.fixture(scope="module")
def linker(tagger, metaqa_graph):
    from kgqa.linking.aliases import AliasIndex
    from kgqa.linking.linker import STEP_PRIOR_FILE, BertLinker, StepPrior

    return BertLinker(metaqa_graph, tagger, AliasIndex.build(metaqa_graph.entity_names()),
                      StepPrior.load(tagger.model_dir / STEP_PRIOR_FILE))


@pytest.fixture(scope="module")
def cross_encoder(metaqa_graph) -> NumpyCrossEncoder:
    return NumpyCrossEncoder(trained("reranker", metaqa_graph))


# ---- windows (pure logic) --------------------------------------------------------------------------------


def test_windows_cover_every_piece_and_each_piece_reads_from_its_most_central_window():
    assert window_starts(0, 62, 31) == [0] and window_starts(62, 62, 31) == [0]
    assert window_starts(63, 62, 31) == [0, 1]
    assert window_starts(100, 62, 31) == [0, 31, 38]
    for n in (63, 100, 250, 1000):
        starts = window_starts(n, 62, 31)
        assert starts[-1] + 62 == n and all(b - a <= 31 for a, b in zip(starts, starts[1:]))
        best = best_window(n, 62, starts)
        picked = np.array(starts)[best]
        assert ((picked <= np.arange(n)) & (np.arange(n) < picked + 62)).all()  # every piece in its window
    best = best_window(100, 62, [0, 31, 38]).tolist()
    assert best[0] == 0 and best[99] == 2  # the question's own ends are no cut
    assert best[45] == 0 and best[50] == 1 and best[70] == 2  # 45: 16 pieces of room in window 0, 14 in 1


def test_a_question_past_the_limit_is_refused_in_one_sentence():
    check_question("a" * MAX_QUESTION_CHARS)
    with pytest.raises(InputError, match=r"1,001 characters long.*at most 1,000 characters"):
        check_question("a" * (MAX_QUESTION_CHARS + 1))
    with pytest.raises(InputError, match="empty"):
        check_question("  ")


# ---- the trained tagger and linker ------------------------------------------------------------------------


@pytest.mark.parametrize("question, entity", [("who directed Kismet", "Kismet"),
                                              ("what movies did Tom Hanks act in", "Tom Hanks"),
                                              ("which movies share the screenwriter with Black Snake Moan",
                                               "Black Snake Moan")])
def test_an_entity_after_a_long_preamble_is_still_linked(tagger, linker, question, entity):
    question = PREAMBLE + question
    start = question.index(entity)
    assert len(tagger.tokenizer.encode(question[:start]).ids) > tagger.max_length  # past the old cut
    [logits] = tagger.logits([question])
    assert logits.shape == (len(tagger.tokenizer.encode(question).ids), 3)
    assert any(question[s.start:s.end] == entity for s in tagger.tag(question))
    mentions = linker.link(question)
    assert mentions and mentions[0].text == entity and mentions[0].candidates[0].name == entity


def test_short_questions_are_tagged_as_in_one_window(tagger):
    """Questions within max_length word pieces: the same encodings, logits and spans as the single,
    tokenizer-truncated forward pass that the tagger ran before it had windows (up to the last bits of fp32,
    which depend on how many rows a batch has, before as now)."""
    logits = tagger.logits(SHORT)
    spans = tagger.tag_batch(SHORT)
    for question, mine, tagged in zip(SHORT, logits, spans):
        hidden, mask, [encoding] = tagger.encoder.encode([question])
        assert tagger.tokenizer.encode(question).ids == encoding.ids
        single = (hidden @ tagger.weight.T + tagger.bias)[0, :int(mask[0].sum())]
        np.testing.assert_allclose(mine, single, atol=1e-5, rtol=1e-5)
        probs = np.exp(single - single.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        before = decode_spans(question, probs, encoding.offsets, encoding.special_tokens_mask)
        assert [(s.start, s.end) for s in tagged] == [(s.start, s.end) for s in before]
        assert [s.score for s in tagged] == pytest.approx([s.score for s in before], abs=1e-5)
    assert [SHORT[0][s.start:s.end] for s in spans[0]] == ["Kismet"]


def test_the_agent_refuses_a_question_past_the_limit_before_linking(metaqa_graph):
    from kgqa.agent import Agent

    agent = Agent(Settings(linker="names", reranker="none"), graph=metaqa_graph)
    with pytest.raises(InputError, match="characters"):
        agent.answer_batch(["who directed Kismet", "film " * 300])


# ---- the trained cross-encoder ----------------------------------------------------------------------------


def segments(encoding) -> tuple[list[int], list[int]]:
    """The ids of a pair's question and text, without the special tokens."""
    first = [i for i, t, s in zip(encoding.ids, encoding.type_ids, encoding.special_tokens_mask) if t == 0 and not s]
    second = [i for i, t, s in zip(encoding.ids, encoding.type_ids, encoding.special_tokens_mask) if t == 1 and not s]
    return first, second


def test_a_long_question_loses_its_start_and_the_path_text_stays_whole(cross_encoder):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(cross_encoder.cut_both.to_str())
    tokenizer.no_truncation()
    question = PREAMBLE + "who directed something"
    texts = ["directed by", "reverse of directed by then written by then reverse of written by"]
    encodings = cross_encoder.encode_pairs([(question, t) for t in texts])
    pieces = tokenizer.encode(question, add_special_tokens=False).ids
    for text, encoding in zip(texts, encodings):
        first, second = segments(encoding)
        assert len(encoding.ids) == MAX_LENGTH
        assert second == tokenizer.encode(text, add_special_tokens=False).ids  # the text, complete
        assert first == pieces[len(pieces) - len(first):]  # the question's end: "... who directed something"
    scores = cross_encoder.score([question] * 2, texts)
    assert scores.shape == (2,) and np.isfinite(scores).all()


def test_short_pairs_are_encoded_as_before_and_an_overlong_text_is_cut_too(cross_encoder):
    pairs = [("who directed something", "directed by"), ("what films did something act in", "starred actors")]
    for mine, before in zip(cross_encoder.encode_pairs(pairs), cross_encoder.encoder.tokenizer.encode_batch(pairs)):
        n = sum(before.attention_mask)
        assert mine.ids == before.ids[:n] and mine.type_ids == before.type_ids[:n]
    long_text = " then ".join(["reverse of directed by"] * 20)
    [encoding] = cross_encoder.encode_pairs([("who directed something", long_text)])
    first, second = segments(encoding)
    assert len(encoding.ids) == MAX_LENGTH and first and second


def test_the_torch_twin_cuts_pairs_the_same_way(cross_encoder, metaqa_graph):
    pytest.importorskip("torch")
    from kgqa.rerank.model import TorchCrossEncoder

    torch_encoder = TorchCrossEncoder(trained("reranker", metaqa_graph), device="cpu", compile=False)
    pairs = [(PREAMBLE + "who directed something", "directed by"), ("who directed something", "directed by"),
             ("who directed something", " then ".join(["reverse of directed by"] * 20))]
    theirs = torch_encoder.encode_pairs(pairs)
    assert [e.ids for e in cross_encoder.encode_pairs(pairs)] == theirs["input_ids"]
    np.testing.assert_allclose(torch_encoder.score(*zip(*pairs)), cross_encoder.score(*zip(*pairs)), atol=1e-4)
