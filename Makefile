# The two commands of the README: `make demo` (answers on the bundled movie graph) and `make test`.
.PHONY: setup demo test bench models

setup:
	bash scripts/setup.sh

demo: setup
	.venv/bin/kgqa ask "who directed Kismet" --explain

test: setup
	.venv/bin/python -m pytest -q

bench: setup
	.venv/bin/python eval/bench_speed.py

# Train the linker, the path retriever and the reranker on MetaQA dev (about 30 minutes on 2 cores), and the
# question-shape model on questions written from the graph (seconds);
# the agent uses them from then on (~/.cache/kgqa/models/<graph key>/).
models: setup
	.venv/bin/kgqa train linker
	.venv/bin/kgqa train retriever
	.venv/bin/kgqa train reranker
	.venv/bin/kgqa train shapes
