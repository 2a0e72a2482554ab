"""The numpy MiniLM encoder agrees with sentence-transformers on the packaged model."""

from __future__ import annotations

import numpy as np

from kgqa.encoder import SentenceEmbedder, TorchSentenceEmbedder


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
