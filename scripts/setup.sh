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

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
base_site=$("$BASE/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$base_site" > "$site/kgqa-base-env.pth"
.venv/bin/python -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | grep -v "^$" || true
.venv/bin/python -c 'import kgqa.cli' || { echo "setup: kgqa does not import" >&2; exit 1; }
echo "setup: ready (.venv, dependencies from $BASE)"
