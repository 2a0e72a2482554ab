"""Bulk-load triples into Neo4j over Bolt: batched UNWIND, idempotent, with a progress callback.

The layout is the one `kgqa.graph.neo4j_store` reads (see its docstring for why each relation is a
relationship type): entities are `(:Entity {name, key, seq})` nodes under a uniqueness constraint on
`name` plus an index on `key`; each triple is `(subject)-[:relation]->(object)`.

Into a label that holds no entity yet, entities and triples are CREATEd (no existence checks: faster,
see eval/neo4j.md); into one that holds some, everything is MERGEd. So loading a file twice, or
resuming a load that died half way (its label is no longer empty), neither duplicates nor loses a
triple; an entity keeps the `seq` (load order) it got when it was first created.

`write_import_files` writes the same layout as CSV files for `neo4j-admin database import full`, the
offline bulk importer: faster still for a big first load, but it needs the server stopped, the
files on the server's machine and an empty database (it replaces the whole database, every label),
so it is a tool for setting up a server, not something `kgqa kg load` can do over Bolt.

Entity names travel as parameters; relation names are formatted into the query text (a type cannot
be a parameter), so each one is checked against the loader's one-word rule first and backtick-quoted.
"""

from __future__ import annotations

import csv
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import neo4j

from kgqa.config import Settings
from kgqa.errors import GraphError
from kgqa.graph.loaders import read_triples
from kgqa.graph.neo4j_store import DEFAULT_LABEL, Neo4jConnection, check_label, name_key, quote_name
from kgqa.types import INVERSE_SUFFIX

BATCH_SIZE = 10_000
INDEX_WAIT_SECONDS = 300

_RELATION = re.compile(r"[\w.:-]+")

# ---- Cypher ({label}, {rel}, {name} formatted in after checking; doubled braces are literal) -------

CREATE_NAME_CONSTRAINT = "CREATE CONSTRAINT {name} IF NOT EXISTS FOR (n:{label}) REQUIRE n.name IS UNIQUE"
CREATE_KEY_INDEX = "CREATE INDEX {name} IF NOT EXISTS FOR (n:{label}) ON (n.key)"
AWAIT_INDEXES = "CALL db.awaitIndexes($seconds)"
NEXT_SEQ = "MATCH (n:{label}) RETURN coalesce(max(n.seq) + 1, 0) AS next"

COUNT_ENTITIES = "MATCH (n:{label}) RETURN count(n) AS entities"

CREATE_ENTITIES = """
UNWIND $rows AS row
CREATE (n:{label} {{name: row[0], key: row[1], seq: row[2]}})
"""

CREATE_TRIPLES = """
UNWIND $pairs AS pair
MATCH (s:{label} {{name: pair[0]}})
MATCH (o:{label} {{name: pair[1]}})
CREATE (s)-[:{rel}]->(o)
"""
"""Only into an empty label, with distinct triples: nothing to check for."""

MERGE_ENTITIES = """
UNWIND $rows AS row
MERGE (n:{label} {{name: row[0]}})
ON CREATE SET n.key = row[1], n.seq = row[2]
"""

MERGE_TRIPLES = """
UNWIND $pairs AS pair
MATCH (s:{label} {{name: pair[0]}})
MATCH (o:{label} {{name: pair[1]}})
MERGE (s)-[:{rel}]->(o)
"""

DELETE_TRIPLES_BATCH = """
MATCH (:{label})-[r]->()
WITH r LIMIT $limit
DELETE r
RETURN count(*) AS deleted
"""
"""Relationships first, a batch at a time: a hub's millions would not fit in one transaction."""
DELETE_BATCH = """
MATCH (n:{label})
WITH n LIMIT $limit
DETACH DELETE n
RETURN count(*) AS deleted
"""

DROP_CONSTRAINT = "DROP CONSTRAINT {name} IF EXISTS"
DROP_INDEX = "DROP INDEX {name} IF EXISTS"

Progress = Callable[[str, int, int], None]
"""on_progress(phase, done, total): phase is 'entities' or 'triples'."""


@dataclass
class LoadSummary:
    triples: int = 0
    entities: int = 0
    entities_created: int = 0
    triples_created: int = 0
    seconds: float = 0.0
    per_relation: dict[str, int] = field(default_factory=dict)
    method: str = "merge"
    """'create' (the label was empty) or 'merge'."""


def schema_names(label: str) -> tuple[str, str]:
    """Names of the uniqueness constraint and the key index of a label."""
    return f"kgqa_{label.lower()}_name", f"kgqa_{label.lower()}_key"


def check_relation(relation: str) -> str:
    if not _RELATION.fullmatch(relation) or relation.endswith(INVERSE_SUFFIX):
        raise GraphError(f"relation {relation!r} cannot be loaded: relation names are one word "
                         f"(letters, digits, '_', '.', ':', '-') not ending in {INVERSE_SUFFIX!r}")
    return relation


def entity_order(triples: list[tuple[str, str, str]]) -> list[str]:
    """Entities in EmbeddedGraph's numbering order: subjects as first seen, then the other objects."""
    order = dict.fromkeys(s for s, _, _ in triples)
    order.update(dict.fromkeys(o for _, _, o in triples))
    return list(order)


def _batches(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def ensure_schema(connection: Neo4jConnection, label: str) -> None:
    constraint, index = schema_names(check_label(label))
    quoted = quote_name(label)
    with connection.errors(), connection.driver.session(database=connection.database) as session:
        session.run(CREATE_NAME_CONSTRAINT.format(name=constraint, label=quoted)).consume()
        session.run(CREATE_KEY_INDEX.format(name=index, label=quoted)).consume()
        session.run(AWAIT_INDEXES, seconds=INDEX_WAIT_SECONDS).consume()


def load_triples(connection: Neo4jConnection, triples: list[tuple[str, str, str]], *, label: str = DEFAULT_LABEL,
                 batch_size: int = BATCH_SIZE, on_progress: Progress | None = None) -> LoadSummary:
    """Load `triples` into the graph under `label`, `batch_size` rows per write transaction: CREATE into
    an empty label, MERGE into one that has entities already."""
    started = time.perf_counter()
    triples = list(dict.fromkeys(triples))
    by_relation: dict[str, list[list[str]]] = defaultdict(list)
    for s, r, o in triples:
        by_relation[check_relation(r)].append([s, o])
    quoted = quote_name(check_label(label))
    ensure_schema(connection, label)
    summary = LoadSummary(triples=len(triples), per_relation={r: len(p) for r, p in sorted(by_relation.items())})

    entities = entity_order(triples)
    summary.entities = len(entities)
    existing = connection.read(lambda tx: tx.run(COUNT_ENTITIES.format(label=quoted)).single()["entities"])
    summary.method = "merge" if existing else "create"
    first = connection.read(lambda tx: tx.run(NEXT_SEQ.format(label=quoted)).single()["next"]) if existing else 0
    rows = [[name, name_key(name), first + i] for i, name in enumerate(entities)]
    write_entities = (MERGE_ENTITIES if existing else CREATE_ENTITIES).format(label=quoted)
    done = 0
    for batch in _batches(rows, batch_size):
        counters = connection.write(_write, write_entities, {"rows": batch})
        summary.entities_created += counters.nodes_created
        done += len(batch)
        if on_progress:
            on_progress("entities", done, len(rows))

    done = 0
    write_triples = MERGE_TRIPLES if existing else CREATE_TRIPLES
    for relation, pairs in sorted(by_relation.items()):
        query = write_triples.format(label=quoted, rel=quote_name(relation))
        for batch in _batches(pairs, batch_size):
            counters = connection.write(_write, query, {"pairs": batch})
            summary.triples_created += counters.relationships_created
            done += len(batch)
            if on_progress:
                on_progress("triples", done, len(triples))
    summary.seconds = time.perf_counter() - started
    return summary


def write_import_files(triples: list[tuple[str, str, str]], folder: Path) -> tuple[Path, Path]:
    """The layout as CSV files for `neo4j-admin database import full` (see eval/neo4j.md for the command):
    `entities.csv` (name:ID, key, seq:long) and `triples.csv` (:START_ID, :END_ID, :TYPE)."""
    triples = list(dict.fromkeys(triples))
    for _, r, _ in triples:
        check_relation(r)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    entities_file, triples_file = folder / "entities.csv", folder / "triples.csv"
    with entities_file.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, quoting=csv.QUOTE_ALL)
        writer.writerow(["name:ID", "key", "seq:long"])
        writer.writerows([name, name_key(name), i] for i, name in enumerate(entity_order(triples)))
    with triples_file.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, quoting=csv.QUOTE_ALL)
        writer.writerow([":START_ID", ":END_ID", ":TYPE"])
        writer.writerows([s, o, r] for s, r, o in triples)
    return entities_file, triples_file


def _write(tx: neo4j.ManagedTransaction, query: str, params: dict) -> neo4j.SummaryCounters:
    return tx.run(query, params).consume().counters


def load_file(settings: Settings, path: Path, fmt: str | None = None, *, label: str = DEFAULT_LABEL,
              batch_size: int = BATCH_SIZE, on_progress: Progress | None = None) -> LoadSummary:
    """Read a triples file (any format kgqa reads) and load it into the Neo4j server of `settings.graph`."""
    triples = read_triples(Path(path), fmt)
    if not triples:
        raise GraphError(f"{path}: no triples to load")
    connection = Neo4jConnection.from_settings(settings)
    try:
        connection.verify()
        return load_triples(connection, triples, label=label, batch_size=batch_size, on_progress=on_progress)
    finally:
        connection.close()


def delete_graph(connection: Neo4jConnection, label: str, batch_size: int = BATCH_SIZE) -> int:
    """Remove every entity (and its triples) under `label`, and its constraint and index."""
    quoted = quote_name(check_label(label))
    for query in (DELETE_TRIPLES_BATCH, DELETE_BATCH):
        deleted = 0
        while True:
            n = connection.write(lambda tx: tx.run(query.format(label=quoted), limit=batch_size).single()["deleted"])
            deleted += n
            if n < batch_size:
                break
    constraint, index = schema_names(label)
    with connection.errors(), connection.driver.session(database=connection.database) as session:
        session.run(DROP_CONSTRAINT.format(name=constraint)).consume()
        session.run(DROP_INDEX.format(name=index)).consume()
    return deleted
