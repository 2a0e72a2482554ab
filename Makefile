# The two commands of the README: `make demo` (answers on the bundled movie graph) and `make test`.
.PHONY: setup demo test bench

setup:
	bash scripts/setup.sh

demo: setup
	.venv/bin/kgqa ask "who directed Kismet" --explain

test: setup
	.venv/bin/python -m pytest -q

bench: setup
	.venv/bin/python eval/bench_speed.py
