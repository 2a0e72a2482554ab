"""Which MetaQA questions the planner would turn into a program other than a one-branch chain.

    .venv/bin/python eval/chain_check.py --split dev --limit 1500     # per hop; the non-chains are listed

Every MetaQA question is one entity and one relation chain, so every one should stay a chain: this is the
check that the planner's cue words leave MetaQA alone ("MetaQA must not move"). Run on dev while changing the
planner; the test split is only for the final numbers (`kgqa eval metaqa --split test`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kgqa.agent import Agent  # noqa: E402
from kgqa.config import load_settings  # noqa: E402
from kgqa.questions import strip_marks  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="dev")
    parser.add_argument("--limit", type=int, default=1500)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("KGQA_METAQA_DIR", ROOT.parent / "shared" / "data" / "metaqa")))
    args = parser.parse_args()
    agent = Agent(load_settings(None, {}), many=True)
    report = {}
    for hop in (1, 2, 3):
        lines = (args.data / f"{hop}hop" / f"{args.split}.tsv").read_text(encoding="utf-8").splitlines()[:args.limit]
        questions = [strip_marks(line.split("\t")[0]) for line in lines]
        results = agent.answer_batch(questions)
        kinds = Counter(r.kind for r in results)
        report[f"{hop}-hop"] = {"questions": len(questions), "kinds": dict(kinds),
                                "not_chain": [{"question": r.question, "kind": r.kind, "program": r.program}
                                              for r in results if r.kind != "chain"][:20]}
        print(f"{hop}-hop: {dict(kinds)}", file=sys.stderr)
    print(json.dumps(report, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
