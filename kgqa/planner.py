"""Planning without an LLM: from a question, its mentions and its best relation chain to a query program.

The agent finds the question's chain as always (linking, path search, reranker). The planner then reads
the question's shape and composes the program around that chain:

- conjunction: a second entity's branch, walked along the path (of its own top paths) that shares answers
  with the first, or "but not" / "except" / "without" subtracting it;
- filter: a literal in the question (a number: year, rating) compared with a literal-valued step of the
  answers (equals; before / after / between by the words around it);
- count: "how many", "number of";
- superlative: earliest / latest, highest / lowest, most / fewest: min or max over a literal-valued step
  (or over how many neighbours a step reaches), top k when a number of answers is asked for;
- yes/no: a question that opens with an auxiliary verb and names a second entity: is it among the answers.

The shape comes from the cue words below, which are English, not any graph's (nothing here knows movies),
and from the graph's trained shape model (`kgqa.shapes`) when it has one: the kinds are tried likeliest
first, and the first whose program can be composed (the question has what the kind needs) is the plan.
A question that reads as a chain stays a one-branch chain, answered exactly as before.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING

from kgqa.graph.store import GraphStore
from kgqa.program import Aggregate, Branch, Constraint, Program, compare_key, is_literal
from kgqa.questions import MASK
from kgqa.retrieval.paths import relation_stems, relation_words, word_stems
from kgqa.types import Mention, Path, Step

if TYPE_CHECKING:
    from kgqa.shapes import ShapeModel

NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)(?![\w.])")
COUNT = re.compile(r"\b(how many|number of|count of|count the)\b", re.I)
YES_NO = re.compile(r"^\s*(did|does|do|is|was|are|were|has|have|had|would you call|(can|could|will)(?!\s+you\b))\b", re.I)
"""A yes/no opening (not a request: "can you name a film ..." asks for films)."""
EXCEPT = re.compile(r"\b(but not|except|excluding|without|other than|someone else|somebody else|not|never|"
                    r"(?:did|does|do|was|is|are|were|has|have)"
                    r"(?:n't| not))\b", re.I)
BEFORE = re.compile(r"\b(before|earlier than|prior to|until|up to|older than|below|under|less than|lower than)\b", re.I)
AFTER = re.compile(r"\b(after|later than|since|newer than|more recent than|above|over|more than|greater than|"
                   r"higher than)\b", re.I)
BETWEEN = re.compile(r"\bbetween\b|\bfrom\b(?=\D*\d+\D+(?:to|until|till|through)\b)", re.I)
"""Between two numbers: "between 1990 and 1995", "from 1990 to 1995" (a lone "from 1990" is equals)."""
SMALLEST = re.compile(r"\b(earliest|first|oldest|lowest|worst|least|fewest|smallest|shortest|minimum)\b", re.I)
LARGEST = re.compile(r"\b(latest|last|newest|most recent|highest|best|top|most|greatest|largest|longest|maximum)\b", re.I)
BY_COUNT = re.compile(r"\b(most|fewest|least)\s+(\w+)", re.I)
TIME_WORDS = re.compile(r"\b(earliest|latest|first|last|oldest|newest|recent|recently|year|when|before|after|since)\b",
                        re.I)
OTHERS = re.compile(r"\b(else|other|others|also)\b", re.I)
"""Words that ask for things like the topic besides it: "what else did the director of X make"."""
OTHERS_OF_FEW = 2
"""At most this many answers of a chain whose "others" are asked for (a film's director, its writers)."""
CANDIDATE_PATHS = 3
"""A kind's candidate programs are composed around this many of the topic's best paths."""
CHOICE_MARGIN = 1.5
"""Logits by which another candidate program must outscore the one around the reranker's chain (on the
development sets, right switches won by 2.1 to 2.4, wrong ones by up to 1.0)."""
LITERAL_PROBE = 4
"""Answers whose values along a step are looked at before all of them (`Planner._literal_steps`)."""
ASKED_NOUN = re.compile(r"\b(?:which|what)\s+([a-z]+)", re.I)
"""The noun a question asks for ("which director ..."), when it names one."""

RULE_WEIGHT = {"chain": 0.8}
"""What the cue words' kind adds to the shape model's probability of it: a kind a cue word gave is tried
first (1.0); a chain (no cue word fired) gives way when the model is sure of another kind."""
MIN_SCORE = 0.3
"""A kind scoring less than this (probability plus RULE_WEIGHT if the cue words give it) is not tried."""

CLASS_VALUES = 30
"""A step with more distinct values than this among a chain's answers (tags, titles) names no class."""


def plural(word: str) -> str:
    """The English plural of a class name: drama -> dramas, comedy -> comedies."""
    if word.endswith("y") and len(word) > 3 and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + ("es" if word.endswith(("s", "x", "ch", "sh")) else "s")


def class_forms(words: set[str]) -> set[str]:
    """Every class name that a question with these words can name: each word, and each word it is the
    `plural` of ("comedies" -> comedy, "dramas" -> drama)."""
    forms = set(words)
    for word in words:
        forms |= {s for s in (word[:-1], word[:-2], word[:-3] + "y") if s and plural(s) == word}
    return forms


KINDS = ("chain", "conjunction", "filter", "count", "superlative", "yes/no")


@dataclass(frozen=True)
class Literal:
    """A number written in the question (a year, a rating, a count)."""

    text: str
    start: int
    end: int


def split_mentions(question: str, mentions: Sequence[Mention], topic: str | None = None
                   ) -> tuple[list[Mention], list[Literal]]:
    """The entity mentions, and the numbers of the question: a mention that is only a number (a year the
    graph also holds as a node) counts as a number, unless it is the question's topic (a film called 2010).
    Besides the topic, only mentions typed as their entity's name count: a fuzzy match of ordinary words
    ("last?" -> Blast, "the westerns" -> The Westerner) is no second entity, and its words stay cue words.
    A topic that is a number where the question names an entity too is better read as a literal: see
    `entity_over_number`."""
    def is_topic(m: Mention) -> bool:
        return bool(m.candidates) and m.candidates[0].name == topic

    entities = [m for m in mentions if is_topic(m) or typed_as_name(question, m)]
    taken = [(name_start(m), name_start(m) + len(m.candidates[0].name)) if m.candidates else (m.start, m.end)
             for m in entities]
    literals = [Literal(m.group(1).replace(",", ""), m.start(1), m.end(1)) for m in NUMBER.finditer(question)
                if not any(s <= m.start(1) < e for s, e in taken)]
    return entities, literals


PUNCTUATION = " \t?!.,;:'\"()"


def typed_as_name(question: str, mention: Mention) -> bool:
    """Typed as the name it links to (`exact_name`), not a number, and capitalised as names are when the
    question capitalises them ("show me" opening a question is no film called Show Me, "would you call"
    no film called The Call)."""
    if not exact_name(mention) or NUMBER.fullmatch(mention.text.strip(PUNCTUATION)):
        return False
    capitalises = any(ch.isupper() for ch in question[1:])
    return not capitalises or any(ch.isupper() for ch in mention.text) or mention.candidates[0].name.islower()
WH_OR_REQUEST = re.compile(r"\b(who|whom|whose|what|which|when|where|why|how|name|list|show|give|tell|find)\b", re.I)
"""Words that ask for a set or a value; a question with neither these nor an auxiliary opening, naming two
entities ("Feed: directed by Brett Leonard?"), asks whether they are related."""


CUE_WORDS = {"between", "before", "after", "since", "from", "until", "and", "or", "but", "not", "in", "of", "s", "'s"}
"""Words a tagged span may run on into past a name without making it another name."""


def exact_name(mention: Mention) -> bool:
    """Whether the mention is typed as the name it links to, give or take punctuation and a leading article
    (not a fuzzy match: "the westerns" -> The Westerner), or holds a name of several words typed with its
    capitals."""
    def bare(text: str) -> str:
        return re.sub(r"^(the|a|an)\s+", "", text.strip(PUNCTUATION).casefold())

    if not mention.candidates:
        return False
    original = mention.candidates[0].name
    if " " in original and any(ch.isupper() for ch in original) and original in mention.text:
        return True  # a span that ran on past a name typed with its capitals: "Lights in the Dusk come out"
    name, text = bare(original), bare(mention.text)
    if name == text:
        return True
    at = text.find(name)  # a span that ran on past the name: "Fernando Trueba between 1995"
    rest = (text[:at] + " " + text[at + len(name):]).split() if at >= 0 and name else []
    return at >= 0 and bool(name) and len(rest) <= 2 and all(not w[:1].isalpha() or w in CUE_WORDS for w in rest)


def entity_over_number(question: str, mentions: Sequence[Mention], topic: str | None) -> Mention | None:
    """The entity to walk from instead of a topic that is only a number ("what did Jimmy Sangster write before
    1964": Jimmy Sangster, and 1964 a literal), when the question names one; None to keep the topic."""
    if topic is None or not NUMBER.fullmatch(topic.strip()):
        return None
    entities, _ = split_mentions(question, mentions, None)
    return next((m for m in entities if m.candidates and m.candidates[0].name != topic), None)


NUMBER_WORDS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10}
COUNTED = re.compile(r"\b(" + "|".join(NUMBER_WORDS) + r")\b", re.I)


def top_k(literals: Sequence[Literal], masked_question: str = "") -> int:
    """How many answers a superlative asks for: its first number when that is 20 or less ("the 3 earliest"),
    else a number word outside the names ("the two most recent"), else 1."""
    if literals and float(literals[0].text) <= 20:
        return int(float(literals[0].text))
    word = COUNTED.search(masked_question)
    return NUMBER_WORDS[word.group(1).lower()] if word else 1


def mostly_literals(names: Sequence[str]) -> bool:
    """Whether most of these entities are numbers (a path that ends on years, not on films)."""
    return sum(1 for n in names if is_literal(n)) * 2 > len(names)


JOINED = re.compile(r"\b(and|both|together|as well as|along with|with|but not|except|excluding|not|or)\b|&", re.I)


IRREGULAR = {"wrote": "write", "written": "write", "writer": "write", "writing": "write", "writes": "write",
             "acted": "act", "actor": "act", "actors": "act", "acting": "act", "actress": "act",
             "starred": "star", "starring": "star", "stars": "star", "made": "make", "making": "make",
             "produced": "produc", "producer": "produc", "directing": "direct", "director": "direct",
             "directed": "direct", "directs": "direct"}
"""English forms a four-letter stem does not bring together."""


def loose_stem(word: str) -> str:
    """A crude English stem for matching a verb in the question to a relation's words."""
    word = word.lower().strip("'")
    word = IRREGULAR.get(word, word)
    return word[:4] if len(word) > 4 else word


def verb_stems(text: str) -> set[str]:
    """The `loose_stem`s of a text's words (what `names_steps` matches relations against)."""
    return {loose_stem(w) for w in re.findall(r"[a-zA-Z']{3,}", text)}


def names_steps(stems: set[str], path: Path) -> int:
    """How many of the path's steps the question names, by `verb_stems` ("directed by X": directed_by)."""
    return sum(1 for step in path if any(loose_stem(w) in stems for w in relation_words(step.relation).split()
                                         if len(w) >= 3))


def wants_two(masked_question: str) -> bool:
    """Whether a question (its mentions masked) may be about two entities: words that join or exclude, a
    yes/no opening, or no word asking for a set or value ("Source Code: directed by X?")."""
    return bool(JOINED.search(masked_question) or EXCEPT.search(masked_question) or YES_NO.match(masked_question)
                or not WH_OR_REQUEST.search(masked_question))


def cue_shape(question: str, mentions: Sequence[Mention], literals: Sequence[Literal]) -> str:
    """The shape the cue words give, read outside the entity mentions ("The Best Years of Our Lives" asks
    for no maximum). Two entities make a conjunction only when words join them ("X and Y", "X but not Y")."""
    if len(mentions) >= 2:
        first, second = sorted(mentions[:2], key=lambda m: m.start)
        between = question[first.end:name_start(second)]
        joined = bool(JOINED.search(between) or EXCEPT.search(between))
    else:
        joined = False
    named = [m for m in mentions if exact_name(m)]
    question = mask_all(question, mentions)
    if YES_NO.match(question) and (len(mentions) >= 2 or literals or len(mentions) == 1):
        return "yes/no"
    if len(named) >= 2 and not joined and not WH_OR_REQUEST.search(question) and not literals:
        return "yes/no"
    if COUNT.search(question):
        return "count"
    if SMALLEST.search(question) or LARGEST.search(question):
        if not (len(mentions) >= 2 and re.search(r"\b(first|last|top)\b", question, re.I) and not literals):
            return "superlative"
    if literals:
        return "filter"
    if joined or (len(mentions) == 1 and (JOINED.search(question) or EXCEPT.search(question))):
        return "conjunction"  # one entity: two of its relations ("written and directed by X"), if named
    if len(named) >= 2:  # "which Joan Chen movies feature Anthony LaPaglia": both, when they share answers
        return "conjunction"
    return "chain"


def relation_phrases(relations: Sequence[str]) -> re.Pattern[str] | None:
    """Runs of two or more words that spell one of the relations (a leading "has" left out), longest first."""
    phrases = set()
    for relation in relations:
        words = relation_words(relation).split()
        words = words[1:] if words[:1] == ["has"] else words
        if len(words) >= 2:
            phrases.add(r"\s+".join(map(re.escape, words)))
    if not phrases:
        return None
    return re.compile(r"\b(?:" + "|".join(sorted(phrases, key=len, reverse=True)) + r")\b", re.I)


def without_relation_words(question: str, phrases: re.Pattern[str] | None) -> str:
    """The question with each run of words that names a relation blanked (offsets kept), when it has a cue
    word: "the largest city of France" walks `largest_city` and asks for no maximum."""
    if phrases is None or not (COUNT.search(question) or SMALLEST.search(question) or LARGEST.search(question)):
        return question
    return phrases.sub(lambda m: " " * len(m.group()), question)


def with_prefixes(paths: Sequence[Path]) -> list[Path]:
    """The paths, each followed by its prefix without the last step: "Tom Hanks films before 1990" ranks
    `starred_actors_inv|release_year` first, and the films are that path less its step to the years."""
    out: list[Path] = []
    for path in paths:
        for candidate in (path, path[:-1]):
            if candidate and candidate not in out:
                out.append(candidate)
    return out


JOINER = r"(and|&|as well as|along with|with|together with|but not|except|excluding|not|or)"


def topic_mention(mentions: Sequence[Mention], topic: str) -> Mention | None:
    """The mention the topic was linked from: the one whose best candidate it is, else the first that lists
    it (the reranker may pick a mention's second candidate)."""
    return next((m for m in mentions if m.candidates and m.candidates[0].name == topic), None) or \
        next((m for m in mentions if any(c.name == topic for c in m.candidates)), None)


def without_other(question: str, topic: Mention, other: Mention) -> str:
    """The question without the other entity and the word joining it to the topic ("X and Y", "Y and X",
    "X but not Y"), the topic masked: what the topic's own path is found for. Else both masked."""
    if other.start >= topic.end:
        joined = re.search(rf"\s*\b{JOINER}\s*$", question[topic.end:name_start(other)], re.I)
        if joined:
            cut = topic.end + joined.start()
            return question[:topic.start] + "something" + question[topic.end:cut] + question[other.end:]
    elif re.fullmatch(rf"\s*{JOINER}\s*", question[other.end:topic.start], re.I):
        return question[:other.start] + "something" + question[topic.end:]
    return mask_all(question, [topic, other])


def name_span(mention: Mention) -> tuple[int, int]:
    """Where the entity's name lies inside its mention (a tagged span may take in "but not" before it, or
    "would you call" before "Snake Eyes"); the whole mention when the name is not in it as typed."""
    found = mention.text.casefold().find(mention.candidates[0].name.casefold()) if mention.candidates else -1
    if found < 0:
        return mention.start, mention.end
    return mention.start + found, mention.start + found + len(mention.candidates[0].name)


def name_start(mention: Mention) -> int:
    """Where the entity's name starts inside its mention (`name_span`)."""
    return name_span(mention)[0]


def mask_all(question: str, mentions: Sequence[Mention], mask: str = "something") -> str:
    """The question with every entity mention replaced by `mask`: only its name where the tagged span ran
    on past it ("would you call Snake Eyes" keeps its "would you call")."""
    for m in sorted(mentions, key=lambda m: -m.start):
        start, end = name_span(m)
        question = question[:start] + mask + question[end:]
    return question


@dataclass
class Planner:
    """Composes programs for one graph; `search` gives an entity's top paths for a masked question."""

    graph: GraphStore
    search: Callable[[str, str], list[Path]]
    """(entity, question with that entity masked) -> its best paths, best first."""
    shapes: ShapeModel | None = None
    """The graph's trained question-shape model, if it has one."""
    max_hops: int = 3
    score_paths: Callable[[str, list[Path]], list[float]] | None = None
    """(question with its entities masked, paths) -> the reranker's score of each path for it; it chooses
    among a kind's candidate programs (`choose`). None: the first candidate."""
    _not_literal: set[Step] = field(default_factory=set, repr=False)
    """Steps seen reaching a value that is not a literal: never a literal-valued step (`_literal_steps`)."""

    @cached_property
    def relation_phrases(self) -> re.Pattern[str] | None:
        """The graph's relations as runs of words (`relation_phrases`), compiled once."""
        return relation_phrases(self.graph.relations())

    def kinds(self, question: str, mentions: Sequence[Mention], literals: Sequence[Literal]) -> list[str]:
        """The kinds to try, best first: the shape model's probabilities, the cue words' kind given
        RULE_WEIGHT more, those scoring MIN_SCORE or more (two at most); the cue words' kind alone without
        a model."""
        rule = cue_shape(question, mentions, literals)
        if self.shapes is None:
            return [rule]
        spans = [(name_start(m), name_start(m) + len(m.candidates[0].name), "e") for m in mentions if m.candidates]
        spans += [(x.start, x.end, "n") for x in literals]
        scores = {k: p + (RULE_WEIGHT.get(k, 1.0) if k == rule else 0.0) for k, p in self.shapes.ranked(question, spans)}
        ranked = sorted(scores, key=lambda k: -scores[k])
        return [k for k in ranked if scores[k] >= MIN_SCORE][:2] or ranked[:1]

    def plan(self, question: str, mentions: Sequence[Mention], literals: Sequence[Literal], topic: str,
             paths: Sequence[Path]) -> tuple[str, Program]:
        """The kind the question asks for and its program: the first kind of `kinds` whose program can be
        composed (not falling back to the chain), the best of its candidate programs (`choose`); else the
        chain."""
        like_topic = self.back_to_topic_kind(question, mentions, topic, paths[0])
        if like_topic is not None:
            paths = [like_topic] + [p for p in paths if p != like_topic]
        chain = Program((Branch(topic, paths[0]),))
        for kind in self.kinds(without_relation_words(question, self.relation_phrases), mentions, literals):
            if kind == "chain":
                return kind, chain
            programs = self.candidates(kind, question, mentions, literals, topic, paths)
            if programs:
                return kind, self.choose(question, mentions, programs)
        return "chain", chain

    def candidates(self, kind: str, question: str, mentions: Sequence[Mention], literals: Sequence[Literal],
                   topic: str, paths: Sequence[Path]) -> list[Program]:
        """The distinct programs of `kind` composed around each of the topic's first CANDIDATE_PATHS paths as
        long as the chain's (the chain's first: the reranker judged its length, the candidates vary its
        relations: "X's earliest film" as directed or as written), leaving out those that fall back to their
        chain."""
        programs: list[Program] = []
        for path in [p for p in dict.fromkeys(paths) if len(p) == len(paths[0])][:CANDIDATE_PATHS]:
            ordered = [path] + [p for p in paths if p != path]
            program = self.compose(kind, question, mentions, literals, topic, ordered)
            if program != Program((Branch(topic, path),)) and program not in programs:
                programs.append(program)
        return programs

    def choose(self, question: str, mentions: Sequence[Mention], programs: list[Program]) -> Program:
        """The candidate program the reranker scores best: those with answers (or a yes/no) first, then the
        mean of its walks' cross-encoder logits (`walks`) for the question with its entities masked, the
        first (around the chain the reranker chose) given CHOICE_MARGIN more."""
        if len(programs) == 1 or self.score_paths is None:
            return programs[0]
        walks = [self.walks(p) for p in programs]
        scores = self.score_paths(mask_all(question, mentions, MASK), [w for walk in walks for w in walk])
        at, ranked = 0, []
        for i, (program, walk) in enumerate(zip(programs, walks)):
            mean = sum(scores[at:at + len(walk)]) / len(walk)
            at += len(walk)
            outcome = self.graph.run_program(program)
            empty = not (outcome.answers or outcome.yes is not None)
            ranked.append((empty, -mean - (CHOICE_MARGIN if i == 0 else 0.0), i))
        return programs[min(ranked)[2]]

    @staticmethod
    def walks(program: Program) -> list[Path]:
        """The relation paths a program walks, as the reranker reads them: each branch's (the first ending
        with the step a count-superlative counts along: "the most films" walks on to them)."""
        walks = [b.path for b in program.branches] + [b.path for b in program.exclude]
        aggregate = program.aggregate
        if aggregate is not None and aggregate.measure == "count" and aggregate.by is not None:
            walks[0] = walks[0] + (aggregate.by,)
        return walks

    def back_to_topic_kind(self, question: str, mentions: Sequence[Mention], topic: str,
                           path: Path) -> Path | None:
        """For a question that asks for others like its topic ("other films by whoever directed X", "what
        else did X's author write"), `path` walked on back along its last step when it reaches a handful of
        answers (OTHERS_OF_FEW: "what other films did X act in" asks for more of X's many films) that are not
        of the topic's kind (they lack the topic's first step: a director directs no film); else None."""
        if not OTHERS.search(mask_all(question, mentions)) or len(path) >= self.max_hops:
            return None
        answers = self.graph.expand(topic, path).answers
        if not answers or len(answers) > OTHERS_OF_FEW:
            return None
        if any(self.graph.expand(a, path[:1]).answers for a in answers):  # of the topic's kind already
            return None
        last = path[-1]
        longer = path + (last.reverse(),)
        return longer if [a for a in self.graph.expand(topic, longer).answers if a != topic] else None

    def compose(self, kind: str, question: str, mentions: Sequence[Mention], literals: Sequence[Literal],
                topic: str, paths: Sequence[Path]) -> Program:
        """The program of `kind` around the question's chain: `topic` and its ranked paths, the chosen one
        first. A filter or superlative takes the first path whose answers have a literal-valued step (the
        chain search also reads "came out in 1993" and may rank the path to the years first). The chain
        itself when the question lacks what the kind needs (a second entity, a literal, such a step)."""
        chain = Program((Branch(topic, paths[0]),))
        first = topic_mention(mentions, topic)
        others = [m for m in mentions if m.candidates and m is not first and m.candidates[0].name != topic]
        if kind == "count":  # how many of the set the rest of the question asks for (a filter, two entities)
            plain = COUNT.sub(lambda m: "which".ljust(len(m.group())), question)  # offsets kept
            inner = cue_shape(plain, mentions, literals)
            inner = inner if inner in ("conjunction", "filter") else "chain"
            asked = plain[:first.start] + "something" + plain[first.end:] if first else plain
            found = [p for p in self.search(topic, asked) if self.graph.expand(topic, p).answers]
            if found and len(found[0]) < len(paths[0]) and paths[0][:len(found[0])] == found[0]:
                paths = found  # "number of movies by X" walks on to the votes; "which movies by X" does not
            chain = Program((Branch(topic, paths[0]),))
            program = self.compose(inner, plain, mentions, literals, topic, paths) if inner != "chain" else chain
            return replace(program, aggregate=Aggregate("count"))
        if kind == "yes/no":
            return self._yes_no(question, mentions, literals, topic, paths, others) or chain
        if kind == "conjunction" and not others:
            return self._two_relations(question, mentions, topic) or chain
        if kind == "conjunction" and others and first is not None:
            other = others[0]
            between = question[self._end_of(mentions, topic):name_start(other)]
            excluded = bool(EXCEPT.search(between))
            # shorter paths first: two entities usually share direct neighbours, and a longer path to a class
            # (a genre, a year) shares answers with anything
            own = sorted(with_prefixes(self.search(topic, without_other(question, first, other))[:5] or paths[:1]), key=len)
            fallback = None
            for path in own[:1] if excluded else own:  # what is cut from is the topic's own set, not a wider one
                for branch in self._second_branches(question, other, path):
                    both = Program((Branch(topic, path), branch))
                    if self.graph.run_program(both).answers:  # an exclusion too must meet the answers it cuts
                        return Program((Branch(topic, path),), exclude=(branch,)) if excluded else both
                    if excluded and fallback is None:
                        fallback = Program((Branch(topic, path),), exclude=(branch,))
            return fallback or self._shared_steps(question, mentions, topic, other.candidates[0].name) or chain
        if kind == "superlative":
            by_count = BY_COUNT.search(mask_all(question, mentions))
            if by_count and not TIME_WORDS.search(question):
                counted = self._most_by_count(question, by_count, literals, topic, paths, mask_all(question, mentions))
                if counted is not None:
                    return counted
        if kind in ("filter", "superlative"):
            for path in with_prefixes(paths[:5]):
                answers = self.graph.expand(topic, path).answers
                steps = self._literal_steps(answers) if answers and not mostly_literals(answers) else {}
                if not steps:
                    continue
                if kind == "filter" and literals:
                    constraint = self._constraint(question, literals, steps)
                    both = self._joined_pair(question, mentions, literals, topic, paths)
                    if both is not None:  # "X and Y together after 1976": their shared answers, filtered
                        return replace(both, constraints=(constraint,))
                    return Program((Branch(topic, path),), constraints=(constraint,))
                if kind == "superlative":
                    aggregate = self._aggregate(question, literals, answers, steps, mask_all(question, mentions))
                    return Program((Branch(topic, path),), aggregate=aggregate) if aggregate else chain
        return chain

    def _joined_pair(self, question: str, mentions: Sequence[Mention], literals: Sequence[Literal], topic: str,
                     paths: Sequence[Path]) -> Program | None:
        """The conjunction of the topic and a second named entity that words join to it ("X and Y"), when
        the question has one and their branches share answers; else None."""
        first = topic_mention(mentions, topic)
        others = [m for m in mentions if m.candidates and m is not first and m.candidates[0].name != topic]
        if not others or first is None:
            return None
        a, b = sorted((first, others[0]), key=lambda m: m.start)
        if not JOINED.search(question[a.end:name_start(b)]):
            return None
        program = self.compose("conjunction", question, mentions, literals, topic, paths)
        return program if len(program.branches) >= 2 else None

    def _most_by_count(self, question: str, by_count: re.Match, literals: Sequence[Literal], topic: str,
                       paths: Sequence[Path], masked: str = "") -> Program | None:
        """"Which director of an X film is the most prolific": the path (or prefix) whose last step, walked
        forward, is named by the asked noun gives the directors, ordered by how many that step reaches back.
        "Which film has the most actors": the answers ordered by how many neighbours the step the counted
        noun names reaches. "Who in X has made the most films" names no step: the chain found walks on to
        those films, so its entities before the last step are ordered by how many the last step reaches."""
        op = "max" if by_count.group(1).lower() == "most" else "min"
        k = top_k(literals, masked)
        asked = ASKED_NOUN.search(question)
        if asked:
            role = word_stems(asked.group(1))
            for path in with_prefixes(paths[:5]):
                last = path[-1]
                if not last.inverse and relation_stems(last.relation) & role:
                    return Program((Branch(topic, path),), aggregate=Aggregate(op, Step(last.relation, True), "count", k))
        wanted = word_stems(by_count.group(2))
        for path in paths[:5]:  # the chain walks on to what is counted: its entities before that step
            if len(path) >= 2 and relation_stems(path[-1].relation) & wanted:
                return Program((Branch(topic, path[:-1]),), aggregate=Aggregate(op, path[-1], "count", k))
        for path in paths[:5]:
            step = self._count_step(self.graph.expand(topic, path).answers, by_count.group(2))
            if step is not None:
                return Program((Branch(topic, path),), aggregate=Aggregate(op, step, "count", k))
        longer = next((p for p in paths[:5] if len(p) >= 2), None)
        if longer is None:
            return None
        return Program((Branch(topic, longer[:-1]),), aggregate=Aggregate(op, longer[-1], "count", k))

    def _yes_no(self, question: str, mentions: Sequence[Mention], literals: Sequence[Literal], topic: str,
                paths: Sequence[Path], others: Sequence[Mention]) -> Program | None:
        """Is the other entity (a named one, a number, or a class the question names: "is X a comedy")
        among the answers of the topic's path: the first ranked path (or prefix) that reaches it, else the
        first that reaches things of its kind (numbers for a number)."""
        if others:  # the first path that ends on the kind of thing asked about (a director, not a language)
            asked = others[0].candidates[0].name
            back = {s.reverse() for s in self.graph.next_steps_many([asked], [()])[0]}
            typed = [p for p in with_prefixes(paths[:5]) if p[-1] in back]
            verbs = verb_stems(mask_all(question, mentions))
            named = [p for p in typed if names_steps(verbs, p)]
            path = (named or typed or [None])[0]  # "did X direct Y": the path its verb names
            if path is None:  # a step of the topic's that the asked entity has most of ("a Jun Fukuda film")
                mine = [s for s in self.graph.next_steps_many([topic], [()])[0] if s in back]
                most = max(mine, key=lambda s: (len(self.graph.neighbours(asked, s.reverse())),
                                                str(s)), default=None)
                path = (most,) if most is not None else paths[0]
            return Program((Branch(topic, path),), ask=asked)
        candidates = with_prefixes(paths[:5])
        if literals:
            value = literals[0].text
            for path in candidates:
                answers = self.graph.expand(topic, path).answers
                if any(compare_key(a) == compare_key(value) for a in answers):
                    return Program((Branch(topic, path),), ask=value)
            for path in candidates:
                answers = self.graph.expand(topic, path).answers
                if answers and mostly_literals(answers):
                    return Program((Branch(topic, path),), ask=value)
            return None
        masked = mask_all(question, mentions).casefold()
        words = re.findall(r"[a-z][a-z'-]{3,}", masked)
        steps = self.graph.next_steps_many([topic], [()])[0]
        absent = []
        for word in words:
            options = []
            for name in self.graph.find_entities(word)[:3]:
                back = {s.reverse() for s in self.graph.next_steps_many([name], [()])[0]}
                options += [(len(self.graph.neighbours(topic, s)), str(s), s, name) for s in steps if s in back]
                absent += [(-len(self.graph.neighbours(name, s.reverse())), str(s), s, name)
                           for s in back if s not in steps]
            if options:  # the step the topic has fewest values on: a genre, not one of many tags
                _, _, step, name = min(options)
                return Program((Branch(topic, (step,)),), ask=name)
        if absent:  # the topic has no such step at all ("is Wind a crime film", Wind has no genre): no
            _, _, step, name = min(absent)  # the class most things hold, by that step
            return Program((Branch(topic, (step,)),), ask=name)
        return None

    def narrow_by_class(self, program: Program, question: str, mentions: Sequence[Mention]) -> Program:
        """A chain whose question also names a class its answers fall into ("which dramas has X been in",
        "what did X direct other than comedies"): the value of a step from the answers whose name the
        question uses (also as a plural), shared by some of the answers but not all, on a step with few
        values among them (a genre or a language, not a free tag). Joined as a branch from the value, or
        subtracted after "other than", "not", "except"."""
        counted = program.aggregate is not None and program.aggregate.op == "count"
        if len(program.branches) != 1 or program.exclude or program.constraints or program.ask \
                or (program.aggregate and not counted):
            return program
        masked = mask_all(question, [m for m in mentions if exact_name(m) or m.candidates
                                     and m.candidates[0].name == program.branches[0].entity]).casefold()
        words = set(re.findall(r"[a-z][a-z'-]{2,}", masked))  # "war films" names the class War
        if not any(self.graph.find_entities(form) for form in class_forms(words) if form.isalpha()):
            return program  # no word names any entity: no class to look for among the answers' neighbours
        branch = program.branches[0]
        reached = self.graph.expand(branch.entity, branch.path).answers
        found = self._class_of(program, reached[:200], masked, words)
        if found is None and len(branch.path) >= 2:  # the chain walked on to the class ("films that aren't dramas")
            named = {v for v in (a.casefold() for a in reached) if v in words or plural(v) in words}
            if named:  # only a class the chain's own answers hold
                shorter = Program((Branch(branch.entity, branch.path[:-1]),), aggregate=program.aggregate)
                answers = self.graph.expand(branch.entity, branch.path[:-1]).answers[:200]
                found = self._class_of(shorter, answers, masked, words, named)
        return found or program

    def _class_of(self, program: Program, answers: list[str], masked: str, words: set[str],
                  only: set[str] | None = None) -> Program | None:
        """The class (a value of a step from `answers`, those of the program's one branch) the question
        names; `only`: among these (case-folded)."""
        if len(answers) < 2:
            return None
        steps = self.steps_from(answers)
        for step in steps:
            values = self.graph.neighbours_many(answers, step)
            distinct = {v for vs in values for v in vs}
            if not distinct or len(distinct) > CLASS_VALUES:
                continue
            for value in sorted(distinct):
                folded = value.casefold()
                if not (folded in words or plural(folded) in words) or not folded.isalpha() \
                        or (only is not None and folded not in only):
                    continue
                holders = sum(1 for vs in values if value in vs)
                if holders == len(answers):
                    continue
                where = masked.find(folded)
                joined = Branch(value, (step.reverse(),))
                if EXCEPT.search(masked[max(0, where - 20):where]):
                    return Program(program.branches, exclude=(joined,), aggregate=program.aggregate)
                return Program(program.branches + (joined,), aggregate=program.aggregate)
        return None

    def _two_relations(self, question: str, mentions: Sequence[Mention], topic: str) -> Program | None:
        """One entity, two of its relations named on either side of a joining word: both ("written and
        directed by X"), or the first without the second ("what did X write without directing")."""
        masked = mask_all(question, mentions)
        steps = self.graph.next_steps_many([topic], [()])[0]
        words = [(m.start(), m.end(), loose_stem(m.group())) for m in re.finditer(r"[a-zA-Z']{3,}", masked)]
        named: list[tuple[int, int, Step]] = []
        for step in steps:
            stems = {loose_stem(w) for w in relation_words(step.relation).split() if len(w) >= 3}
            at = next(((start, end) for start, end, stem in words if stem in stems), None)
            if at is not None:
                named.append((*at, step))
        named.sort(key=lambda x: (x[0], str(x[2])))
        if len(named) < 2 or named[0][0] == named[1][0]:
            return None
        (_, first_end, first), (second_at, _, second) = named[:2]
        between = masked[first_end:second_at]
        words = len(between.split())  # side by side: "written and directed", "write without directing";
        if words > 6 or (words > 3 and not EXCEPT.search(between)):  # "written by X that someone else directed"
            return None
        if EXCEPT.search(between):
            program = Program((Branch(topic, (first,)),), exclude=(Branch(topic, (second,)),))
        elif JOINED.search(between):
            program = Program((Branch(topic, (first,)), Branch(topic, (second,))))
        else:
            return None
        return program if self.graph.run_program(program).answers else None

    @staticmethod
    def _end_of(mentions: Sequence[Mention], topic: str) -> int:
        first = topic_mention(mentions, topic)
        return first.end if first else 0

    def _second_branches(self, question: str, mention: Mention, path: Path) -> list[Branch]:
        """The other entity's branches, preferred first: along the topic's path when it reaches anything
        from there, then the other entity's own best paths for the question, then each step it has."""
        name = mention.candidates[0].name
        out = []
        if path and path[0] in self.graph.next_steps_many([name], [()])[0] and self.graph.expand(name, path).evidence:
            out.append(Branch(name, path))
        own = sorted(self.search(name, question[:mention.start] + "something" + question[mention.end:])[:3], key=len)
        steps = [(s,) for s in self.steps_from([name])]  # last: any one step that meets the topic's answers
        words = verb_stems(question)
        ranked = sorted(dict.fromkeys(own + steps), key=lambda p: (-min(names_steps(words, p), 1), len(p)))  # named, short
        return out + [Branch(name, p) for p in ranked if p != path]

    def _shared_steps(self, question: str, mentions: Sequence[Mention], topic: str, other: str) -> Program | None:
        """Two entities with one step each that meet ("what has X made with director Y": X starred, Y
        directed), when no ranked path of the topic's does: of the pairs of steps whose answers meet, the one
        whose relation words the question names most, then the fewer shared answers."""
        words = verb_stems(mask_all(question, mentions))
        mine, theirs = self.steps_from([topic]), self.steps_from([other])
        reached_mine = {step: self.graph.neighbours(topic, step) for step in mine}
        options = []
        for step in theirs:
            reached = set(self.graph.neighbours(other, step))
            for own_step, answers in reached_mine.items():
                shared = reached & set(answers)
                if shared:
                    options.append((-names_steps(words, (own_step, step)), len(shared), str(own_step), str(step),
                                    own_step, step))
        if not options:
            return None
        *_, own_step, step = min(options)
        return Program((Branch(topic, (own_step,)), Branch(other, (step,))))

    def steps_from(self, entities: list[str]) -> list[Step]:
        """Every step walkable from any of the entities, sorted by text."""
        found = self.graph.next_steps_many(entities, [()] * len(entities))
        return sorted({s for steps in found for s in steps}, key=str)

    def _literal_steps(self, answers: list[str]) -> dict[Step, dict[str, list[str]]]:
        """The steps from the answers whose far ends are all literals (numbers), with those ends. A step
        seen once reaching something else is not looked at again (`_not_literal`), and the first
        LITERAL_PROBE answers are looked at before the rest: most steps reach entities."""
        if not answers:
            return {}
        sample = answers[:200]
        out: dict[Step, dict[str, list[str]]] = {}
        for step in self.steps_from(sample):
            if step in self._not_literal:
                continue
            values = self.graph.neighbours_many(sample[:LITERAL_PROBE], step)
            if all(is_literal(v) for vs in values for v in vs):
                values += self.graph.neighbours_many(sample[LITERAL_PROBE:], step)
            flat = [v for vs in values for v in vs]
            if flat and all(is_literal(v) for v in flat):
                out[step] = dict(zip(sample, values))
            elif flat:
                self._not_literal.add(step)
        return out

    def _constraint(self, question: str, literals: Sequence[Literal], steps: dict[Step, dict[str, list[str]]]
                    ) -> Constraint:
        """The comparison the words before the first literal ask for, on the step whose values look most
        like it (the same value, then the same magnitude and kind of number)."""
        value = literals[0]
        before = question[:value.start][-25:]
        low, upper = value.text, None
        if len(literals) >= 2 and BETWEEN.search(question[:literals[1].start]):
            low, upper = sorted((literals[0].text, literals[1].text), key=compare_key)
            op = "between"
        elif BEFORE.search(before):
            op = "lt"
        elif AFTER.search(before):
            op = "gt"
        else:
            op = "eq"
        target = compare_key(value.text)

        def fits(step: Step) -> tuple[int, int, str]:
            values = [compare_key(v) for vs in steps[step].values() for v in vs]
            alike = sum(1 for v in values if (v[1] >= 1000) == (target[1] >= 1000)
                        and float(v[1]).is_integer() == float(target[1]).is_integer())
            return (sum(1 for v in values if v == target) if op == "eq" else 0, alike, str(step))

        return Constraint(max(steps, key=fits), op, low, upper)

    def _aggregate(self, question: str, literals: Sequence[Literal], answers: list[str],
                   steps: dict[Step, dict[str, list[str]]], masked: str = "") -> Aggregate | None:
        """min or max (by the words) over the literal step that fits the words: a step of years for time
        words, else the one most answers have."""
        largest = bool(LARGEST.search(question)) and not SMALLEST.search(question)
        k = top_k(literals, masked)
        wants_time = bool(TIME_WORDS.search(question))

        def fits(step: Step) -> tuple[bool, int, str]:
            values = [compare_key(v)[1] for vs in steps[step].values() for v in vs]
            yearly = sum(1 for v in values if float(v).is_integer() and 1000 <= v <= 2100)
            return ((yearly * 2 >= len(values)) == wants_time, sum(1 for vs in steps[step].values() if vs), str(step))

        return Aggregate("max" if largest else "min", max(steps, key=fits), "value", k)

    def _count_step(self, answers: list[str], noun: str) -> Step | None:
        """The step from the answers whose relation words share the most with `noun` ("most actors")."""
        if not answers:
            return None
        wanted = word_stems(noun)
        steps = self.steps_from(answers[:200])
        named = [s for s in steps if relation_stems(s.relation) & wanted]
        return named[0] if named else None
