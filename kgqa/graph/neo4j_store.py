"""The Neo4j graph store: the GraphStore interface over Bolt and Cypher, with EmbeddedGraph's semantics.

How the graph is laid out (written by `kgqa.graph.neo4j_load`):

- one node per entity, with the label `Entity` (configurable, so that several graphs, e.g. a test
  fixture and the movie graph, can share Neo4j Community's single `neo4j` database), and the
  properties `name` (unique), `key` (the name lower-cased by Python, indexed, for case-insensitive
  look-ups) and `seq` (the order in which the entity was first seen while loading, the same order
  EmbeddedGraph numbers its entities in, so that ties are broken the same way on both backends);
- one relationship type per relation, in the stored direction: `(:Entity)-[:directed_by]->(:Entity)`.

Why relationship types and not one type with a `relation` property: a typed expansion is what Neo4j
is built for (it walks only the relationships of that type, per node, without reading a property of
each one), and the per-label, per-type counts come from the count store for free. The price is that
a type cannot be a query parameter, so relation names are checked against the graph's own relation
list (`relations()`, read from the server) before they are quoted (backticks) and formatted into the
query text. Everything that can come from a user, entity names and question text above all, travels
as a parameter; the only other formatted name is the label, checked to be an identifier.

`entity_names()` fetches every entity's degree along with its name, and `degree()` answers from that
snapshot afterwards (the linker asks for the degree of every candidate of every question);
`refresh()` forgets it, and the cached relation list, after more triples are loaded.

Queries are named constants below; path queries are put together from the HOP constants, one hop
each, so that walking a path of any length for any number of topics is one round trip.
Answering runs in read transactions (read sessions, `execute_read`), each with a timeout
(`neo4j_timeout`). Transient failures (ServiceUnavailable, SessionExpired, TransientError) are
retried by the driver's managed transactions with exponential backoff and jitter for up to
`retry_seconds`; whatever still fails becomes a `GraphError` with one sentence saying what to check.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import neo4j
from neo4j.exceptions import AuthError, ClientError, DriverError, Neo4jError, ServiceUnavailable, SessionExpired

from kgqa.config import Settings
from kgqa.errors import GraphError
from kgqa.graph.store import Expansion, GraphStore, step_triple
from kgqa.types import Path, Step

DEFAULT_LABEL = "Entity"
RETRY_SECONDS = 10.0
"""How long transient failures are retried (with backoff) before a query gives up."""
CONNECT_TIMEOUT = 5.0
TOPICS_PER_QUERY = 512
"""Batch expansions send at most this many topics per round trip."""

START_HINT = "is it running? start it with bash services/neo4j/start.sh"

_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# Without a handler, Python's last-resort handler would print the driver's retry warnings on stderr.
logging.getLogger("neo4j").addHandler(logging.NullHandler())

# ---- Cypher ----------------------------------------------------------------------------------------
# {label} and {rel} are formatted in (checked first, see the module docstring); doubled braces are
# literal Cypher braces. Everything else is a parameter.

DEGREE_EXPR = "COUNT {{ (n)-->() }} + COUNT {{ (n)<--() }}"
"""Triples an entity takes part in: a self-loop counts twice, as in EmbeddedGraph."""

RELATION_TYPES = "CALL db.relationshipTypes() YIELD relationshipType RETURN relationshipType AS type"

COUNT_RELATION = "MATCH (:{label})-[r:{rel}]->() RETURN count(r) AS triples"
"""Answered from the count store, without touching a relationship."""

COUNT_ENTITIES = "MATCH (n:{label}) RETURN count(n) AS entities"

FIND_ENTITIES = ("MATCH (n:{label}) WHERE n.key = $key "
                 "RETURN n.name AS name ORDER BY n.name = $name DESC, " + DEGREE_EXPR + " DESC, n.seq")

ENTITY_NAMES = "MATCH (n:{label}) RETURN n.name AS name, " + DEGREE_EXPR + " AS degree ORDER BY n.seq"

DEGREE = "MATCH (n:{label}) WHERE n.name = $name RETURN " + DEGREE_EXPR + " AS degree"

RESOLVE_TOPIC = """
MATCH (t:{label}) WHERE t.key = $key
WITH t ORDER BY t.name = $name DESC, t.seq LIMIT 1
"""
"""The entity a name means: the one written exactly so, else the first seen (as EmbeddedGraph)."""

NEIGHBOURS = RESOLVE_TOPIC + """
OPTIONAL MATCH (t){pattern}(x)
RETURN t.name AS topic, x.name AS name ORDER BY x.seq
"""

RESOLVE_TOPICS = """
UNWIND range(0, size($names) - 1) AS i
CALL (i) {{
  MATCH (t:{label}) WHERE t.key = $keys[i]
  RETURN t ORDER BY t.name = $names[i] DESC, t.seq LIMIT 1
}}
"""

EXPAND_START = RESOLVE_TOPICS + "WITH i, t, t AS x0, [] AS c0\n"
EXPAND_HOP = """
OPTIONAL MATCH (x{prev}){pattern}(x{hop}){avoid_topic}
WITH i, t, x{hop}, min([x{prev}.seq, x{prev}.name] + c{prev}) AS c{hop}
"""
"""One hop of a path for all topics at once. Walks are not restricted to distinct relationships
(one MATCH per hop), exactly like EmbeddedGraph, and a walk of two or more steps never comes back to
its topic. Each entity reached is kept once per topic, with the chain of the entity it was reached
from that was seen first (smallest `seq`): `c` holds [seq, name] of every entity on that chain,
nearest first."""
EXPAND_END = """
RETURN i, t.name AS topic,
       collect(CASE WHEN x{hop} IS NOT NULL THEN [x{hop}.seq, x{hop}.name] + c{hop} END) AS found
"""

REACHABLE_START = RESOLVE_TOPICS + "WITH i, t AS x0, [] AS p0\n"
REACHABLE_HOP = """
CALL (x{prev}) {{
  MATCH (x{prev})-[r]->(x) RETURN [type(r), false] AS s, x
  UNION ALL
  MATCH (x{prev})<-[r]-(x) RETURN [type(r), true] AS s, x
}}
WITH DISTINCT i, p{prev} + [s] AS p{hop}, x AS x{hop}
"""
REACHABLE_END = """
UNWIND [{checks}] AS s
WITH i, p{prev}, s WHERE s IS NOT NULL
WITH DISTINCT i, p{prev} + [s] AS p
RETURN i, collect(p) AS paths
"""
"""The longest paths only: every shorter path is a prefix of one, since an entity reached by a step
can always walk that step back. The last hop asks each entity which steps it can walk (an existence
check per step, cheap even on a hub, whose relationships are grouped by type) instead of expanding
every relationship of every entity reached."""
STEP_CHECK = "CASE WHEN EXISTS {{ (x{prev}){pattern}() }} THEN $steps[{k}] END"

STEP_PAIRS = """
MATCH (x:{label})
CALL (x) {{
  MATCH (x)-[r]->() RETURN [type(r), false] AS s
  UNION
  MATCH (x)<-[r]-() RETURN [type(r), true] AS s
}}
WITH x, collect(s) AS steps
UNWIND steps AS a
UNWIND steps AS b
RETURN DISTINCT a, b
"""
"""Pairs of steps some entity can walk both of: if it can walk `a`, it can be reached by a's
reverse, and then walk `b`."""

T = TypeVar("T")


def quote_name(name: str) -> str:
    """A relation or label as a Cypher identifier: backticks, with any backtick doubled."""
    return "`" + name.replace("`", "``") + "`"


def step_pattern(step: Step, rel: str) -> str:
    """The relationship pattern for walking `step` (relation already quoted)."""
    return f"<-[:{rel}]-" if step.inverse else f"-[:{rel}]->"


def check_label(label: str) -> str:
    if not _LABEL.fullmatch(label):
        raise GraphError(f"graph label {label!r} must be a letter or '_' followed by letters, digits or '_'")
    return label


def name_key(name: str) -> str:
    """The case-insensitive look-up key (Python's lower(), the same on both backends)."""
    return name.lower()


class Neo4jConnection:
    """A driver plus what every query needs: database, timeout, retries, and errors as sentences."""

    def __init__(self, uri: str, user: str, password: str, database: str = "neo4j",
                 timeout: float | None = 30.0, retry_seconds: float = RETRY_SECONDS) -> None:
        self.uri = uri
        self.user = user
        self.database = database
        self.timeout = timeout
        self.retry_seconds = retry_seconds
        self._password_given = bool(password)
        try:
            self.driver = neo4j.GraphDatabase.driver(
                uri, auth=(user, password), connection_timeout=CONNECT_TIMEOUT,
                max_transaction_retry_time=retry_seconds, notifications_min_severity="OFF")
        except (ValueError, DriverError) as exc:
            raise GraphError(f"{uri} is not a usable Neo4j URI ({exc}): use bolt://host:port or neo4j://host:port") from None

    @classmethod
    def from_settings(cls, settings: Settings, retry_seconds: float = RETRY_SECONDS) -> "Neo4jConnection":
        return cls(settings.graph, settings.neo4j_user, settings.neo4j_password, settings.neo4j_database,
                   settings.neo4j_timeout or None, retry_seconds)

    def verify(self) -> None:
        """Fail now, with a clear sentence, when the server is down or the login is wrong (no retries)."""
        with self.errors(retried=False):
            self.driver.verify_connectivity()

    def read(self, work: Callable[..., T], *args: Any) -> T:
        """Run `work(tx, *args)` in a read transaction (read-only session), with timeout and retries."""
        return self._run(neo4j.READ_ACCESS, work, args, self.timeout)

    def write(self, work: Callable[..., T], *args: Any, timeout: float | None = None) -> T:
        return self._run(neo4j.WRITE_ACCESS, work, args, timeout)

    def _run(self, mode: str, work: Callable[..., T], args: tuple, timeout: float | None) -> T:
        unit = neo4j.unit_of_work(timeout=timeout)(work) if timeout else work
        with self.errors():
            with self.driver.session(database=self.database, default_access_mode=mode) as session:
                run = session.execute_read if mode == neo4j.READ_ACCESS else session.execute_write
                return run(unit, *args)

    @contextmanager
    def errors(self, retried: bool = True) -> Iterator[None]:
        """Turn driver and server errors into GraphError, one sentence each."""
        try:
            yield
        except (Neo4jError, DriverError) as exc:
            raise self.graph_error(exc, retried) from exc

    def graph_error(self, exc: Exception, retried: bool = True) -> GraphError:
        code = getattr(exc, "code", None) or ""
        where = f"Neo4j at {self.uri}"
        if isinstance(exc, AuthError) or code.startswith("Neo.ClientError.Security.Unauthorized"):
            if not self._password_given:
                return GraphError(f"{where} needs a password: set KGQA_NEO4J_PASSWORD (or neo4j_password in the config file)")
            return GraphError(f"{where} refused user {self.user!r}: check the password "
                              "(KGQA_NEO4J_PASSWORD or neo4j_password in the config file)")
        if "AuthenticationRateLimit" in code:
            return GraphError(f"{where} is refusing logins after repeated failures: wait a few seconds "
                              "and check the password (KGQA_NEO4J_PASSWORD)")
        if code == "Neo.ClientError.Database.DatabaseNotFound":
            return GraphError(f"{where} has no database {self.database!r}: check KGQA_NEO4J_DATABASE "
                              "(or neo4j_database in the config file; Neo4j Community has only 'neo4j')")
        if "TransactionTimedOut" in code:
            return GraphError(f"a query to {where} ran longer than its {self.timeout:g} s timeout and was "
                              "stopped: raise KGQA_NEO4J_TIMEOUT (neo4j_timeout) or ask about a less connected entity")
        if isinstance(exc, (ServiceUnavailable, SessionExpired)) and not retried:
            return GraphError(f"cannot reach {where}: {START_HINT}")
        if isinstance(exc, (ServiceUnavailable, SessionExpired)):
            return GraphError(f"lost the connection to {where} (retried for {self.retry_seconds:g} s): "
                              f"{START_HINT}")
        if isinstance(exc, ClientError) and code.startswith("Neo.ClientError.Statement."):
            return GraphError(f"{where} rejected a query ({code}): {getattr(exc, 'message', exc)}")
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        return GraphError(f"{where} failed ({code or type(exc).__name__}): {message}")

    def close(self) -> None:
        self.driver.close()


class Neo4jGraph(GraphStore):
    """A knowledge graph in a Neo4j database, queried over Bolt; see the module docstring."""

    def __init__(self, connection: Neo4jConnection, label: str = DEFAULT_LABEL) -> None:
        self.connection = connection
        self.label = check_label(label)
        self._label = quote_name(label)
        self._relations: list[str] | None = None
        self._degrees: dict[str, int] | None = None

    @classmethod
    def connect(cls, settings: Settings, label: str = DEFAULT_LABEL,
                retry_seconds: float = RETRY_SECONDS) -> "Neo4jGraph":
        """Open the graph the settings name (settings.graph is the URI); fails fast with a clear message."""
        connection = Neo4jConnection.from_settings(settings, retry_seconds)
        try:
            connection.verify()
            graph = cls(connection, label)
            if not graph.relations():
                raise GraphError(f"Neo4j at {connection.uri} (database {connection.database!r}) holds no "
                                 f"{label} graph: load one with kgqa kg load FILE --graph {connection.uri}")
        except BaseException:
            connection.close()
            raise
        return graph

    # ---- helpers ------------------------------------------------------------------------------

    def _q(self, template: str, **names: str) -> str:
        return template.format(label=self._label, **names)

    def _rel(self, step: Step) -> str:
        if step.relation not in self.relations():
            raise GraphError(f"unknown relation {step.relation!r}; the graph has: {', '.join(self.relations())}")
        return quote_name(step.relation)

    def _step_order(self) -> dict[Step, int]:
        return {Step(r, inv): 2 * i + int(inv) for i, r in enumerate(self.relations()) for inv in (False, True)}

    def _missing(self, name: str) -> GraphError:
        return GraphError(f"no entity named {name!r} in the graph")

    def _read_all(self, query: str, **params: Any) -> list[neo4j.Record]:
        return self.connection.read(lambda tx: list(tx.run(query, **params)))

    # ---- GraphStore ---------------------------------------------------------------------------

    def find_entities(self, name: str) -> list[str]:
        rows = self._read_all(self._q(FIND_ENTITIES), key=name_key(name), name=name)
        return [r["name"] for r in rows]

    def entity_names(self) -> list[str]:
        """Every name, in load order; their degrees come along and answer `degree` from then on."""
        rows = self._read_all(self._q(ENTITY_NAMES))
        self._degrees = {r["name"]: r["degree"] for r in rows}
        return list(self._degrees)

    def degree(self, name: str) -> int:
        if self._degrees is not None:
            return self._degrees.get(name, 0)
        rows = self._read_all(self._q(DEGREE), name=name)
        return int(rows[0]["degree"]) if rows else 0

    def neighbours(self, name: str, step: Step) -> list[str]:
        query = self._q(NEIGHBOURS, pattern=step_pattern(step, self._rel(step)))
        rows = self._read_all(query, key=name_key(name), name=name)
        if not rows:
            raise self._missing(name)
        return [r["name"] for r in rows if r["name"] is not None]

    def expansion_query(self, path: Path) -> str:
        """The one query that walks `path` from a list of topics."""
        parts = [self._q(EXPAND_START)]
        for hop, step in enumerate(path, start=1):
            parts.append(EXPAND_HOP.format(prev=hop - 1, hop=hop, pattern=step_pattern(step, self._rel(step)),
                                           avoid_topic=f" WHERE x{hop} <> t" if len(path) > 1 else ""))
        parts.append(EXPAND_END.format(hop=len(path)))
        return "".join(parts)

    def expand_many(self, topics: list[str], path: Path) -> list[Expansion]:
        query = self.expansion_query(path)
        expansions: list[Expansion] = []
        for start in range(0, len(topics), TOPICS_PER_QUERY):
            chunk = topics[start:start + TOPICS_PER_QUERY]
            rows = {r["i"]: r for r in self._read_all(query, names=chunk, keys=[name_key(t) for t in chunk])}
            for i, name in enumerate(chunk):
                if i not in rows:
                    raise self._missing(name)
                expansion = Expansion(rows[i]["topic"], path)
                for found in sorted(rows[i]["found"], key=lambda f: f[0]):
                    chain = found[1::2][::-1]  # names: topic, hop 1, ..., answer
                    expansion.evidence[chain[-1]] = [step_triple(step, chain[h], chain[h + 1])
                                                     for h, step in enumerate(path)]
                expansions.append(expansion)
        return expansions

    def relations(self) -> list[str]:
        if self._relations is None:
            self._relations = sorted(self._relation_counts())
        return list(self._relations)

    def _relation_counts(self) -> dict[str, int]:
        def work(tx: neo4j.ManagedTransaction) -> dict[str, int]:
            types = [r["type"] for r in tx.run(RELATION_TYPES)]
            counts = {t: tx.run(self._q(COUNT_RELATION, rel=quote_name(t))).single()["triples"] for t in types}
            return {t: n for t, n in counts.items() if n}

        return self.connection.read(work)

    def follows(self) -> dict[Step, list[Step]]:
        order = self._step_order()
        result: dict[Step, set[Step]] = {step: set() for step in order}
        for row in self._read_all(self._q(STEP_PAIRS)):
            a, b = Step(*row["a"]), Step(*row["b"])
            if a in order and b in order:
                result[Step(a.relation, not a.inverse)].add(b)
        return {step: sorted(result[step], key=order.__getitem__) for step in sorted(order, key=order.__getitem__)}

    def reachable_paths(self, topic: str, max_hops: int) -> list[Path]:
        return self.reachable_paths_many([topic], max_hops)[0]

    def reachable_query(self, max_hops: int) -> str:
        hops = max(1, max_hops)  # EmbeddedGraph lists the one-step paths even for max_hops < 1
        parts = [self._q(REACHABLE_START)]
        parts += [REACHABLE_HOP.format(prev=h - 1, hop=h) for h in range(1, hops)]
        steps = self.all_steps()
        checks = ", ".join(STEP_CHECK.format(prev=hops - 1, pattern=step_pattern(step, quote_name(step.relation)), k=k)
                           for k, step in enumerate(steps))
        parts.append(REACHABLE_END.format(prev=hops - 1, checks=checks))
        return "".join(parts)

    def reachable_paths_many(self, topics: list[str], max_hops: int) -> list[list[Path]]:
        query = self.reachable_query(max_hops)
        steps = [[step.relation, step.inverse] for step in self.all_steps()]
        order = self._step_order()
        found: list[list[Path]] = []
        for start in range(0, len(topics), TOPICS_PER_QUERY):
            chunk = topics[start:start + TOPICS_PER_QUERY]
            rows = {r["i"]: r["paths"] for r in self._read_all(query, names=chunk, keys=[name_key(t) for t in chunk],
                                                               steps=steps)}
            for i, name in enumerate(chunk):
                if i not in rows and not self.find_entities(name):
                    raise self._missing(name)
                paths = set()
                for longest in rows.get(i, []):
                    steps = tuple(Step(rel, inv) for rel, inv in longest)
                    paths.update(steps[:k] for k in range(1, len(steps) + 1))
                # depth-first order of EmbeddedGraph: by step ids, each path before its extensions
                found.append(sorted(paths, key=lambda p: tuple(order[s] for s in p)))
        return found

    def stats(self) -> dict[str, object]:
        per_relation = dict(sorted(self._relation_counts().items()))
        entities = self._read_all(self._q(COUNT_ENTITIES))[0]["entities"]
        return {"source": f"{self.connection.uri} (database {self.connection.database}, label {self.label})",
                "entities": int(entities), "triples": sum(per_relation.values()),
                "relations": len(per_relation), "triples_per_relation": per_relation}

    def refresh(self) -> None:
        """Forget cached relations and degrees (after loading more triples through another connection)."""
        self._relations = None
        self._degrees = None

    def close(self) -> None:
        self.connection.close()
