"""The numpy MiniLM encoder agrees with sentence-transformers on the packaged model, takes any text (bytes
that are not UTF-8 included), and is fingerprinted by its contents."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from kgqa.encoder import (BlendedEmbedder, SentenceEmbedder, TorchSentenceEmbedder, clean_text, load_embedder,
                          model_fingerprint)

UNDECODABLE = "who directed Kismet \udcff\udcfe"
"""What Python makes of argv `who directed Kismet \\xff\\xfe` (surrogate escapes), or of such a line read with
errors="surrogateescape"."""


def test_numpy_embeddings_match_sentence_transformers():
    from sentence_transformers import SentenceTransformer

    texts = ["who directed Kismet", "what movies did Temuera Morrison act in",
             "directed by, then reverse of directed by, then in language", "a"]
    ours = SentenceEmbedder().embed(texts)
    reference = SentenceTransformer(str(SentenceEmbedder().model_dir), device="cpu").encode(texts)
    assert ours.shape == (4, 384)
    assert np.abs(ours - reference).max() < 1e-4
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    # the torch twin used for batch and eval runs gives the same vectors, in the input order
    twin = TorchSentenceEmbedder(batch_size=3).embed(texts)
    assert twin.shape == (4, 384) and np.abs(twin - reference).max() < 1e-4


def test_similar_questions_are_close():
    vectors = SentenceEmbedder().embed(["who directed this film", "who was the director of the movie",
                                        "what year was it released"])
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


def test_text_with_undecodable_bytes_is_read_as_replacement_characters():
    assert clean_text(UNDECODABLE) == "who directed Kismet \ufffd\ufffd"
    assert clean_text("a \ud800 b") == "a \ufffd b" and clean_text("Café") == "Café"
    embedder = load_embedder(None)
    encoder = embedder.encoder
    clean = "who directed Kismet \ufffd\ufffd"
    assert [e.ids for e in encoder.tokenize([UNDECODABLE])] == [e.ids for e in encoder.tokenize([clean])]
    pair = encoder.tokenize([UNDECODABLE], ["directed \udcff by"])[0]
    assert pair.ids == encoder.tokenize([clean], ["directed \ufffd by"])[0].ids
    # the tokenizer the encoder hands out (the reranker uses it directly) cleans too
    assert encoder.tokenizer.encode_batch([(UNDECODABLE, "directed by")])[0].ids == \
        encoder.tokenizer.encode_batch([(clean, "directed by")])[0].ids
    assert encoder.tokenizer.encode(UNDECODABLE).ids == encoder.tokenizer.encode(clean).ids
    vectors = embedder.embed([UNDECODABLE, clean])
    assert np.abs(vectors[0] - vectors[1]).max() < 1e-6
    twin = TorchSentenceEmbedder().embed([UNDECODABLE])
    assert np.abs(twin[0] - vectors[1]).max() < 1e-4


def test_the_agent_answers_a_question_with_undecodable_bytes(metaqa_graph):
    from kgqa.agent import Agent
    from kgqa.config import Settings

    agent = Agent(Settings(cache_dir=Path(os.environ["KGQA_CACHE_DIR"])), graph=metaqa_graph)
    bad, good = agent.answer_batch([UNDECODABLE, "who directed Kismet"])
    assert bad.entity == good.entity == "Kismet" and bad.answer_names == good.answer_names == ["William Dieterle"]


def test_cli_ask_with_bytes_that_are_not_utf8_answers_without_a_traceback():
    done = subprocess.run([sys.executable, "-m", "kgqa.cli", "ask", b"who directed Kismet \xff\xfe"],
                          capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert b"William Dieterle" in done.stdout and b"Traceback" not in done.stderr


def test_the_fingerprint_follows_the_model_files_not_their_folder(tmp_path):
    source = SentenceEmbedder().model_dir
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("config.json", "tokenizer.json", "model.safetensors"):
        shutil.copy(source / name, copy / name)
    assert model_fingerprint(copy) == model_fingerprint(source)  # copied or moved: the same model
    with (copy / "model.safetensors").open("r+b") as f:  # a retrained model in the same folder: a new key
        f.seek(-4, os.SEEK_END)
        last = f.read(4)
        f.seek(-4, os.SEEK_END)
        f.write(bytes(b ^ 0xFF for b in last))
    assert model_fingerprint(copy) != model_fingerprint(source)


def test_a_blended_embedder_adds_the_packaged_similarity_and_keeps_unit_vectors():
    packaged = load_embedder(None)
    blended = BlendedEmbedder(packaged, packaged, 0.25)
    texts = ["who made the film Heat", "directed by", "written by"]
    vectors = blended.embed(texts)
    assert vectors.shape == (3, 2 * packaged.dim)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    plain = packaged.embed(texts)
    assert np.allclose(vectors @ vectors[0], plain @ plain[0], atol=1e-5)  # (c + 0.25 c) / 1.25 = c
    assert blended.fingerprint != packaged.fingerprint


def test_a_blended_path_is_blind_to_step_order_in_its_packaged_half():
    packaged = load_embedder(None)
    blended = BlendedEmbedder(packaged, packaged, 0.25)
    forward, backward = blended.embed_paths(["written by, then starred actors", "starred actors, then written by"])
    half = packaged.dim
    assert np.allclose(forward[half:], backward[half:], atol=1e-6)  # the packaged half: the steps' mean
    assert not np.allclose(forward[:half], backward[:half], atol=1e-3)  # the trained half reads the order
