"""The `kgqa` command: a thin Typer shell over the library. Tables for people, --json for machines."""

from __future__ import annotations

import json
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from kgqa.config import Settings, load_settings, mask_uri
from kgqa.model_store import graph_models_dir, record_graph
from kgqa.train_all import MIN_TRAINING_QUESTIONS
from kgqa.questions import check_question
from kgqa.errors import InputError, KgqaError
from kgqa.types import Result

app = typer.Typer(help="Question answering over knowledge graphs, with the evidence behind every answer.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
kg_app = typer.Typer(help="Load and inspect knowledge graphs.", no_args_is_help=True)
train_app = typer.Typer(help="Train the models kgqa uses.", no_args_is_help=True)
app.add_typer(kg_app, name="kg")
app.add_typer(train_app, name="train")

# Text from the graph or the user is printed through escape(): names may contain "[red]" or "[/bold]".
# emoji=False: a name like "Bob :smile:" is printed as it is.
console = Console(emoji=False)
err = Console(stderr=True, emoji=False)

GraphOpt = Annotated[Optional[str], typer.Option("--graph", "-g", help="'metaqa' (bundled), a triples file, or neo4j://host:port.")]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="A TOML config file.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
LlmOpt = Annotated[Optional[str], typer.Option("--llm", help="none, embedded (SmolLM2-135M in-process), a .gguf file, or an OpenAI-compatible URL (vLLM: http://host:8000/v1).")]


def settings_from(config: Path | None, **overrides: object) -> Settings:
    return load_settings(config, overrides)


def recorded_command() -> str:
    """This command line as reports and model metadata record it, credentials in URIs masked."""
    return "kgqa " + shlex.join(mask_uri(arg) for arg in sys.argv[1:])


def clean_text(text: str) -> str:
    """Command-line text as valid Unicode: bytes that are not UTF-8 (surrogate escapes in argv) become U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def build_agent(settings: Settings, many: bool = False):
    """many: for batch and eval runs (see Settings.backend)."""
    from kgqa.agent import Agent

    return Agent(settings, many=many)


def progress_bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=err, transient=False)


# ---- rendering ---------------------------------------------------------------------------------


def render_result(result: Result, explain: bool, show_reply: bool = True) -> None:
    """The reply, and with `explain` the entity, paths, evidence and timings; every text from the graph escaped."""
    if show_reply:
        console.print(f"[bold]{escape(result.reply)}[/bold]")
    if not explain:
        return
    console.print(f"entity: [cyan]{escape(str(result.entity))}[/cyan]  (mention: {escape(repr(result.mention))})")
    console.print(f"path:   [green]{escape(str(result.path))}[/green]")
    if result.program and result.kind != "chain":
        console.print(f"program ({escape(result.kind)}, planned by {escape(result.planned_by)}): "
                      f"{escape(json.dumps(result.program, ensure_ascii=False))}")
        if result.query:
            console.print(f"cypher: {escape(result.query.strip())}", soft_wrap=True)
    if result.path_candidates:
        reranked = "rerank" in result.path_candidates[0]
        columns = ("topic", "path", "verbalised", "retriever", "reranker") if reranked else ("path", "verbalised", "score")
        paths = Table(*columns, title="candidate answer groups, reranked" if reranked else "candidate paths")
        for c in result.path_candidates:
            mark = " [magenta](LLM's choice)[/magenta]" if c.get("llm_choice") else ""
            mark += f" [yellow](LLM: {escape(c['llm_fallback'])})[/yellow]" if c.get("llm_fallback") else ""
            row = [escape(c["path"]), escape(c["text"]) + mark, f"{c['score']:.3f}"]
            paths.add_row(*([escape(c["topic"]), *row, f"{c['rerank']:.3f}"] if reranked else row))
        console.print(paths)
    if result.answers:
        evidence = Table("answer", "score", "evidence", title="answers and evidence")
        for a in result.answers[:25]:
            evidence.add_row(escape(a.name), f"{a.score:.3f}", escape("\n".join(" | ".join(t) for t in a.evidence)))
        if len(result.answers) > 25:
            evidence.add_row(f"… {len(result.answers) - 25} more", "", "")
        console.print(evidence)
    if result.llm_calls:
        console.print(f"LLM: {result.llm_calls} call(s), {result.prompt_tokens} prompt and "
                      f"{result.completion_tokens} completion tokens")
    console.print("timings (ms): " + ", ".join(f"{k.removesuffix('_ms')} {v:.1f}" for k, v in result.timings.items()))


# ---- commands ----------------------------------------------------------------------------------


@app.command()
def ask(question: Annotated[str, typer.Argument(help="The question, in plain words.")],
        explain: Annotated[bool, typer.Option("--explain", "-e", help="Show entity, path, evidence and timings.")] = False,
        json_out: JsonOpt = False, graph: GraphOpt = None, config: ConfigOpt = None, llm: LlmOpt = None) -> None:
    """Answer one question."""
    question = clean_text(question)
    check_question(question)  # before the models load
    agent = build_agent(settings_from(config, graph=graph, llm=llm))
    result = agent.answer(question)
    if json_out:
        print(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
    else:
        render_result(result, explain)


@app.command()
def chat(explain: Annotated[bool, typer.Option("--explain", "-e", help="Show the evidence of each answer.")] = False,
         reply: Annotated[bool, typer.Option("--reply/--no-reply", help="With --llm: the LLM words the reply from the graph's answers (streamed); else the template reply.")] = True,
         json_out: Annotated[bool, typer.Option("--json", help="Read lines from stdin, write one JSON record per line to stdout (no prompt, no banner).")] = False,
         graph: GraphOpt = None, config: ConfigOpt = None, llm: LlmOpt = None) -> None:
    """Ask questions in a conversation: follow-ups ("what other films did he direct") are resolved against
    earlier turns and the resolved question is shown. /help lists the commands; Ctrl-C cancels an answer;
    Ctrl-D or /quit leaves."""
    from kgqa.chat import run_chat

    settings = settings_from(config, graph=graph, llm=llm)
    run_chat(build_agent(settings), settings.cache_dir, console, err, render_result,
             explain=explain, reply=reply, json_lines=json_out)


@app.command()
def batch(input_file: Annotated[Path, typer.Argument(help="Questions: .txt (one a line), MetaQA .tsv, or .jsonl with id and question.")],
          output: Annotated[Path, typer.Option("--output", "-o", help="JSONL output, one record per non-blank input line.")],
          resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run, skipping ids already written.")] = False,
          overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output file.")] = False,
          graph: GraphOpt = None, config: ConfigOpt = None, llm: LlmOpt = None) -> None:
    """Answer a file of questions into JSONL; a bad line or a question that fails gets an error record and the run goes on."""
    from kgqa.batch import check_output, completed_keys, count_lines, run_batch

    check_output(input_file, output, resume, overwrite)  # before loading any model
    if resume:  # a corrupt output line is reported now, not after the models have loaded
        completed_keys(output, on_note=lambda m: err.print(f"[yellow]{escape(m)}[/yellow]"))
    total = count_lines(input_file)
    settings = settings_from(config, graph=graph, llm=llm)
    agent = build_agent(settings, many=True)
    started = time.perf_counter()
    with progress_bar() as progress:
        task = progress.add_task("answering", total=total)
        summary = run_batch(agent.answer_batch, input_file, output, resume=resume, overwrite=overwrite,
                            chunk_size=settings.batch_size, on_progress=lambda n: progress.advance(task, n),
                            on_bad_line=lambda m: progress.console.print(f"[yellow]{escape(f'{input_file}, {m}')}[/yellow]"),
                            on_note=lambda m: progress.console.print(f"[yellow]{escape(m)}[/yellow]"))
    elapsed = time.perf_counter() - started
    rate = summary.answered / elapsed if elapsed else 0.0
    err.print(escape(f"answered {summary.answered}, failed {len(summary.failed)}, already done {summary.skipped_done}, "
                     f"bad lines {len(summary.bad_lines)}, blank lines {summary.blank_lines} → {output} "
                     f"({rate:.1f} questions/s)"))


@app.command("eval")
def eval_cmd(benchmark: Annotated[str, typer.Argument(help="A benchmark in eval/benchmarks/ (e.g. metaqa) or the path of a .toml file.")],
             hops: Annotated[str, typer.Option(help="Comma-separated hops, e.g. 1,2,3 (a benchmark without hops: all).")] = "",
             split: Annotated[str, typer.Option(help="Which split (test is for evaluation only).")] = "test",
             limit: Annotated[Optional[int], typer.Option(help="At most this many questions per hop.")] = None,
             gold_entities: Annotated[bool, typer.Option("--gold-entities", help="Give the agent the gold topic entity.")] = False,
             out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Report folder (default eval/runs/<time>); each hop's report is written as it finishes.")] = None,
             resume: Annotated[bool, typer.Option("--resume", help="Continue the interrupted run in --out: answer only the hops it has not finished.")] = False,
             data: Annotated[Optional[Path], typer.Option(help="The benchmark's data folder.")] = None,
             graph: Annotated[Optional[str], typer.Option("--graph", "-g", help="Answer over this graph instead of the benchmark's own ('metaqa' (bundled), a triples file, or neo4j://host:port).")] = None,
             config: ConfigOpt = None, json_out: JsonOpt = False,
             llm: LlmOpt = None) -> None:
    """Run a benchmark: Hits@1, F1, stage accuracies, latency and throughput per hop (or for all its questions);
    for a dialogue benchmark, turn, follow-up-turn and dialogue accuracy."""
    from kgqa.evaluate import Benchmark, environment, evaluate_hop, measure_latency, open_run, write_hop

    bench = Benchmark.load(benchmark, str(data) if data else None)
    if bench.format == "dialogues":
        if hops or gold_entities or resume:
            raise InputError(f"benchmark {bench.name} is dialogues: --hops, --gold-entities and --resume do not apply")
        eval_dialogues(bench, split, limit, out, settings_from(config, graph=graph or bench.graph_to_answer_over(),
                                                                llm=llm), json_out)
        return
    if not bench.grouped_by_hop:
        if hops and hops.strip() != "all":
            raise InputError(f"--hops {hops!r}: benchmark {bench.name} has no hops (its questions are one group, all)")
        hop_list = bench.hops
    else:
        try:
            hop_list = [int(h) for h in hops.split(",")] if hops else bench.hops
        except ValueError:
            raise InputError(f"--hops {hops!r}: expected numbers like 1,2,3") from None
        unknown = sorted(set(hop_list) - set(bench.hops))
        if unknown:
            raise InputError(f"benchmark {bench.name} has no hop {unknown[0]}; it has {bench.hops}")
    if resume and out is None:
        raise InputError("--resume needs --out: the report folder of the run to continue")
    settings = settings_from(config, graph=graph or bench.graph_to_answer_over(), llm=llm)
    report: dict = {"benchmark": bench.name, "split": split, "gold_entities": gold_entities, "limit": limit,
                    "command": recorded_command(), "settings": settings.to_dict(),
                    "environment": environment(), "hops": {}}
    examples_per_hop = {h: bench.examples(h, split, limit) for h in hop_list}  # bad data: fail before writing
    if gold_entities:
        for h, examples in examples_per_hop.items():
            missing = [e for e in examples if not e.topic]
            if missing:
                raise InputError(f"--gold-entities needs the gold topic entity of every question, but "
                                 f"{len(missing)} of {len(examples)} in {bench.split_file(h, split)} have none "
                                 f"(first: {missing[0].question!r}): mark it in the question (topic_marker) or "
                                 f"add a topic column to {bench.file}, or run without --gold-entities")
    out_dir = out or Path("eval/runs") / time.strftime("%Y%m%d-%H%M%S")
    report, note = open_run(out_dir, report, resume)
    if note:
        err.print(escape(note))
    per_hop = {h: examples for h, examples in examples_per_hop.items() if str(h) not in report["hops"]}
    json_file, md_file = out_dir / "report.json", out_dir / "summary.md"
    agent = build_agent(settings, many=True) if per_hop else None
    with progress_bar() as progress:
        for hop, examples in per_hop.items():
            task = progress.add_task(f"{hop}-hop" if bench.grouped_by_hop else "questions", total=len(examples))
            metrics, hop_rows = evaluate_hop(agent.answer_batch, examples, gold_entities, settings.batch_size,
                                             on_progress=lambda n, t=task: progress.advance(t, n))
            metrics.update(measure_latency(agent.answer, examples[:bench.latency_sample], gold_entities))
            json_file, md_file = write_hop(out_dir, report, hop, metrics, hop_rows)  # on disk before the next hop
    if json_out:
        print(json.dumps(report, indent=2))
        return
    table = Table("hop", "questions", "Hits@1", "F1", "EM", "topic acc", "path acc", "q/s", "p50 ms", "p95 ms",
                  title=f"{bench.name} {split}{' (gold entities)' if gold_entities else ''}")
    def cell(m: dict, key: str, digits: int = 2) -> str:
        return f"{m[key]:.{digits}f}" if key in m else "—"  # no gold topic (path) in the benchmark: no accuracy

    for hop, m in report["hops"].items():
        table.add_row(hop, str(m["questions"]), cell(m, "hits@1"), cell(m, "f1"), cell(m, "exact_match"),
                      cell(m, "topic_accuracy"), cell(m, "path_accuracy"), cell(m, "throughput_qps", 1),
                      cell(m, "latency_p50_ms", 1), cell(m, "latency_p95_ms", 1))
    console.print(table)
    for hop, m in report["hops"].items():
        for key, gold, what in (("topic_accuracy", "topic_questions", "topic"), ("path_accuracy", "path_questions", "path")):
            if gold in m:
                console.print(f"hop {hop}: {key} is over the {m[gold]} of {m['questions']} questions with a gold {what}")
    for hop, m in report["hops"].items():
        per_q = m.get("per_question_mean", {})
        if per_q.get("llm_calls"):
            console.print(f"hop {hop}, LLM per question: {per_q['llm_calls']:.2f} calls, {per_q['prompt_tokens']:.1f} "
                          f"prompt and {per_q['completion_tokens']:.1f} completion tokens, "
                          f"{m['stage_ms_mean'].get('llm_ms', 0.0):.1f} ms")
    console.print(escape(f"report: {json_file}  summary: {md_file}"))


def eval_dialogues(bench, split: str, limit: int | None, out: Path | None, settings: Settings, json_out: bool) -> None:
    """`kgqa eval` of a dialogue benchmark: turn, follow-up-turn and dialogue accuracy."""
    from kgqa.dialogue_eval import evaluate_dialogues

    out_dir = out or Path("eval/runs") / time.strftime("%Y%m%d-%H%M%S")
    with progress_bar() as progress:
        task = progress.add_task("dialogues", total=None)
        about = {"benchmark": bench.name, "split": split, "command": recorded_command(), "settings": settings.to_dict()}
        report = evaluate_dialogues(bench, split, limit, settings, out_dir, lambda n: progress.advance(task, n), about)
    if json_out:
        print(json.dumps(report, indent=2))
        return
    table = Table("dialogues", "turns", "follow-up turns", "turn acc", "follow-up acc", "first-turn acc", "dialogue acc",
                  title=f"{bench.name} {split}")
    table.add_row(str(report["dialogues"]), str(report["turns"]), str(report["follow_up_turns"]),
                  f"{report['turn_accuracy']:.2f}", f"{report['follow_up_accuracy']:.2f}",
                  f"{report['first_turn_accuracy']:.2f}", f"{report['dialogue_accuracy']:.2f}")
    console.print(table)
    console.print(escape(f"report: {out_dir / 'report.json'}  predictions: {out_dir / 'predictions.jsonl'}"))


@kg_app.command("load")
def kg_load(file: Annotated[Path, typer.Argument(help="Triples: subject|relation|object, TSV, or N-Triples (.nt); .gz is fine.")],
            fmt: Annotated[Optional[str], typer.Option("--format", help="pipe, tsv or ntriples (default: from the name).")] = None,
            graph: Annotated[Optional[str], typer.Option("--graph", "-g", help="A neo4j:// or bolt:// URI to load into (default: index the file for the embedded store).")] = None,
            config: ConfigOpt = None, json_out: JsonOpt = False) -> None:
    """Check and index a triples file so that `--graph FILE` answers over it, or load it into Neo4j with --graph URI.

    FILE may be 'metaqa' for the bundled movie graph."""
    from kgqa.config import BUNDLED_GRAPH
    from kgqa.graph import NEO4J_SCHEMES, bundled_graph_file
    from kgqa.graph.embedded import EmbeddedGraph

    settings = settings_from(config, graph=graph)
    if str(file) == BUNDLED_GRAPH and not file.exists():
        file, fmt = bundled_graph_file(), "pipe"
    if not file.exists():
        raise InputError(f"{file}: no such file")
    if graph and graph.startswith(NEO4J_SCHEMES):
        load_into_neo4j(settings, file, fmt, json_out)
        return
    started = time.perf_counter()
    with err.status(escape(f"loading {file} …")):
        graph = EmbeddedGraph.from_file(file, fmt, cache_dir=settings.cache_dir)
    stats = graph.stats() | {"load_seconds": round(time.perf_counter() - started, 3)}
    if json_out:
        print(json.dumps(stats, indent=2))
        return
    print_stats(stats)
    console.print(escape(f"Ask with: kgqa ask --graph {shlex.quote(str(file))} \"...\"  (or set KGQA_GRAPH)"))


def load_into_neo4j(settings: Settings, file: Path, fmt: str | None, json_out: bool) -> None:
    """`kg load FILE --graph bolt://...`: batched MERGE into Neo4j with a progress bar."""
    from kgqa.graph.neo4j_load import load_file
    from kgqa.graph.neo4j_store import Neo4jGraph

    with progress_bar() as progress:
        tasks: dict[str, int] = {}

        def on_progress(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = progress.add_task(f"loading {phase}", total=total)
            progress.update(tasks[phase], completed=done)

        summary = load_file(settings, file, fmt, on_progress=on_progress)
    store = Neo4jGraph.connect(settings)
    stats = store.stats() | {"load_seconds": round(summary.seconds, 3), "entities_created": summary.entities_created,
                             "triples_created": summary.triples_created}
    store.close()
    if json_out:
        print(json.dumps(stats, indent=2))
        return
    print_stats(stats)
    err.print(escape(f"loaded {summary.triples:,} triples from {file} in {summary.seconds:.1f} s "
                     f"({summary.triples_created:,} new, {summary.entities_created:,} new entities)"))
    console.print(escape(f"Ask with: kgqa ask --graph {settings.graph} \"...\"  (password from KGQA_NEO4J_PASSWORD)"))


@kg_app.command("stats")
def kg_stats(graph: GraphOpt = None, config: ConfigOpt = None, json_out: JsonOpt = False) -> None:
    """Counts of entities, triples and relations of the configured graph."""
    from kgqa.graph import open_graph

    from kgqa.model_store import graph_models_dir, trained_kinds

    settings = settings_from(config, graph=graph)
    store = open_graph(settings)
    stats = store.stats()
    stats["models"] = {"folder": str(graph_models_dir(settings, store)), "trained": trained_kinds(settings, store)}
    store.close()
    if json_out:
        print(json.dumps(stats, indent=2))
    else:
        print_stats(stats)


def print_stats(stats: dict) -> None:
    console.print(f"[bold]{escape(str(stats['source']))}[/bold]: {stats['entities']:,} entities, {stats['triples']:,} triples, "
                  f"{stats['relations']} relations")
    table = Table("relation", "triples")
    for relation, count in stats["triples_per_relation"].items():
        table.add_row(escape(relation), f"{count:,}")
    console.print(table)
    models = stats.get("models")
    if models:
        trained = ", ".join(models["trained"]) or "none yet (kgqa train ...)"
        console.print(f"trained models for this graph: {escape(trained)} ({escape(models['folder'])})")


# ---- retrieval: the trained path retriever ------------------------------------------


@train_app.command("retriever")
def train_retriever_cmd(benchmark: Annotated[str, typer.Option(help="Benchmark whose dev split is the training data (a slice is held out).")] = "metaqa",
                        data: Annotated[Optional[Path], typer.Option(help="The benchmark's data folder.")] = None,
                        max_pairs: Annotated[int, typer.Option(help="Training triplets, spread over gold paths.")] = 4800,
                        batch_size: Annotated[int, typer.Option(help="Triplets per step (in-batch negatives).")] = 32,
                        epochs: Annotated[int, typer.Option(help="Passes over the triplets.")] = 1,
                        learning_rate: Annotated[float, typer.Option(help="AdamW learning rate.")] = 5e-5,
                        hold_out_path: Annotated[Optional[list[str]], typer.Option(help="A gold path to keep out of training (repeatable), e.g. in_language.")] = None,
                        max_minutes: Annotated[float, typer.Option(help="Stop training after this many minutes (0: no limit); the learning rate then anneals by the clock.")] = 10.0,
                        out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Model folder (default: the graph's own, <cache>/models/<graph key>/retriever, which the agent uses).")] = None,
                        seed: int = 0, graph: GraphOpt = None, config: ConfigOpt = None, json_out: JsonOpt = False) -> None:
    """Fine-tune the path retriever: masked question -> the verbalised path that answers it (contrastive, hard negatives)."""
    from kgqa.graph import open_graph
    from kgqa.retrieval.data import HELD_OUT_PERCENT, training_split
    from kgqa.retrieval.model import retriever_dir
    from kgqa.retrieval.train import TrainOptions, train_retriever

    settings = settings_from(config, graph=graph)
    train, held = training_split(benchmark, "dev", str(data) if data else None)
    options = TrainOptions(max_pairs=max_pairs, batch_size=batch_size, epochs=epochs, learning_rate=learning_rate,
                           seed=seed, hold_out_paths=tuple(hold_out_path or ()), max_hops=settings.max_hops,
                           time_limit_s=max_minutes * 60 if max_minutes else None,
                           extra={"benchmark": benchmark, "command": recorded_command(),
                                  "trained_on": f"{benchmark} dev without its held-out slice ({HELD_OUT_PERCENT}% "
                                                f"of questions, chosen by a hash of the question)"})
    store = open_graph(settings)
    target = out or retriever_dir(settings, store)
    with progress_bar() as progress:
        task = progress.add_task("training", total=None)

        def on_step(step: int, total: int, loss: float) -> None:
            progress.update(task, completed=step, total=total, description=f"training (loss {loss:.3f})")

        meta = train_retriever(store, train, held, target, options, on_step=on_step,
                               on_stage=lambda text: progress.console.print(text))
    if not out:
        record_graph(settings, store)
    store.close()
    if json_out:
        print(json.dumps(meta, indent=2))
        return
    chosen = meta["selection_recall"][str(meta["hop_penalty"])]
    table = Table("hop", "questions", "recall@1", "recall@5", title=f"held-out dev, hop penalty {meta['hop_penalty']}")
    for hop, row in chosen.items():
        table.add_row(hop, str(row["questions"]), f"{row['recall@1']:.2f}", f"{row['recall@5']:.2f}")
    console.print(table)
    if meta.get("held_out_path_recall"):
        row = meta["held_out_path_recall"]["all"]
        console.print(f"paths kept out of training: recall@1 {row['recall@1']:.2f}, recall@5 {row['recall@5']:.2f} "
                      f"({row['questions']} questions)")
    console.print(f"{meta['triplets']} triplets, {meta['steps']} steps, {meta['train_seconds']:.0f} s training, "
                  f"{meta['total_seconds']:.0f} s in all → {target}")


@train_app.command("shapes")
def train_shapes_cmd(written: Annotated[int, typer.Option("--written", help="Questions of every kind to write from the graph.", min=60)] = 6_000,
                     seed: Annotated[int, typer.Option(help="Seed of the written questions.")] = 0,
                     graph: GraphOpt = None, config: ConfigOpt = None, json_out: JsonOpt = False) -> None:
    """Train the question-shape model (chain, conjunction, filter, count, superlative, yes/no) for the configured
    graph, on questions of every kind written from the graph alone; seconds on a MetaQA-sized graph."""
    from kgqa.graph import open_graph
    from kgqa.model_store import model_dir
    from kgqa.shapes import train_shape_model

    settings = settings_from(config, graph=graph)
    store = open_graph(settings)
    with progress_bar() as progress:
        progress.add_task(f"writing {written:,} questions and fitting", total=None)
        model, meta = train_shape_model(store, written, seed, min(settings.max_hops, 2))
    target = model_dir(settings, store, "shapes")
    model.save(target)
    record_graph(settings, store)
    store.close()
    if json_out:
        print(json.dumps(meta, indent=2))
        return
    console.print(f"{meta['written']:,} questions written, {meta['features']:,} features; held-out written questions "
                  f"{meta['held_out_accuracy']:.2f}% right → {escape(str(target))}")


@train_app.command("linker")
def train_linker_cmd(file: Annotated[Optional[list[Path]], typer.Option("--file", "-f", help="Training questions, TSV whose mentions are in square brackets (repeatable). Default: the benchmark's dev files and its ntm_dev paraphrases.")] = None,
                     benchmark: Annotated[str, typer.Option(help="Benchmark whose dev split is the default training data.")] = "metaqa",
                     data: Annotated[Optional[Path], typer.Option(help="The benchmark's data folder.")] = None,
                     max_questions: Annotated[int, typer.Option(help="Training questions sampled (0: all).")] = 12000,
                     layers: Annotated[int, typer.Option(help="BERT layers kept (fewer: faster tagging).")] = 2,
                     max_length: Annotated[int, typer.Option(help="Word pieces per question.")] = 40,
                     batch_size: Annotated[int, typer.Option(help="Questions per step.")] = 32,
                     epochs: Annotated[float, typer.Option(help="Passes over the sampled questions.")] = 1.0,
                     learning_rate: Annotated[float, typer.Option(help="AdamW learning rate.")] = 2e-4,
                     max_minutes: Annotated[float, typer.Option(help="Stop training after this many minutes (0: no limit); the learning rate then anneals by the clock.")] = 10.0,
                     out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Model folder (default: the graph's own, <cache>/models/<graph key>/linker, which the agent uses).")] = None,
                     seed: int = 13, graph: GraphOpt = None, config: ConfigOpt = None, json_out: JsonOpt = False) -> None:
    """Fine-tune the BERT mention tagger of the entity linker (BIO tags; mentions marked in square brackets)."""
    from kgqa.encoder import default_model_path
    from kgqa.evaluate import Benchmark
    from kgqa.graph import open_graph
    from kgqa.linking import linker_dir
    from kgqa.linking.linker import train_linker
    from kgqa.linking.tagger import TrainConfig
    from kgqa.retrieval.data import training_split
    from kgqa.weak_labels import write_marked_tsv

    settings = settings_from(config, graph=graph)
    scratch = tempfile.TemporaryDirectory()
    if not file:
        bench = Benchmark.load(benchmark, str(data) if data else None)
        file = [bench.split_file(h, "dev") for h in bench.hops]
        wordings = [p for p in training_split(benchmark, "dev", str(data) if data else None)[0]
                    if p.source == "paraphrase"]
        if wordings:
            file.append(Path(scratch.name) / "paraphrases.tsv")
            write_marked_tsv(wordings, file[-1])
    store = open_graph(settings)
    target = out or linker_dir(settings, store)
    options = TrainConfig(str(default_model_path()), layers=layers, max_length=max_length, batch_size=batch_size,
                          learning_rate=learning_rate, epochs=epochs, seed=seed,
                          time_limit_s=max_minutes * 60 if max_minutes else None)
    with progress_bar() as progress:
        task = progress.add_task("training the mention tagger", total=None)

        def on_step(step: int, total: int, loss: float) -> None:
            progress.update(task, completed=step, total=total, description=f"training the mention tagger (loss {loss:.3f})")

        meta = train_linker(target, file, options, max_questions=max_questions or None, on_progress=on_step)
    scratch.cleanup()
    meta["command"] = recorded_command()
    (target / "training.json").write_text(json.dumps(meta, indent=2) + "\n")
    if not out:
        record_graph(settings, store)
    store.close()
    if json_out:
        print(json.dumps(meta, indent=2))
        return
    for name in ("validation", "validation_lower_typo"):
        if name in meta:
            v = meta[name]
            console.print(f"{name.replace('_', ' ')}: exact spans {v['exact_spans']:.3f}, mention F1 {v['f1']:.3f}")
    console.print(f"{meta['train_questions']} questions, {meta['steps']} steps, {meta['train_seconds']:.0f} s → {target}")


@train_app.command("all")
def train_all_cmd(questions: Annotated[Optional[Path], typer.Option("--questions", "-q", help="Question-answer pairs: TSV `question<TAB>answer1|answer2`, or JSONL {question, answers, topic?, path?}. No brackets or paths needed. Without it, kgqa writes its own questions from the graph.")] = None,
                  written: Annotated[int, typer.Option("--written", help="Questions to write from the graph when no --questions are given.", min=MIN_TRAINING_QUESTIONS)] = 30_000,
                  max_minutes: Annotated[float, typer.Option(help="Time budget of the whole command: labelling (at most 45% of it) and the models (0: no limit).", min=0)] = 15.0,
                  seed: Annotated[int, typer.Option(help="Seed of the written questions.")] = 0,
                  graph: GraphOpt = None, config: ConfigOpt = None, llm: LlmOpt = None,
                  json_out: JsonOpt = False) -> None:
    """Train the linker, retriever and reranker for the configured graph: from question-answer pairs, or from
    the graph alone, within one time budget.

    With --questions, each question's topic is the graph entity named in it, and its relation path is the one
    (up to max_hops) whose answers best match the given ones: weak supervision. Questions no path reaches are
    dropped and counted; bad lines are reported and skipped. Without it, kgqa samples entities and relation
    paths of the graph and writes questions from the relations' names; with an LLM (--llm) it also has a
    tenth of them reworded, few-shot. The models are saved as this graph's own, with a few-shot pool for
    --llm."""
    from kgqa.graph import open_graph
    from kgqa.linking import NameMatchLinker
    from kgqa.llm import make_llm
    from kgqa.paraphrase import SHARE as REWORD_SHARE
    from kgqa.paraphrase import reword_questions
    from kgqa.prompting import Templates
    from kgqa.question_writer import write_questions
    from kgqa.train_all import TimeBudget, train_for_graph
    from kgqa.weak_labels import label_questions, read_qa_file

    budget = TimeBudget(max_minutes * 60 if max_minutes else None)
    settings = settings_from(config, graph=graph, llm=llm)
    rows, problems = (read_qa_file(questions) if questions else ([], []))
    for problem in problems:
        err.print(f"[yellow]skipped[/yellow] {escape(problem)}", soft_wrap=True)
    store = open_graph(settings)
    with progress_bar() as progress:
        stage = progress.add_task("", total=None)

        def on_stage(text: str) -> None:
            progress.update(stage, description=text, completed=0, total=None)

        def on_step(step: int, total: int, loss: float = 0.0) -> None:
            progress.update(stage, completed=step, total=total)

        if questions:
            on_stage(f"labelling {len(rows):,} questions")
            report = label_questions(store, rows, settings.max_hops,
                                     linker=NameMatchLinker(store, cache_dir=settings.cache_dir),
                                     time_limit_s=budget.for_labelling(), on_progress=on_step)
            labels, summary = report.labels, report.summary()
            trained_on = f"{questions} ({len(labels)} of {len(rows)} questions labelled by weak supervision)"
            for reason, count in sorted(report.dropped.items(), key=lambda kv: -kv[1]):
                progress.console.print(f"dropped {count:,}: {escape(reason)}", soft_wrap=True)
        else:
            on_stage(f"writing {written:,} questions from the graph")
            labels = write_questions(store, settings.max_hops, written, seed)
            summary = {"written": len(labels), "seed": seed, "max_hops": settings.max_hops}
            trained_on = f"{len(labels)} questions written from the graph (seed {seed})"
            model = make_llm(settings)
            if model is not None:
                count = round(len(labels) * REWORD_SHARE)
                on_stage(f"rewording {count:,} of them with the LLM")
                reworded, summary["reworded"] = reword_questions(
                    model, labels, count, budget.for_labelling(), seed,
                    Templates(settings.prompts_dir), on_progress=on_step)
                model.close()
                labels = labels + reworded
                trained_on += f", {len(reworded)} of them reworded by the LLM"
        if len(labels) < MIN_TRAINING_QUESTIONS:
            where = f"{questions}: only {len(labels)} of {len(rows)} questions" if questions else \
                f"the graph gave only {len(labels)} questions"
            raise InputError(f"{where} got a topic and a path (at least {MIN_TRAINING_QUESTIONS} are needed to train)")
        extra = {"command": recorded_command(), "labels": summary}
        meta = train_for_graph(settings, store, labels, trained_on, extra, budget,
                               typos=not questions, on_stage=on_stage, on_step=on_step)
    meta["seconds"] = round(time.perf_counter() - budget.started, 1)
    meta["labels"] = summary
    folder = graph_models_dir(settings, store)
    store.close()
    if json_out:
        print(json.dumps(meta, indent=2, default=str))
        return
    if meta["reranker"]["held_out"].get("fallback"):
        console.print(f"note: {meta['reranker']['held_out']['fallback']}")
    source = f"{summary['kept']:,} of {summary['questions']:,} questions labelled" if questions else \
        f"{summary['written']:,} questions written from the graph" + \
        (f", {summary['reworded']['kept']:,} reworded by the LLM" if "reworded" in summary else "")
    console.print(f"{source}; linker, retriever, reranker and shape model trained for this graph → {escape(str(folder))}")


@train_app.command("reranker")
def train_reranker_cmd(benchmark: Annotated[str, typer.Option(help="Benchmark whose dev split is the training data (a slice is held out for the fusion layer).")] = "metaqa",
                       data: Annotated[Optional[Path], typer.Option(help="The benchmark's data folder.")] = None,
                       train_questions: Annotated[int, typer.Option(help="Training questions for the cross-encoder, spread over gold paths.")] = 4800,
                       negatives: Annotated[int, typer.Option(help="Negative paths per training question.")] = 3,
                       questions_per_step: Annotated[int, typer.Option(help="Training questions per optimiser step.")] = 8,
                       layers: Annotated[int, typer.Option(help="BERT layers kept (fewer: faster scoring).")] = 3,
                       epochs: Annotated[int, typer.Option(help="Passes over the training questions.")] = 1,
                       learning_rate: Annotated[float, typer.Option(help="AdamW learning rate (the new classifier: 10x).")] = 3e-4,
                       fusion_questions: Annotated[int, typer.Option(help="Held-out dev questions for fitting the fusion layer.")] = 900,
                       max_minutes: Annotated[float, typer.Option(help="Time for the cross-encoder's training (its schedule shrinks to fit); 0: no limit.")] = 10.0,
                       out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Model folder (default: the graph's own, <cache>/models/<graph key>/reranker, which the agent uses).")] = None,
                       fusion_only: Annotated[bool, typer.Option("--fusion-only", help="Keep the trained cross-encoder; fit only the fusion layer again (after training the linker or retriever again, or with --llm).")] = False,
                       seed: int = 0, graph: GraphOpt = None, config: ConfigOpt = None, llm: LlmOpt = None,
                       json_out: JsonOpt = False) -> None:
    """Train the reranker: a cross-encoder (masked question x path text) fused with the linker, retriever and LLM signals.

    Never reads the test split. With --llm, the LLM's path choice is one of the fused signals."""
    from kgqa.graph import open_graph
    from kgqa.rerank import reranker_dir
    from kgqa.rerank.train import RerankOptions, refit_fusion, train_reranker
    from kgqa.retrieval.data import HELD_OUT_PERCENT, training_split

    settings = settings_from(config, graph=graph, llm=llm)
    train, held = training_split(benchmark, "dev", str(data) if data else None)
    options = RerankOptions(train_questions=train_questions, negatives=negatives, questions_per_step=questions_per_step,
                            layers=layers, epochs=epochs,
                            learning_rate=learning_rate, fusion_questions=fusion_questions, seed=seed,
                            top_topics=settings.rerank_topics, top_paths=settings.top_paths,
                            time_limit_s=max_minutes * 60 if max_minutes else None,
                            extra={"benchmark": benchmark, "command": recorded_command(),
                                   "trained_on": f"{benchmark} dev without its held-out slice; fusion on the held-out "
                                                 f"slice ({HELD_OUT_PERCENT}% of questions, chosen by a hash of the question)"})
    store = open_graph(settings)
    target = out or reranker_dir(settings, store)
    with progress_bar() as progress:
        task = None if fusion_only else progress.add_task("training the cross-encoder", total=None)
        scoring: dict = {}

        def on_step(step: int, total: int, loss: float) -> None:
            progress.update(task, completed=step, total=total, description=f"training the cross-encoder (loss {loss:.3f})")

        def on_progress(done: int, total: int) -> None:
            if "task" not in scoring:
                scoring["task"] = progress.add_task("held-out candidates", total=total)
            progress.update(scoring["task"], completed=done)

        if fusion_only:
            meta = refit_fusion(settings, store, held, target, options,
                                on_stage=lambda text: progress.console.print(text), on_progress=on_progress)
        else:
            meta = train_reranker(settings, store, train, held, target, options, on_step=on_step,
                                  on_stage=lambda text: progress.console.print(text), on_progress=on_progress)
    if not out:
        record_graph(settings, store)
    store.close()
    if json_out:
        print(json.dumps(meta, indent=2))
        return
    held_out = meta["held_out"]
    if held_out.get("fallback"):
        console.print(f"note: {held_out['fallback']}")
    table = Table("hop", "questions", "retrieval Hits@1", "retrieval F1", "reranked Hits@1", "reranked F1",
                  title=f"held-out dev (answer set: {held_out['mode']}; fusion fitted on these questions)")
    for hop, row in held_out["per_hop"].items():
        before, after = row["retrieval_only"], row["reranked (in-sample)"]
        table.add_row(hop, str(row["questions"]), f"{before['hits@1']:.2f}", f"{before['f1']:.2f}",
                      f"{after['hits@1']:.2f}", f"{after['f1']:.2f}")
    console.print(table)
    cv = held_out["fused_group"]
    console.print(f"2-fold cross-validated on held-out dev: Hits@1 {cv['hits@1']:.2f}, F1 {cv['f1']:.2f} "
                  f"(retrieval only {held_out['retrieval_only']['hits@1']:.2f} / {held_out['retrieval_only']['f1']:.2f})")
    if fusion_only:
        console.print(f"fusion layer fitted again in {meta['fusion_refit']['seconds']:.0f} s → {target}")
        return
    console.print(f"{meta['train_lists']} training lists, {meta['training']['steps']} steps, "
                  f"{meta['training']['train_seconds']:.0f} s training, {meta['total_seconds']:.0f} s in all → {target}")


def main() -> None:
    """Entry point: library errors become one red line and exit code 1 (Typer turns Ctrl-C into exit code 130)."""
    try:
        app()
    except KgqaError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)  # one line, however narrow the terminal
        sys.exit(1)


if __name__ == "__main__":
    main()
