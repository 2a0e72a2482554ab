"""`kgqa eval` writes each hop's report as it finishes, and an interrupted run resumes with --resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HOP1 = ["who directed [Kismet]\tWilliam Dieterle\tdirected_by",
        "when was [Dishonored] released\t1931\trelease_year",
        "who starred in [Random Harvest]\tRonald Colman\tstarred_actors",
        "what language is [Kismet] in\tEnglish\tin_language",
        "who directed [The Life of Emile Zola]\tWilliam Dieterle\tdirected_by"]
HOP2 = ["who directed the films starred by [Marlene Dietrich]\tWilliam Dieterle|Josef von Sternberg\t"
        "starred_actors_inv|directed_by",
        "when were the films directed by [William Dieterle] released\t1944|1937\tdirected_by_inv|release_year"]


def tiny_benchmark(folder: Path, hop2_questions: int) -> Path:
    """A benchmark over tests/data/tiny_kb.txt: 5 one-hop questions, and many two-hop ones (time to kill)."""
    (folder / "1hop.tsv").write_text("\n".join(HOP1) + "\n")
    (folder / "2hop.tsv").write_text("\n".join(HOP2[i % 2] for i in range(hop2_questions)) + "\n")
    spec = folder / "tiny.toml"
    spec.write_text('name = "tiny"\ndata_dir = "."\nhops = [1, 2]\nsplits = { test = "{hop}hop.tsv" }\n'
                    'metrics = ["hits@1", "f1"]\nlatency_sample = 2\n')
    return spec


def eval_command(spec: Path, out: Path, tiny_kb: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "kgqa.cli", "eval", str(spec), "--out", str(out), "--graph", str(tiny_kb), *extra]


def run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=REPO,
                          env={**os.environ, "COLUMNS": "200"})


def rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().split("\n") if line]


def test_each_hop_is_written_as_it_finishes_and_an_interrupted_eval_resumes(tmp_path, tiny_kb):
    spec, out = tiny_benchmark(tmp_path, 1000), tmp_path / "run"
    command = eval_command(spec, out, tiny_kb)
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    report_file = out / "report.json"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and process.poll() is None and not report_file.exists():
            time.sleep(0.05)
        assert process.poll() is None, "the eval ended before it could be interrupted"
        assert report_file.exists(), "hop 1's report was not written while hop 2 ran"
        process.send_signal(signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
    first = json.loads(report_file.read_text())
    assert list(first["hops"]) == ["1"] and first["hops"]["1"]["questions"] == 5
    assert first["hops"]["1"]["hits@1"] == 100.0
    assert "| 1 | 5 |" in (out / "summary.md").read_text()
    assert [r["hop"] for r in rows(out)] == [1] * 5
    with (out / "predictions.jsonl").open("a") as handle:  # as if killed while hop 2's rows were appended
        handle.write(json.dumps({"hop": 2, "question": "cut short"}) + "\n" + '{"hop": 2, "quest')

    again = run(command)
    assert again.returncode == 1 and "already holds an eval report: pass --resume" in again.stderr
    other = run(eval_command(spec, out, tiny_kb, "--resume", "--limit", "3"))
    assert other.returncode == 1 and "was made with other options (limit was None, now 3)" in other.stderr

    resumed = run(eval_command(spec, out, tiny_kb, "--resume"))
    assert resumed.returncode == 0, resumed.stderr
    assert "hops 1 already done" in resumed.stderr
    report = json.loads(report_file.read_text())
    assert list(report["hops"]) == ["1", "2"] and report["hops"]["1"] == first["hops"]["1"]
    assert report["hops"]["2"]["questions"] == 1000 and 0 <= report["hops"]["2"]["hits@1"] <= 100
    assert len(report["resumed"]) == 1 and report["command"] == first["command"]
    written = rows(out)
    assert [r["hop"] for r in written] == [1] * 5 + [2] * 1000
    assert "cut short" not in {r["question"] for r in written}
    assert "| 2 | 1000 |" in (out / "summary.md").read_text()


def test_resume_of_a_folder_that_holds_no_report(tmp_path, tiny_kb):
    spec = tiny_benchmark(tmp_path, 2)
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "report.json").write_text('{"benchmark": "tiny", "hops": ')
    done = run(eval_command(spec, corrupt, tiny_kb, "--resume"))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"{corrupt / 'report.json'} is not a kgqa eval report" in done.stderr
    fresh = tmp_path / "fresh"
    done = run(eval_command(spec, fresh, tiny_kb, "--resume", "--json"))
    assert done.returncode == 0, done.stderr
    assert "does not exist yet: starting from the first hop" in done.stderr
    assert set(json.loads(done.stdout)["hops"]) == {"1", "2"}
