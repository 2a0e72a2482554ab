"""N-Triples loading speed: `read_columns` on a generated file, against the parser it replaced (issue 14, item 6).

Not a test: the numbers go to eval/README.md. The file (written once, then reused) mixes IRIs with
percent- and \\u-escapes, blank nodes, plain literals with \\n, \\" and \\u escapes, raw UTF-8, language
tags and datatypes. The old parser is copied here (it decoded escapes with `unicode_escape`, which is
wrong for non-ASCII text, but it is what the new one is measured against).

    .venv/bin/python eval/bench_ntriples.py [--triples 1000000] [--file /tmp/bench-1m.nt] [--repeat 1]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import time
from pathlib import Path
from urllib.parse import unquote

from kgqa.graph.loaders import read_columns

_RELATIONS = ["directed_by", "written_by", "starred_actors", "release_year", "has_tags", "in_language",
              "label", "comment"]


def write_file(path: Path, triples: int, seed: int = 0) -> None:
    """`triples` lines of N-Triples, 1 in 50 of them a comment or blank line in between."""
    rng = random.Random(seed)
    entities = max(10, triples // 5)
    with path.open("w", encoding="utf-8") as out:
        for i in range(triples):
            if i % 50 == 0:
                out.write("# a comment line\n" if i % 100 == 0 else "\n")
            s = rng.randrange(entities)
            subject = f"<http://example.org/film/Film_{s}_(19{s % 100:02d})>" if s % 7 else f"_:b{s}"
            relation = _RELATIONS[i % len(_RELATIONS)]
            kind = i % 6
            if kind == 0:
                obj = f"<http://example.org/person/Person_{rng.randrange(entities)}>"
            elif kind == 1:
                obj = f'"19{rng.randrange(100):02d}"^^<http://www.w3.org/2001/XMLSchema#gYear>'
            elif kind == 2:
                obj = f'"Caf\\u00E9 number {rng.randrange(entities)}"@fr'
            elif kind == 3:
                obj = f'"line one\\nline \\"two\\" of {rng.randrange(entities)}"@en-GB'
            elif kind == 4:
                obj = f"<http://example.org/tag/Tag%20{rng.randrange(1000)}>"
            else:
                obj = f'"Émile {rng.randrange(entities)}"'
            out.write(f"{subject} <http://example.org/ontology#{relation}> {obj} .\n")


# ---- the parser before issue 14 item 6, copied from kgqa/graph/loaders.py -------------------------

_OLD_TERM = re.compile(r'\s*(<[^>]*>|_:\S+|"(?:[^"\\]|\\.)*"(?:@[\w-]+|\^\^<[^>]*>)?)')


def _old_name(term: str) -> str:
    if term.startswith("<"):
        iri = term[1:-1]
        local = re.split(r"[#/]", iri.rstrip("/#"))[-1] or iri
        return unquote(local).replace("_", " ")
    if term.startswith('"'):
        end = term.rfind('"')
        return term[1:end].encode("utf-8").decode("unicode_escape") if "\\" in term else term[1:end]
    return term


def _old_split(line: str) -> list[str]:
    terms, pos = [], 0
    for _ in range(3):
        match = _OLD_TERM.match(line, pos)
        if not match:
            return []
        terms.append(match.group(1))
        pos = match.end()
    if line[pos:].strip() != ".":
        return []
    subject, predicate, obj = terms
    if not predicate.startswith("<"):
        return []
    return [_old_name(subject), _old_name(predicate).replace(" ", "_"), _old_name(obj)]


def old_read_columns(path: Path):
    """The old `read_columns` for N-Triples: the old line loop (errors left out), then three Arrow arrays."""
    import pyarrow as pa

    triples = []
    with path.open("r", encoding="utf-8") as handle:
        for raw in handle:
            line = raw.rstrip("\r\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            parts = [part.strip() for part in _old_split(line)]
            if len(parts) != 3 or not all(parts) or not re.fullmatch(r"[\w.:-]+", parts[1]):
                raise ValueError(f"old parser rejects {line!r}")
            triples.append(tuple(parts))
    return tuple(pa.array([t[k] for t in triples], pa.string()) for k in range(3))


def timed(label: str, read, path: Path, repeat: int) -> float:
    """Best of `repeat` runs, wall clock and CPU time (the CPU time is steadier on a shared machine)."""
    wall = cpu = float("inf")
    for _ in range(repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        rows = len(read(path)[0])
        wall = min(wall, time.perf_counter() - started)
        cpu = min(cpu, time.process_time() - started_cpu)
    print(f"{label:<28} {rows:>10,} triples  wall {wall:6.2f} s = {rows / wall:>9,.0f}/s"
          f"  cpu {cpu:6.2f} s = {rows / cpu:>9,.0f}/s")
    return rows / cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--triples", type=int, default=1_000_000)
    parser.add_argument("--file", type=Path, default=Path("/tmp/bench-1m.nt"))
    parser.add_argument("--repeat", type=int, default=1, help="runs of each parser; the best is shown")
    args = parser.parse_args()
    if not args.file.exists():
        write_file(args.file, args.triples)
    size = args.file.stat().st_size
    print(f"{args.file}: {size / 1e6:.0f} MB, load average {os.getloadavg()[0]:.2f} before the runs")
    new = timed("read_columns (ntriples.py)", read_columns, args.file, args.repeat)
    old = timed("old parser (unicode_escape)", old_read_columns, args.file, args.repeat)
    print(f"new / old (CPU time): {new / old:.2f}x; load average {os.getloadavg()[0]:.2f} after the runs")


if __name__ == "__main__":
    main()
