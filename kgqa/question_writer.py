"""Training questions written from the graph alone, for a user who has triples and nothing else.

For relation paths of 1..max_hops steps walked from sampled topic entities, a question is written from the
verbalised relations (`relation_words`), in many shapes: questions and imperatives, the entity at the start
or at the end, nested noun phrases or keyword strings, lower case, class nouns the graph does not name
("which films", "the book X"). A relation walked there and straight back (`r|r_inv`, `r_inv|r`) is mostly
worded as one phrase, the way people ask for it: "the ones with the same
genre as X", "the fellow starred actors of X", "who else directed what X directed"; a "<participle> by"
relation often by its doer's noun ("the director of X"). The gold answers are the walk's answers, so every
label is right by construction; what the models learn from it is which wording goes with which path, how
many hops a question asks for, and where the entity's name sits.

Sampling: topics are drawn uniformly from the graph's entities; every path walkable from them (hop by hop
with `next_steps_many`, the store's conventions applied) is a candidate. Each hop count gets an equal
share of the questions; within a hop count a path is drawn with a weight of the square root of how many
sampled topics walk it (common paths more often, rare ones still seen), then one of those topics. Walks
with no answer or more than `max_answers` are skipped, and so are detours whose answers are those of the
shorter walk (`shortcut`).
"""

from __future__ import annotations

import math
import random
import re
from collections import defaultdict
from collections.abc import Callable, Sequence

from kgqa.graph.store import GraphStore
from kgqa.questions import Example
from kgqa.grammar import CLASS_NOUNS, PERSON_NOUNS, agent_noun, answer_kind, by_forms, did_forms
from kgqa.retrieval.paths import relation_stems, relation_words, word_stems
from kgqa.types import Path, Step, format_path, shortcut
from kgqa.weak_labels import Label, answers_many, enumerate_paths

SOURCE = "written from the graph"
DEFAULT_TOPICS = 3_000
DEFAULT_MAX_ANSWERS = 200
PATHS_PER_TOPIC = 500
"""Paths enumerated from one sampled topic at most (a hub on a big schema has very many)."""

Phrase = Callable[[str, str], str]

FORWARD: tuple[Phrase, ...] = (
    lambda words, inner: f"the {words} of {inner}",
    lambda words, inner: f"{inner}'s {words}",
    lambda words, inner: f"{words} of {inner}",
    lambda words, inner: f"the {words} for {inner}",
)
"""Noun phrases for walking a relation forwards from `inner` (subject -> object)."""

BACKWARD: tuple[Phrase, ...] = (
    lambda words, inner: f"the things with {words} {inner}",
    lambda words, inner: f"what has {words} {inner}",
    lambda words, inner: f"those whose {words} is {inner}",
    lambda words, inner: f"the ones {words} {inner}",
)
"""Noun phrases for walking a relation backwards to `inner`'s subjects (object -> subject)."""

WRAPPERS: tuple[str, ...] = (
    "which are {p}", "which ones are {p}", "{p}?", "{p}", "tell me {p}", "list {p}", "name {p}", "show me {p}", "give me {p}",
    "find {p}", "do you know {p}", "i would like to know {p}", "can you tell me {p}",
)
"""Whole questions around a noun phrase {p}, for any kind of answer."""

WHO_WRAPPERS: tuple[str, ...] = ("who is {p}", "who are {p}", "who would be {p}")
"""Whole questions around {p} when the answers are doers (`answer_kind` "who")."""

WHAT_WRAPPERS: tuple[str, ...] = ("what is {p}", "what are {p}", "what would be {p}")
"""Whole questions around {p} when the answers are things or values (`answer_kind` "what")."""

VERB_SHARE = 0.4
"""Of the questions whose outermost step reads as a verb or a "has"/"in" relation, those asked in that form."""

AGENT_SHARE = 0.5
"""Of the steps of a "<participle> by" relation worded as a noun phrase, those worded with the doer's noun."""


def step_words(step: Step, rng: random.Random) -> str:
    """The words a noun phrase uses for a step's relation: its doer's noun, singular or plural (AGENT_SHARE of
    the time, when it has one: "director", "actors"), else its words, a leading "has" mostly left out ("the
    genre of X")."""
    words = relation_words(step.relation)
    did = did_forms(words)
    agent = agent_noun(words) or (did[1][:-1] if did else None)
    if agent and rng.random() < AGENT_SHARE:
        return agent + "s" if rng.random() < 0.5 else agent
    if words.startswith("has ") and rng.random() < 0.7:
        return words[4:]
    return words


def verb_question(step: Step, inner: str, rng: random.Random) -> str | None:
    """A whole question asking for `step` walked from `inner`, worded by English grammar when the relation's
    words allow it: `directed_by` forwards "who directed X", backwards "what has X directed"; `starred_actors`
    "who starred in X", "what has X starred in"; `has_genre` "what genre does X have"; `in_language` "what
    language is X in". None when they do not."""
    text = relation_words(step.relation)
    words = text.split()
    forms = by_forms(text)
    if forms is not None:
        done, past = forms
        if step.inverse:
            return rng.choice([f"what was {done} by {inner}", f"what has {inner} {done}",
                               f"which ones were {done} by {inner}", f"the ones {inner} {past}"])
        return rng.choice([f"who {past} {inner}", f"by whom was {inner} {done}", f"{inner} was {done} by whom",
                           f"which one {past} {inner}"])
    did = did_forms(text)
    if did is not None:
        done, doers = did
        if step.inverse:
            return rng.choice([f"what has {inner} {done} in", f"which ones has {inner} {done} in",
                               f"{inner} {done} in what"])
        return rng.choice([f"who {done} in {inner}", f"which {doers} {done} in {inner}",
                           f"the {doers} who {done} in {inner}"])
    rest = " ".join(words[1:])
    if len(words) >= 2 and words[0] == "has":
        if step.inverse:
            return rng.choice([f"what has the {rest} {inner}", f"which ones have {inner} as their {rest}",
                               f"what has {inner} as its {rest}"])
        return rng.choice([f"what {rest} does {inner} have", f"what is the {rest} of {inner}",
                           f"what {rest} has {inner}"])
    if len(words) >= 2 and words[0] == "in":
        if step.inverse:
            return rng.choice([f"what is in {inner}", f"which ones are in {inner}"])
        return rng.choice([f"what {rest} is {inner} in", f"in what {rest} is {inner}"])
    return None


SAME_OBJECT: tuple[Phrase, ...] = (
    lambda words, inner: f"the ones with the same {words} as {inner}",
    lambda words, inner: f"what shares the {words} of {inner}",
    lambda words, inner: f"those that share {inner}'s {words}",
    lambda words, inner: f"the others whose {words} is also {inner}'s",
    lambda words, inner: f"what else has the {words} of {inner}",
)
"""Noun phrases for a relation walked forwards then back (`r|r_inv`): the others that share `inner`'s object."""

SAME_SUBJECT: tuple[Phrase, ...] = (
    lambda words, inner: f"the {words} together with {inner}",
    lambda words, inner: f"the other {words} alongside {inner}",
    lambda words, inner: f"the fellow {words} of {inner}",
    lambda words, inner: f"those who share {words} with {inner}",
    lambda words, inner: f"the co-{words} of {inner}",
)
"""Noun phrases for a relation walked back then forwards (`r_inv|r`): the others that share a subject with
`inner` (co-stars, co-authors)."""

SIBLING_SHARE = 0.75
"""Of the relations walked there and straight back, those worded as one "the same"/"together with" phrase
(the rest nest one phrase per step, as any other path)."""


def sibling_phrase(step: Step, inner: str, rng: random.Random) -> str:
    """A noun phrase for `step` followed by its own reverse, walked from `inner`: by English grammar when the
    relation is a participle with "by" ("the ones directed by the same one as X", "who else directed what
    X directed") or a participle with its doers ("the ones that share actors with X"), else from SAME_OBJECT
    or SAME_SUBJECT."""
    text = relation_words(step.relation)
    forms, did = by_forms(text), did_forms(text)
    if did is not None and rng.random() < 0.5:
        done, doers = did
        if step.inverse:
            return rng.choice([f"the ones who {done} together with {inner}", f"those who {done} alongside {inner}",
                               f"the ones who {done} in the same ones as {inner}"])
        return rng.choice([f"the ones that share {doers} with {inner}", f"what else the {doers} of {inner} {done} in",
                           f"the others where the {doers} of {inner} {done}"])
    if forms is not None and rng.random() < 0.5:
        done, past = forms
        if step.inverse:
            return rng.choice([f"who else {past} what {inner} {past}", f"the ones who {past} together with {inner}",
                               f"those who also {past} what {inner} {past}"])
        return rng.choice([f"the ones {done} by the same one as {inner}",
                           f"what else was {done} by whoever {past} {inner}",
                           f"the others {done} by the one who {past} {inner}"])
    return rng.choice(SAME_SUBJECT if step.inverse else SAME_OBJECT)(step_words(step, rng), inner)


def sibling_question(step: Step, inner: str, rng: random.Random) -> str | None:
    """A whole question asking for `step` followed by its own reverse, walked from `inner`, when the relation's
    words are a verb: "who starred together with X", "X directed together with who"; None otherwise."""
    text = relation_words(step.relation)
    forms, did = by_forms(text), did_forms(text)
    if not step.inverse or (forms is None and did is None):
        return None
    verb = did[0] if did else forms[1]
    return rng.choice([f"who {verb} together with {inner}", f"who {verb} alongside {inner}",
                       f"{inner} {verb} together with who", f"who else {verb} with {inner}"])


def phrase_units(path: Path, rng: random.Random) -> list[tuple[Step, bool]]:
    """The path as the units a question words, innermost first: (step, True) for a step followed by its own
    reverse (worded together, SIBLING_SHARE of the time), (step, False) for a step worded alone."""
    units: list[tuple[Step, bool]] = []
    i = 0
    while i < len(path):
        step = path[i]
        pair = i + 1 < len(path) and path[i + 1] == step.reverse()
        if pair and rng.random() < SIBLING_SHARE:
            units.append((step, True))
            i += 2
        else:
            units.append((step, False))
            i += 1
    return units


CLASS_NOUN_SHARE = 0.4
"""Of the written questions, those whose "ones" become a class noun ("the films with the same director as
X"); half as many put one before the topic's name ("the film X")."""


def class_nouns(graph: GraphStore) -> tuple[tuple[str, str], ...]:
    """CLASS_NOUNS less those that share a word stem with one of the graph's relations (a graph with
    `has_genre` keeps "films"; one with `album_of` loses "albums", which there asks for that relation)."""
    stems: set[str] = set()
    for relation in graph.relations():
        stems |= relation_stems(relation)
    return tuple(pair for pair in CLASS_NOUNS if not (word_stems(" ".join(pair)) & stems))


def with_class_nouns(text: str, nouns: Sequence[tuple[str, str]], kind: str | None, rng: random.Random) -> str:
    """The question with its "ones" made class nouns fitting answers of `kind` (`answer_kind`: people's nouns
    for "who", the others for "what") and, half as often, any one before the topic ("\0")."""
    if not nouns:
        return text
    fitting = [pair for pair in nouns if kind is None or (pair[1] in PERSON_NOUNS) == (kind == "who")]
    if fitting and rng.random() < CLASS_NOUN_SHARE:
        text = re.sub(r"\bones\b", lambda _: rng.choice(fitting)[1], text)
    if rng.random() < CLASS_NOUN_SHARE / 2:
        text = text.replace("\0", f"the {rng.choice(nouns)[0]} \0", 1)
    return text


KEYWORDS: tuple[str, ...] = ("{e} {r}", "{e}: {r}?", "{r} {e}", "{r} for {e}", "for {e}, {r}?", "{e} -> {r}")
"""Search-box shapes: the entity and the relations' words in walking order, {r}."""


def write_questions(graph: GraphStore, max_hops: int, count: int, seed: int = 0, topics: int = DEFAULT_TOPICS,
                    max_answers: int = DEFAULT_MAX_ANSWERS) -> list[Label]:
    """About `count` questions with their topic, mention span, path and answers (see the module docstring)."""
    rng = random.Random(seed)
    names = graph.entity_names()
    if not names or count <= 0:
        return []
    sampled = rng.sample(names, min(topics, len(names)))
    found, _ = enumerate_paths(graph, sampled, max_hops, PATHS_PER_TOPIC)
    by_length: dict[int, list[Path]] = defaultdict(list)
    for path in found:
        by_length[len(path)].append(path)
    lengths = sorted(by_length)
    nouns = class_nouns(graph)
    labels: list[Label] = []
    for i, length in enumerate(lengths):
        share = (count - len(labels)) // (len(lengths) - i)
        labels += _write_for_length(graph, by_length[length], found, sampled, share, max_answers, rng, len(labels),
                                    nouns)
    return labels


def _write_for_length(graph: GraphStore, paths: list[Path], found: dict[Path, list[int]], sampled: list[str],
                      share: int, max_answers: int, rng: random.Random, first_row: int,
                      nouns: Sequence[tuple[str, str]]) -> list[Label]:
    paths = sorted(paths, key=format_path)
    weights = [math.sqrt(len(found[p])) for p in paths]
    wanted: dict[Path, set[int]] = defaultdict(set)
    for path in rng.choices(paths, weights, k=share * 2):  # twice: some walks are skipped
        wanted[path].add(rng.choice(found[path]))
    labels: list[Label] = []
    candidates = [(path, t) for path in sorted(wanted, key=format_path) for t in sorted(wanted[path])]
    rng.shuffle(candidates)
    answers: dict[tuple[Path, int], list[str]] = {}
    for path in sorted(wanted, key=format_path):
        positions = sorted(wanted[path])
        topics = [sampled[t] for t in positions]
        shorter = shortcut(path)
        same = answers_many(graph, topics, shorter) if shorter else [None] * len(topics)
        for t, reached, short in zip(positions, answers_many(graph, topics, path), same):
            answers[(path, t)] = [] if short is not None and set(short) == set(reached) else reached
    for path, t in candidates:
        reached = answers[(path, t)]
        if not reached or len(reached) > max_answers:
            continue
        topic = sampled[t]
        question, span = phrase_question(topic, path, rng, nouns)
        example = Example(question, topic, format_path(path), tuple(sorted(set(reached))), SOURCE)
        labels.append(Label(first_row + len(labels), example, span, 1.0))
        if len(labels) == share:
            break
    return labels


def phrase_question(topic: str, path: Path, rng: random.Random, nouns: Sequence[tuple[str, str]] = ()
                    ) -> tuple[str, tuple[int, int]]:
    """One question asking for the end of `path` walked from `topic`, and the span of the topic in it;
    `nouns`: the class nouns it may use (`class_nouns`)."""
    mention = topic if rng.random() < 0.7 else topic.lower()
    kind = answer_kind(path[-1])
    if rng.random() < 0.25:
        shape = rng.choice(KEYWORDS)
        text = shape.format(e="\0", r=" ".join(_step_words(step) for step in path))
    else:
        units = phrase_units(path, rng)
        phrase = "\0"
        for step, paired in units[:-1]:
            phrase = sibling_phrase(step, phrase, rng) if paired else noun_phrase(step, phrase, rng)
        last, paired = units[-1]
        asked = None
        if rng.random() < VERB_SHARE:
            asked = sibling_question(last, phrase, rng) if paired else verb_question(last, phrase, rng)
        outer = sibling_phrase(last, phrase, rng) if paired else noun_phrase(last, phrase, rng)
        text = asked or rng.choice(wrappers(kind)).format(p=outer)
    text = with_class_nouns(text, nouns, kind, rng)
    if rng.random() < 0.4:
        text = text.lower()
    start = text.index("\0")
    return text.replace("\0", mention), (start, start + len(mention))


def wrappers(kind: str | None) -> tuple[str, ...]:
    """The whole-question shapes that fit answers of `kind` (`answer_kind`): "who ..." only for doers."""
    if kind == "who":
        return WRAPPERS + WHO_WRAPPERS
    if kind == "what":
        return WRAPPERS + WHAT_WRAPPERS
    return WRAPPERS + WHO_WRAPPERS + WHAT_WRAPPERS


def noun_phrase(step: Step, inner: str, rng: random.Random) -> str:
    """A noun phrase for `step` walked from `inner` ("the directed by of X", "the director of X", "the genre
    of X", "what has genre X", "the ones X starred in"), with `step_words`."""
    did = did_forms(relation_words(step.relation))
    if did is not None and step.inverse and rng.random() < VERB_SHARE:
        return rng.choice([f"the ones {inner} {did[0]} in", f"those featuring {inner}", f"the ones with {inner} in them"])
    return rng.choice(BACKWARD if step.inverse else FORWARD)(step_words(step, rng), inner)


def _step_words(step: Step) -> str:
    words = relation_words(step.relation)
    return f"{words} of" if step.inverse else words


def with_typos(labels: Sequence[Label], rate: float, seed: int = 0) -> list[Label]:
    """The labels with a typo in the topic's mention of about `rate` of them (for the linker, which must
    find misspelt names too); the span follows the changed mention."""
    rng = random.Random(seed)
    out = []
    for label in labels:
        start, end = label.span
        mention = label.example.question[start:end]
        if start < 0 or len(mention) < 5 or rng.random() >= rate:
            out.append(label)
            continue
        changed = misspell(mention, rng)
        q = label.example.question
        example = Example(q[:start] + changed + q[end:], label.example.topic, label.example.path,
                          label.example.answers, label.example.source)
        out.append(Label(label.row, example, (start, start + len(changed)), label.f1))
    return out


def misspell(word: str, rng: random.Random) -> str:
    """One dropped, doubled, swapped or replaced letter, away from the first letter."""
    letters = [i for i, c in enumerate(word) if c.isalpha() and i > 0]
    if not letters:
        return word
    i = rng.choice(letters)
    kind = rng.randrange(4)
    if kind == 0:
        return word[:i] + word[i + 1:]
    if kind == 1:
        return word[:i] + word[i] + word[i:]
    if kind == 2 and i + 1 < len(word):
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    return word[:i] + rng.choice("aeiourstnl") + word[i + 1:]
