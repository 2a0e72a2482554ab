"""A small non-movie graph (couples, children, nationalities) and questions about it worded by hand."""

from __future__ import annotations

import random

FIRST = ["Ann", "Bob", "Cai", "Dee", "Eli", "Fay", "Gus", "Hal", "Ida", "Jon", "Kim", "Lou"]
LAST = ["Marsh", "Stone", "Rivers", "Hale"]
COUNTRIES = ["Norway", "Peru", "Kenya"]


def family_graph() -> tuple[list[tuple[str, str, str]], list[str]]:
    """Couples with children and nationalities; question-answer lines worded freely about them."""
    rng = random.Random(5)
    people = [f"{f} {l}" for l in LAST for f in FIRST]
    triples, lines = [], []
    for i in range(0, len(people) - 2, 3):
        a, b, child = people[i], people[i + 1], people[i + 2]
        country = rng.choice(COUNTRIES)
        triples += [(a, "spouse", b), (b, "spouse", a), (a, "children", child), (b, "children", child),
                    (child, "nationality", country), (a, "nationality", country)]
        lines += [f"who is {a} married to\t{b}", f"name the husband or wife of {b}\t{a}",
                  f"which kids does {a} have\t{child}", f"where is {child} a citizen of\t{country}",
                  f"what country are the children of {b} from\t{country}"]
    return triples, lines
