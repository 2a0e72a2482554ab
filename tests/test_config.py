"""Settings layers: defaults < config file < environment < CLI flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from kgqa.config import load_settings
from kgqa.errors import InputError


def test_layers_in_order(tmp_path):
    file = tmp_path / "kgqa.toml"
    file.write_text('graph = "from-file.txt"\nmax_hops = 2\ntop_paths = 7\n')
    env = {"KGQA_MAX_HOPS": "1", "KGQA_CACHE_DIR": str(tmp_path / "c")}
    settings = load_settings(file, {"top_paths": 3, "graph": None}, environ=env)
    assert settings.graph == "from-file.txt"  # file beats default; a None flag does not override
    assert settings.max_hops == 1  # environment beats file
    assert settings.top_paths == 3  # flag beats everything
    assert settings.cache_dir == tmp_path / "c"
    assert load_settings(environ={}).graph == "metaqa"


def test_bad_config_is_a_clear_error(tmp_path):
    file = tmp_path / "kgqa.toml"
    file.write_text("grahp = 'x'\n")
    with pytest.raises(InputError, match="unknown setting.*grahp"):
        load_settings(file, environ={})
    with pytest.raises(InputError, match="does not exist"):
        load_settings(Path(tmp_path / "missing.toml"), environ={})
    with pytest.raises(InputError, match="max_hops.*not a number"):
        load_settings(environ={"KGQA_MAX_HOPS": "three"})


def test_password_is_not_shown(tmp_path):
    settings = load_settings(environ={"KGQA_NEO4J_PASSWORD": "secret"})
    assert settings.neo4j_password == "secret"
    assert "secret" not in str(settings.to_dict())
