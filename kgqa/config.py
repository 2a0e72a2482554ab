"""One settings object: defaults < config file < environment (KGQA_*) < CLI flags."""

from __future__ import annotations

import json
import math
import os
import re
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kgqa.errors import InputError

BUNDLED_GRAPH = "metaqa"
NEO4J_SCHEMES = ("neo4j://", "neo4j+s://", "neo4j+ssc://", "bolt://", "bolt+s://", "bolt+ssc://")


def _default_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kgqa"


def _default_config_file() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "kgqa" / "config.toml"


@dataclass
class Settings:
    graph: str = BUNDLED_GRAPH
    """`metaqa` (the bundled movie graph), a triples file, or a neo4j:// / bolt:// URI."""
    graph_format: str | None = None
    """pipe, tsv or ntriples; guessed from the file name when unset."""
    cache_dir: Path = _default_cache()
    """Where graph caches, path vectors and trained models live."""
    max_hops: int = 3
    beam_width: int = 4
    """Partial relation paths the path search keeps at each hop (0: keep all, i.e. enumerate every walkable path)."""
    relation_shortlist: int = 8
    """When more steps than this can be walked after a partial path, only the ones nearest the question in the
    graph's relation index (FAISS) are tried (0: try all)."""
    walk_cap: int = 10_000
    """Edges one step of a walk may follow per topic; past it the walk follows that many and says it was capped."""
    walk_through_topic: bool = True
    """Whether a walk of two or more steps may pass through its topic entity on the way
    (`children|parents|children`); a graph convention, set in the graph's own settings file."""
    topic_as_answer: bool = True
    """Whether a walk of two or more steps may end at its topic (`spouse|spouse`). MetaQA's graph says no to
    both: "who acted with X" never answers X."""
    top_paths: int = 5
    """How many ranked paths a result lists (the best one is walked; with the reranker, each topic candidate's are)."""
    rerank_topics: int = 2
    """Topic-entity candidates per question whose top paths the reranker scores."""
    linker: str | None = None
    """A trained linker model directory; default: <cache>/models/linker when trained; `names` uses name matching."""
    rerank_margin: float = 0.2
    """The reranker scores the paths whose retriever score is within this of the question's best (each
    distinct path costs one cross-encoder pass); a large value scores every top path."""
    reranker: str | None = None
    backend: str = "auto"
    """BERT inference of the reranker: numpy (fp32, no torch import), torch (CUDA when present: bf16,
    SDPA, compiled), or auto: torch for batch and eval runs when torch is installed, numpy for ask and chat."""
    """A reranker model directory; default: <cache>/models/reranker when trained; `none` turns the reranker off."""
    hop_penalty: float | None = None
    """Score taken off a path per hop beyond the first; default: the value stored with the trained retriever
    (chosen on held-out dev), else 0.1 (chosen on MetaQA dev for the untrained embedder)."""
    embedder: str | None = None
    """A sentence-embedding model directory; default: the packaged all-MiniLM-L6-v2."""
    relation_phrases: dict[str, list[str]] = field(default_factory=dict)
    """Phrases users say for a relation that its name lacks, a table of relation = [phrases]
    (`directed_by = ["behind the camera"]`); a question using one is retrieved with the relation's words
    added (kgqa.retrieval.phrases). In an environment variable or on the command line: the table as JSON."""
    packaged_weight: float = 0.0
    """With a trained retriever, path scores add this much of the packaged model's similarity, which knows
    wordings the training questions never used (0: the trained model alone)."""
    llm: str = "none"
    """none; embedded (SmolLM2-135M in-process) or a .gguf file; or an OpenAI-compatible URL (vLLM: http://host:8000/v1)."""
    llm_model: str = ""
    """The model name to ask an LLM server for; default: the first one it lists."""
    llm_timeout: float = 30.0
    """Seconds one LLM request may take (retried twice on timeouts, connection errors and 5xx)."""
    llm_threads: int = 0
    """CPU threads of the embedded LLM; 0: half the cores, at most 4."""
    llm_margin: float = 0.05
    """Ask the LLM to choose only when the retriever's two best paths score within this margin (a sure
    retriever needs no LLM call); 1 or more asks for every question with two or more candidate paths."""
    llm_prompt_tokens: int = 400
    """Token budget of one prompt, counted with the model's tokenizer; few-shot examples are cut first."""
    fewshot_pool: str | None = None
    """Few-shot examples for path choice (JSONL: question, topic, path); default: the graph's own pool from
    `kgqa train all`, the packaged MetaQA dev pool for the bundled graph, else none."""
    neo4j_user: str = "neo4j"
    neo4j_password: str = ""
    neo4j_database: str = "neo4j"
    neo4j_timeout: float = 30.0
    """Seconds one Neo4j query may run before the server stops it."""
    batch_size: int = 64
    prompts_dir: Path | None = None
    """A folder of Jinja2 prompt templates (choose_path.j2, reply.j2) that replace the packaged ones of the
    same name; default: the packaged prompts/."""

    def __post_init__(self) -> None:
        for f in fields(self):
            setattr(self, f.name, coerce_setting(f.name, getattr(self, f.name)))

    @property
    def models_dir(self) -> Path:
        return self.cache_dir / "models"

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON values for reports and model metadata: paths as text, the password and any
        credentials inside a URI masked."""
        data = asdict(self)
        for name, value in data.items():
            if isinstance(value, Path):
                data[name] = str(value)
            elif isinstance(value, str):
                data[name] = mask_uri(value)
        data["neo4j_password"] = "***" if self.neo4j_password else ""
        return data


# ---- what each setting accepts ---------------------------------------------------------------


@dataclass(frozen=True)
class Range:
    """What one setting accepts: a kind (int, float, bool, str or path) with bounds or a list of choices."""

    kind: str
    low: float | None = None
    high: float | None = None
    above: bool = False
    """`low` itself is out of range (a timeout must be more than 0)."""
    choices: tuple[str, ...] = ()
    optional: bool = False
    """Unset (an empty value) means None: the default the field's docstring describes."""

    def describe(self) -> str:
        if self.choices:
            text = "one of " + ", ".join(self.choices)
        else:
            text = {"int": "a whole number", "float": "a number", "bool": "true or false", "path": "a path",
                    "phrases": 'a table of relation = ["phrase", ...]'}.get(
                self.kind, "text")
            if self.low is not None and self.high is not None:
                text += f" from {self.low:g} to {self.high:g}"
            elif self.low is not None:
                text += f" {'>' if self.above else '>='} {self.low:g}"
            elif self.high is not None:
                text += f" <= {self.high:g}"
        return text + (", or empty for the default" if self.optional else "")


def whole(low: int | None = None, high: int | None = None) -> Range:
    return Range("int", low, high)


def number(low: float | None = None, high: float | None = None, above: bool = False, optional: bool = False) -> Range:
    return Range("float", low, high, above, optional=optional)


def text(*choices: str, optional: bool = False) -> Range:
    return Range("str", choices=choices, optional=optional)


def path(optional: bool = False) -> Range:
    return Range("path", optional=optional)


def flag() -> Range:
    return Range("bool")


RANGES: dict[str, Range] = {
    "graph": text(),
    "graph_format": text("pipe", "tsv", "ntriples", optional=True),
    "cache_dir": path(),
    "max_hops": whole(1),
    "beam_width": whole(0),
    "relation_shortlist": whole(0),
    "walk_cap": whole(1),
    "walk_through_topic": flag(),
    "topic_as_answer": flag(),
    "top_paths": whole(1),
    "rerank_topics": whole(1),
    "linker": text(optional=True),
    "rerank_margin": number(0),
    "reranker": text(optional=True),
    "backend": text("auto", "numpy", "torch"),
    "hop_penalty": number(0, optional=True),
    "embedder": text(optional=True),
    "relation_phrases": Range("phrases"),
    "packaged_weight": number(0),
    "llm": text(),
    "llm_model": text(),
    "llm_timeout": number(0, above=True),
    "llm_threads": whole(0),
    "llm_margin": number(0),
    "llm_prompt_tokens": whole(1),
    "fewshot_pool": text(optional=True),
    "neo4j_user": text(),
    "neo4j_password": text(),
    "neo4j_database": text(),
    "neo4j_timeout": number(0, above=True),
    "batch_size": whole(1),
    "prompts_dir": path(optional=True),
}
"""Every Settings field's range; a new field gets its entry here (tests/test_config.py checks that each has one)."""

TRUE, FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _range_of(name: str) -> Range:
    """The field's entry in RANGES, else one read from its annotation (type only, no bounds)."""
    if name in RANGES:
        return RANGES[name]
    kind = {f.name: str(f.type) for f in fields(Settings)}[name]
    base = kind.replace("| None", "").strip()
    return Range({"int": "int", "float": "float", "bool": "bool", "Path": "path"}.get(base, "str"),
                 optional="None" in kind)


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return repr(value) if isinstance(value, str) else str(value)


def coerce_setting(name: str, value: Any, where: str = "") -> Any:
    """`value` as setting `name` takes it (a TOML value, an environment string or a typed value), or an
    InputError naming the setting, where the value came from, and the range it must be in."""
    rule = _range_of(name)
    said = f"setting {name}{f' (from {where})' if where else ''}"

    def bad(why: str) -> InputError:
        return InputError(f"{said}: {_shown(value)} {why}; expected {rule.describe()}")

    if isinstance(value, str) and rule.kind != "str":
        value = value.strip()
    if rule.kind == "phrases" and value == "":
        return {}
    if value is None or (value == "" and rule.kind != "str") or (value == "" and rule.optional):
        if rule.optional:
            return None
        raise InputError(f"{said} is empty; expected {rule.describe()}")
    if rule.kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in TRUE + FALSE:
            return value.lower() in TRUE
        raise bad("is not true or false")
    if rule.kind in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise bad("is not a number")
        if isinstance(value, str):
            try:
                value = int(value) if rule.kind == "int" and re.fullmatch(r"[+-]?\d+", value) else float(value)
            except ValueError:
                raise bad("is not a number") from None
        if not math.isfinite(value):
            raise bad("is not a finite number")
        if rule.kind == "int":
            if value != int(value):
                raise bad("is not a whole number")
            value = int(value)
        else:
            value = float(value)
        if ((rule.low is not None and (value < rule.low or (rule.above and value == rule.low)))
                or (rule.high is not None and value > rule.high)):
            raise bad("is out of range")
        return value
    if rule.kind == "phrases":
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise bad("is not a JSON table") from None
        if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, list) and v and all(isinstance(p, str) and p.strip() for p in v)
                for k, v in value.items()):
            raise bad("is not a table of relations, each with a list of phrases")
        return {k: [p.strip() for p in v] for k, v in value.items()}
    if rule.kind == "path":
        if not isinstance(value, (str, os.PathLike)):
            raise bad("is not a path")
        return Path(value).expanduser()
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise bad("is not text")
    value = str(value)
    if rule.choices:
        if value.strip().lower() not in rule.choices:
            raise bad("is not allowed")
        value = value.strip().lower()
    if name == "graph" and value.startswith(NEO4J_SCHEMES):
        check_graph_uri(value)
    return value


# ---- URIs --------------------------------------------------------------------------------------

_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#]*)@")
_SECRET_PARAM = re.compile(r"(?P<key>[?&;][^=&#;]*(?:key|token|secret|password|passwd|pwd|auth|sig|credential)"
                           r"[^=&#;]*=)[^&#;]*", re.IGNORECASE)


def mask_uri(uri: str) -> str:
    """`uri` with the credentials it carries shown as ***: the password of `user:password@` (or a lone
    `token@`) and query values such as `api_key=`. Text that is not a URI comes back unchanged."""
    if "://" not in uri:
        return uri

    def userinfo(match: re.Match) -> str:
        user, colon, _ = match["userinfo"].partition(":")
        return match["scheme"] + (f"{user}:***" if colon else "***") + "@"

    return _SECRET_PARAM.sub(r"\g<key>***", _USERINFO.sub(userinfo, uri, count=1))


def check_graph_uri(uri: str) -> None:
    """InputError unless `uri` is a usable Neo4j URI: scheme://host[:port], the port a number from 1 to
    65535, no path, and no credentials (they come from neo4j_user and neo4j_password)."""
    shown = mask_uri(uri)
    example = "expected bolt://host:7687 or neo4j://host:7687"
    parts = urlsplit(uri)
    if parts.username is not None or parts.password is not None:
        raise InputError(f"graph URI {shown}: a user or password inside the URI is not supported; set neo4j_user "
                         "and neo4j_password (KGQA_NEO4J_PASSWORD) instead")
    try:
        port = parts.port
    except ValueError:
        port = None
    raw_port = parts.netloc.rpartition("]")[2].partition(":")[2]
    if raw_port and not port:
        raise InputError(f"graph URI {shown}: the port {raw_port!r} is not a number from 1 to 65535; {example}")
    if not parts.hostname:
        raise InputError(f"graph URI {shown} names no host; {example}")
    if parts.path not in ("", "/") or parts.fragment:
        raise InputError(f"graph URI {shown}: a path is not supported (the database is the neo4j_database "
                         f"setting); {example}")
    if parts.query and parts.scheme.startswith("bolt"):
        raise InputError(f"graph URI {shown}: bolt:// takes no query (a routing context needs neo4j://); {example}")


# ---- the four layers -----------------------------------------------------------------------------


def read_config_file(file: Path) -> dict[str, Any]:
    """The settings table of a TOML file; one InputError for a missing file, a folder, non-UTF-8 bytes or bad TOML."""
    if not file.exists():
        raise InputError(f"config file {file} does not exist")
    if file.is_dir():
        raise InputError(f"config file {file} is a folder; expected a TOML file")
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise InputError(f"config file {file} cannot be read ({exc.strerror or exc})") from None
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InputError(f"config file {file}, line {line}: byte 0x{raw[exc.start]:02x} is not UTF-8 "
                         "(TOML files are UTF-8; save it as UTF-8)") from None
    try:
        return tomllib.loads(content)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"config file {file}: {exc}") from None


GRAPH_SETTINGS_SUFFIX = ".kgqa.toml"
"""A triples file's own settings sit beside it: `family.tsv` -> `family.tsv.kgqa.toml`."""


def graph_settings_file(graph: str) -> Path | None:
    """The settings file that belongs to a graph (its conventions, e.g. walk_through_topic), if it has one:
    `<triples file>.kgqa.toml`, or the bundled movie graph's packaged one. Neo4j graphs have none."""
    if graph == BUNDLED_GRAPH:
        from importlib import resources

        candidate = Path(str(resources.files("kgqa") / "data" / f"metaqa_kb.txt.gz{GRAPH_SETTINGS_SUFFIX}"))
    elif "://" in graph:
        return None
    else:
        candidate = Path(graph + GRAPH_SETTINGS_SUFFIX).expanduser()
    return candidate if candidate.is_file() else None


def read_settings_file(file: Path) -> dict[str, Any]:
    """A settings file's values, checked and coerced; unknown keys are an error."""
    names = {f.name for f in fields(Settings)}
    data = read_config_file(Path(file))
    unknown = set(data) - names
    if unknown:
        raise InputError(f"config file {file}: unknown setting(s) {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(sorted(names))}")
    return {k: coerce_setting(k, v, f"config file {file}") for k, v in data.items()}


def load_settings(config_file: Path | None = None, overrides: dict[str, Any] | None = None,
                  environ: dict[str, str] | None = None) -> Settings:
    """Build the settings from their layers, each overriding the one before: defaults < the graph's own
    settings file (graph_settings_file) < the config file < KGQA_* variables < the command line."""
    environ = dict(os.environ) if environ is None else environ
    names = {f.name for f in fields(Settings)}
    values: dict[str, Any] = {}
    file = config_file or (Path(environ["KGQA_CONFIG"]) if environ.get("KGQA_CONFIG") else None)
    if file is None and _default_config_file().exists():
        file = _default_config_file()
    if file is not None:
        values.update(read_settings_file(Path(file)))
    for name in names:
        if f"KGQA_{name.upper()}" in environ:
            values[name] = coerce_setting(name, environ[f"KGQA_{name.upper()}"], f"KGQA_{name.upper()}")
    values.update({k: coerce_setting(k, v, "the command line") for k, v in (overrides or {}).items() if v is not None})
    own = graph_settings_file(values.get("graph", BUNDLED_GRAPH))
    if own is not None:
        values = {**{k: v for k, v in read_settings_file(own).items() if k != "graph"}, **values}
    return Settings(**values)
