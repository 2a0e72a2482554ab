"""English forms of a relation's words, for writing questions and for reading what a question asks for.

`directed_by` is a "<participle> by" relation (its objects did it: "who directed X", "the director of X"),
`starred_actors` a "<participle> <plural noun>" relation ("who starred in X"), `has_genre` and `in_language`
a "has ..."/"in ..." relation (values: "what genre does X have"). Other relation words have no such form.
"""

from __future__ import annotations

import re
from functools import lru_cache

from kgqa.retrieval.paths import relation_words
from kgqa.types import Step

IRREGULAR_PAST = {"written": "wrote", "drawn": "drew", "sung": "sang", "given": "gave", "spoken": "spoke",
                  "taken": "took", "shown": "showed", "known": "knew", "made": "made", "built": "built",
                  "won": "won", "held": "held", "led": "led", "founded": "founded", "played": "played"}
"""English participles whose simple past differs or that end otherwise than in -ed."""

IRREGULAR_AGENT = {"written": "writer", "sung": "singer", "spoken": "speaker", "made": "maker", "built": "builder",
                   "won": "winner", "held": "holder", "led": "leader", "played": "player", "drawn": "artist"}
"""English participles whose doer is not formed by the rules of `agent_noun`."""


def participle(word: str) -> bool:
    return word.endswith("ed") or word in IRREGULAR_PAST


def by_forms(words: str) -> tuple[str, str] | None:
    """The passive and the simple past of a "<participle> by" relation's words (`directed by` -> ("directed",
    "directed"), `written by` -> ("written", "wrote")); None for other relation words."""
    parts = words.split()
    if len(parts) < 2 or parts[-1] != "by" or not participle(parts[-2]):
        return None
    return " ".join(parts[:-1]), " ".join(parts[:-2] + [IRREGULAR_PAST.get(parts[-2], parts[-2])])


def did_forms(words: str) -> tuple[str, str] | None:
    """The participle and the doers of a "<participle> <plural noun>" relation (`starred actors` ->
    ("starred", "actors"), `featured artists` -> ("featured", "artists")): the relation's objects did
    it in its subject (the actors starred in the film); None for other relation words."""
    parts = words.split()
    if len(parts) != 2 or not participle(parts[0]) or not parts[1].endswith("s"):
        return None
    return parts[0], parts[1]


def agent_noun(words: str) -> str | None:
    """The noun for whoever does a "<participle> by" relation: `directed by` -> `director`, `written by` ->
    `writer`, `produced by` -> `producer`, `owned by` -> `owner`; None for other relation words."""
    if by_forms(words) is None:
        return None
    parts = words.split()
    done, head = parts[-2], parts[:-2]
    if done in IRREGULAR_AGENT:
        noun = IRREGULAR_AGENT[done]
    elif done.endswith(("ated", "ected", "ucted", "ited")):
        noun = done[:-2] + "or"
    elif done.endswith(("ced", "sed", "ved", "zed", "ged")):
        noun = done[:-1] + "r"
    else:
        noun = done[:-2] + "er"
    return " ".join(head + [noun])


@lru_cache(maxsize=65_536)
def answer_kind(step: Step) -> str | None:
    """What a walk ending on `step` reaches, as English asks for it: "who" for the doers of a "<participle>
    by" or "<participle> <plural noun>" relation walked forwards (the director, the actors), "what" for the
    things they did (walked backwards) and for the values of a "has ..."/"in ..." relation; None when the
    relation's words do not tell."""
    words = relation_words(step.relation)
    if by_forms(words) is not None or did_forms(words) is not None:
        return "what" if step.inverse else "who"
    if not step.inverse and words.split()[0] in ("has", "in") and len(words.split()) >= 2:
        return "what"
    return None


CLASS_NOUNS: tuple[tuple[str, str], ...] = (
    ("person", "people"), ("person", "persons"), ("individual", "individuals"), ("film", "films"),
    ("movie", "movies"), ("book", "books"), ("novel", "novels"), ("song", "songs"), ("album", "albums"),
    ("place", "places"), ("city", "cities"), ("country", "countries"), ("town", "towns"), ("company", "companies"),
    ("organisation", "organisations"), ("team", "teams"), ("club", "clubs"), ("school", "schools"),
    ("work", "works"), ("title", "titles"), ("item", "items"), ("thing", "things"), ("entry", "entries"),
    ("record", "records"), ("product", "products"), ("paper", "papers"), ("game", "games"), ("show", "shows"),
    ("event", "events"), ("object", "objects"), ("figure", "figures"), ("piece", "pieces"),
)
"""Class nouns (singular, plural) from many domains. People say "which films ...", "the book X" where the
graph names no class; written questions put such nouns in at random (CLASS_NOUN_SHARE), so that the models
learn that they ask for no relation (to a pretrained encoder "films" is close to "starred actors")."""

PERSON_NOUNS = frozenset({"person", "people", "persons", "individual", "individuals", "figure", "figures"})
"""The CLASS_NOUNS that name people."""

THING_NOUNS = frozenset(noun for pair in CLASS_NOUNS for noun in pair) - PERSON_NOUNS


def asks_for_things(question: str) -> bool:
    """Whether the question asks "which"/"what" of a class noun that names no people ("which films ...",
    "what books ...")."""
    return any(noun in THING_NOUNS for noun in re.findall(r"\b(?:which|what)\s+([a-z]+)", question.lower()))
