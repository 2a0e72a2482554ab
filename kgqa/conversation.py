"""Conversation state: follow-up questions resolved against earlier turns, by rules backed by the linker.

A conversation keeps the turns since the last new topic: what each asked about (its topics) and what it
answered. A new question is read for references to them, with nothing known of the graph's entity types:

- pronouns (he, she, it, they, them, his, her, its, their) and references ("that film", "this one",
  "the first one", "those") stand for an earlier turn's topic or answers. Which one is a rule of English
  (after a "who" question, "he" is the answer and "it" the topic; after any other, the other way round),
  checked against the graph: the first reading that the agent can answer is kept; the others are shown;
- ellipsis: "and the writer?" asks the same topic a new relation ("the writer of Kismet");
  "what about Tom Hanks?" asks the previous question about a new entity;
- "his films" where "he" is an earlier answer: what the earlier path reaches walked back from him (the
  films he directed, after "who directed Narc"), each asked about;
- "other", "else", "another": what earlier turns asked about or answered is excluded from the answers;
- "of them", "which of those", "among them": the answers are restricted to the previous turn's answers
  (an intersection: the earlier answers walked back along the best-ranked path that reaches any of them).

With an LLM configured, a follow-up that no rule reading answers is rewritten by the LLM to stand on its
own, and asked only when the rewrite names an entity of the conversation (`accept_rewrite`).

A question that names an entity the linker finds, with none of these, is a new topic and starts afresh.
Every resolution is explicit: `Resolution.text` is the resolved question shown to the user ("what films
did Frank Darabont direct, other than The Shawshank Redemption"). Exclusion and restriction are set
operations on the agent's Result; the answers kept keep their evidence (a restricted answer also keeps
the evidence that made it an answer of the earlier turn).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from kgqa.agent import write_reply
from kgqa.llm.tasks import Rewrite
from kgqa.questions import check_question
from kgqa.types import Answer, Mention, Result, format_path, parse_path

PERSONAL = {"he", "him", "his", "she", "her", "hers"}
NEUTER = {"it", "its"}
PLURAL = {"they", "them", "their", "theirs"}
POSSESSIVE = {"his", "its", "their", "theirs", "hers"}
ORDINALS = {"first": 0, "second": 1, "third": 2, "fourth": 3, "fifth": 4, "last": -1}
FUNCTION_WORDS = {
    "is", "was", "are", "were", "be", "been", "has", "have", "had", "does", "did", "do", "can", "could", "will",
    "would", "who", "whom", "whose", "what", "which", "when", "where", "why", "how", "he", "she", "it", "they",
    "them", "his", "her", "its", "their", "of", "in", "on", "at", "by", "for", "with", "to", "from", "and", "or",
    "a", "an", "the", "also", "about", "as", "than", "that", "this", "those", "these", "there", "then", "star",
    "stars", "act", "acts", "write", "writes", "direct", "directs", "make", "makes", "come", "came", "release",
}
FILLER = {"the", "a", "an", "then", "instead", "one", "please", "for", "of"}
MAX_MEMBERS = 100
"""A reference to a set asks about at most this many of its members."""
CONTEXT_TURNS = 3
"""Earlier turns whose topics a pronoun may refer to."""

_WORD = re.compile(r"[A-Za-z]+(?:'s)?|\d+")
_LEAD = re.compile(r"^\s*(?:(?:and|also|so|ok|okay|then)\s*,?\s+)?(?:(?:what|how)\s+about|and)\b[\s,]*", re.I)
_RESTRICT = re.compile(r"\b(?:of|among|amongst)\s+(?:them|those|these)\b", re.I)
_EXCLUDE = re.compile(r"\b(?:other|else|another)\b", re.I)
_ORDINAL = re.compile(r"\bthe\s+(first|second|third|fourth|fifth|last)\b(?:\s+(?:one|of\s+(?:them|those|these)|"
                      r"(?!of\b)[a-z]+))?", re.I)
_DEMONSTRATIVE = re.compile(r"\b(that|this|the\s+same)\s+([a-z]+)\b|\b(that|this)\s*[?.!]*\s*$", re.I)
_PLURAL_DEMONSTRATIVE = re.compile(r"\b(those|these)\b(?:\s+([a-z]+)\b)?", re.I)
_WHO = re.compile(r"\b(?:who|whom|whose)\b|\b\w+(?:er|or|ist|ess)s?\b(?!\s+(?:than|of))", re.I)
_WH = re.compile(r"^(?:who|whom|whose|what|which|when|where|how)\b", re.I)


class Answerer(Protocol):
    """What a conversation needs of the agent: its linker and answer_batch."""

    linker: Any

    def answer_batch(self, questions: list[str], topics: list[str | None] | None = None) -> list[Result]: ...


# ---- what a question refers to -------------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """A span of the question that stands for something said before."""

    start: int
    end: int
    kind: str  # "personal", "neuter", "plural" or "ordinal"
    possessive: bool = False
    index: int | None = None  # for "the first one": which earlier answer


def _is_name(text: str, start: int) -> bool:
    """A capitalised word inside a sentence is a name ("which words describe Her"), not a pronoun."""
    return start > 0 and text[start].isupper()


def find_references(question: str) -> list[Reference]:
    """The pronouns and references of a question, left to right (spans do not overlap)."""
    found: list[Reference] = []
    taken: list[tuple[int, int]] = [m.span() for m in _RESTRICT.finditer(question)]

    def free(start: int, end: int) -> bool:
        return all(end <= s or start >= e for s, e in taken)

    def add(ref: Reference) -> None:
        if free(ref.start, ref.end) and not _is_name(question, ref.start):
            found.append(ref)
            taken.append((ref.start, ref.end))

    for m in _ORDINAL.finditer(question):
        add(Reference(m.start(), m.end(), "ordinal", index=ORDINALS[m.group(1).lower()]))
    for m in _DEMONSTRATIVE.finditer(question):
        noun = (m.group(2) or "").lower()
        if m.group(2) and (noun in FUNCTION_WORDS or noun.endswith(("ed", "ing"))):
            continue  # "the films that starred ...", "that is": not a reference
        add(Reference(m.start(), m.end(), "neuter"))
    for m in _PLURAL_DEMONSTRATIVE.finditer(question):
        noun = (m.group(2) or "").lower()
        end = m.end() if m.group(2) and noun not in FUNCTION_WORDS and not noun.endswith("ed") else m.end(1)
        add(Reference(m.start(), end, "plural"))
    for m in _WORD.finditer(question):
        word = m.group().lower()
        if word in PERSONAL or word in NEUTER or word in PLURAL:
            kind = "personal" if word in PERSONAL else "neuter" if word in NEUTER else "plural"
            possessive = word in POSSESSIVE or (word == "her" and _followed_by_noun(question, m.end()))
            add(Reference(m.start(), m.end(), kind, possessive))
    return sorted(found, key=lambda r: r.start)


def _followed_by_noun(text: str, end: int) -> bool:
    """'her films' (possessive) rather than 'directed her' or 'her in'."""
    after = _WORD.match(text[end:].lstrip())
    return bool(after) and text[end:end + 1] == " " and after.group().lower() not in FUNCTION_WORDS


# ---- turns and resolutions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Referent:
    """What a reference is taken to mean: entities of an earlier turn (its topic, or some of its answers)."""

    entities: tuple[str, ...]
    turn: int
    role: str  # "topic" or "answers"


@dataclass
class Resolution:
    """How a question was read: the resolved text shown to the user, and what the agent is asked."""

    question: str
    text: str
    asks: list[tuple[str, str | None]]
    rules: tuple[str, ...] = ()
    referent: Referent | None = None
    from_turn: int | None = None
    exclude: frozenset[str] = frozenset()
    restrict: tuple[str, ...] | None = None
    restrict_turn: int | None = None
    alternatives: list[dict[str, Any]] = field(default_factory=list)
    rewrite: dict[str, Any] | None = None
    """With an LLM, when no rule reading answered: what it wrote, and whether that was kept or why not."""

    @property
    def resolved(self) -> bool:
        return bool(self.rules) and self.rules != ("new topic",)


@dataclass
class Turn:
    """One question of a conversation, how it was resolved, and the agent's (filtered) result."""

    number: int
    question: str
    resolution: Resolution
    result: Result

    @property
    def topics(self) -> tuple[str, ...]:
        topics = [t for _, t in self.resolution.asks if t]
        if topics:
            return tuple(dict.fromkeys(topics))
        return (self.result.entity,) if self.result.entity else ()

    @property
    def answers(self) -> list[str]:
        return self.result.answer_names

    @property
    def asked_who(self) -> bool:
        """Whether the answers are people: the question asks "who", or an ellipsis of one asks for a "writer"."""
        res = self.resolution
        if "ellipsis" in res.rules and res.referent and res.referent.role == "topic":
            return bool(_WHO.search(res.question))
        return bool(re.search(r"\b(?:who|whom|whose)\b", res.text, re.I))

    def record(self) -> dict[str, Any]:
        """The `ask --json` record, plus the turn number, the resolved question and what it was resolved from."""
        data = self.result.to_dict()
        data["question"] = self.question
        data["turn"] = self.number
        data["resolved_question"] = self.resolution.text
        res = self.resolution
        data["resolved_from"] = None if not res.resolved else {
            "turn": res.from_turn, "rules": list(res.rules),
            "entities": list(res.referent.entities) if res.referent else [],
            "role": res.referent.role if res.referent else None,
            "excluded": sorted(res.exclude),
            "restricted_to": None if res.restrict is None else {"turn": res.restrict_turn, "answers": list(res.restrict)},
            "alternatives": res.alternatives}
        if res.rewrite is not None:
            data["llm_rewrite"] = res.rewrite
        return data


def names_list(names: list[str] | tuple[str, ...], limit: int = 3) -> str:
    """'A', 'A and B', 'A, B, C and 4 more'."""
    names = list(names)
    if len(names) <= 1:
        return "".join(names)
    if len(names) <= limit:
        return ", ".join(names[:-1]) + " and " + names[-1]
    return ", ".join(names[:limit]) + f" and {len(names) - limit} more"


def _substitute(text: str, spans: list[tuple[int, int, str]]) -> str:
    for start, end, new in sorted(spans, reverse=True):
        text = text[:start] + new + text[end:]
    return _tidy(text)


def _tidy(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+([?.!,])", r"\1", text)
    return text.rstrip(" ,")


def _possessive(name: str) -> str:
    return name + "'s"


class Resolver:
    """Reads a question against the conversation so far; the linker says whether it names an entity."""

    def __init__(self, linker: Any, find_entities: Any = None, walk: Any = None, topic_as_answer: bool = True) -> None:
        """find_entities: the graph's exact name lookup, tried on a number or capitalised word the linker missed;
        walk: the graph's expand_many, for "his films" (what an earlier path reaches back from him);
        topic_as_answer: the graph's setting (false: "who starred in his films" never answers him)."""
        self.linker = linker
        self.find_entities = find_entities
        self.walk = walk
        self.topic_as_answer = topic_as_answer

    def options(self, question: str, context: list[Turn]) -> list[Resolution]:
        """The readings of the question, preferred first (one, unless a reference is ambiguous)."""
        if not context:
            return [Resolution(question, question, [(question, None)])]
        last = context[-1]
        lead = _LEAD.match(question)
        body = question[lead.end():] if lead and lead.end() < len(question) else question
        offset = len(question) - len(body)
        whole, bare = self.linker.link_batch([question, body])
        mentions = whole or [replace(m, start=m.start + offset, end=m.end + offset) for m in bare]
        refs = find_references(body)
        mentions = [m for m in mentions if m.start >= offset and
                    all(m.end - offset <= r.start or m.start - offset >= r.end for r in refs)]
        restrict = bool(_RESTRICT.search(body))
        exclude = bool(_EXCLUDE.search(body))
        rules: list[str] = []
        if lead and not refs and not restrict and not exclude:
            swapped = self._swap(body, mentions, offset, last)
            if swapped is not None:
                return [swapped]
            if not mentions:
                return [self._relation_ellipsis(question, body, last)]
        if not refs and not restrict and not exclude:
            return [Resolution(question, question, [(question, None)], ("new topic",) if mentions else ())]
        # a follow-up: markers first, then each reading of the references
        text = body
        marks: list[tuple[int, int, str]] = []
        if restrict:
            rules.append("of them")
            marks += [(m.start(), m.end(), "") for m in _RESTRICT.finditer(text)]
        if exclude:
            rules.append("other")
            marks += [(m.start(), m.end(), "a" if m.group().lower() == "another" else "") for m in _EXCLUDE.finditer(text)]
        restrict_to = tuple(last.answers) if restrict else None
        if not refs:  # the entity the linker found in the question as typed is the topic ("of them" removed)
            sent = _substitute(text, marks)
            found = mentions or self.linker.link_batch([sent])[0]
            topic = found[0].candidates[0].name if found and found[0].candidates else self._exact_name(sent)
            return [self._finish(question, sent, [(sent, topic)], rules, None, last, restrict_to, mentions, context)]
        rules.append("reference" if refs[0].kind == "ordinal" or " " in body[refs[0].start:refs[0].end] else "pronoun")
        readings = []
        noun = _WORD.findall(body[refs[0].start:refs[0].end])[-1] if refs[0].kind == "neuter" else ""
        for referent in referents(refs[0], context, noun if " " in body[refs[0].start:refs[0].end] else ""):
            owned = self._owned(body, refs, referent, context)
            if owned is not None:  # "his films": the films he directed, each asked about
                end, things = owned
                asks = [(_substitute(text, marks + [(refs[0].start, end, name)]), name) for name in things]
                shown = _substitute(text, marks + [(refs[0].start, end, names_list(things))])
                shown += f" ({_possessive(names_list(referent.entities))} {body[refs[0].end:end].strip()})"
                reading = self._finish(question, shown, asks, rules + ["possessive set"], referent, last,
                                       restrict_to, mentions, context)
                if not self.topic_as_answer:  # the graph's convention: he is this question's topic
                    reading.exclude |= frozenset(referent.entities)
                readings.append(reading)
            members = referent.entities[:MAX_MEMBERS]
            asks = [(_substitute(text, marks + self._fill(refs, body, name)), name) for name in members]
            shown = _substitute(text, marks + self._fill(refs, body, names_list(members)))
            readings.append(self._finish(question, shown, asks, rules, referent, last, restrict_to, mentions, context))
        if not readings:  # nothing earlier to refer to: as written
            return [Resolution(question, question, [(question, None)])]
        return readings

    def _owned(self, body: str, refs: list[Reference], referent: Referent, context: list[Turn]
               ) -> tuple[int, list[str]] | None:
        """'his films' where "he" is an earlier answer: what the earlier path reaches walked back from him
        (after "who directed Kismet", the films he directed), and where the noun ends. None otherwise."""
        ref = refs[0]
        after = re.match(r"\s+[a-z]+s\b", body[ref.end:])
        if self.walk is None or len(refs) > 1 or not ref.possessive or not after or referent.role != "answers":
            return None
        turn = next((t for t in context if t.number == referent.turn), None)
        path = turn.result.path if turn else None
        if not path or " & " in path:
            return None
        back = parse_path(reversed_path(path))
        things = sorted({name for e in self.walk(list(referent.entities[:MAX_MEMBERS]), back) for name in e.evidence})
        return (ref.end + after.end(), things[:MAX_MEMBERS]) if things else None

    def _exact_name(self, text: str) -> str | None:
        """A number or a capitalised word of the question that is exactly a name in the graph."""
        if self.find_entities is None:
            return None
        for m in _WORD.finditer(text):
            word = m.group()
            if (word.isdigit() or (m.start() > 0 and word[0].isupper())) and word.lower() not in FUNCTION_WORDS:
                names = self.find_entities(word)
                if word in names:
                    return word
        return None

    @staticmethod
    def _fill(refs: list[Reference], body: str, name: str) -> list[tuple[int, int, str]]:
        spans = []
        for r in refs:
            if r.kind == "ordinal" and re.search(r"\bof\s+(them|those|these)$", body[r.start:r.end], re.I):
                spans.append((r.start, r.end, name))
            else:
                spans.append((r.start, r.end, _possessive(name) if r.possessive else name))
        return spans

    def _finish(self, question: str, shown: str, asks: list[tuple[str, str | None]], rules: list[str],
                referent: Referent | None, last: Turn, restrict_to: tuple[str, ...] | None,
                mentions: list[Mention], context: list[Turn]) -> Resolution:
        named = {c.name for m in mentions for c in m.candidates[:1]}
        excluded: frozenset[str] = frozenset()
        if "other" in rules:
            said = set(last.topics) | set(last.answers)
            excluded = frozenset(said - set(referent.entities if referent else ()) - named)
            if excluded:
                shown += f", other than {names_list(sorted(excluded))}"
        if restrict_to is not None:
            shown += f", among the answers of turn {last.number}"
        return Resolution(question, shown, asks, tuple(rules), referent,
                          referent.turn if referent else last.number, excluded, restrict_to,
                          last.number if restrict_to is not None else None)

    def _swap(self, body: str, mentions: list[Mention], offset: int, last: Turn) -> Resolution | None:
        """'what about Tom Hanks?': the previous question about the new entity."""
        if not mentions:
            return None
        m = mentions[0]
        rest = body[:m.start - offset] + " " + body[m.end - offset:]
        if any(w.lower() not in FILLER for w in _WORD.findall(rest)):
            return None
        template, old = last.resolution.asks[0][0], last.resolution.asks[0][1] or last.result.mention
        if not old or old.lower() not in template.lower():
            return None
        at = template.lower().index(old.lower())
        new = m.text.rstrip("?.!, ")
        sent = template[:at] + new + template[at + len(old):]
        shown = sent
        res = last.resolution
        if res.restrict is not None:
            shown += f", among the answers of turn {res.restrict_turn}"
        return Resolution(body, shown, [(sent, None)], ("ellipsis",) + (("of them",) if res.restrict is not None else ()),
                          Referent((m.candidates[0].name,), last.number, "new entity"), last.number,
                          restrict=res.restrict, restrict_turn=res.restrict_turn)

    def _relation_ellipsis(self, question: str, body: str, last: Turn) -> Resolution:
        """'and the writer?': the same topic, a new relation (after "which of them ...", what it kept)."""
        words = _tidy(body).rstrip("?.! ")
        narrowed = last.resolution.restrict is not None and last.answers  # "which of them ...": those it kept
        topics = tuple(last.answers[:MAX_MEMBERS]) if narrowed else last.topics[:MAX_MEMBERS]
        if not topics or not words:
            return Resolution(question, question, [(question, None)])
        joiner = " " if _WH.match(words) else " of "
        asks = [(f"{words}{joiner}{t}", t) for t in topics]
        return Resolution(question, f"{words}{joiner}{names_list(topics)}", asks, ("ellipsis",),
                          Referent(tuple(topics), last.number, "answers" if narrowed else "topic"), last.number)


def referents(ref: Reference, context: list[Turn], noun: str = "") -> list[Referent]:
    """What a reference may stand for, preferred first.

    - "the first one": that answer of the last turn; "they", "them", "those": its answers, else its topic;
    - "he", "she", "his": after a "who" question its answers (people), else its topic;
    - "it", "that film": its topic, unless the last turn narrowed earlier answers ("which of them ...") or
      the noun names the relation the answers came by ("that year" after a release year): then its answers.
    Earlier turns' topics and single answers follow, most recent first.
    """
    last = context[-1]
    if ref.kind == "ordinal":
        answers = last.answers
        if ref.index is not None and -len(answers) <= ref.index < len(answers):
            return [Referent((answers[ref.index],), last.number, "answers")]
        return []
    options: list[Referent] = []
    for turn in reversed(context[-CONTEXT_TURNS:]):
        topic = [Referent(turn.topics, turn.number, "topic")] if turn.topics else []
        answers = [Referent(tuple(turn.answers[:MAX_MEMBERS]), turn.number, "answers")] if turn.answers else []
        single = answers if len(turn.answers) == 1 else []
        if turn is not last:
            options += topic + single
        elif ref.kind == "plural":
            options += answers + topic
        elif ref.kind == "personal":
            options += answers + topic if turn.asked_who else topic + single
        elif turn.resolution.restrict is not None or _names_relation(noun, turn.result.path):
            options += answers + topic
        else:
            options += topic + single
    seen, kept = set(), []
    for option in options:
        if option.entities not in seen:
            seen.add(option.entities)
            kept.append(option)
    return kept


def _names_relation(noun: str, path: str | None) -> bool:
    """'year' in 'release year', 'director' ~ 'directed by': the noun names a relation of the path."""
    if len(noun) < 3 or not path:
        return False
    from kgqa.retrieval.paths import relation_words

    stem = noun.lower()[:max(4, len(noun) - 3)]
    return any(w.startswith(stem) or stem.startswith(w) and len(w) >= 4
               for step in parse_path(path) for w in relation_words(step.relation).split())


def accept_rewrite(text: str, question: str, context: list[Turn], linker: Any) -> tuple[str, int, str] | None:
    """Whether an LLM's rewrite of a follow-up may be asked: it changes the question, leaves no reference,
    is not much longer, and the linker finds in it an entity of the conversation (a topic or an answer of
    an earlier turn, the latest first). Returns that entity, its turn and role."""
    if not text or text.casefold() == question.casefold() or find_references(text) or len(text) > 3 * len(question) + 80:
        return None
    known: dict[str, tuple[int, str]] = {}
    for t in reversed(context):
        for name in t.answers[:MAX_MEMBERS]:
            known.setdefault(name, (t.number, "answers"))
        for name in t.topics:
            known.setdefault(name, (t.number, "topic"))
    for mention in linker.link_batch([text])[0]:
        name = mention.candidates[0].name if mention.candidates else None
        if name in known:
            return (name,) + known[name]
    return None


# ---- set operations on a Result ------------------------------------------------------------------------


def merge_results(question: str, results: list[Result]) -> Result:
    """One Result for a question asked of several entities: the union of their answers, evidence kept."""
    if len(results) == 1:
        return results[0]
    merged: dict[str, Answer] = {}
    for result in results:
        for a in result.answers:
            if a.name not in merged or a.score > merged[a.name].score:
                merged[a.name] = a
    first = next((r for r in results if r.answers), results[0])
    paths = Counter(r.path for r in results if r.path)
    out = replace(first, question=question, answers=sorted(merged.values(), key=lambda a: (-a.score, a.name)),
                  path=paths.most_common(1)[0][0] if paths else None,
                  timings={k: sum(r.timings.get(k, 0.0) for r in results) for k in first.timings},
                  llm_calls=sum(r.llm_calls for r in results), prompt_tokens=sum(r.prompt_tokens for r in results),
                  completion_tokens=sum(r.completion_tokens for r in results),
                  capped=any(r.capped for r in results), reached=sum(r.reached for r in results))
    return out


RESTRICT_CANDIDATES = 10
"""How many of the agent's ranked (topic, path) candidates a "which of them" turn may fall back on."""


def restrict_answers(result: Result, earlier: Turn, graph: Any = None) -> Result:
    """Only the answers that were answers of `earlier`, each with both turns' evidence.

    "Which of them came out in 2012" is an intersection with the earlier answers. With the graph, each
    candidate (topic, path) the agent ranked is tried best first, and the earlier answers are walked back
    along it to its topic (a few entities, so a hub's capped walk loses nothing): the first candidate that
    keeps any of them wins. "2012" the film reaches no tag of these films; "2012" the year does.
    """
    before = {a.name: a for a in earlier.result.answers}
    if graph is not None and before and result.path and " & " not in result.path:
        ranked = sorted(result.path_candidates, key=lambda c: -c.get("rerank", c.get("score", 0.0)))
        options = [(result.entity, result.path)] + [(c.get("topic") or result.entity, c["path"]) for c in ranked]
        for topic, path in list(dict.fromkeys(options))[:RESTRICT_CANDIDATES + 1]:
            kept = _walk_back(list(before), topic, path, graph)
            if kept:
                answers = [Answer(name, 1.0, topic, path, chain + [t for t in before[name].evidence if t not in chain])
                           for name, chain in kept.items()]
                return replace(result, entity=topic, path=path, answers=answers, kind="chain",
                               program={"branches": [{"entity": topic, "path": path}]})
        return replace(result, answers=[])
    kept = []
    for a in result.answers:
        if a.name in before:
            extra = [t for t in before[a.name].evidence if t not in a.evidence]
            kept.append(replace(a, evidence=a.evidence + extra))
    return replace(result, answers=kept)


def _walk_back(names: list[str], topic: str | None, path: str, graph: Any) -> dict[str, list[list[str]]]:
    """Which of `names` reach `topic` along the reversed `path`, with the triples that show it."""
    if not topic:
        return {}
    back = parse_path(reversed_path(path))
    return {e.topic: [t.as_list() for t in e.evidence[topic]]
            for e in graph.expand_many(names, back) if topic in e.evidence}


def exclude_answers(result: Result, names: frozenset[str]) -> Result:
    return replace(result, answers=[a for a in result.answers if a.name not in names])


def reversed_path(path: str) -> str:
    """The walk back: `a|b_inv` -> `b|a_inv`."""
    return format_path(tuple(s.reverse() for s in reversed(parse_path(path))))


# ---- the conversation -------------------------------------------------------------------------------------


class Conversation:
    """Questions answered in context: each follow-up is resolved, shown, answered and filtered."""

    def __init__(self, agent: Answerer) -> None:
        self.agent = agent
        graph = getattr(agent, "graph", None)
        self.resolver = Resolver(agent.linker, graph.find_entities if graph is not None else None,
                                 graph.expand_many if graph is not None else None,
                                 getattr(graph, "topic_as_answer", True))
        self.rewriter = getattr(agent, "rewriter", None)  # with an LLM: follow-ups no rule can read
        self.turns: list[Turn] = []
        self.context: list[Turn] = []
        self._number = 0

    def reset(self) -> None:
        """Forget the conversation: the next question is read on its own."""
        self.turns.clear()
        self.context.clear()
        self._number = 0

    def ask(self, question: str) -> Turn:
        """Resolve, answer and remember one question (`InputError` for an empty one)."""
        question = question.strip()
        check_question(question)
        readings = self.resolver.options(question, self.context)
        asks = [a for r in readings for a in r.asks]
        answered = iter(self.agent.answer_batch([q for q, _ in asks], [t for _, t in asks]))
        results = [merge_results(r.text, [next(answered) for _ in r.asks]) for r in readings]
        pick = next((i for i, res in enumerate(results) if res.answers), None)
        rewrite = None
        if pick is None and self.context and self.rewriter is not None:  # no rule reading answers: ask the LLM
            rewrite, rewritten = self._rewritten(question)
            if rewritten is not None:
                readings.append(rewritten[0])
                results.append(rewritten[1])
                pick = len(readings) - 1 if rewritten[1].answers else None
        pick = pick or 0
        resolution, result = readings[pick], results[pick]
        if rewrite is not None:
            resolution.rewrite = {"text": rewrite.text, "kept": "llm rewrite" in resolution.rules,
                                  "reason": rewrite.reason}
            if "llm rewrite" not in resolution.rules:  # the call was made all the same
                result.llm_calls += rewrite.calls
                result.prompt_tokens += rewrite.prompt_tokens
                result.completion_tokens += rewrite.completion_tokens
        resolution.alternatives = [{"entities": list(r.referent.entities) if r.referent else [],
                                    "role": r.referent.role if r.referent else None,
                                    "turn": r.from_turn, "answers": len(res.answers)}
                                   for i, (r, res) in enumerate(zip(readings, results)) if i != pick]
        result = self._apply(resolution, result)
        self._number += 1
        turn = Turn(self._number, question, resolution, result)
        self.turns.append(turn)
        if resolution.resolved:
            self.context = (self.context + [turn])[-CONTEXT_TURNS:]
        else:
            self.context = [turn]  # a new topic (or a question on its own) starts afresh
        return turn

    def _rewritten(self, question: str) -> tuple[Rewrite, tuple[Resolution, Result] | None]:
        """The LLM's standalone wording of a follow-up, answered like any question when `accept_rewrite`
        keeps it (then the call's cost is on its Result)."""
        done = self.rewriter.rewrite(question, [(t.resolution.text, t.answers) for t in self.context])
        text = " ".join(done.text.split())
        accepted = accept_rewrite(text, question, self.context, self.resolver.linker)
        if accepted is None:
            if text and not done.reason:
                done.reason = "it names no entity of the conversation, or leaves a reference"
            return done, None
        name, number, role = accepted
        resolution = Resolution(question, text, [(text, name)], ("llm rewrite",), Referent((name,), number, role), number)
        result = self.agent.answer_batch([text], [name])[0]
        result.llm_calls += done.calls
        result.prompt_tokens += done.prompt_tokens
        result.completion_tokens += done.completion_tokens
        if not result.answers:
            done.reason = "the graph answers nothing to it"
        return done, (resolution, result)

    def _apply(self, res: Resolution, result: Result) -> Result:
        before = len(result.answers)
        if res.restrict is not None:
            earlier = next(t for t in self.turns if t.number == res.restrict_turn)
            result = restrict_answers(result, earlier, getattr(self.agent, "graph", None))
        if res.exclude:
            result = exclude_answers(result, res.exclude)
        topics = tuple(dict.fromkeys(t for _, t in res.asks if t))
        labelled = replace(result, entity=names_list(topics)) if len(topics) > 1 else result
        reply = write_reply(labelled)
        if before and not result.answers:
            what = "among the earlier answers" if res.restrict is not None else "once the excluded ones are left out"
            reply = f"The graph answers {before:,}, but none is left {what}."
        return replace(result, question=res.text, reply=reply)
