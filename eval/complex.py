"""The complex-question test set over the bundled movie graph: every program kind, worded by hand.

    .venv/bin/python eval/complex.py                  # (re)writes eval/data/complex/test.jsonl, deterministic
    .venv/bin/python eval/complex.py check            # gold programs on the embedded store, and on Neo4j
                                                      #   when KGQA_TEST_NEO4J names a server holding MetaQA
    .venv/bin/python eval/complex.py --seed 1212 --out eval/data/complex/dev.jsonl
                                                      # a development set (another sample, same wordings):
                                                      #   the one to look at and tune on

Questions are written from wordings made for this set (not kgqa.program_writer's templates): chain,
conjunction (with "but not"), filter, count, superlative and yes/no, 60 of each. Topics are sampled with
a fixed seed from the bundled graph (kgqa/data/metaqa_kb.txt.gz). The gold of each question is computed
by executing its gold Program with kgqa.program.execute on that graph, with its conventions (a walk of 2+
steps never returns to or ends on its topic); no answer is typed by hand. A question is kept only when its
gold is sensible: 1-30 answers for sets, a count of 1-100, yes/no alternating so the kind is 50/50,
superlatives with at most k + 1 answers (ties) and fewer than the candidates they order.

The set is for evaluation only: never train or tune on it. `score(records, predictions)` gives per-kind
metrics (Hits@1 and F1 for set kinds and superlatives, exact match for count and yes/no). See
eval/complex.md.
"""

from __future__ import annotations

import json
import os
import random
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kgqa.config import load_settings  # noqa: E402
from kgqa.evaluate import answer_metrics  # noqa: E402
from kgqa.graph import bundled_graph_file, open_graph  # noqa: E402
from kgqa.graph.loaders import read_triples  # noqa: E402
from kgqa.graph.store import GraphStore  # noqa: E402
from kgqa.program import Aggregate, Branch, Constraint, Program, ProgramResult, execute  # noqa: E402
from kgqa.types import Step, parse_path  # noqa: E402

OUT = ROOT / "eval" / "data" / "complex" / "test.jsonl"
SEED = 12
PER_KIND = 60
MAX_SET = 30
MAX_COUNT = 100
KINDS = ("chain", "conjunction", "filter", "count", "superlative", "yes/no")
SET_KINDS = ("chain", "conjunction", "filter", "superlative")
AVOID = {"it", "her", "him", "them", "they", "those", "these", "that", "this", "he", "she", "other", "another",
         "else", "us", "up", "me", "you", "and", "both", "not", "how", "many"}
GENRES = {  # genre entity: (plural noun, singular with article)
    "Drama": ("dramas", "a drama"), "Comedy": ("comedies", "a comedy"), "Horror": ("horror films", "a horror film"),
    "Action": ("action movies", "an action movie"), "Thriller": ("thrillers", "a thriller"),
    "Crime": ("crime films", "a crime film"), "War": ("war films", "a war film"),
    "Adventure": ("adventure films", "an adventure film"), "Documentary": ("documentaries", "a documentary"),
    "Western": ("westerns", "a western"), "Musical": ("musicals", "a musical"),
    "Fantasy": ("fantasy films", "a fantasy film"), "Mystery": ("mysteries", "a mystery"),
    "Romance": ("romances", "a romance"), "Animation": ("animated films", "an animated film"),
    "Family": ("family films", "a family film"),
}


def b(entity: str, path: str) -> Branch:
    return Branch(entity, parse_path(path))


YEAR = Step("release_year")


# ---- the graph, for sampling topics (the gold comes from execute, never from here) ------------------------


class Movies:
    """Who did what in which film, from the bundled triples; only names a question can carry are offered."""

    def __init__(self) -> None:
        self.out: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        self.into: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        subjects: set[str] = set()
        for s, r, o in read_triples(bundled_graph_file(), "pipe"):
            self.out[r][s].append(o)
            self.into[r][o].append(s)
            subjects.add(s)
        lower: dict[str, int] = defaultdict(int)
        for name in subjects | {o for r in self.into for o in self.into[r]}:
            lower[name.lower()] += 1
        self.unique = {name for name, n in lower.items() if n == 1}
        self.subjects = subjects

    def usable(self, name: str, film: bool = False) -> bool:
        """A name a question can carry: capitalised, not a pronoun or a year, one node ignoring case, and a
        film (a subject) exactly when `film`."""
        words = set(name.lower().replace(",", " ").split())
        return (name[:1].isupper() and not name.isdigit() and len(name) > 2 and not (words & AVOID)
                and name.lower() in self.unique and (name in self.subjects) == film and "?" not in name)

    def people(self, relation: str, low: int = 3, high: int = 25) -> list[str]:
        """Objects of `relation` (directors, actors, writers) with low..high films, sorted."""
        return sorted(p for p, films in self.into[relation].items() if low <= len(films) <= high and self.usable(p))

    def films(self) -> list[str]:
        """Films with a director, a year and two or more actors, sorted."""
        return sorted(f for f in self.out["directed_by"] if self.out["release_year"].get(f)
                      and len(self.out["starred_actors"].get(f, [])) >= 2 and self.usable(f, film=True))

    def fwd(self, relation: str, entity: str) -> list[str]:
        return sorted(set(self.out[relation].get(entity, [])))

    def back(self, relation: str, entity: str) -> list[str]:
        return sorted(set(self.into[relation].get(entity, [])))

    def years(self, films: Sequence[str]) -> list[str]:
        return sorted({y for f in films for y in self.out["release_year"].get(f, [])})


# ---- question makers: each returns (question, program, wanted yes) or None -------------------------------

Made = tuple[str, Program, bool | None]


def pick(rng: random.Random, options: Sequence[str]) -> str:
    return options[rng.randrange(len(options))]


# chain

def chain_director(rng, m, pools) -> Made:
    f = pick(rng, pools["films"])
    q = pick(rng, ["who directed {f}", "who was the director of {f}?", "{f} was directed by whom",
                   "who's behind the camera on {f}", "tell me who made the film {f}"])
    return q.format(f=f), Program((b(f, "directed_by"),)), None


def chain_filmography(rng, m, pools) -> Made:
    if rng.random() < 0.5:
        d = pick(rng, pools["directors"])
        q = pick(rng, ["what movies did {p} direct", "which films has {p} directed?", "list the films directed by {p}",
                       "{p} directed which movies", "show me everything {p} has directed"])
        return q.format(p=d), Program((b(d, "directed_by_inv"),)), None
    a = pick(rng, pools["actors"])
    q = pick(rng, ["what films has {p} been in", "which movies feature {p}?", "{p} appeared in which films",
                   "show me movies with {p} in them", "what has {p} acted in"])
    return q.format(p=a), Program((b(a, "starred_actors_inv"),)), None


def chain_film_facts(rng, m, pools) -> Made:
    f = pick(rng, pools["films"])
    relation, q = pick(rng, [
        ("written_by", "who wrote {f}"), ("written_by", "who is the screenwriter of {f}?"),
        ("written_by", "{f} was written by who"), ("release_year", "when did {f} come out"),
        ("release_year", "what year was {f} released?"), ("release_year", "{f} came out in what year"),
        ("has_genre", "what kind of movie is {f}"), ("has_genre", "what genre is {f}?"),
        ("starred_actors", "who acts in {f}"), ("starred_actors", "who are the stars of {f}"),
    ])
    return q.format(f=f), Program((b(f, relation),)), None


def chain_two_hops(rng, m, pools) -> Made:
    choice = rng.randrange(4)
    if choice == 0:
        a = pick(rng, pools["actors"])
        q = pick(rng, ["who has directed {p}", "which directors has {p} worked with?",
                       "name the directors of the films {p} acted in"])
        return q.format(p=a), Program((b(a, "starred_actors_inv|directed_by"),)), None
    if choice == 1:
        d = pick(rng, pools["directors"])
        q = pick(rng, ["which actors have starred in {p}'s films", "who has acted in a movie directed by {p}?",
                       "{p} has directed which actors"])
        return q.format(p=d), Program((b(d, "directed_by_inv|starred_actors"),)), None
    if choice == 2:
        f = pick(rng, pools["films"])
        q = pick(rng, ["what else did the director of {f} make", "other films by whoever directed {f}",
                       "which movies did the director of {f} also direct?"])
        return q.format(f=f), Program((b(f, "directed_by|directed_by_inv"),)), None
    a = pick(rng, pools["actors"])
    q = pick(rng, ["what genres has {p} acted in", "what kinds of films does {p} appear in?"])
    return q.format(p=a), Program((b(a, "starred_actors_inv|has_genre"),)), None


# conjunction (and exclusion)

def _cast_pair(rng, m, pools) -> tuple[str, str, str] | None:
    f = pick(rng, pools["films"])
    cast = [a for a in m.fwd("starred_actors", f) if m.usable(a)]
    if len(cast) < 2:
        return None
    a, c = rng.sample(cast, 2)
    return f, a, c


def conj_two_actors(rng, m, pools) -> Made | None:
    found = _cast_pair(rng, m, pools)
    if not found:
        return None
    _, a, c = found
    q = pick(rng, ["which films did {a} and {c} both appear in", "movies starring both {a} and {c}",
                   "in what films do {a} and {c} appear together?", "{a} and {c} co-starred in which movies",
                   "what have {a} and {c} acted in together", "films with {a} as well as {c}"])
    return q.format(a=a, c=c), Program((b(a, "starred_actors_inv"), b(c, "starred_actors_inv"))), None


def conj_actor_director(rng, m, pools) -> Made | None:
    f = pick(rng, pools["films"])
    cast = [a for a in m.fwd("starred_actors", f) if m.usable(a)]
    directors = [d for d in m.fwd("directed_by", f) if m.usable(d) and d not in cast]
    if not cast or not directors:
        return None
    a, d = pick(rng, cast), pick(rng, directors)
    q = pick(rng, ["which {d} movies feature {a}", "films directed by {d} with {a} in the cast",
                   "what has {a} made with director {d}?", "movies where {a} was directed by {d}",
                   "{a} in films by {d}"])
    return q.format(a=a, d=d), Program((b(a, "starred_actors_inv"), b(d, "directed_by_inv"))), None


def conj_writer_director(rng, m, pools) -> Made | None:
    p = pick(rng, pools["auteurs"])
    if rng.random() < 0.5:
        q = pick(rng, ["which films did {p} both write and direct", "movies written and directed by {p}",
                       "what did {p} write as well as direct?", "{p} wrote and directed which films"])
        return q.format(p=p), Program((b(p, "written_by_inv"), b(p, "directed_by_inv"))), None
    q = pick(rng, ["which films did {p} write but not direct", "movies written by {p} that someone else directed",
                   "what did {p} write without directing it?", "scripts by {p} that {p} didn't direct"])
    return q.format(p=p), Program((b(p, "written_by_inv"),), exclude=(b(p, "directed_by_inv"),)), None


def conj_actor_genre(rng, m, pools) -> Made | None:
    f = pick(rng, pools["films"])
    cast = [a for a in m.fwd("starred_actors", f) if m.usable(a)]
    genres = [g for g in m.fwd("has_genre", f) if g in GENRES]
    if not cast or not genres:
        return None
    a, g = pick(rng, cast), pick(rng, genres)
    q = pick(rng, ["which {g} has {a} been in", "name the {g} starring {a}", "{a}'s {g}?",
                   "what {g} feature {a}"])
    return q.format(a=a, g=GENRES[g][0]), Program((b(a, "starred_actors_inv"), b(g, "has_genre_inv"))), None


def conj_exclusions(rng, m, pools) -> Made | None:
    choice = rng.randrange(3)
    if choice == 0:
        f = pick(rng, pools["films"])
        cast = [a for a in m.fwd("starred_actors", f) if m.usable(a)]
        directors = [d for d in m.fwd("directed_by", f) if m.usable(d) and d not in cast]
        if not cast or not directors:
            return None
        a, d = pick(rng, cast), pick(rng, directors)
        q = pick(rng, ["which films did {a} star in that weren't directed by {d}",
                       "{a} movies not directed by {d}", "what has {a} acted in apart from the films of {d}?"])
        return q.format(a=a, d=d), Program((b(a, "starred_actors_inv"),), exclude=(b(d, "directed_by_inv"),)), None
    if choice == 1:
        found = _cast_pair(rng, m, pools)
        if not found:
            return None
        _, a, c = found
        q = pick(rng, ["{a} movies without {c}", "films with {a} but not {c}", "which of {a}'s films don't feature {c}?"])
        return q.format(a=a, c=c), Program((b(a, "starred_actors_inv"),), exclude=(b(c, "starred_actors_inv"),)), None
    d = pick(rng, pools["directors"])
    genres = sorted({g for f in m.back("directed_by", d) for g in m.fwd("has_genre", f) if g in GENRES})
    if not genres:
        return None
    g = pick(rng, genres)
    q = pick(rng, ["which of {d}'s films are not {g}", "{d} films that aren't {g}", "what did {d} direct other than {g}?"])
    return q.format(d=d, g=GENRES[g][0]), Program((b(d, "directed_by_inv"),), exclude=(b(g, "has_genre_inv"),)), None


# filter

def _year_in(rng, m, films: Sequence[str], op: str) -> list[str]:
    years = m.years(films)
    if len(years) < 2:
        return []
    if op == "eq":
        return [pick(rng, years)]
    if op == "lt":
        return [pick(rng, years[1:])]
    if op == "gt":
        return [pick(rng, years[:-1])]
    lo, hi = sorted(rng.sample(range(len(years)), 2))
    return [years[lo], years[hi]]


def filter_director_year(rng, m, pools) -> Made | None:
    d = pick(rng, pools["directors"])
    films = m.back("directed_by", d)
    op = pick(rng, ["eq", "eq", "lt", "gt", "between"])
    years = _year_in(rng, m, films, op)
    if not years:
        return None
    words = {"eq": ["which {d} films came out in {y}", "what did {d} direct in {y}?", "movies directed by {d} released in {y}",
                    "{d}'s films from {y}"],
             "lt": ["films by {d} from before {y}", "which movies did {d} direct before {y}?", "{d} films older than {y}"],
             "gt": ["{d} movies released after {y}", "what has {d} directed since the end of {y}",
                    "which {d} films are more recent than {y}?"],
             "between": ["movies directed by {d} between {y} and {u}", "{d}'s films from {y} to {u}",
                         "what did {d} make between {y} and {u}?"]}[op]
    q = pick(rng, words).format(d=d, y=years[0], u=years[-1])
    constraint = Constraint(YEAR, op, years[0], years[1] if op == "between" else None)
    return q, Program((b(d, "directed_by_inv"),), constraints=(constraint,)), None


def filter_actor_year(rng, m, pools) -> Made | None:
    a = pick(rng, pools["actors"])
    op = pick(rng, ["eq", "lt", "gt", "gt", "between"])
    years = _year_in(rng, m, m.back("starred_actors", a), op)
    if not years:
        return None
    words = {"eq": ["which {a} movies were released in {y}", "what films did {a} make in {y}?",
                    "{a} films of {y}"],
             "lt": ["films starring {a} released before {y}", "{a} movies from before {y}",
                    "which of {a}'s films came out earlier than {y}?"],
             "gt": ["{a} movies after {y}", "which of {a}'s films came out after {y}?",
                    "films with {a} more recent than {y}"],
             "between": ["{a} films made between {y} and {u}", "which movies starring {a} came out from {y} to {u}?"]}[op]
    q = pick(rng, words).format(a=a, y=years[0], u=years[-1])
    constraint = Constraint(YEAR, op, years[0], years[1] if op == "between" else None)
    return q, Program((b(a, "starred_actors_inv"),), constraints=(constraint,)), None


def filter_writer_or_pair(rng, m, pools) -> Made | None:
    if rng.random() < 0.5:
        w = pick(rng, pools["writers"])
        op = pick(rng, ["lt", "gt"])
        years = _year_in(rng, m, m.back("written_by", w), op)
        if not years:
            return None
        q = pick(rng, {"lt": ["what did {w} write before {y}", "screenplays by {w} older than {y}?"],
                       "gt": ["what did {w} write after {y}", "films written by {w} released after {y}"]}[op])
        return q.format(w=w, y=years[0]), Program((b(w, "written_by_inv"),), constraints=(Constraint(YEAR, op, years[0]),)), None
    found = _cast_pair(rng, m, pools)
    if not found:
        return None
    _, a, c = found
    op = pick(rng, ["lt", "gt"])
    shared = sorted(set(m.back("starred_actors", a)) & set(m.back("starred_actors", c)))
    years = _year_in(rng, m, shared, op)
    if not years:
        return None
    q = pick(rng, {"lt": ["which films did {a} and {c} make together before {y}", "{a} and {c} movies older than {y}"],
                   "gt": ["which films with both {a} and {c} came out after {y}?", "{a} and {c} together after {y}"]}[op])
    program = Program((b(a, "starred_actors_inv"), b(c, "starred_actors_inv")), constraints=(Constraint(YEAR, op, years[0]),))
    return q.format(a=a, c=c, y=years[0]), program, None


# count

def count_filmography(rng, m, pools) -> Made:
    relation, pool, words = pick(rng, [
        ("directed_by", "directors", ["how many movies has {p} directed", "how many films did {p} direct?",
                                      "number of films directed by {p}", "{p} has directed how many movies"]),
        ("starred_actors", "actors", ["how many films has {p} appeared in", "in how many movies did {p} act?",
                                      "count the movies {p} starred in", "how many films feature {p}"]),
        ("written_by", "writers", ["how many screenplays has {p} written", "how many films did {p} write?",
                                   "number of movies written by {p}"]),
    ])
    p = pick(rng, pools[pool])
    return pick(rng, words).format(p=p), Program((b(p, relation + "_inv"),), aggregate=Aggregate("count")), None


def count_film_parts(rng, m, pools) -> Made:
    f = pick(rng, pools["films"])
    relation, q = pick(rng, [("starred_actors", "how many actors star in {f}"),
                             ("starred_actors", "how many people are in the cast of {f}?"),
                             ("has_genre", "how many genres is {f} listed under"),
                             ("written_by", "how many writers worked on {f}?")])
    return q.format(f=f), Program((b(f, relation),), aggregate=Aggregate("count")), None


def count_combined(rng, m, pools) -> Made | None:
    choice = rng.randrange(3)
    if choice == 0:
        found = _cast_pair(rng, m, pools)
        if not found:
            return None
        _, a, c = found
        q = pick(rng, ["how many films did {a} and {c} make together", "how many movies feature both {a} and {c}?"])
        return q.format(a=a, c=c), Program((b(a, "starred_actors_inv"), b(c, "starred_actors_inv")),
                                           aggregate=Aggregate("count")), None
    if choice == 1:
        d = pick(rng, pools["directors"])
        op = pick(rng, ["lt", "gt"])
        years = _year_in(rng, m, m.back("directed_by", d), op)
        if not years:
            return None
        q = pick(rng, {"lt": ["how many {d} films came out before {y}", "how many movies had {d} directed before {y}?"],
                       "gt": ["how many films did {d} direct after {y}", "number of {d} movies released after {y}"]}[op])
        return q.format(d=d, y=years[0]), Program((b(d, "directed_by_inv"),), constraints=(Constraint(YEAR, op, years[0]),),
                                                  aggregate=Aggregate("count")), None
    a = pick(rng, pools["actors"])
    q = pick(rng, ["how many different directors has {a} worked with", "with how many directors has {a} made films?"])
    return q.format(a=a), Program((b(a, "starred_actors_inv|directed_by"),), aggregate=Aggregate("count")), None


# superlative

def sup_by_year(rng, m, pools) -> Made:
    relation, pool, first, last = pick(rng, [
        ("directed_by", "directors", ["what is {p}'s earliest film", "which was the first movie {p} directed?",
                                      "the oldest film directed by {p}"],
         ["what is the latest film directed by {p}", "{p}'s most recent movie as director", "which film did {p} direct last?"]),
        ("starred_actors", "actors", ["what was {p}'s first film", "the earliest movie starring {p}",
                                      "which {p} film is the oldest?"],
         ["{p}'s most recent movie", "what is the latest film starring {p}?", "which {p} movie came out last"]),
        ("written_by", "writers", ["the first film {p} wrote", "what is the earliest screenplay by {p}?"],
         ["the latest film written by {p}", "what did {p} write most recently?"]),
    ])
    p = pick(rng, pools[pool])
    op = "min" if rng.random() < 0.5 else "max"
    q = pick(rng, first if op == "min" else last).format(p=p)
    return q, Program((b(p, relation + "_inv"),), aggregate=Aggregate(op, YEAR)), None


def sup_top_k(rng, m, pools) -> Made:
    k = pick(rng, ["2", "3"])
    number = {"2": "two", "3": "three"}[k]
    relation, pool = pick(rng, [("starred_actors", "actors"), ("directed_by", "directors")])
    p = pick(rng, pools[pool])
    op = "min" if rng.random() < 0.5 else "max"
    words = {"min": ["{p}'s {n} earliest movies", "name the {k} oldest films of {p}", "the first {n} films of {p}"],
             "max": ["the {n} most recent films of {p}", "{p}'s {k} latest movies", "which are the {n} newest {p} films?"]}
    q = pick(rng, words[op]).format(p=p, n=number, k=k)
    return q, Program((b(p, relation + "_inv"),), aggregate=Aggregate(op, YEAR, k=int(k))), None


def sup_by_count(rng, m, pools) -> Made:
    choice = rng.randrange(3)
    if choice == 0:
        f = pick(rng, pools["films"])
        q = pick(rng, ["which actor in {f} has been in the most films", "of the cast of {f}, who has made the most movies?",
                       "who in {f} has the longest filmography"])
        return q.format(f=f), Program((b(f, "starred_actors"),), aggregate=Aggregate("max", Step("starred_actors", True), "count")), None
    if choice == 1:
        a = pick(rng, pools["actors"])
        q = pick(rng, ["of the directors {a} has worked with, who has directed the most films",
                       "which director of a {a} film is the most prolific?"])
        return q.format(a=a), Program((b(a, "starred_actors_inv|directed_by"),),
                                      aggregate=Aggregate("max", Step("directed_by", True), "count")), None
    f = pick(rng, pools["films"])
    q = pick(rng, ["who among the writers of {f} has written the most films", "which writer of {f} has the most screenplays?"])
    return q.format(f=f), Program((b(f, "written_by"),), aggregate=Aggregate("max", Step("written_by", True), "count")), None


# yes/no: `want` says which answer the maker aims for (the runner keeps the kind balanced)

def yn_director(rng, m, pools, want: bool) -> Made | None:
    d = pick(rng, pools["directors"])
    films = m.back("directed_by", d)
    if want:
        f = pick(rng, films)
    else:  # a film sharing an actor with one of d's films: a near miss
        near = sorted({g for f in films for a in m.fwd("starred_actors", f) for g in m.back("starred_actors", a)} - set(films))
        if not near:
            return None
        f = pick(rng, near)
    if not m.usable(f, film=True):
        return None
    if rng.random() < 0.5:
        q = pick(rng, ["did {d} direct {f}", "is {f} a {d} film?", "was {f} one of the films {d} directed"])
        return q.format(d=d, f=f), Program((b(d, "directed_by_inv"),), ask=f), want
    q = pick(rng, ["was {f} directed by {d}", "is {d} the director of {f}?", "{f}: directed by {d}?"])
    return q.format(d=d, f=f), Program((b(f, "directed_by"),), ask=d), want


def yn_cast(rng, m, pools, want: bool) -> Made | None:
    f = pick(rng, pools["films"])
    cast = m.fwd("starred_actors", f)
    if want:
        a = pick(rng, cast)
    else:  # an actor of another film by the same director
        near = sorted({x for d in m.fwd("directed_by", f) for g in m.back("directed_by", d)
                       for x in m.fwd("starred_actors", g)} - set(cast))
        if not near:
            return None
        a = pick(rng, near)
    if not m.usable(a):
        return None
    q = pick(rng, ["is {a} in {f}", "does {f} star {a}?", "was {a} in the cast of {f}", "did {a} act in {f}"])
    return q.format(a=a, f=f), Program((b(f, "starred_actors"),), ask=a), want


def yn_year_or_genre(rng, m, pools, want: bool) -> Made | None:
    f = pick(rng, pools["films"])
    if rng.random() < 0.5:
        year = m.fwd("release_year", f)[0]
        y = year if want else str(int(year) + pick(rng, [-2, -1, 1, 2])) if year.isdigit() else None
        if y is None or (not want and y in m.fwd("release_year", f)) or not m.back("release_year", y):
            return None
        q = pick(rng, ["was {f} released in {y}", "did {f} come out in {y}?", "is {f} from {y}"])
        return q.format(f=f, y=y), Program((b(f, "release_year"),), ask=y), want
    genres = m.fwd("has_genre", f)
    options = [g for g in GENRES if (g in genres) == want]
    if not options:
        return None
    g = pick(rng, sorted(options))
    q = pick(rng, ["is {f} {g}", "would you call {f} {g}?", "is {f} classed as {g}"])
    return q.format(f=f, g=GENRES[g][1]), Program((b(f, "has_genre"),), ask=g), want


def yn_writer(rng, m, pools, want: bool) -> Made | None:
    f = pick(rng, pools["films"])
    writers = m.fwd("written_by", f)
    if not writers:
        return None
    if want:
        w = pick(rng, writers)
    else:
        near = sorted({x for d in m.fwd("directed_by", f) for g in m.back("directed_by", d)
                       for x in m.fwd("written_by", g)} - set(writers))
        if not near:
            return None
        w = pick(rng, near)
    if not m.usable(w):
        return None
    q = pick(rng, ["did {w} write {f}", "was {f} written by {w}?", "is {w} one of the writers of {f}"])
    return q.format(w=w, f=f), Program((b(f, "written_by"),), ask=w), want


MAKERS: dict[str, list[Callable[..., Made | None]]] = {
    "chain": [chain_director, chain_filmography, chain_film_facts, chain_two_hops],
    "conjunction": [conj_two_actors, conj_actor_director, conj_writer_director, conj_actor_genre, conj_exclusions],
    "filter": [filter_director_year, filter_actor_year, filter_writer_or_pair],
    "count": [count_filmography, count_film_parts, count_combined],
    "superlative": [sup_by_year, sup_top_k, sup_by_count],
    "yes/no": [yn_director, yn_cast, yn_year_or_genre, yn_writer],
}


# ---- writing the set ------------------------------------------------------------------------------------------


def sensible(program: Program, result: ProgramResult, want: bool | None) -> bool:
    """Keep a question only when its gold is a fair question to ask (see the module docstring)."""
    kind = program.kind
    if kind == "yes/no":
        return result.yes is want
    if kind == "count":
        return result.count is not None and 1 <= result.count <= MAX_COUNT
    if not (1 <= len(result.answers) <= MAX_SET):
        return False
    if kind == "superlative":
        assert program.aggregate is not None
        candidates = execute_candidates(program)
        return len(result.answers) <= program.aggregate.k + 1 and len(result.answers) < candidates
    return True


_GRAPH: GraphStore | None = None


def graph() -> GraphStore:
    global _GRAPH
    if _GRAPH is None:
        _GRAPH = open_graph(load_settings(environ={}))  # the bundled graph with its own conventions
    return _GRAPH


def execute_candidates(program: Program) -> int:
    """How many answers the superlative ordered (the branches' answers, before the aggregate)."""
    return len(execute(graph(), Program(program.branches, program.exclude, program.constraints)).answers)


def record(question: str, program: Program, result: ProgramResult) -> dict[str, Any]:
    out: dict[str, Any] = {"question": question, "kind": program.kind, "program": program.to_json()}
    if program.kind == "count":
        out["count"] = result.count
    elif program.kind == "yes/no":
        out["yes"] = result.yes
    else:
        out["answers"] = sorted(result.answers)
    return out


def write_set(per_kind: int = PER_KIND, seed: int = SEED) -> list[dict[str, Any]]:
    """`per_kind` questions of each kind, makers taken in turn, gold by `execute`; deterministic."""
    rng = random.Random(seed)
    m = Movies()
    pools = {"directors": m.people("directed_by"), "actors": m.people("starred_actors"),
             "writers": m.people("written_by"), "films": m.films()}
    pools["auteurs"] = sorted(set(pools["directors"]) & set(pools["writers"]))
    g = graph()
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    for kind in KINDS:
        kept, attempts = 0, 0
        while kept < per_kind:
            attempts += 1
            if attempts > per_kind * 200:
                raise RuntimeError(f"could not write {per_kind} sensible {kind} questions")
            maker = MAKERS[kind][attempts % len(MAKERS[kind])]
            made = maker(rng, m, pools, kept % 2 == 0) if kind == "yes/no" else maker(rng, m, pools)
            if made is None:
                continue
            question, program, want = made
            if question.lower() in seen:
                continue
            result = execute(g, program)
            if program.kind != kind or not sensible(program, result, want):
                continue
            seen.add(question.lower())
            records.append(record(question, program, result))
            kept += 1
    return records


def save(records: list[dict[str, Any]], path: Path = OUT) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def load(path: Path = OUT) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# ---- scoring ----------------------------------------------------------------------------------------------


def score(records: Sequence[dict[str, Any]], predictions: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per-kind metrics (percent) and `overall`: Hits@1 (the top answer is gold) and F1 of the answer set for
    chain, conjunction, filter and superlative; exact match of `count` and of `yes` for count and yes/no.
    `predictions[i]` answers `records[i]`: {"answers": [ranked names], "count": int, "yes": bool}; a missing
    field is a wrong answer. `overall.accuracy` counts a question right by Hits@1 or exact match."""
    if len(records) != len(predictions):
        raise ValueError(f"{len(predictions)} predictions for {len(records)} questions")
    right: dict[str, list[float]] = defaultdict(list)
    f1: dict[str, list[float]] = defaultdict(list)
    for gold, predicted in zip(records, predictions):
        kind = gold["kind"]
        if kind in SET_KINDS:
            answers = list(predicted.get("answers") or [])
            right[kind].append(float(bool(answers) and answers[0] in set(gold["answers"])))
            f1[kind].append(answer_metrics(answers, gold["answers"])["f1"])
        elif kind == "count":
            right[kind].append(float(predicted.get("count") == gold["count"]))
        else:
            right[kind].append(float(predicted.get("yes") is gold["yes"]))
    out: dict[str, dict[str, float]] = {}
    for kind in KINDS:
        if not right[kind]:
            continue
        n = len(right[kind])
        metrics = {"questions": n}
        if kind in SET_KINDS:
            metrics |= {"hits@1": round(100 * sum(right[kind]) / n, 2), "f1": round(100 * sum(f1[kind]) / n, 2)}
        else:
            metrics |= {"exact": round(100 * sum(right[kind]) / n, 2)}
        out[kind] = metrics
    every = [x for kind in right for x in right[kind]]
    out["overall"] = {"questions": len(every), "accuracy": round(100 * sum(every) / max(len(every), 1), 2)}
    return out


def prediction(result: ProgramResult) -> dict[str, Any]:
    """A ProgramResult as `score` reads it."""
    return {"answers": list(result.answers), "count": result.count, "yes": result.yes}


# ---- the reference run: gold programs through both stores ------------------------------------------------


def neo4j_graph() -> GraphStore | None:
    """The MetaQA graph on the Neo4j server KGQA_TEST_NEO4J names, or None (no server, or not loaded)."""
    uri = os.environ.get("KGQA_TEST_NEO4J", "")
    if not uri:
        return None
    from kgqa.config import Settings
    from kgqa.graph.neo4j_store import Neo4jGraph

    password = os.environ.get("KGQA_NEO4J_PASSWORD") or os.environ.get("NEO4J_PASSWORD") or "kgqa-test-password"
    store = Neo4jGraph.connect(Settings(graph=uri, neo4j_password=password))
    embedded = graph().stats()
    if {k: v for k, v in store.stats().items() if k != "source"} != {k: v for k, v in embedded.items() if k != "source"}:
        print(f"Neo4j at {uri} does not hold the bundled graph under its default label "
              "(tests/test_graph_contract.py loads it): Neo4j part skipped")
        store.close()
        return None
    store.walk_through_topic, store.topic_as_answer = graph().walk_through_topic, graph().topic_as_answer
    return store


def check(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Execute every gold program on the embedded store (and Neo4j when there is one): the results must equal
    the stored gold, and the two stores must agree on answers, count, yes/no and evidence."""
    embedded = graph()
    results = [execute(embedded, Program.from_json(r["program"])) for r in records]
    report: dict[str, Any] = {"questions": len(records), "gold": score(records, [prediction(x) for x in results])}
    store = neo4j_graph()
    if store is None:
        report["neo4j"] = "skipped: no server with the bundled graph (set KGQA_TEST_NEO4J)"
        return report
    differ = []
    for r, mine in zip(records, results):
        theirs = store.run_program(Program.from_json(r["program"]))
        if (mine.answers, mine.count, mine.yes, mine.evidence) != (theirs.answers, theirs.count, theirs.yes, theirs.evidence):
            differ.append(r["question"])
    store.close()
    report["neo4j"] = {"identical": len(records) - len(differ), "different": differ}
    return report


def main(argv: list[str]) -> int:
    if argv[:1] == ["check"]:
        print(json.dumps(check(load()), indent=2))
        return 0
    import argparse

    parser = argparse.ArgumentParser(description="Write the complex-question set (the test set by default).")
    parser.add_argument("--seed", type=int, default=SEED, help=f"sampling seed (the test set: {SEED})")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    records = write_set(seed=args.seed)
    if args.seed != SEED:  # a development set: no question of the test set in it
        test = {r["question"].lower() for r in load()} if OUT.exists() else set()
        records = [r for r in records if r["question"].lower() not in test]
    save(records, args.out)
    counts: dict[str, int] = defaultdict(int)
    for r in records:
        counts[r["kind"]] += 1
    print(f"wrote {len(records)} questions to {args.out}: {dict(counts)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
