"""Shared by the Neo4j tests: which server to use, and skip-or-fail when there is none."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from kgqa.config import Settings

REPO = Path(__file__).resolve().parents[1]
START_HINT = ("start one with `bash services/neo4j/start.sh` then "
              "`export KGQA_TEST_NEO4J=bolt://127.0.0.1:7687`")


def servers_required() -> bool:
    return os.environ.get("KGQA_REQUIRE_SERVERS", "") not in ("", "0")


def neo4j_uri() -> str:
    """The test server's URI; without one the test skips, or fails when KGQA_REQUIRE_SERVERS=1."""
    uri = os.environ.get("KGQA_TEST_NEO4J", "")
    if not uri:
        message = f"no Neo4j server for the tests (KGQA_TEST_NEO4J is unset): {START_HINT}"
        if servers_required():
            pytest.fail(message + " (KGQA_REQUIRE_SERVERS=1: a missing server is a failure, not a skip)")
        pytest.skip(message)
    return uri


def neo4j_password() -> str:
    return os.environ.get("KGQA_NEO4J_PASSWORD") or os.environ.get("NEO4J_PASSWORD") or "kgqa-test-password"


def neo4j_settings(uri: str | None = None, **changes: object) -> Settings:
    values: dict[str, object] = {"graph": uri or neo4j_uri(), "neo4j_password": neo4j_password()}
    if os.environ.get("KGQA_CACHE_DIR"):
        values["cache_dir"] = Path(os.environ["KGQA_CACHE_DIR"])
    values.update(changes)
    return Settings(**values)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def metaqa_dir() -> Path | None:
    """MetaQA's questions (shared/data/metaqa beside the checkout, or KGQA_METAQA_DIR)."""
    candidates = [os.environ.get("KGQA_METAQA_DIR"), REPO.parent / "shared" / "data" / "metaqa"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "1hop" / "test.tsv").exists():
            return Path(candidate)
    return None
