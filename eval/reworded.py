"""Movie-graph questions worded by hand, unlike MetaQA's templates: a paraphrase-robustness test set.

The wordings below were written for this set (not taken from MetaQA, nor from kgqa's own question writer);
the topics are sampled from the bundled graph with a fixed seed and the gold answers are the graph's
(walked with the MetaQA benchmark's conventions). The set is for evaluation only: no model is trained or
tuned on it. Writes `eval/data/reworded/{1,2}hop.tsv` (question, answers, path, topic), which the benchmark
`eval/benchmarks/metaqa-reworded.toml` reads:

    .venv/bin/python eval/reworded.py                  # writes the set (deterministic)
    .venv/bin/kgqa eval metaqa-reworded --out eval/results/reworded-test
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kgqa.config import load_settings  # noqa: E402
from kgqa.graph import open_graph  # noqa: E402
from kgqa.types import parse_path  # noqa: E402

OUT = ROOT / "eval" / "data" / "reworded"
PER_WORDING = 4
MAX_ANSWERS = 25

WORDINGS: dict[str, list[str]] = {
    "directed_by": ["who was behind the camera on {e}", "{e} had which director", "who is credited as director of {e}",
                    "the director of the film {e}, please"],
    "directed_by_inv": ["which films has {e} directed", "films {e} was the director of",
                        "what has {e} directed over the years", "name some pictures directed by {e}"],
    "written_by": ["who penned the script of {e}", "who is the screenwriter behind {e}", "{e} was written by whom",
                   "whose screenplay is {e}"],
    "written_by_inv": ["which films did {e} write the script for", "scripts written by {e}",
                       "{e} is the writer of which movies", "movies with a screenplay from {e}"],
    "starred_actors": ["who is in the cast of {e}", "which actors played in {e}", "the stars of {e}",
                       "who appears on screen in {e}"],
    "starred_actors_inv": ["which movies feature {e}", "{e} has acted in what", "films with {e} in the cast",
                           "in which pictures did {e} play a role"],
    "release_year": ["in what year did {e} come out", "when was {e} first shown", "release date of {e}",
                     "{e} premiered in which year"],
    "has_genre": ["what kind of movie is {e}", "{e} falls under which genre", "how would you classify {e}",
                  "the genre of {e}"],
    "has_tags": ["what is {e} about", "describe {e} in a few keywords", "topics associated with {e}",
                 "what themes does {e} have"],
    "has_tags_inv": ["films tagged with {e}", "which movies are about {e}", "find me films on the subject of {e}",
                     "movies described by {e}"],
    "in_language": ["what language is spoken in {e}", "{e} was made in which language", "the language of {e}",
                    "in which tongue is {e}"],
    "starred_actors_inv|directed_by": ["who directed the films {e} acted in", "which directors has {e} worked under",
                                       "directors of movies starring {e}", "{e} has been directed by whom"],
    "starred_actors_inv|release_year": ["when did the films with {e} come out", "years of {e}'s movies",
                                        "in which years were {e}'s films released",
                                        "{e} movies came out in what years"],
    "starred_actors_inv|starred_actors": ["who has shared the screen with {e}", "{e}'s co-stars",
                                          "which actors appeared alongside {e}", "co-stars of {e}"],
    "written_by_inv|directed_by": ["who directed the scripts of {e}", "which directors filmed {e}'s screenplays",
                                   "directors of movies written by {e}", "{e} wrote films directed by whom"],
    "directed_by_inv|starred_actors": ["who acted in films by director {e}", "actors in {e}'s movies",
                                       "which actors has {e} directed", "the casts of films {e} directed"],
    "directed_by_inv|has_genre": ["what genres does {e} direct", "which genres are {e}'s films",
                                  "kinds of movies directed by {e}", "{e} directs movies of what genre"],
    "written_by_inv|release_year": ["when were {e}'s scripts made into films", "years of films written by {e}",
                                    "the release years of {e}'s screenplays", "{e} wrote movies released when"],
    "directed_by|directed_by_inv": ["what else did the director of {e} make", "other films by the director of {e}",
                                    "films from the same director as {e}", "{e}'s director also directed what"],
    "starred_actors|starred_actors_inv": ["what other films did the cast of {e} appear in",
                                          "movies sharing actors with {e}", "films with actors from {e}",
                                          "where else did the actors of {e} act"],
}


def main() -> None:
    settings = load_settings(overrides={"walk_through_topic": False, "topic_as_answer": False})
    graph = open_graph(settings)
    graph.walk_through_topic = graph.topic_as_answer = False  # MetaQA's conventions (its benchmark file)
    rng = random.Random(2026)
    names = graph.entity_names()
    rows: dict[int, list[str]] = {1: [], 2: []}
    for path_text, wordings in WORDINGS.items():
        path = parse_path(path_text)
        first = path[0]
        wanted = PER_WORDING * len(wordings)
        used: set[str] = set()
        while len(used) < wanted:
            topic = rng.choice(names)
            if topic in used or len(topic) < 4 or topic.isdigit() or len(graph.find_entities(topic)) != 1:
                continue
            if first not in graph.next_steps_many([topic], [()])[0]:
                continue
            answers = sorted(set(graph.expand(topic, path).answers))
            if not answers or len(answers) > MAX_ANSWERS:
                continue
            wording = wordings[len(used) % len(wordings)]
            used.add(topic)
            rows[len(path)].append(f"{wording.format(e=topic)}\t{'|'.join(answers)}\t{path_text}\t{topic}")
    OUT.mkdir(parents=True, exist_ok=True)
    for hop, lines in rows.items():
        (OUT / f"{hop}hop.tsv").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        print(f"{hop}-hop: {len(lines)} questions -> {OUT / f'{hop}hop.tsv'}")


if __name__ == "__main__":
    main()
