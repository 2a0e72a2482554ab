"""Build the packaged few-shot pool (kgqa/data/fewshot_metaqa_dev.jsonl) from MetaQA *dev* questions.

For each gold relation path, up to PER_PATH questions with different wordings (the question with its
topic entity masked), taken from the first 90% of each dev file (the rest is kept aside for model
selection). Test questions are never read.

    .venv/bin/python scripts/build_fewshot_pool.py [METAQA_DIR]
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DIR = ROOT.parent / "shared" / "data" / "metaqa"
OUT = ROOT / "kgqa" / "data" / "fewshot_metaqa_dev.jsonl"
PER_PATH = 4
MARKED = re.compile(r"\[(.*?)\]")


def main(data_dir: Path) -> None:
    rows = []
    for hop in (1, 2, 3):
        file = data_dir / f"{hop}hop" / "dev.tsv"
        lines = file.read_text(encoding="utf-8").splitlines()
        usable = lines[: int(len(lines) * 0.9)]
        wordings: dict[str, set[str]] = {}
        for line_no, line in enumerate(usable, start=1):
            question, _answers, path = line.split("\t")
            topic = MARKED.search(question).group(1)
            wording = MARKED.sub("X", question)
            seen = wordings.setdefault(path, set())
            if len(seen) >= PER_PATH or wording in seen:
                continue
            seen.add(wording)
            rows.append({"question": question.replace("[", "").replace("]", ""), "topic": topic, "path": path,
                         "source": f"metaqa/{hop}hop/dev.tsv:{line_no}"})
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"{len(rows)} examples over {len({r['path'] for r in rows})} paths -> {OUT}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DIR)
