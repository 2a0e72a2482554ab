#!/usr/bin/env bash
# A real chat transcript from the lines in eval/data/dialogues/transcript-lines.txt: what `kgqa chat` prints
# (eval/results/chat-transcript.txt) and one JSON record per line from `kgqa chat --json`
# (eval/results/chat-transcript.jsonl). Needs the trained movie models (make models).
set -eu
KGQA="${KGQA:-.venv/bin/kgqa}"
LINES=eval/data/dialogues/transcript-lines.txt
"$KGQA" chat < "$LINES" > eval/results/chat-transcript.txt 2>&1
"$KGQA" chat --json < "$LINES" > eval/results/chat-transcript.jsonl
