"""docker-compose.yml: valid against the Compose Specification schema, and wired the way kgqa needs.

The schema is vendored in tests/data/compose-spec/ (see SOURCE.md there): no network at test time.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import fields
from pathlib import Path

import jsonschema
import pytest
import yaml

from kgqa.config import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "tests" / "data" / "compose-spec" / "compose-spec.json"
COMPOSE = REPO / "docker-compose.yml"

_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def interpolate(value, env: dict[str, str]):
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} substitution (and $$ for a literal $)."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        current = env.get(name)
        if op in (":-", "-"):
            return current if current or (op == "-" and current is not None) else arg
        if op in (":?", "?") and not current:
            raise ValueError(f"{name}: {arg}")
        return current or ""

    parts = value.split("$$")
    return "$".join(_VARIABLE.sub(substitute, part) for part in parts)


def errors_of(validator, document: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_compose_file_is_valid_against_the_compose_specification(validator, compose):
    assert errors_of(validator, compose) == []
    assert errors_of(validator, interpolate(compose, {"NEO4J_PASSWORD": "a-long-password"})) == []


@pytest.mark.parametrize("service, key, value", [
    ("neo4j", "healthcheck", {"test": ["CMD", "true"], "interval": 10}),   # a duration is a string
    ("kgqa", "depends_on", {"neo4j": {"condition": "service_ready"}}),     # no such condition
    ("vllm", "gpu_count", 1),                                              # no such key
])
def test_the_schema_check_can_fail(validator, compose, service, key, value):
    broken = copy.deepcopy(compose)
    broken["services"][service][key] = value
    assert errors_of(validator, broken)


def test_three_services_with_healthchecks_and_loopback_ports(compose):
    services = compose["services"]
    assert set(services) == {"neo4j", "vllm", "kgqa"}
    for name in ("neo4j", "vllm"):
        assert services[name]["healthcheck"]["test"], name
        for port in services[name].get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)
    assert "ports" not in services["kgqa"]


def test_neo4j_service(compose):
    neo4j = compose["services"]["neo4j"]
    assert neo4j["image"] == "neo4j:5.26-community"
    assert neo4j["environment"]["NEO4J_AUTH"].startswith("neo4j/${NEO4J_PASSWORD:?")   # never a literal password
    assert any(v.endswith(":/data") for v in neo4j["volumes"]) and "neo4j-data" in compose["volumes"]
    assert any(p.endswith(":7687") for p in neo4j["ports"])
    assert "cypher-shell" in " ".join(neo4j["healthcheck"]["test"])
    assert "$${NEO4J_AUTH" in " ".join(neo4j["healthcheck"]["test"])      # read inside the container


def test_vllm_service(compose):
    vllm = compose["services"]["vllm"]
    assert vllm["image"].startswith("vllm/vllm-openai:")
    command = vllm["command"]
    assert command[command.index("--model") + 1].startswith("${VLLM_MODEL")
    assert command[command.index("--max-model-len") + 1].startswith("${VLLM_MAX_MODEL_LEN")
    devices = vllm["deploy"]["resources"]["reservations"]["devices"]
    assert any("gpu" in d["capabilities"] and d.get("driver") == "nvidia" for d in devices)
    assert "localhost:8000/health" in " ".join(vllm["healthcheck"]["test"])
    assert interpolate(command, {})[command.index("--port") + 1] == "8000"


def test_kgqa_service_waits_for_both_and_is_configured(compose):
    kgqa = compose["services"]["kgqa"]
    assert kgqa["depends_on"] == {"neo4j": {"condition": "service_healthy"},
                                  "vllm": {"condition": "service_healthy"}}
    env = kgqa["environment"]
    known = {f"KGQA_{f.name.upper()}" for f in fields(Settings)}
    assert set(env) <= known, set(env) - known                            # every variable is a real setting
    assert kgqa["build"] == "." and (REPO / "Dockerfile").exists()
    assert 'ENTRYPOINT ["kgqa"]' in (REPO / "Dockerfile").read_text()

    resolved = interpolate(env, {"NEO4J_PASSWORD": "a-long-password"})
    settings = load_settings(environ=resolved)
    assert settings.graph == "bolt://neo4j:7687"                          # the neo4j service, by name
    assert settings.neo4j_password == "a-long-password"
    assert settings.llm == "http://vllm:8000/v1"                          # the vllm service, by name
    assert settings.llm_model == "Qwen/Qwen2.5-7B-Instruct"
    with pytest.raises(ValueError, match="NEO4J_PASSWORD"):
        interpolate(env, {})                                              # no silent empty password


def test_interpolate_follows_compose_rules():
    assert interpolate("${A:-x}-${B-y}-${C}", {"B": ""}) == "x--"
    assert interpolate("$${KEEP}", {"KEEP": "no"}) == "${KEEP}"
    with pytest.raises(ValueError, match="A: needed"):
        interpolate("${A:?needed}", {"A": ""})
