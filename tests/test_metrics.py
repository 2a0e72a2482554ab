"""Answer metrics, percentiles and the benchmark definition."""

from __future__ import annotations

import pytest

from kgqa.errors import InputError
from kgqa.evaluate import Benchmark, answer_metrics, markdown_summary, percentile


def test_perfect_and_empty():
    assert answer_metrics(["a", "b"], {"a", "b"}) == {"hits@1": 1.0, "precision": 1.0, "recall": 1.0,
                                                      "f1": 1.0, "exact_match": 1.0}
    assert answer_metrics([], {"a"}) == {"hits@1": 0.0, "precision": 0.0, "recall": 0.0, "f1": 0.0,
                                         "exact_match": 0.0}


def test_partial_overlap():
    scores = answer_metrics(["x", "a", "b", "c"], {"a", "b"})
    assert scores["hits@1"] == 0.0  # the top answer is wrong
    assert scores["precision"] == pytest.approx(0.5)
    assert scores["recall"] == pytest.approx(1.0)
    assert scores["f1"] == pytest.approx(2 / 3)
    assert scores["exact_match"] == 0.0


def test_percentile_nearest_rank():
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 95) == 95
    assert percentile([7.0], 95) == 7.0
    assert percentile([], 50) == 0.0


def test_benchmark_definition_reads_metaqa(tmp_path):
    (tmp_path / "1hop").mkdir()
    (tmp_path / "1hop" / "test.tsv").write_text(
        "who directed [Kismet]\tWilliam Dieterle\tdirected_by\n"
        "what films did [Paris, Texas] star\tA|B\tstarred_actors\n")
    bench = Benchmark.load("metaqa", data_dir=str(tmp_path))
    examples = bench.examples(1, "test")
    assert [e.question for e in examples] == ["who directed Kismet", "what films did Paris, Texas star"]
    assert examples[1].answers == ("A", "B") and examples[1].topic == "Paris, Texas"
    assert bench.examples(1, "test", limit=1)[0].path == "directed_by"
    with pytest.raises(InputError, match="no split 'train'"):
        bench.examples(1, "train")
    with pytest.raises(InputError, match="not found"):
        bench.examples(2, "test")


def test_unknown_benchmark():
    with pytest.raises(InputError, match="no benchmark named 'webqsp'"):
        Benchmark.load("webqsp")


def test_markdown_summary_has_every_hop():
    hop = {"questions": 2, "hits@1": 50.0, "f1": 40.0, "stage_ms_mean": {"total_ms": 1.0},
           "per_question_mean": {"llm_calls": 0.5, "prompt_tokens": 161.0, "completion_tokens": 1.0}}
    text = markdown_summary({"benchmark": "metaqa", "split": "test", "gold_entities": True, "command": "kgqa eval",
                             "settings": {}, "hops": {"1": hop, "2": hop}})
    assert "| 1 | 2 | 50.0 | 40.0" in text and "| 2 | 2 |" in text and "gold topic entities" in text
    assert "hop 1: llm_calls 0.5, prompt_tokens 161.0" in text
