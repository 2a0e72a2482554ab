"""Weak labels on PathQuestion: do the topic and path found from question–answer pairs alone match the gold?

PathQuestion (Zhou et al., COLING 2018; read from ../shared/data/pathquestion, never copied into the repo) gives
each question its gold topic and relation path. This script converts PQ-2H / PQ-3H into what a user of kgqa
would bring: the graph as `s<TAB>r<TAB>o` and a question file `question<TAB>answer1|answer2` without the path
or topic. It labels a fixed sample with `kgqa.weak_labels.label_questions`, under the graph's default
conventions and with `topic_as_answer = false`, and scores the labels against the gold:

- topic accuracy: the chosen topic is the gold topic (over the sample);
- path accuracy: the chosen path is the gold path; "gold among ties": or one of the equally good paths;
  and among the labels whose path is as long as the gold one (a shorter path with the same answers wins);
- answer F1 of the chosen path against the gold answers, and how often its answers equal the gold path's
  (a different path with the same answers is right on that question: `gender` for `parents|gender`);
- dropped questions by reason, questions per second.

    .venv/bin/python eval/pathquestion.py --sample 2000 --seed 0 --out eval/results/weak-labels/pq.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from kgqa.graph.embedded import EmbeddedGraph
from kgqa.types import parse_path
from kgqa.weak_labels import LabelReport, answer_f1, label_questions, read_qa_file

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "pathquestion"
SETS = {"PQ-2H": ("PQ-2H.txt", "2H-kb.txt"), "PQ-3H": ("PQ-3H.txt", "3H-kb.txt"),
        "PQL-2H": ("PQL-2H.txt", "PQL2-KB.txt"), "PQL-3H": ("PQL-3H.txt", "PQL3-KB.txt")}
CONVENTIONS = {"default": {"walk_through_topic": True, "topic_as_answer": True},
               "topic_as_answer=false": {"walk_through_topic": True, "topic_as_answer": False}}


@dataclass(frozen=True)
class Gold:
    question: str
    answers: tuple[str, ...]
    topic: str
    path: str


def read_gold(file: Path) -> list[Gold]:
    """`question<TAB>answer(answer1/answer2/)<TAB>topic#r1#e1#r2#...#<end>#answer` lines."""
    out = []
    for line in file.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        question, answer, chain = line.split("\t")[:3]
        answers = tuple(a for a in answer[answer.index("(") + 1:answer.rindex(")")].split("/") if a)
        parts = chain.split("#")
        parts = parts[:parts.index("<end>")] if "<end>" in parts else parts
        out.append(Gold(question.strip(), answers, parts[0], "|".join(parts[1::2])))
    return out


def convert(name: str, data: Path, work: Path) -> tuple[Path, Path, list[Gold]]:
    """Write the set's graph (`kb.tsv`) and its question file without paths (`questions.tsv`)."""
    questions_file, kb_file = SETS[name]
    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    rows = [[f for f in line.split("\t") if f.strip()] for line in (data / kb_file).read_text("utf-8").splitlines()]
    kb = folder / "kb.tsv"
    kb.write_text("".join("\t".join(r) + "\n" for r in rows if len(r) == 3), encoding="utf-8")
    gold = read_gold(data / questions_file)
    questions = folder / "questions.tsv"
    questions.write_text("".join(f"{g.question}\t{'|'.join(g.answers)}\n" for g in gold), encoding="utf-8")
    return kb, questions, gold


def score(graph: EmbeddedGraph, report: LabelReport, gold: list[Gold]) -> dict:
    """The labels against the gold topics and paths (`gold[i]` belongs to row i)."""
    n = report.questions
    topic_ok = path_ok = among_ties = same_answers = gold_worse = 0
    gold_f1 = []
    confusions: Counter = Counter()
    hops: Counter = Counter()
    for label in report.labels:
        g, example = gold[label.row], label.example
        topic_ok += example.topic == g.topic
        path_ok += example.topic == g.topic and example.path == g.path
        among_ties += example.topic == g.topic and (example.path == g.path or g.path in label.ties)
        gold_answers = set(graph.expand(g.topic, parse_path(g.path)).answers) if graph.find_entities(g.topic) else set()
        chosen = set(graph.expand(example.topic, example.steps).answers)
        same_answers += chosen == gold_answers
        f1 = answer_f1(sorted(gold_answers), frozenset(a.casefold() for a in g.answers))
        gold_f1.append(f1)
        gold_worse += f1 < label.f1
        if example.path != g.path:
            confusions[f"{example.path} for {g.path}"] += 1
        gold_hops = len(parse_path(g.path))
        hops["shorter" if example.hops < gold_hops else "longer" if example.hops > gold_hops else "same"] += 1
    pct = lambda k: round(100 * k / n, 2) if n else 0.0  # noqa: E731
    kept = len(report.labels)
    return {"topic_accuracy": pct(topic_ok), "path_accuracy": pct(path_ok), "path_accuracy_gold_among_ties":
            pct(among_ties), "same_answers_as_gold_path": pct(same_answers),
            "chosen_path_answer_f1_mean": round(sum(l.f1 for l in report.labels) / kept, 4) if kept else 0.0,
            "gold_path_answer_f1_mean": round(sum(gold_f1) / kept, 4) if kept else 0.0,
            "gold_path_scores_lower_than_chosen": gold_worse, "chosen_hops_vs_gold": dict(hops),
            "path_accuracy_when_as_long_as_gold": round(100 * path_ok / hops["same"], 2) if hops["same"] else 0.0,
            "top_path_confusions": dict(confusions.most_common(10))}


def run_set(name: str, data: Path, work: Path, sample: int, seed: int, max_hops: int) -> dict:
    kb, questions, gold = convert(name, data, work)
    graph = EmbeddedGraph.from_file(kb, "tsv")
    rows, problems = read_qa_file(questions)
    line_of = [int(row.where.rsplit(" ", 1)[1]) for row in rows]
    chosen = sorted(random.Random(seed).sample(range(len(rows)), min(sample, len(rows))))
    rows, sample_gold = [rows[i] for i in chosen], [gold[line_of[i] - 1] for i in chosen]
    out = {"questions_in_file": len(gold), "sample": len(rows), "read_problems": problems[:10],
           "graph": {k: v for k, v in graph.stats().items() if k in ("entities", "triples", "relations")}}
    for convention, settings in CONVENTIONS.items():
        graph.walk_through_topic, graph.topic_as_answer = settings["walk_through_topic"], settings["topic_as_answer"]
        report = label_questions(graph, rows, max_hops=max_hops)
        out[convention] = {**report.summary(), **score(graph, report, sample_gold)}
    return out


def machine() -> dict:
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    return {"cpus": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()], "uptime": uptime,
            "python": platform.python_version()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--sample", type=int, default=2000, help="questions per set (fixed seed)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-hops", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "eval" / "results" / "weak-labels" / "pq.json")
    args = parser.parse_args()
    before = machine()
    with tempfile.TemporaryDirectory(prefix="kgqa-pq-") as work:
        sets = {name: run_set(name, args.data, Path(work), args.sample, args.seed, args.max_hops) for name in SETS}
    result = {"command": f"eval/pathquestion.py --sample {args.sample} --seed {args.seed} --max-hops {args.max_hops}",
              "sets": sets, "machine_before": before, "machine_after": machine()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for name, found in sets.items():
        for convention in CONVENTIONS:
            r = found[convention]
            print(f"{name} {convention}: kept {r['kept']}/{r['questions']}, topic {r['topic_accuracy']}, path "
                  f"{r['path_accuracy']} (ties {r['path_accuracy_gold_among_ties']}), same answers "
                  f"{r['same_answers_as_gold_path']}, F1 {r['chosen_path_answer_f1_mean']}, "
                  f"{r['questions_per_second']} q/s, dropped {r['dropped']}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
