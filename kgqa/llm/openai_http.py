"""A client for OpenAI-compatible chat servers: vLLM, llama.cpp's server, llama-cpp-python's, OpenAI.

Constrained choices: the client asks the server to restrict the output to the allowed ids, trying the
OpenAI `response_format` json_schema first (vLLM, llama.cpp, OpenAI), then llama-cpp-python's
`json_object` with a schema, then vLLM's `structured_outputs` choice; a style the server rejects (HTTP
400/422, or a 500 naming the field) is not tried again. With `guided="off"`, or when a server ignores the constraint, the text is
parsed, and output that names no allowed id is an LLMOutputError, never a guess.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx

from kgqa.config import mask_uri
from kgqa.errors import InputError, LLMError, LLMOutputError, LLMResponseError, LLMTimeout, LLMUnavailable
from kgqa.llm.base import LLM, Completion, Request, Stream, choice_schema

GUIDED_STYLES = ("json_schema", "json_object", "choice", "off")
RETRY_STATUS = {429, 502, 503, 504}
GUIDED_FIELDS = ("response_format", "structured_outputs", "guided_")


OPENAI_HOST = "api.openai.com"


def api_key_from_env(base_url: str, environ: dict[str, str] | None = None) -> str | None:
    """The key to send to `base_url`: KGQA_LLM_API_KEY (meant for whatever --llm names); else OPENAI_API_KEY,
    but only over https to the OpenAI host, so a key for OpenAI never reaches another server."""
    environ = os.environ if environ is None else environ
    if environ.get("KGQA_LLM_API_KEY"):
        return environ["KGQA_LLM_API_KEY"]
    parts = urlsplit(base_url)
    if parts.scheme == "https" and (parts.hostname or "").lower() == OPENAI_HOST:
        return environ.get("OPENAI_API_KEY") or None
    return None


def guided_body(style: str, choices: list[str] | None, schema: dict | None = None) -> dict:
    """The extra request fields that restrict the output to `choices` (or to JSON under `schema`) in one style."""
    shape = schema if schema is not None else choice_schema(choices or [])
    if style == "json_schema":
        return {"response_format": {"type": "json_schema",
                                    "json_schema": {"name": "choice" if schema is None else "output", "strict": True,
                                                    "schema": shape}}}
    if style == "json_object":
        return {"response_format": {"type": "json_object", "schema": shape}}
    if style == "choice" and schema is None:
        return {"structured_outputs": {"choice": list(choices or [])}}
    return {}


def _error_detail(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text.strip()[:200]
    error = data.get("error", data.get("detail", data)) if isinstance(data, dict) else data
    if isinstance(error, dict):
        error = error.get("message", error)
    return str(error)[:200]


class OpenAIHTTP(LLM):
    """Chat completions over HTTP with timeouts, retries with backoff and concurrent batches."""

    def __init__(self, base_url: str, model: str = "", api_key: str | None = None, timeout: float = 30.0,
                 retries: int = 2, backoff: float = 0.5, guided: str = "auto", concurrency: int = 8) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise InputError(f"LLM URL {mask_uri(base_url)!r}: expected http://host:port/v1")
        if guided != "auto" and guided not in GUIDED_STYLES:
            raise InputError(f"guided output {guided!r}: expected auto or one of {', '.join(GUIDED_STYLES)}")
        self.base_url = base_url.rstrip("/")
        self.name = mask_uri(self.base_url)
        """The URL as reports, messages and model metadata show it: credentials in it masked."""
        self.model = model
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.concurrency = max(1, concurrency)
        self._styles = list(GUIDED_STYLES) if guided == "auto" else [guided]
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(base_url=self.base_url, headers=headers,
                                   timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
                                   limits=httpx.Limits(max_connections=self.concurrency))
        self._lock = threading.Lock()
        self._token_route: str | None = None
        self._token_cache: dict[str, int] = {}

    # ---- transport ---------------------------------------------------------------------------

    def _send(self, method: str, path: str, body: dict | None = None, stream: bool = False) -> httpx.Response:
        """One request with retries on connection errors, timeouts, 429 and 502-504; other HTTP errors raise."""
        where = f"{self.name}{path}"
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                request = self.client.build_request(method, path, json=body)
                response = self.client.send(request, stream=stream)
            except httpx.TimeoutException:
                if last:
                    raise LLMTimeout(f"LLM server {self.name} did not answer within {self.timeout:g} s "
                                     f"({self.retries + 1} tries); raise llm_timeout or check the server") from None
            except httpx.TransportError as exc:
                if last:
                    raise LLMUnavailable(f"LLM server {self.name} is not reachable ({type(exc).__name__}: "
                                         f"{exc or 'no answer'}); start it or check --llm") from None
            else:
                if response.status_code < 400:
                    return response
                if stream:
                    response.read()
                    response.close()
                if response.status_code not in RETRY_STATUS or last:
                    raise LLMResponseError(f"LLM server answered HTTP {response.status_code} to {method} {where}: "
                                           f"{_error_detail(response)}", response.status_code)
            time.sleep(self.backoff * 2 ** attempt)
        raise AssertionError("unreachable")

    def model_name(self) -> str:
        """The configured model, else the first one the server lists."""
        if not self.model:
            response = self._send("GET", "/models")
            try:
                self.model = response.json()["data"][0]["id"]
            except (ValueError, KeyError, IndexError, TypeError):
                raise LLMResponseError(f"LLM server {self.name}/models lists no model; set llm_model") from None
        return self.model

    def _body(self, request: Request, style: str, stream: bool) -> dict:
        body = {"model": self.model_name(), "messages": request.messages, "max_tokens": request.max_tokens,
                "temperature": 0.0, "stream": stream}
        if stream:
            body["stream_options"] = {"include_usage": True}
        if request.choices or request.schema:
            body.update(guided_body(style, request.choices, request.schema))
        return body

    def _with_styles(self, request: Request, run):
        """Run with the first guided style the server accepts; a rejection moves on to the next style."""
        guided = bool(request.choices or request.schema)
        styles = list(self._styles) if guided else ["off"]
        if request.schema is not None:  # a schema has no "choice" style
            styles = [s for s in styles if s != "choice"] or ["off"]
        for i, style in enumerate(styles):
            try:
                result = run(style)
            except LLMResponseError as exc:
                # a server that does not know a style rejects it: 400 or 422, or 500 from llama-cpp-python
                rejected = exc.status in (400, 422) or (exc.status == 500 and any(f in str(exc) for f in GUIDED_FIELDS))
                if rejected and i + 1 < len(styles):
                    continue
                raise
            if guided and style != self._styles[0]:
                with self._lock:
                    if style in self._styles:
                        self._styles = self._styles[self._styles.index(style):]
            return result
        raise AssertionError("unreachable")

    # ---- the LLM interface -------------------------------------------------------------------

    def complete(self, request: Request) -> Completion:
        def run(style: str) -> Completion:
            started = time.perf_counter()
            response = self._send("POST", "/chat/completions", self._body(request, style, stream=False))
            try:
                data = response.json()
                text = data["choices"][0]["message"]["content"] or ""
            except (ValueError, KeyError, IndexError, TypeError):
                raise LLMOutputError(f"LLM server {self.name} sent something that is not a chat completion: "
                                     f"{response.text[:120]!r}") from None
            usage = data.get("usage") or {}
            prompt = usage.get("prompt_tokens") or self._estimate_prompt(request)
            return Completion(text, int(prompt), int(usage.get("completion_tokens") or self.count_tokens(text)),
                              (time.perf_counter() - started) * 1000,
                              style if request.choices or request.schema else "off")

        return self._with_styles(request, run)

    def stream(self, request: Request) -> Stream:
        started = time.perf_counter()
        response = self._with_styles(request, lambda style: self._send(
            "POST", "/chat/completions", self._body(request, style, stream=True), stream=True))
        result = Stream(iter(()))
        result.deltas = self._deltas(response, request, result, started)
        return result

    def _deltas(self, response: httpx.Response, request: Request, result: Stream, started: float) -> Iterator[str]:
        usage: dict = {}
        chunks = 0
        try:
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    break
                try:
                    data = json.loads(payload)
                except json.JSONDecodeError:
                    raise LLMOutputError(f"LLM server {self.name} streamed a line that is not JSON: "
                                         f"{payload[:80]!r}") from None
                usage = data.get("usage") or usage
                for choice in data.get("choices") or []:
                    delta = (choice.get("delta") or {}).get("content")
                    if delta:
                        chunks += 1
                        yield delta
        except httpx.TimeoutException:
            raise LLMTimeout(f"LLM server {self.name} stopped streaming for more than {self.timeout:g} s") from None
        except httpx.TransportError as exc:
            raise LLMUnavailable(f"LLM server {self.name} broke off the stream ({type(exc).__name__})") from None
        finally:
            response.close()
        result.completion = Completion(result.text, int(usage.get("prompt_tokens") or self._estimate_prompt(request)),
                                       int(usage.get("completion_tokens") or chunks),
                                       (time.perf_counter() - started) * 1000)

    def complete_many(self, requests: list[Request]) -> list[Completion | LLMError]:
        """Requests run `concurrency` at a time; each result, or its error, in the order given."""
        if len(requests) <= 1 or self.concurrency == 1:
            return super().complete_many(requests)
        self.model_name()

        def one(request: Request) -> Completion | LLMError:
            try:
                return self.complete(request)
            except LLMError as exc:
                return exc

        with ThreadPoolExecutor(min(self.concurrency, len(requests))) as pool:
            return list(pool.map(one, requests))

    def count_tokens(self, text: str) -> int:
        """The server's own tokenizer: vLLM's and llama.cpp's /tokenize, or llama-cpp-python's
        /extras/tokenize/count; when a server offers neither, an over-estimate of one token per 3 characters."""
        if text in self._token_cache:
            return self._token_cache[text]
        transient = False
        root = self.base_url.removesuffix("/v1")
        routes = [self._token_route] if self._token_route else ["/tokenize", "/extras/tokenize/count", "estimate"]
        for route in routes:
            if route == "estimate":
                count = (len(text) + 2) // 3
                if transient:  # the server did not answer: estimate this once, probe again next time
                    return count
            else:
                try:
                    response = self.client.post(root + route, json={"model": self.model_name(), "prompt": text,
                                                                    "content": text, "input": text,
                                                                    "add_special_tokens": False})
                    data = response.json() if response.status_code == 200 else None
                except httpx.TransportError:
                    transient, data = True, None
                except ValueError:
                    data = None
                if not isinstance(data, dict) or not ("count" in data or "tokens" in data):
                    if self._token_route:  # the route that worked before failed now: estimate this once
                        return (len(text) + 2) // 3
                    continue
                count = int(data["count"]) if "count" in data else len(data["tokens"])
            self._token_route = route
            break
        if len(self._token_cache) < 100_000:
            self._token_cache[text] = count
        return count

    @property
    def tokenizer_source(self) -> str:
        return {"/tokenize": "server /tokenize", "/extras/tokenize/count": "server /extras/tokenize/count",
                "estimate": "estimate (3 characters a token)"}.get(self._token_route or "", "not probed yet")

    def _estimate_prompt(self, request: Request) -> int:
        from kgqa.llm.base import count_prompt_tokens

        return count_prompt_tokens(self.count_tokens, request.messages, self.message_overhead())

    def close(self) -> None:
        self.client.close()
