"""Settings layers (defaults < config file < environment < CLI flags), the range of each setting, config
files that cannot be read, Neo4j URIs, and credentials masked in reports."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import fields, replace
from pathlib import Path

import pytest

from kgqa.config import RANGES, Settings, check_graph_uri, coerce_setting, flag, load_settings, mask_uri
from kgqa.errors import InputError
from kgqa.graph import open_graph


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


# ---- every setting has a range, and a value outside it is one message naming both ----------------------

def test_every_setting_has_a_range():
    assert {f.name for f in fields(Settings)} == set(RANGES), "give each new Settings field an entry in RANGES"
    for name, rule in RANGES.items():  # and the defaults are inside their own ranges
        assert Settings().to_dict()[name] is not None or rule.optional, name


def test_the_graph_formats_are_the_loaders():
    from kgqa.graph.loaders import FORMATS

    assert RANGES["graph_format"].choices == FORMATS


def test_a_flag_setting_reads_true_or_false(monkeypatch):
    monkeypatch.setitem(RANGES, "some_flag", flag())  # no Settings field is a flag yet; the rule is ready for one
    values = (True, "yes", "ON", "1", False, "no", "off", "0")
    assert [coerce_setting("some_flag", v) for v in values] == [True] * 4 + [False] * 4
    for value in ("maybe", 2, 1.0):
        with pytest.raises(InputError, match=r"setting some_flag: .* is not true or false; expected true or false$"):
            coerce_setting("some_flag", value)


@pytest.mark.parametrize("name,value,why,expected", [
    ("max_hops", "0", "0 is out of range", "a whole number >= 1"),
    ("max_hops", "-1", "-1 is out of range", "a whole number >= 1"),
    ("top_paths", "0", "0 is out of range", "a whole number >= 1"),
    ("top_paths", "-3", "-3 is out of range", "a whole number >= 1"),
    ("top_paths", "2.7", "2.7 is not a whole number", "a whole number >= 1"),
    ("llm_timeout", "true", "'true' is not a number", "a number > 0"),
    ("llm_timeout", "0", "0.0 is out of range", "a number > 0"),
    ("llm_timeout", "nan", "nan is not a finite number", "a number > 0"),
    ("beam_width", "-1", "-1 is out of range", "a whole number >= 0"),
    ("relation_shortlist", "-2", "-2 is out of range", "a whole number >= 0"),
    ("walk_cap", "0", "0 is out of range", "a whole number >= 1"),
    ("batch_size", "", "is empty", "a whole number >= 1"),
    ("backend", "gpu", "'gpu' is not allowed", "one of auto, numpy, torch"),
    ("graph_format", "csv", "'csv' is not allowed", "one of pipe, tsv, ntriples, or empty for the default"),
])
def test_an_environment_value_out_of_range_names_the_setting_and_its_range(name, value, why, expected):
    variable = f"KGQA_{name.upper()}"
    with pytest.raises(InputError) as info:
        load_settings(environ={variable: value})
    message = str(info.value)
    assert message.startswith(f"setting {name} (from {variable})")
    assert why in message and message.endswith(f"expected {expected}")


@pytest.mark.parametrize("line,message", [
    ("max_hops = 0", r"setting max_hops \(from config file .*\): 0 is out of range; expected a whole number >= 1"),
    ("top_paths = -3", r"setting top_paths .*: -3 is out of range; expected a whole number >= 1"),
    ("top_paths = 2.7", r"setting top_paths .*: 2.7 is not a whole number; expected a whole number >= 1"),
    ("llm_timeout = true", r"setting llm_timeout .*: true is not a number; expected a number > 0"),
    ("llm_margin = -0.5", r"setting llm_margin .*: -0.5 is out of range; expected a number >= 0"),
    ("graph = ['a.txt', 'b.txt']", r"setting graph .*: a list is not text; expected text"),
    ("[graph]\npath = 'a.txt'", r"setting graph .*: a table is not text; expected text"),
    ("hop_penalty = 'x'", r"setting hop_penalty .*: 'x' is not a number; expected a number >= 0, or empty"),
])
def test_a_config_value_out_of_range_names_the_setting_and_its_range(tmp_path, line, message):
    file = tmp_path / "kgqa.toml"
    file.write_text(line + "\n")
    with pytest.raises(InputError, match=message):
        load_settings(file, environ={})


def test_values_inside_their_ranges_are_read_with_their_types(tmp_path):
    file = tmp_path / "kgqa.toml"
    file.write_text("max_hops = 2.0\nbeam_width = 0\nllm_timeout = 5\nbackend = 'Torch'\nhop_penalty = ''\n")
    settings = load_settings(file, {"top_paths": 1, "prompts_dir": str(tmp_path)}, environ={"KGQA_LLM_MARGIN": "1e-3"})
    assert (settings.max_hops, settings.beam_width, settings.top_paths) == (2, 0, 1)
    assert isinstance(settings.max_hops, int)
    assert settings.llm_timeout == 5.0 and isinstance(settings.llm_timeout, float)
    assert settings.backend == "torch" and settings.hop_penalty is None and settings.llm_margin == 0.001
    assert settings.prompts_dir == tmp_path


def test_settings_built_in_code_are_checked_too():
    with pytest.raises(InputError, match=r"^setting top_paths: 0 is out of range; expected a whole number >= 1$"):
        Settings(top_paths=0)
    with pytest.raises(InputError, match="setting llm_timeout: true is not a number"):
        Settings(llm_timeout=True)


def test_a_config_file_that_cannot_be_read_is_one_message(tmp_path):
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes("graph = 'x.txt'\nneo4j_user = 'Jos\xe9'\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"latin1.toml, line 2: byte 0xe9 is not UTF-8"):
        load_settings(latin1, environ={})
    with pytest.raises(InputError, match=r"config file .* is a folder; expected a TOML file"):
        load_settings(tmp_path, environ={})
    with pytest.raises(InputError, match=r"is a folder"):
        load_settings(environ={"KGQA_CONFIG": str(tmp_path)})
    bom = tmp_path / "bom.toml"
    bom.write_bytes("\ufefftop_paths = 4\n".encode("utf-8"))
    assert load_settings(bom, environ={}).top_paths == 4


# ---- Neo4j URIs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("uri,message", [
    ("neo4j://127.0.0.1:notaport", r"graph URI neo4j://127.0.0.1:notaport: the port 'notaport' is not a number "
                                   r"from 1 to 65535; expected bolt://host:7687"),
    ("bolt://127.0.0.1:99999", r"the port '99999' is not a number from 1 to 65535"),
    ("bolt://127.0.0.1:0", r"the port '0' is not a number from 1 to 65535"),
    ("neo4j://:7687", r"graph URI neo4j://:7687 names no host"),
    ("bolt://db:7687/movies", r"a path is not supported"),
    ("bolt://db:7687?policy=eu", r"bolt:// takes no query"),
    ("neo4j://neo4j:hunter2@db:7687", r"graph URI neo4j://neo4j:\*\*\*@db:7687: a user or password inside the URI"),
])
def test_a_bad_neo4j_uri_is_one_message_before_connecting(uri, message):
    with pytest.raises(InputError, match=message) as info:
        load_settings(environ={"KGQA_GRAPH": uri})
    assert "hunter2" not in str(info.value)
    settings = Settings()
    settings.graph = uri  # changed after it was checked: open_graph checks it again, before the driver sees it
    with pytest.raises(InputError, match=message):
        open_graph(settings)


def test_good_neo4j_uris_pass():
    for uri in ("bolt://127.0.0.1:7687", "neo4j://db", "neo4j+s://db.example.com:7687?policy=eu", "bolt://[::1]:7687"):
        check_graph_uri(uri)
        assert load_settings(environ={"KGQA_GRAPH": uri}).graph == uri


# ---- credentials are masked ------------------------------------------------------------------------------


@pytest.mark.parametrize("uri,masked", [
    ("neo4j://neo4j:s3cret@db:7687", "neo4j://neo4j:***@db:7687"),
    ("https://sk-abc123@llm.example.com/v1", "https://***@llm.example.com/v1"),
    ("http://user:p@ss:word@10.0.0.5:8000/v1", "http://user:***@10.0.0.5:8000/v1"),
    ("https://llm.example.com/v1?api_key=s3cret&model=x", "https://llm.example.com/v1?api_key=***&model=x"),
    ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
    ("metaqa", "metaqa"),
    ("/data/my:triples@home.tsv", "/data/my:triples@home.tsv"),
])
def test_mask_uri(uri, masked):
    assert mask_uri(uri) == masked


def test_reports_show_no_credentials():
    settings = Settings(llm="https://kgqa:s3cret@llm.example.com/v1?token=t0ken", neo4j_password="hunter2")
    shown = str(settings.to_dict())
    assert "s3cret" not in shown and "t0ken" not in shown and "hunter2" not in shown
    assert settings.to_dict()["llm"] == "https://kgqa:***@llm.example.com/v1?token=***"
    assert settings.llm.startswith("https://kgqa:s3cret@")  # the setting itself is unchanged


# ---- the command line: one line and exit code 1, never a traceback --------------------------------------


@pytest.mark.parametrize("args,message", [
    (["--graph", "neo4j://127.0.0.1:notaport"], "the port 'notaport' is not a number from 1 to 65535"),
    (["--config", "."], "is a folder; expected a TOML file"),
])
def test_cli_reports_a_bad_setting_in_one_line(args, message):
    done = subprocess.run([sys.executable, "-m", "kgqa.cli", "ask", *args, "who directed Kismet"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and message in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_reports_a_setting_out_of_range_in_one_line():
    done = subprocess.run([sys.executable, "-m", "kgqa.cli", "ask", "who directed Kismet"], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "KGQA_TOP_PATHS": "0"})
    assert done.returncode == 1
    assert "setting top_paths (from KGQA_TOP_PATHS): 0 is out of range; expected a whole number >= 1" in done.stderr
    assert "Traceback" not in done.stderr


def test_recorded_commands_and_reranker_metadata_mask_credentials_and_name_the_linker_used(monkeypatch, tmp_path):
    import sys

    from kgqa.cli import recorded_command
    from kgqa.rerank import reranker_context

    monkeypatch.setattr(sys, "argv", ["kgqa", "eval", "--llm", "http://me:hunter2@llm.example:8000/v1"])
    assert "hunter2" not in recorded_command() and "llm.example:8000" in recorded_command()
    from kgqa.graph.embedded import EmbeddedGraph
    from kgqa.linking import linker_dir

    graph = EmbeddedGraph.from_triples([("Kismet", "directed_by", "William Dieterle")])
    settings = Settings(cache_dir=tmp_path)
    linker_dir(settings, graph).mkdir(parents=True)
    (linker_dir(settings, graph) / "model.safetensors").write_bytes(b"")  # a trained linker is there ...
    context = reranker_context(replace(settings, linker="names", llm="http://me:hunter2@llm.example/v1"), graph)
    assert context["linker"] == "name match"  # ... but `linker = names` is what answers
    assert "hunter2" not in context["llm"]
    assert reranker_context(settings, graph)["linker"] == "trained"


def test_a_graph_carries_its_own_settings_under_every_other_layer(tmp_path):
    graph = tmp_path / "family.tsv"
    graph.write_text("Ann\tspouse\tBob\n")
    assert load_settings(overrides={"graph": str(graph)}, environ={}).topic_as_answer is True  # no file: allowed
    (tmp_path / "family.tsv.kgqa.toml").write_text("topic_as_answer = false\nwalk_cap = 500\n")
    own = load_settings(overrides={"graph": str(graph)}, environ={})
    assert own.topic_as_answer is False and own.walk_cap == 500 and own.walk_through_topic is True
    config = tmp_path / "config.toml"
    config.write_text("walk_cap = 700\n")
    assert load_settings(config, {"graph": str(graph)}, environ={}).walk_cap == 700  # the config file wins
    assert load_settings(overrides={"graph": str(graph), "topic_as_answer": True}, environ={}).topic_as_answer
    bundled = load_settings(environ={})
    assert bundled.walk_through_topic is False and bundled.topic_as_answer is False  # MetaQA's conventions
    (tmp_path / "family.tsv.kgqa.toml").write_text("no_such_setting = 1\n")
    with pytest.raises(InputError, match="no_such_setting"):
        load_settings(overrides={"graph": str(graph)}, environ={})


def test_relation_phrases_come_as_a_table_or_as_json_and_are_checked():
    from kgqa.retrieval.phrases import known_phrases, phrase_hint

    assert coerce_setting("relation_phrases", {"directed_by": [" behind the camera "]}) == {
        "directed_by": ["behind the camera"]}
    assert coerce_setting("relation_phrases", '{"written_by": ["penned"]}') == {"written_by": ["penned"]}
    assert coerce_setting("relation_phrases", "") == {}
    for bad in ('{"written_by": "penned"}', "[1, 2]", "not json", '{"written_by": []}'):
        with pytest.raises(InputError, match="relation_phrases"):
            coerce_setting("relation_phrases", bad, "KGQA_RELATION_PHRASES")
    phrases = {"directed_by": ["behind the camera"], "written_by": ["penned"]}
    assert phrase_hint("who's Behind the Camera on X", phrases) == " (directed by)"
    assert phrase_hint("who was behind the cameraman", phrases) == ""  # whole words only
    assert known_phrases({"wrote_by": ["penned"], "written_by": ["scripted"]}, ["directed_by", "written_by"]) == {
        "written_by": ["scripted"]}  # a relation the graph lacks is left out (and logged)
