"""A query program (kgqa.program) as one parameterised, read-only Cypher query on Neo4j.

The query walks every branch (and every excluded branch) exactly as `expand_many` does, capped the same
way (the hops are `EXPAND_HOP`), keeps the answers all branches share and no excluded branch reaches,
and reads the literals one step away from each of them for the program's constraints and aggregate.
The comparisons, the ordering and the yes/no test are then `kgqa.program.finish`, shared with the
embedded store, so that both order "1994", "2001" and "10" alike. Relation types are checked against
the schema (`Neo4jGraph._rel`); entity names and the cap are parameters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kgqa.errors import GraphError
from kgqa.graph.neo4j_store import EXPAND_HOP, name_key, step_pattern
from kgqa.graph.store import step_triple
from kgqa.program import Branch, Gathered, Program, check_program, finish, lookup_steps
from kgqa.types import Triple

if TYPE_CHECKING:
    from kgqa.graph.neo4j_store import Neo4jGraph
    from kgqa.program import ProgramResult

BRANCH_START = """
CALL () {{
  WITH {k} AS i
  MATCH (t:{label}) WHERE t.key = $keys[i]
  WITH i, t ORDER BY t.name = $names[i] DESC, t.seq LIMIT 1
  WITH i, t, [[t, []]] AS f0, [] AS edges
"""
BRANCH_END = """
  RETURN [e IN f{hops} | [e[0], [e[0].seq, e[0].name] + e[1]]] AS b{k}, edges AS e{k}
}}
"""
"""Branch k: its topic (the entity the name means, as `expand_many`), walked hop by hop; each answer as
[node, chain], the chain holding [seq, name] of the answer and of every entity back to the topic."""

LITERALS = """
CALL (a) {{
  OPTIONAL MATCH (a){pattern}(v)
  WITH v ORDER BY v.seq
  RETURN collect(v.name) AS l{j}
}}
"""


def program_query(graph: "Neo4jGraph", program: Program) -> str:
    """The one query text of `program` (branches first, then the excluded branches)."""
    walked = list(program.branches) + list(program.exclude)
    parts = []
    for k, branch in enumerate(walked):
        parts.append(graph._q(BRANCH_START, k=str(k)))
        for hop, step in enumerate(branch.path, start=1):
            parts.append(EXPAND_HOP.format(prev=hop - 1, hop=hop, pattern=step_pattern(step, graph._rel(step)),
                                           keep="y <> t" if graph.avoids_topic(hop - 1, len(branch.path)) else "true"))
        parts.append(BRANCH_END.format(hops=len(branch.path), k=k))
    shared = len(program.branches)
    carried = ", ".join(f"b{k}" for k in range(1, len(walked))) + ", " if len(walked) > 1 else ""
    edges = ", ".join(f"e{k}" for k in range(len(walked)))
    parts.append(f"UNWIND b0 AS c0\nWITH c0[0] AS a, c0[1] AS chain0, {carried}[{edges}] AS edges\n")
    for k in range(1, shared):
        parts.append(f"WITH a, chain0, {', '.join(f'chain{m}' for m in range(1, k)) + ', ' if k > 1 else ''}"
                     f"{carried}edges, [c IN b{k} WHERE c[0] = a | c[1]] AS found{k}\n"
                     f"WHERE size(found{k}) > 0\n"
                     f"WITH *, found{k}[0] AS chain{k}\n")
    excluded = [f"none(c IN b{k} WHERE c[0] = a)" for k in range(shared, len(walked))]
    chains = ", ".join(f"chain{k}" for k in range(shared))
    parts.append(f"WITH a, [{chains}] AS chains, edges" + (f" WHERE {' AND '.join(excluded)}" if excluded else "")
                 + "\n")
    steps = lookup_steps(program)
    for j, step in enumerate(steps):
        parts.append(LITERALS.format(pattern=step_pattern(step, graph._rel(step)), j=j))
    literals = ", ".join(f"l{j}" for j in range(len(steps)))
    parts.append(f"RETURN a.name AS answer, chains, [{literals}] AS literals, edges ORDER BY a.name\n")
    return "".join(parts)


def run_program(graph: "Neo4jGraph", program: Program) -> "ProgramResult":
    """Execute `program` in one query; a branch entity the graph lacks is a GraphError."""
    check_program(program, set(graph.relations()))
    walked: list[Branch] = list(program.branches) + list(program.exclude)
    names = [b.entity for b in walked]
    rows = graph._read_all(program_query(graph, program), names=names, keys=[name_key(n) for n in names],
                           cap=graph.walk_cap)
    if not rows:  # no common answer, or an entity that is not there (which the walk cannot tell apart)
        for name in names:
            if not graph.find_entities(name):
                raise GraphError(f"no entity named {name!r} in the graph")
    candidates: dict[str, list[Triple]] = {}
    literals: list[dict[str, list[str]]] = [{} for _ in lookup_steps(program)]
    capped = False
    for row in rows:
        evidence: list[Triple] = []
        for branch, found in zip(program.branches, row["chains"]):
            chain = found[1::2][::-1]  # names: topic, hop 1, ..., answer
            evidence += [step_triple(step, chain[h], chain[h + 1]) for h, step in enumerate(branch.path)]
        candidates[row["answer"]] = evidence
        for j, values in enumerate(row["literals"]):
            literals[j][row["answer"]] = list(values)
        capped |= any(n > graph.walk_cap for per_branch in row["edges"] for n in per_branch)
    return finish(program, Gathered(dict(sorted(candidates.items())), literals, capped), graph.find_entities)
