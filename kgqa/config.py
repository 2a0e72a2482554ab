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
    top_paths: int = 5
    """How many ranked paths a result lists (the best one is walked)."""
    hop_penalty: float = 0.1
    """Score taken off a path per hop beyond the first (chosen on MetaQA dev for the untrained embedder)."""
    embedder: str | None = None
    """A sentence-embedding model directory; default: the packaged all-MiniLM-L6-v2."""
    llm: str = "none"
    neo4j_user: str = "neo4j"
    neo4j_password: str = ""
    neo4j_database: str = "neo4j"
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
        if kind == "float":
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
