"""A small probe of wordings no generator here uses: 36 questions over the bundled movie graph, 6 of each
kind, written by hand in one sitting after the planner's last change (2026-12-02) and measured once;
never tuned on. Each comes with its gold program; the gold answers are computed by executing it on the
bundled graph (`kgqa.program.execute`, the graph's own conventions), never typed.

    .venv/bin/python eval/fresh_questions.py          # writes eval/data/complex/fresh.jsonl
    .venv/bin/python eval/bench_complex.py --data eval/data/complex/fresh.jsonl --out eval/results/complex/fresh.json
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "eval"))

from complex import YEAR, b, graph, record, save  # noqa: E402

from kgqa.program import Aggregate, Constraint, Program, execute  # noqa: E402
from kgqa.types import Step  # noqa: E402

OUT = ROOT / "eval" / "data" / "complex" / "fresh.jsonl"


def one(entity: str, path: str, **parts) -> Program:
    return Program((b(entity, path),), **parts)


QUESTIONS: list[tuple[str, Program]] = [
    # chain
    ("can you tell me who was in charge of directing Jaws", one("Jaws", "directed_by")),
    ("Heat: who is in the cast?", one("Heat", "starred_actors")),
    ("what year did Vertigo hit theaters", one("Vertigo", "release_year")),
    ("films Kathryn Bigelow has helmed", one("Kathryn Bigelow", "directed_by_inv")),
    ("who penned the screenplay for Chinatown", one("Chinatown", "written_by")),
    ("what sort of genre does Alien belong to", one("Alien", "has_genre")),
    # conjunction
    ("movies featuring both Robert De Niro and Al Pacino",
     Program((b("Robert De Niro", "starred_actors_inv"), b("Al Pacino", "starred_actors_inv")))),
    ("films Clint Eastwood directed and also acted in",
     Program((b("Clint Eastwood", "directed_by_inv"), b("Clint Eastwood", "starred_actors_inv")))),
    ("which Woody Allen films have Diane Keaton in them",
     Program((b("Woody Allen", "directed_by_inv"), b("Diane Keaton", "starred_actors_inv")))),
    ("Martin Scorsese movies without Robert De Niro",
     Program((b("Martin Scorsese", "directed_by_inv"),), exclude=(b("Robert De Niro", "starred_actors_inv"),))),
    ("comedies that Jim Carrey starred in",
     Program((b("Jim Carrey", "starred_actors_inv"), b("Comedy", "has_genre_inv")))),
    ("Tom Hanks films that Ron Howard did not direct",
     Program((b("Tom Hanks", "starred_actors_inv"),), exclude=(b("Ron Howard", "directed_by_inv"),))),
    # filter
    ("Steven Spielberg films released before 1980", one("Steven Spielberg", "directed_by_inv",
                                                         constraints=(Constraint(YEAR, "lt", "1980"),))),
    ("movies with Meryl Streep that came out after 2005", one("Meryl Streep", "starred_actors_inv",
                                                              constraints=(Constraint(YEAR, "gt", "2005"),))),
    ("Alfred Hitchcock movies released between 1950 and 1955",
     one("Alfred Hitchcock", "directed_by_inv", constraints=(Constraint(YEAR, "between", "1950", "1955"),))),
    ("films directed by John Ford in 1939", one("John Ford", "directed_by_inv",
                                                constraints=(Constraint(YEAR, "eq", "1939"),))),
    ("Kevin Bacon movies newer than 2000", one("Kevin Bacon", "starred_actors_inv",
                                               constraints=(Constraint(YEAR, "gt", "2000"),))),
    ("Sidney Lumet pictures from before 1970", one("Sidney Lumet", "directed_by_inv",
                                                   constraints=(Constraint(YEAR, "lt", "1970"),))),
    # count
    ("how many movies has Woody Allen directed", one("Woody Allen", "directed_by_inv", aggregate=Aggregate("count"))),
    ("count the films Robert De Niro appeared in", one("Robert De Niro", "starred_actors_inv",
                                                       aggregate=Aggregate("count"))),
    ("number of actors in Heat", one("Heat", "starred_actors", aggregate=Aggregate("count"))),
    ("how many films did Tom Hanks and Meg Ryan make together",
     Program((b("Tom Hanks", "starred_actors_inv"), b("Meg Ryan", "starred_actors_inv")), aggregate=Aggregate("count"))),
    ("how many genres is Alien listed under", one("Alien", "has_genre", aggregate=Aggregate("count"))),
    ("how many Steven Spielberg films came out after 1990",
     one("Steven Spielberg", "directed_by_inv", constraints=(Constraint(YEAR, "gt", "1990"),),
         aggregate=Aggregate("count"))),
    # superlative
    ("what was Martin Scorsese's first movie", one("Martin Scorsese", "directed_by_inv",
                                                   aggregate=Aggregate("min", YEAR))),
    ("Clint Eastwood's most recent film as a director", one("Clint Eastwood", "directed_by_inv",
                                                            aggregate=Aggregate("max", YEAR))),
    ("the newest film starring Jodie Foster", one("Jodie Foster", "starred_actors_inv",
                                                  aggregate=Aggregate("max", YEAR))),
    ("the three oldest films John Ford directed", one("John Ford", "directed_by_inv",
                                                      aggregate=Aggregate("min", YEAR, k=3))),
    ("in Heat, which actor has appeared in the most films",
     one("Heat", "starred_actors", aggregate=Aggregate("max", Step("starred_actors", True), "count"))),
    ("the latest movie written by Quentin Tarantino", one("Quentin Tarantino", "written_by_inv",
                                                          aggregate=Aggregate("max", YEAR))),
    # yes/no
    ("was Jaws directed by Steven Spielberg", one("Jaws", "directed_by", ask="Steven Spielberg")),
    ("is Al Pacino in Heat", one("Heat", "starred_actors", ask="Al Pacino")),
    ("did Woody Allen direct Vertigo", one("Vertigo", "directed_by", ask="Woody Allen")),
    ("was Alien released in 1980", one("Alien", "release_year", ask="1980")),
    ("is Chinatown a comedy", one("Chinatown", "has_genre", ask="Comedy")),
    ("did Quentin Tarantino write Pulp Fiction", one("Pulp Fiction", "written_by", ask="Quentin Tarantino")),
]


def main() -> int:
    g = graph()
    records = [record(question, program, execute(g, program)) for question, program in QUESTIONS]
    save(records, OUT)
    print(f"wrote {len(records)} questions to {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
