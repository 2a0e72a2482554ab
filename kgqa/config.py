"""One settings object: defaults < config file < environment (KGQA_*) < CLI flags."""

from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from kgqa.errors import InputError

BUNDLED_GRAPH = "metaqa"


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
    beam_width: int = 10
    """Partial relation paths the path search keeps at each hop (0: keep all, i.e. enumerate every walkable path)."""
    relation_shortlist: int = 32
    """When more steps than this can be walked after a partial path, only the ones nearest the question in the
    graph's relation index (FAISS) are tried (0: try all)."""
    walk_cap: int = 10_000
    """Edges one step of a walk may follow per topic; past it the walk follows that many and says it was capped."""
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
    """Few-shot examples for path choice (JSONL: question, topic, path); default: the packaged MetaQA dev pool."""
    neo4j_user: str = "neo4j"
    neo4j_password: str = ""
    neo4j_database: str = "neo4j"
    neo4j_timeout: float = 30.0
    """Seconds one Neo4j query may run before the server stops it."""
    batch_size: int = 64

    @property
    def models_dir(self) -> Path:
        return self.cache_dir / "models"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["cache_dir"] = str(self.cache_dir)
        data["neo4j_password"] = "***" if self.neo4j_password else ""
        return data


def _coerce(name: str, value: Any) -> Any:
    kind = {f.name: f.type for f in fields(Settings)}[name]
    try:
        if kind == "int":
            return int(value)
        if kind in ("float", "float | None") and value not in ("", None):
            return float(value)
        if kind == "Path":
            return Path(value).expanduser()
    except ValueError:
        raise InputError(f"setting {name}: {value!r} is not a number") from None
    return None if value in ("", None) and "None" in kind else str(value)


def load_settings(config_file: Path | None = None, overrides: dict[str, Any] | None = None,
                  environ: dict[str, str] | None = None) -> Settings:
    """Build the settings from their four layers; unknown keys in the file are an error."""
    environ = dict(os.environ) if environ is None else environ
    names = {f.name for f in fields(Settings)}
    values: dict[str, Any] = {}
    file = config_file or (Path(environ["KGQA_CONFIG"]) if environ.get("KGQA_CONFIG") else None)
    if file is None and _default_config_file().exists():
        file = _default_config_file()
    if file is not None:
        if not file.exists():
            raise InputError(f"config file {file} does not exist")
        try:
            data = tomllib.loads(file.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"config file {file}: {exc}") from None
        unknown = set(data) - names
        if unknown:
            raise InputError(f"config file {file}: unknown setting(s) {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(sorted(names))}")
        values.update(data)
    for name in names:
        if f"KGQA_{name.upper()}" in environ:
            values[name] = environ[f"KGQA_{name.upper()}"]
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return Settings(**{k: _coerce(k, v) for k, v in values.items()})
