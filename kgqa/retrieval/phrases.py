"""Phrases a graph's users say for a relation that its name lacks (the `relation_phrases` setting).

"Who's behind the camera on X" names no relation of the movie graph, and the retriever, trained on
questions that say "directed", reads it as the cast. A graph's settings can teach such phrases without
retraining: a question that uses one is retrieved with that relation's own words added.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence

from kgqa.retrieval.paths import relation_words

log = logging.getLogger(__name__)


def phrase_hint(question: str, phrases: Mapping[str, Sequence[str]]) -> str:
    """The words of each relation one of whose phrases the question uses (whole words, any case), as text
    to append to the question for retrieval: " (directed by)"; empty when it uses none."""
    named = [relation for relation, said in phrases.items()
             if any(re.search(rf"(?<!\w){re.escape(p)}(?!\w)", question, re.I) for p in said)]
    return f" ({', '.join(relation_words(r) for r in named)})" if named else ""


def known_phrases(phrases: Mapping[str, Sequence[str]], relations: Sequence[str]) -> dict[str, list[str]]:
    """The phrases of the graph's own relations; a relation it lacks (a typo, or settings meant for another
    graph) is logged once and left out."""
    known = set(relations)
    unknown = sorted(set(phrases) - known)
    if unknown:
        log.warning("relation_phrases names %s, not a relation of this graph (its relations: %s); ignored",
                    ", ".join(unknown), ", ".join(sorted(known)[:20]))
    return {relation: list(said) for relation, said in phrases.items() if relation in known}
