"""Training data for retrieval: the held-out slice of dev, masked questions, the few-shot example pool.

Dev is the training data; a fixed slice of it, chosen by a hash of the question text (so it does not
depend on file order or on a random seed), is kept aside for model selection. Test is never read here.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from pathlib import Path as FsPath

from kgqa.questions import Example

HELD_OUT_PERCENT = 10


def read_pool_rows(file: FsPath | str) -> list[dict]:
    """The rows of a JSONL example pool (few-shot examples, solved questions): one object a line with at
    least question and path (topic, answers, source optional); blank lines skipped."""
    from kgqa.errors import InputError

    rows = []
    for line_no, line in enumerate(FsPath(file).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if not isinstance(row, dict) or "question" not in row or "path" not in row:
            raise InputError(f"{file}, line {line_no}: expected JSON with question, topic and path")
        rows.append(row)
    return rows


def is_held_out(question: str, percent: int = HELD_OUT_PERCENT) -> bool:
    """True for the dev questions kept aside for model selection (about `percent` in 100)."""
    digest = hashlib.sha256(question.strip().lower().encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % 100 < percent


def split_dev(examples: list[Example], percent: int = HELD_OUT_PERCENT) -> tuple[list[Example], list[Example]]:
    """(training examples, held-out examples)."""
    train, held = [], []
    for example in examples:
        (held if is_held_out(example.question, percent) else train).append(example)
    return train, held


def load_benchmark_examples(benchmark: str = "metaqa", split: str = "dev", data_dir: str | None = None,
                            hops: list[int] | None = None) -> list[Example]:
    """Every example of a benchmark split that names a gold path, over all (or the given) hops."""
    from kgqa.evaluate import Benchmark

    bench = Benchmark.load(benchmark, data_dir)
    examples = []
    for hop in hops or bench.hops:
        for e in bench.examples(hop, split):
            if e.path:
                examples.append(e)
    return examples


def training_split(benchmark: str = "metaqa", split: str = "dev", data_dir: str | None = None
                   ) -> tuple[list[Example], list[Example]]:
    """(training examples, held-out examples) of a benchmark split; the training side also holds the
    benchmark's paraphrases of its training questions. A paraphrase of a held-out question is never trained
    on (`held_out_paraphrases` gives those, for measuring)."""
    from kgqa.evaluate import Benchmark

    train, held = split_dev(load_benchmark_examples(benchmark, split, data_dir))
    bench = Benchmark.load(benchmark, data_dir)
    train += [p for hop in bench.hops for o, p in bench.paraphrase_pairs(hop, split)
              if p.path and not is_held_out(o.question)]
    return train, held


def held_out_paraphrases(benchmark: str = "metaqa", split: str = "dev", data_dir: str | None = None) -> list[Example]:
    """The benchmark's paraphrases of its held-out questions: wordings no model was trained or tuned on."""
    from kgqa.evaluate import Benchmark

    bench = Benchmark.load(benchmark, data_dir)
    return [p for hop in bench.hops for o, p in bench.paraphrase_pairs(hop, split) if is_held_out(o.question)]


def stratified_sample(examples: list[Example], size: int, seed: int = 0) -> list[Example]:
    """About `size` examples spread evenly over gold paths (each path gets its share, rare paths all they have)."""
    if size >= len(examples):
        return list(examples)
    rng = random.Random(seed)
    by_path: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        by_path[example.path].append(example)
    for group in by_path.values():
        rng.shuffle(group)
    chosen: list[Example] = []
    groups = sorted(by_path.values(), key=len)
    for i, group in enumerate(groups):
        share = (size - len(chosen)) // (len(groups) - i)
        chosen += group[:share]
    rng.shuffle(chosen)
    return chosen
