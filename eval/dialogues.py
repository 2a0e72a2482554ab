"""Dialogues over the bundled movie graph: a follow-up test set for `kgqa chat`, and the run that scores it.

    .venv/bin/python eval/dialogues.py write                 # writes eval/data/dialogues/test.jsonl (deterministic)
    .venv/bin/python eval/dialogues.py run                   # turn, follow-up-turn and dialogue accuracy
    .venv/bin/python eval/dialogues.py run --no-memory       # every turn asked on its own (chat before issue 13)
    .venv/bin/python eval/dialogues.py run --llm embedded    # with an LLM configured

`write` samples topics from the bundled graph (kgqa/data/metaqa_kb.txt.gz) with a fixed seed and computes
each turn's gold answers from its triples, with MetaQA's conventions (a turn's topic is never its answer).
Each dialogue has 2-4 turns; every turn after the first but a "new topic" turn needs an earlier one
(a pronoun, a reference, an ellipsis, "other", "of them"). The wordings were written for this set and vary;
the set is for evaluation only, never trained or tuned on.

`run` drives the same `Conversation` that `kgqa chat` uses, one dialogue at a time (a /reset between
dialogues), and writes every turn's prediction and the report into --out. A turn is right when its top
answer is a gold answer (Hits@1, MetaQA's measure); F1 and exact match of the answer set are reported too.
This is a script rather than `kgqa eval` because kgqa/evaluate.py scores single questions in batches.
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import random
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KB = ROOT / "kgqa" / "data" / "metaqa_kb.txt.gz"
OUT = ROOT / "eval" / "data" / "dialogues" / "test.jsonl"
DIALOGUES = 180
MAX_SET = 30
AVOID = {"it", "her", "him", "them", "they", "those", "these", "that", "this", "he", "she", "other", "another", "else",
         "us", "up", "me", "you"}


# ---- the graph -----------------------------------------------------------------------------------------


class Graph:
    """Forward and backward neighbours per relation, read from the triples file."""

    def __init__(self, file: Path) -> None:
        self.out: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        self.into: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        with gzip.open(file, "rt", encoding="utf-8") as lines:
            for line in lines:
                s, r, o = line.rstrip("\n").split("|")
                self.out[r][s].add(o)
                self.into[r][o].add(s)

    def fwd(self, relation: str, entity: str) -> set[str]:
        return set(self.out[relation].get(entity, ()))

    def back(self, relation: str, entity: str) -> set[str]:
        return set(self.into[relation].get(entity, ()))


def usable(name: str) -> bool:
    """A name a question can carry without confusing the reader: not a pronoun, not lower-case, not a year."""
    words = name.lower().split()
    return (name[:1].isupper() and not name.isdigit() and len(name) > 2 and not (set(words) & AVOID)
            and "|" not in name and "?" not in name)


def turn(question: str, answers: set[str], follow_up: bool, kind: str, topic: str | None = None) -> dict:
    gold = sorted(answers - ({topic} if topic else set()))  # MetaQA: the topic is never an answer
    return {"question": question, "answers": gold, "follow_up": follow_up, "kind": kind}


# ---- dialogue shapes (wordings written for this set) ------------------------------------------------------

DIRECT = ["who directed {f}", "who was the director of {f}", "who is the director of {f}", "{f} was directed by who"]
WRITE = ["who wrote {f}", "who is the writer of {f}", "who wrote the screenplay for {f}", "{f} was written by whom"]
OTHER_DIRECTED = ["what other films did {p} direct", "which other movies did {p} direct", "what else did {p} direct",
                  "what other movies has {p} directed"]
OTHER_WRITTEN = ["what else did {p} write", "which other films did {p} write", "what other movies has {p} written",
                 "what other films were written by {o}"]
ACTED = ["what films did {a} act in", "which movies did {a} star in", "what movies has {a} appeared in",
         "which films feature {a}"]
OF_THEM_YEAR = ["which of them came out in {y}", "which of those were released in {y}", "which of them are from {y}",
                "and which of these were released in {y}"]
WHO_DIRECTED_SET = ["who directed them", "and who directed those", "who were their directors", "who directed those films"]
WHO_DIRECTED_ONE = ["who directed it", "and who directed that one", "who was its director", "who directed that film"]
WRITER_ELLIPSIS = ["and the writer?", "what about the writer?", "who wrote it", "and who wrote it?"]
YEAR_FOLLOW = ["when was it released", "what year did it come out", "and when was it released?",
               "what year was that film released"]
LANGUAGE_FOLLOW = ["what language is it in", "and what language is that movie in?", "which language is it in",
                   "what language was it made in"]
GENRE_FOLLOW = ["what genre is it", "and what kind of film is it?", "what is its genre", "which genre is that movie"]
STARS_FOLLOW = ["who starred in it", "who acted in it", "and who was in the cast of that film?", "who appears in it"]
DIRECTED_BY = ["what films did {d} direct", "which movies were directed by {d}", "what has {d} directed",
               "which films did {d} make as director"]
SWAP = ["what about {d}?", "and {d}?", "how about {d}?", "what about {d}"]
RELEASED = ["when was {f} released", "what year did {f} come out", "in which year was {f} released",
            "when did {f} come out"]
SAME_YEAR = ["what other films came out that year", "which other movies were released in that year",
             "what else came out that year", "what other films were released the same year"]
THEIR_FILMS = ["who acted in {p} films", "which actors appeared in {p} movies", "who starred in {p} films",
               "who were the actors in {p} movies"]
OF_THEM_DIRECTED = ["which of them did {d} direct", "which of those were directed by {d}",
                    "which of these did {d} direct", "and which of them were directed by {d}?"]


class Writer:
    def __init__(self, graph: Graph, seed: int = 0) -> None:
        self.g = graph
        self.rng = random.Random(seed)
        films = {f for f in graph.out["directed_by"] if usable(f)}
        self.films = sorted(films)
        self.films_of_director = {d: fs for d, fs in graph.into["directed_by"].items() if usable(d)}
        self.films_of_writer = {w: fs for w, fs in graph.into["written_by"].items() if usable(w)}
        self.films_of_actor = {a: fs for a, fs in graph.into["starred_actors"].items() if usable(a)}

    def pick(self, options: list[str]) -> str:
        return self.rng.choice(options)

    def pronoun(self) -> str:
        return self.rng.choice(["he", "she", "they"])

    def film(self, need: tuple[str, ...] = ()) -> str:
        while True:
            f = self.rng.choice(self.films)
            if all(self.g.fwd(r, f) for r in need):
                return f

    # each shape returns a dialogue (a list of turns) or None when the sample does not fit

    def director_other(self) -> list[dict] | None:
        f = self.film()
        ds = self.g.fwd("directed_by", f)
        if len(ds) != 1 or not usable(next(iter(ds))):
            return None
        d = next(iter(ds))
        others = self.g.back("directed_by", d) - {f}
        if not 2 <= len(others) <= MAX_SET:
            return None
        turns = [turn(self.pick(DIRECT).format(f=f), ds, False, "first", f),
                 turn(self.pick(OTHER_DIRECTED).format(p=self.pronoun()), others, True, "pronoun+other", d)]
        years = sorted({y for o in others for y in self.g.fwd("release_year", o)})
        if years and self.rng.random() < 0.6:
            y = self.rng.choice(years)
            kept = {o for o in others if y in self.g.fwd("release_year", o)}
            if len(kept) < len(others):
                turns.append(turn(self.pick(OF_THEM_YEAR).format(y=y), kept, True, "of them", y))
        return turns

    def writer_other(self) -> list[dict] | None:
        f = self.film(("written_by",))
        ws = self.g.fwd("written_by", f)
        if len(ws) != 1 or not usable(next(iter(ws))):
            return None
        w = next(iter(ws))
        others = self.g.back("written_by", w) - {f}
        if not 2 <= len(others) <= MAX_SET:
            return None
        wording = self.pick(OTHER_WRITTEN)
        return [turn(self.pick(WRITE).format(f=f), ws, False, "first", f),
                turn(wording.format(p=self.pronoun(), o=self.rng.choice(["him", "her", "them"])), others, True,
                     "pronoun+other", w)]

    def film_facts(self) -> list[dict] | None:
        f = self.film(("written_by", "release_year", "in_language", "has_genre", "starred_actors"))
        turns = [turn(self.pick(DIRECT).format(f=f), self.g.fwd("directed_by", f), False, "first", f),
                 turn(self.pick(WRITER_ELLIPSIS), self.g.fwd("written_by", f), True, "ellipsis/pronoun", f)]
        follow = [(YEAR_FOLLOW, "release_year"), (LANGUAGE_FOLLOW, "in_language"), (GENRE_FOLLOW, "has_genre"),
                  (STARS_FOLLOW, "starred_actors")]
        for wordings, relation in self.rng.sample(follow, self.rng.choice([1, 2])):
            turns.append(turn(self.pick(wordings), self.g.fwd(relation, f), True, "pronoun", f))
        return turns

    def actor_restrict(self) -> list[dict] | None:
        actors = [a for a, fs in self.films_of_actor.items() if 4 <= len(fs) <= MAX_SET]
        a = self.rng.choice(sorted(actors))
        films = self.g.back("starred_actors", a)
        by_year: dict[str, set[str]] = defaultdict(set)
        for film in films:
            for y in self.g.fwd("release_year", film):
                by_year[y].add(film)
        years = [y for y, fs in by_year.items() if len(fs) < len(films)]
        if not years:
            return None
        several = [y for y in years if len(by_year[y]) > 1]
        y = self.rng.choice(sorted(several if several and self.rng.random() < 0.7 else years))
        kept = by_year[y]
        directors = {d for film in kept for d in self.g.fwd("directed_by", film)}
        turns = [turn(self.pick(ACTED).format(a=a), films, False, "first", a),
                 turn(self.pick(OF_THEM_YEAR).format(y=y), kept, True, "of them", y)]
        if directors:
            wordings = WHO_DIRECTED_SET if len(kept) > 1 else WHO_DIRECTED_ONE
            turns.append(turn(self.pick(wordings), directors, True, "pronoun (set)" if len(kept) > 1 else "pronoun"))
        return turns

    def actor_by_director(self) -> list[dict] | None:
        actors = [a for a, fs in self.films_of_actor.items() if 3 <= len(fs) <= MAX_SET]
        a = self.rng.choice(sorted(actors))
        films = self.g.back("starred_actors", a)
        directors = sorted({d for f in films for d in self.g.fwd("directed_by", f) if usable(d)})
        if not directors:
            return None
        d = self.rng.choice(directors)
        kept = films & self.g.back("directed_by", d)
        if len(kept) == len(films):
            return None
        return [turn(self.pick(ACTED).format(a=a), films, False, "first", a),
                turn(self.pick(OF_THEM_DIRECTED).format(d=d), kept, True, "of them", d)]

    def director_swap(self) -> list[dict] | None:
        directors = sorted(d for d, fs in self.films_of_director.items() if 2 <= len(fs) <= MAX_SET)
        d1, d2, d3 = self.rng.sample(directors, 3)
        turns = [turn(self.pick(DIRECTED_BY).format(d=d1), self.g.back("directed_by", d1), False, "first", d1),
                 turn(self.pick(SWAP).format(d=d2), self.g.back("directed_by", d2), True, "ellipsis (swap)", d2)]
        if self.rng.random() < 0.5:
            turns.append(turn(self.pick(SWAP).format(d=d3), self.g.back("directed_by", d3), True, "ellipsis (swap)", d3))
        return turns

    def same_year(self) -> list[dict] | None:
        f = self.film(("release_year",))
        ys = self.g.fwd("release_year", f)
        if len(ys) != 1:
            return None
        y = next(iter(ys))
        others = self.g.back("release_year", y) - {f}
        return [turn(self.pick(RELEASED).format(f=f), ys, False, "first", f),
                turn(self.pick(SAME_YEAR), others, True, "reference+other", y)]

    def their_films(self) -> list[dict] | None:
        f = self.film()
        ds = self.g.fwd("directed_by", f)
        if len(ds) != 1 or not usable(next(iter(ds))):
            return None
        d = next(iter(ds))
        films = self.g.back("directed_by", d)
        if not 2 <= len(films) <= 10:
            return None
        actors = {a for film in films for a in self.g.fwd("starred_actors", film)}
        if not actors:
            return None
        return [turn(self.pick(DIRECT).format(f=f), ds, False, "first", f),
                turn(self.pick(THEIR_FILMS).format(p=self.rng.choice(["his", "her", "their"])), actors, True,
                     "pronoun (2-hop)", d)]

    def new_topic(self) -> list[dict] | None:
        f1 = self.film(("release_year",))
        f2 = self.film(("written_by",))
        if f1 == f2:
            return None
        return [turn(self.pick(DIRECT).format(f=f1), self.g.fwd("directed_by", f1), False, "first", f1),
                turn(self.pick(YEAR_FOLLOW), self.g.fwd("release_year", f1), True, "pronoun", f1),
                turn(self.pick(DIRECT).format(f=f2), self.g.fwd("directed_by", f2), False, "new topic", f2),
                turn(self.pick(WRITER_ELLIPSIS), self.g.fwd("written_by", f2), True, "ellipsis/pronoun", f2)]

    def write(self, n: int) -> list[dict]:
        shapes = [self.director_other, self.writer_other, self.film_facts, self.actor_restrict,
                  self.actor_by_director, self.director_swap, self.same_year, self.their_films, self.new_topic]
        dialogues: list[dict] = []
        seen: set[str] = set()
        while len(dialogues) < n:
            shape = shapes[len(dialogues) % len(shapes)]
            turns = shape()
            if not turns or any(not t["answers"] for t in turns) or turns[0]["question"] in seen:
                continue
            seen.add(turns[0]["question"])
            dialogues.append({"id": f"d{len(dialogues) + 1:03d}", "shape": shape.__name__, "turns": turns})
        return dialogues


# ---- the run ------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> None:
    from kgqa.agent import Agent
    from kgqa.config import load_settings
    from kgqa.conversation import Conversation
    from kgqa.dialogue_eval import markdown, read_dialogues, run_dialogues, summarise

    dialogues = read_dialogues(Path(args.data))
    if args.limit:
        dialogues = dialogues[:args.limit]
    settings = load_settings(None, {"llm": args.llm} if args.llm else {})
    conversation = Conversation(Agent(settings))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with (out / "predictions.jsonl").open("w") as file:
        rows = run_dialogues(conversation, dialogues, memory=not args.no_memory,
                             on_row=lambda row: file.write(json.dumps(row, ensure_ascii=False) + "\n"))
    report = summarise(rows, dialogues)
    report.update(command="python eval/dialogues.py " + " ".join(sys.argv[1:]), seconds=round(time.perf_counter() - started, 1),
                  settings={"llm": settings.llm, "memory": not args.no_memory},
                  machine={"python": platform.python_version(), "uptime": _uptime()})
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(report))


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    w = sub.add_parser("write", help="write the dialogue test set")
    w.add_argument("--dialogues", type=int, default=DIALOGUES)
    w.add_argument("--seed", type=int, default=13)
    w.add_argument("--out", default=str(OUT))
    r = sub.add_parser("run", help="answer the dialogues and report the accuracies")
    r.add_argument("--data", default=str(OUT))
    r.add_argument("--out", default="eval/runs/dialogues")
    r.add_argument("--llm", default=None, help="none, embedded, a .gguf file or an OpenAI-compatible URL")
    r.add_argument("--no-memory", action="store_true", help="forget the conversation before every turn")
    r.add_argument("--limit", type=int, default=0, help="only the first N dialogues")
    args = parser.parse_args()
    if args.what == "write":
        dialogues = Writer(Graph(KB), args.seed).write(args.dialogues)
        target = Path(args.out)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in dialogues))
        turns = sum(len(d["turns"]) for d in dialogues)
        print(f"{len(dialogues)} dialogues, {turns} turns → {target}")
    else:
        run(args)


if __name__ == "__main__":
    main()
