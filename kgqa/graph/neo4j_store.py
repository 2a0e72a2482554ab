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
each one), and the per-label, per-type counts come from the count store for free. Relation names are
checked against the graph's own relation list (`relations()`, read from the count store in one query)
before any query uses them. Walking a whole path (`expand_many`) quotes them (backticks) into the
query text, one text per path, so that each hop is a typed expansion: a path is met again and again,
so its text is planned once (a few hundred ms), while a walk by dynamic type reads all of a hub's
relationships, every time. Listing next steps (`next_steps_many`) passes them as parameters instead,
as Neo4j 5.26's dynamic types (`-[:$(s[0])]->`), so that its text depends on the prefix length only:
a text that named the batch's steps would be planned anew for almost every batch, which on a schema
of hundreds of relations costs seconds a call. Everything that can come from a user, entity names and question text
above all, travels as a parameter; the only other formatted name is the label, checked to be an
identifier.

`entity_names()` fetches every entity's degree along with its name, and `degree()` answers from that
snapshot afterwards (the linker asks for the degree of every candidate of every question);
`refresh()` forgets it, and the cached relation list, after more triples are loaded.

Queries are named constants below; path queries are put together from the HOP constants, one hop
each, so that walking a path of any length for any number of topics is one round trip, and so is
listing the next steps of any number of (topic, prefix) rows (`next_steps_many`, the path search's
primitive). Walks follow EmbeddedGraph exactly, capped ones included: each step follows at most
`walk_cap` edges per topic, the first ones in load order (`seq` of the source, then of the target).
A typed hop on a hub costs a count of its edges from the degree store plus one top-`walk_cap` sort of
its edges of that step (their targets' `seq`), never a walk beyond the sample; a dynamic one (Neo4j
5.26 plans `$(...)` types as a filter after expanding) also reads the hub's other relationships.
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
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import neo4j
from neo4j.exceptions import AuthError, ClientError, DriverError, Neo4jError, ServiceUnavailable, SessionExpired

from kgqa.config import Settings
from kgqa.errors import GraphError
from kgqa.graph.store import DEFAULT_WALK_CAP, Expansion, GraphStore, step_triple
from kgqa.types import Path, Step

if TYPE_CHECKING:
    from kgqa.program import Program, ProgramResult

DEFAULT_LABEL = "Entity"
RETRY_SECONDS = 10.0
"""How long transient failures are retried (with backoff) before a query gives up."""
CONNECT_TIMEOUT = 5.0
TOPICS_PER_QUERY = 512
"""Batch expansions send at most this many topics per round trip."""
ROWS_PER_QUERY = 2048
"""`next_steps_many` sends at most this many (topic, prefix) rows per round trip: each row's frontier
(up to walk_cap entities) lives in the query's memory until the end."""
TYPED_STEPS = 64
"""Graphs with at most this many steps (2 per relation) get `next_steps_many` queries that name every step:
a typed branch per step at each hop, and an existence check per step for hubs (`SCAN_DEGREE`), one text per
prefix length, planned once. A bigger schema would take Neo4j seconds to minutes to plan such a text, so
its queries take the steps as dynamic types: the same small text for any schema, for the price of reading
all of a hub's relationships where a typed walk or check reads those of one type."""
SCAN_DEGREE = 64
"""With typed steps, `next_steps_many` reads the steps of an entity with at most max(this, 2 per step of the
graph) relationships by scanning them, and those of a bigger one by one existence check per step."""
COUNT_STORE_RELATIONS = 64
"""`stats()` counts each relation's triples from the count store (a query text per relation, each planned
once by Neo4j) on graphs with at most this many relations, and by one scan of the graph on bigger
schemas (planning thousands of texts takes longer than reading a few million relationships)."""

START_HINT = "is it running? start it with bash services/neo4j/start.sh"

_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# Without a handler, Python's last-resort handler would print the driver's retry warnings on stderr.
logging.getLogger("neo4j").addHandler(logging.NullHandler())

# ---- Cypher ----------------------------------------------------------------------------------------
# {label} and {rel} are formatted in (checked first, see the module docstring); doubled braces are
# literal Cypher braces. Everything else is a parameter.

DEGREE_EXPR = "COUNT {{ (n)-->() }} + COUNT {{ (n)<--() }}"
"""Triples an entity takes part in: a self-loop counts twice, as in EmbeddedGraph."""

SCHEMA = "CALL db.schema.visualization() YIELD nodes, relationships RETURN nodes, relationships"
"""The schema from the count store, without reading a relationship: a virtual relationship
(start label)-[type]->(end label) for every type that some node of the start label starts. One text
for any schema (the nodes come along so that the driver can name the relationships' ends)."""

COUNT_RELATION = "MATCH (:{label})-[r:{rel}]->() RETURN count(r) AS triples"
"""Answered from the count store, without touching a relationship; one text per relation."""

COUNT_RELATIONS = "MATCH (:{label})-[r]->() RETURN type(r) AS type, count(r) AS triples"
"""Every relation's triples, by reading every relationship of the graph; one text for any schema."""

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

EXPAND_START = RESOLVE_TOPICS + "WITH i, t, [[t, []]] AS f0, [] AS edges\n"
EXPAND_HOP = """
CALL (f{prev}) {{
  UNWIND f{prev} AS e
  WITH e[0] AS x
  RETURN sum(COUNT {{ (x){pattern}() }}) AS n{hop}
}}
CALL (t, f{prev}) {{
  UNWIND f{prev} AS e
  WITH e[0] AS x, e[1] AS c
  CALL (x) {{
    MATCH (x){pattern}(y) RETURN y ORDER BY y.seq LIMIT $cap
  }}
  WITH x, c, y LIMIT $cap
  WITH x, c, y WHERE {keep}
  WITH y, min([x.seq, x.name] + c) AS c
  ORDER BY y.seq
  RETURN collect([y, c]) AS f{hop}
}}
WITH i, t, f{hop}, edges + [n{hop}] AS edges
"""
"""One hop of a path for all topics at once, capped per topic. The frontier `f` of a topic is a list of
[entity, chain] sorted by `seq` (load order, EmbeddedGraph's entity ids): the hop follows the first
$cap edges of the frontier in (source seq, target seq) order, EmbeddedGraph's storage order, and
reads no more of a hub than that plus one top-$cap sort of the node where the cap falls (the rows
stream through the per-entity subquery in frontier order and the outer LIMIT stops the stream).
`n` counts the edges the hop had (a typed degree per entity, from the degree store on dense nodes).
Walks are not restricted to distinct relationships, exactly like EmbeddedGraph; a walk of two or
more steps comes back to its topic only as the graph's conventions allow (`keep`, `GraphStore.avoids_topic`). Each entity reached is kept once per topic, with
the chain of the entity it was reached from that comes first (smallest `seq`): `c` holds
[seq, name] of every entity on that chain, nearest first."""
EXPAND_END = """
RETURN i, t.name AS topic, [e IN f{hop} | [e[0].seq, e[0].name] + e[1]] AS found, edges
"""

NEXT_STEPS_START = RESOLVE_TOPICS + "WITH i, t, [t] AS f0\n"
NEXT_STEPS_HOP = """
WITH t, $prefixes[i][0..{hop}] AS key, collect(i) AS rows, head(collect(f{prev})) AS f{prev}
CALL (t, key, f{prev}) {{
  WITH key, f{prev} WHERE size(key) < {hop}
  RETURN f{prev} AS f{hop}
{branches}}}
UNWIND rows AS i
WITH i, t, f{hop}
"""
"""Hop `hop` of every row's prefix ($prefixes[i]: a list of [relation, inverse]). Rows that share their
topic and their prefix up to this hop (`key`) share the walk: it is made once for them all. A row whose
prefix is shorter keeps its frontier; the others take the branch whose guard their step key[hop - 1]
meets."""
NEXT_STEPS_BRANCH = """  UNION ALL
  WITH t, key, f{prev} WHERE size(key) = {hop} AND {guard}
  CALL (t, key, f{prev}) {{
    UNWIND f{prev} AS x
    CALL (x, key) {{
      MATCH (x){pattern}(y) RETURN y ORDER BY y.seq LIMIT $cap
    }}
    WITH y LIMIT $cap
    WITH DISTINCT y WHERE {keep}
    WITH y ORDER BY y.seq
    RETURN collect(y) AS f{hop}
  }}
  RETURN f{hop}
"""
"""One step of a hop, capped per topic exactly as EXPAND_HOP; the walk will be longer than the prefix, so
`keep` lets it pass through the topic only if the graph's `walk_through_topic` says so. A typed branch per step of the graph (guard `key[h] = $steps[k]`), or two
dynamic ones (a type from the parameter, `-[:$(key[h][0])]->`, one per direction, guard `key[h][1]`)."""
NEXT_STEPS = """
UNWIND CASE f{last} WHEN [] THEN [null] ELSE f{last} END AS x
WITH x, collect(i) AS rows
CALL (x) {{
  CALL (x) {{
    WITH x WHERE x IS NOT NULL{scanned}
    MATCH (x)-[r]->() WITH DISTINCT type(r) AS relation RETURN relation, false AS inverse
    UNION
    WITH x WHERE x IS NOT NULL{scanned}
    MATCH (x)<-[r]-() WITH DISTINCT type(r) AS relation RETURN relation, true AS inverse
{checked}  }}
  WITH relation, inverse ORDER BY relation, inverse
  RETURN collect([relation, inverse]) AS steps
}}
UNWIND rows AS i
RETURN i, collect(DISTINCT steps) AS sets
"""
"""The steps of the entities each row's prefix reached. Each entity reached (by any row) is looked at once:
by a scan of its relationships, or, with typed steps and for a hub (more than $scan relationships), by one
existence check per step of the graph, each answered from the node's relationship groups without reading
a relationship (Cypher has no way to list a node's relationship types without naming them). A row gets
the distinct step sets of its entities (entities alike share one); a row whose prefix reached nothing gets
the empty set, and a topic not in the graph no row."""
SCANNED = " AND COUNT { (x)--() } <= $scan"
CHECKED = """    UNION
    WITH x WHERE x IS NOT NULL AND COUNT {{ (x)--() }} > $scan
    UNWIND [{checks}] AS s
    WITH s WHERE s IS NOT NULL
    RETURN s[0] AS relation, s[1] AS inverse
"""
STEP_CHECK = "CASE WHEN EXISTS {{ (x){pattern}() }} THEN $steps[{k}] END"

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


def mask_uri(uri: str) -> str:
    """The URI with any user and password in it replaced by `***`."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


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

    def __init__(self, connection: Neo4jConnection, label: str = DEFAULT_LABEL,
                 walk_cap: int = DEFAULT_WALK_CAP) -> None:
        if walk_cap < 1:
            raise GraphError(f"walk_cap must be at least 1 (got {walk_cap})")
        self.connection = connection
        self.walk_cap = walk_cap
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
            graph = cls(connection, label, settings.walk_cap)
            graph.walk_through_topic = settings.walk_through_topic
            graph.topic_as_answer = settings.topic_as_answer
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

    def run_program(self, program: "Program") -> "ProgramResult":
        """The program in one read-only query (kgqa.graph.neo4j_program)."""
        from kgqa.graph.neo4j_program import run_program

        return run_program(self, program)

    def program_query(self, program: "Program") -> str | None:
        from kgqa.graph.neo4j_program import program_query

        return program_query(self, program)

    def expansion_query(self, path: Path) -> str:
        """The one query that walks `path` from a list of topics."""
        parts = [self._q(EXPAND_START)]
        for hop, step in enumerate(path, start=1):
            parts.append(EXPAND_HOP.format(prev=hop - 1, hop=hop, pattern=step_pattern(step, self._rel(step)),
                                           keep="y <> t" if self.avoids_topic(hop - 1, len(path)) else "true"))
        parts.append(EXPAND_END.format(hop=len(path)))
        return "".join(parts)

    def expand_many(self, topics: list[str], path: Path) -> list[Expansion]:
        query = self.expansion_query(path)
        expansions: list[Expansion] = []
        for start in range(0, len(topics), TOPICS_PER_QUERY):
            chunk = topics[start:start + TOPICS_PER_QUERY]
            rows = {r["i"]: r for r in self._read_all(query, names=chunk, keys=[name_key(t) for t in chunk],
                                                      cap=self.walk_cap)}
            for i, name in enumerate(chunk):
                if i not in rows:
                    raise self._missing(name)
                expansion = Expansion(rows[i]["topic"], path)
                for found in rows[i]["found"]:  # sorted by the answer's seq
                    chain = found[1::2][::-1]  # names: topic, hop 1, ..., answer
                    expansion.evidence[chain[-1]] = [step_triple(step, chain[h], chain[h + 1])
                                                     for h, step in enumerate(path)]
                self._mark_capped(expansion, rows[i]["edges"])
                expansions.append(expansion)
        return expansions

    def _mark_capped(self, expansion: Expansion, edges: list[int]) -> None:
        """`capped` when a hop had more than walk_cap edges; `reached` then counts the last hop's edges
        (as EmbeddedGraph), else the answers."""
        expansion.capped = any(n > self.walk_cap for n in edges)
        expansion.reached = edges[-1] if expansion.capped else len(expansion.evidence)

    def typed_steps(self) -> bool:
        """Whether `next_steps_many` names the graph's steps in its queries (`TYPED_STEPS`)."""
        return 2 * len(self.relations()) <= TYPED_STEPS

    def next_steps_query(self, hops: int) -> str:
        """The one query that lists the next steps of many (topic, prefix) rows whose prefixes have at most
        `hops` steps. The steps walked are parameters, so the text depends on `hops` only (and the graph):
        Neo4j plans it once and then finds it in its query cache, whatever relations a batch walks."""
        steps = self.all_steps() if self.typed_steps() else []
        parts = [self._q(NEXT_STEPS_START)]
        for hop in range(1, hops + 1):
            h = hop - 1
            if steps:
                branches = [(f"key[{h}] = $steps[{k}]", step_pattern(step, quote_name(step.relation)))
                            for k, step in enumerate(steps)]
            else:
                branches = [(f"NOT key[{h}][1]", f"-[:$(key[{h}][0])]->"), (f"key[{h}][1]", f"<-[:$(key[{h}][0])]-")]
            text = "".join(NEXT_STEPS_BRANCH.format(prev=h, hop=hop, guard=guard, pattern=pattern,
                                                    keep="y <> t" if self.avoids_topic(h, hop, prefix=True) else "true")
                           for guard, pattern in branches)
            parts.append(NEXT_STEPS_HOP.format(prev=h, hop=hop, branches=text))
        if steps:
            checks = ", ".join(STEP_CHECK.format(pattern=step_pattern(step, quote_name(step.relation)), k=k)
                               for k, step in enumerate(steps))
            parts.append(NEXT_STEPS.format(last=hops, scanned=SCANNED, checked=CHECKED.format(checks=checks)))
        else:
            parts.append(NEXT_STEPS.format(last=hops, scanned="", checked=""))
        return "".join(parts)

    def next_steps_many(self, topics: list[str], prefixes: list[Path]) -> list[list[Step]]:
        """One query per ROWS_PER_QUERY rows (a beam of batch_size questions is one)."""
        if len(topics) != len(prefixes):
            raise ValueError(f"{len(topics)} topics but {len(prefixes)} prefixes")
        for step in {step for p in prefixes for step in p}:
            self._rel(step)  # an unknown relation is an error, before anything runs
        found: list[list[Step]] = []
        for start in range(0, len(topics), ROWS_PER_QUERY):
            found += self._next_steps(topics[start:start + ROWS_PER_QUERY], prefixes[start:start + ROWS_PER_QUERY])
        return found

    def _next_steps(self, topics: list[str], prefixes: list[Path]) -> list[list[Step]]:
        query = self.next_steps_query(max(len(p) for p in prefixes))
        params: dict[str, Any] = {"names": topics, "keys": [name_key(t) for t in topics], "cap": self.walk_cap,
                                  "prefixes": [[[s.relation, s.inverse] for s in p] for p in prefixes]}
        if self.typed_steps():
            steps = self.all_steps()
            params |= {"steps": [[s.relation, s.inverse] for s in steps], "scan": max(SCAN_DEGREE, 2 * len(steps))}
        rows = self._read_all(query, **params)
        found = {r["i"]: sorted({Step(rel, inv) for steps in r["sets"] for rel, inv in steps}, key=str) for r in rows}
        for i, name in enumerate(topics):
            if i not in found:
                raise self._missing(name)
        return [found[i] for i in range(len(topics))]

    def relations(self) -> list[str]:
        if self._relations is None:
            self._relations = self._read_relations()
        return list(self._relations)

    def _read_relations(self) -> list[str]:
        """The relations some entity of the graph starts, from the count store (`SCHEMA`), sorted."""
        def work(tx: neo4j.ManagedTransaction) -> list[str]:
            schema = tx.run(SCHEMA).single()
            return sorted({r.type for r in schema["relationships"] if r.start_node.get("name") == self.label})

        return self.connection.read(work)

    def _relation_counts(self) -> dict[str, int]:
        relations = self._read_relations()
        if len(relations) > COUNT_STORE_RELATIONS:
            return {r["type"]: r["triples"] for r in self._read_all(self._q(COUNT_RELATIONS))}

        def work(tx: neo4j.ManagedTransaction) -> dict[str, int]:
            return {t: tx.run(self._q(COUNT_RELATION, rel=quote_name(t))).single()["triples"] for t in relations}

        return self.connection.read(work)

    def follows(self) -> dict[Step, list[Step]]:
        order = self._step_order()
        result: dict[Step, set[Step]] = {step: set() for step in order}
        for row in self._read_all(self._q(STEP_PAIRS)):
            a, b = Step(*row["a"]), Step(*row["b"])
            if a in order and b in order:
                result[a.reverse()].add(b)
        return {step: sorted(result[step], key=order.__getitem__) for step in sorted(order, key=order.__getitem__)}

    def identity(self) -> str:
        """`neo4j:URI/database/label`, with any credentials in the URI masked."""
        return f"neo4j:{mask_uri(self.connection.uri)}/{self.connection.database}/{self.label}"

    def stats(self) -> dict[str, object]:
        per_relation = dict(sorted(self._relation_counts().items()))
        entities = self._read_all(self._q(COUNT_ENTITIES))[0]["entities"]
        return {"source": f"{mask_uri(self.connection.uri)} (database {self.connection.database}, label {self.label})",
                "entities": int(entities), "triples": sum(per_relation.values()),
                "relations": len(per_relation), "triples_per_relation": per_relation}

    def refresh(self) -> None:
        """Forget cached relations and degrees (after loading more triples through another connection)."""
        self._relations = None
        self._degrees = None

    def close(self) -> None:
        self.connection.close()
