"""Entity-linking benchmark: the name-matching baseline against the fine-tuned BERT linker.

For each hop of MetaQA (test by default) and each question set it reports mention precision / recall / F1
(a predicted mention counts when its character span equals the gold [bracketed] span), topic-entity
accuracy (the first mention's first candidate is the gold entity) and linking throughput (questions per
second through `link_batch`, batched).

Question sets (brackets are always stripped; the gold span is moved along with any edit):
  clean       the questions as written
  lower       the whole question lower-cased
  typo        one typo in the mention (see `inject_typo`), seeded per hop
  lower_typo  both

Usage:
  .venv/bin/python eval/bench_linking.py                      # all test questions, both linkers, all sets
  .venv/bin/python eval/bench_linking.py --limit 2000 --sets lower,typo --out eval/runs/linking-robust.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import string
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from kgqa.config import load_settings
from kgqa.evaluate import Benchmark
from kgqa.graph import open_graph
from kgqa.linking import linker_dir
from kgqa.linking.linker import BertLinker
from kgqa.linking.names import NameMatchLinker
from kgqa.linking.tagger import parse_bracketed

SETS = ("clean", "lower", "typo", "lower_typo")


@dataclass
class Case:
    question: str
    span: tuple[int, int]
    topic: str


def read_cases(file: Path, limit: int | None) -> list[Case]:
    cases = []
    with file.open(encoding="utf-8") as handle:
        for line in handle:
            if limit is not None and len(cases) >= limit:
                break
            marked = parse_bracketed(line.split("\t")[0])
            if marked is not None:
                cases.append(Case(marked.text, marked.spans[0], marked.topic))
    return cases


def inject_typo(case: Case, rng: random.Random) -> Case:
    """One edit inside the mention: swap two neighbouring letters, drop one, double one, or replace one
    by a random lower-case letter (each op equally likely), at a uniformly chosen letter that is not the
    mention's first character nor a one-letter word ("The King and I"). Mentions shorter than 4 characters
    are left as they are (a typo in "Up" or "Elf" names another film as often as not)."""
    start, end = case.span
    mention = case.question[start:end]
    positions = [i for i, ch in enumerate(mention) if ch.isalpha() and i > 0
                 and (mention[i - 1].isalnum() or (i + 1 < len(mention) and mention[i + 1].isalnum()))]
    if len(mention) < 4 or not positions:
        return case
    i = rng.choice(positions)
    op = rng.choice(("swap", "drop", "double", "replace"))
    if op == "swap" and (i + 1 >= len(mention) or not mention[i + 1].isalpha() or mention[i + 1] == mention[i]):
        op = "replace"
    if op == "swap":
        typo = mention[:i] + mention[i + 1] + mention[i] + mention[i + 2:]
    elif op == "drop":
        typo = mention[:i] + mention[i + 1:]
    elif op == "double":
        typo = mention[:i] + mention[i] + mention[i:]
    else:
        typo = mention[:i] + rng.choice([c for c in string.ascii_lowercase if c != mention[i].lower()]) + mention[i + 1:]
    return Case(case.question[:start] + typo + case.question[end:], (start, start + len(typo)), case.topic)


def lower(case: Case) -> Case:
    text = case.question.lower()
    if len(text) != len(case.question):  # a few characters change length when lower-cased: keep offsets
        text = "".join(ch.lower() if len(ch.lower()) == 1 else ch for ch in case.question)
    return Case(text, case.span, case.topic)


def make_set(cases: list[Case], name: str, seed: int, hop: int) -> list[Case]:
    rng = random.Random(f"{seed}-{hop}")
    if name == "clean":
        return cases
    if name == "lower":
        return [lower(c) for c in cases]
    if name == "typo":
        return [inject_typo(c, rng) for c in cases]
    if name == "lower_typo":
        return [lower(inject_typo(c, rng)) for c in cases]
    raise SystemExit(f"unknown set {name!r}; known: {', '.join(SETS)}")


def score(linker, cases: list[Case], chunk: int) -> dict:
    tp = predicted = correct_topic = 0
    started = time.perf_counter()
    mistakes = []
    for begin in range(0, len(cases), chunk):
        batch = cases[begin:begin + chunk]
        for case, mentions in zip(batch, linker.link_batch([c.question for c in batch])):
            predicted += len(mentions)
            tp += any((m.start, m.end) == case.span for m in mentions)
            hit = bool(mentions) and mentions[0].candidates[0].name == case.topic
            correct_topic += hit
            if not hit and len(mistakes) < 15:
                mistakes.append({"question": case.question, "gold": case.topic,
                                 "got": [(m.text, m.candidates[0].name) for m in mentions[:2]]})
    seconds = time.perf_counter() - started
    n = max(len(cases), 1)
    precision = tp / predicted if predicted else 0.0
    recall = tp / n
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    return {"questions": len(cases), "mention_precision": round(100 * precision, 2),
            "mention_recall": round(100 * recall, 2), "mention_f1": round(100 * f1, 2),
            "topic_accuracy": round(100 * correct_topic / n, 2), "questions_per_s": round(len(cases) / seconds, 1),
            "seconds": round(seconds, 1), "mistakes": mistakes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", default="test")
    parser.add_argument("--hops", default="1,2,3")
    parser.add_argument("--limit", type=int, default=None, help="at most this many questions per hop")
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--linkers", default="names,bert")
    parser.add_argument("--model", type=Path, default=None, help="linker model folder (default: the agent's)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the typo generator")
    parser.add_argument("--chunk", type=int, default=512, help="questions per link_batch call")
    parser.add_argument("--out", type=Path, default=Path("eval/runs/linking.json"))
    args = parser.parse_args()

    settings = load_settings()
    graph = open_graph(settings)
    bench = Benchmark.load("metaqa")
    linkers = {}
    for name in args.linkers.split(","):
        started = time.perf_counter()
        if name == "names":
            linkers[name] = NameMatchLinker(graph)
        elif name == "bert":
            from kgqa.linking.aliases import NameEmbedder

            linkers[name] = BertLinker.load(args.model or linker_dir(settings, graph), graph, settings.cache_dir,
                                            NameEmbedder(settings.embedder))
        else:
            raise SystemExit(f"unknown linker {name!r}: names or bert")
        print(f"{name}: loaded in {time.perf_counter() - started:.2f} s", file=sys.stderr)

    report = {"command": "python " + " ".join(sys.argv), "split": args.split, "limit": args.limit,
              "seed": args.seed, "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
              "model": str(args.model or linker_dir(settings, graph)), "results": {}}
    for hop in [int(h) for h in args.hops.split(",")]:
        cases = read_cases(bench.data_dir / bench.splits[args.split].format(hop=hop), args.limit)
        for set_name in args.sets.split(","):
            questions = make_set(cases, set_name, args.seed, hop)
            for name, linker in linkers.items():
                load_before = os.getloadavg()[0]
                result = score(linker, questions, args.chunk)
                result["load_average"] = round((load_before + os.getloadavg()[0]) / 2, 1)
                report["results"][f"{hop}/{set_name}/{name}"] = result
                print(f"hop {hop} {set_name:10s} {name:5s} P {result['mention_precision']:6.2f} "
                      f"R {result['mention_recall']:6.2f} F1 {result['mention_f1']:6.2f} "
                      f"topic {result['topic_accuracy']:6.2f}  {result['questions_per_s']:7.1f} q/s "
                      f"(load {result['load_average']})", file=sys.stderr, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"report: {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
