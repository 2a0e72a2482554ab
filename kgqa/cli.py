"""The `kgqa` command: a thin Typer shell over the library. Tables for people, --json for machines."""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from kgqa.config import Settings, load_settings
from kgqa.errors import InputError, KgqaError
from kgqa.types import Result

app = typer.Typer(help="Question answering over knowledge graphs, with the evidence behind every answer.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
kg_app = typer.Typer(help="Load and inspect knowledge graphs.", no_args_is_help=True)
train_app = typer.Typer(help="Train the models kgqa uses.", no_args_is_help=True)
index_app = typer.Typer(help="Build the retrieval indexes.", no_args_is_help=True)
app.add_typer(kg_app, name="kg")
app.add_typer(train_app, name="train")
app.add_typer(index_app, name="index")

console = Console()
err = Console(stderr=True)

GraphOpt = Annotated[Optional[str], typer.Option("--graph", "-g", help="'metaqa' (bundled), a triples file, or neo4j://host:port.")]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="A TOML config file.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def settings_from(config: Path | None, **overrides: object) -> Settings:
    return load_settings(config, overrides)


def build_agent(settings: Settings):
    from kgqa.agent import Agent

    return Agent(settings)


def progress_bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=err, transient=False)


# ---- rendering ---------------------------------------------------------------------------------


def render_result(result: Result, explain: bool) -> None:
    console.print(f"[bold]{result.reply}[/bold]")
    if not explain:
        return
    console.print(f"entity: [cyan]{result.entity}[/cyan]  (mention: {result.mention!r})")
    console.print(f"path:   [green]{result.path}[/green]")
    if result.path_candidates:
        paths = Table("path", "verbalised", "score", title="candidate paths")
        for c in result.path_candidates:
            paths.add_row(c["path"], c["text"], f"{c['score']:.3f}")
        console.print(paths)
    if result.answers:
        evidence = Table("answer", "score", "evidence", title="answers and evidence")
        for a in result.answers[:25]:
            evidence.add_row(a.name, f"{a.score:.3f}", "\n".join(" | ".join(t) for t in a.evidence))
        if len(result.answers) > 25:
            evidence.add_row(f"… {len(result.answers) - 25} more", "", "")
        console.print(evidence)
    console.print("timings (ms): " + ", ".join(f"{k.removesuffix('_ms')} {v:.1f}" for k, v in result.timings.items()))


# ---- commands ----------------------------------------------------------------------------------


@app.command()
def ask(question: Annotated[str, typer.Argument(help="The question, in plain words.")],
        explain: Annotated[bool, typer.Option("--explain", "-e", help="Show entity, path, evidence and timings.")] = False,
        json_out: JsonOpt = False, graph: GraphOpt = None, config: ConfigOpt = None) -> None:
    """Answer one question."""
    if not question.strip():
        raise InputError("the question is empty")
    agent = build_agent(settings_from(config, graph=graph))
    result = agent.answer(question)
    if json_out:
        print(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
    else:
        render_result(result, explain)


@app.command()
def chat(explain: Annotated[bool, typer.Option("--explain", "-e", help="Show the evidence of each answer.")] = False,
         graph: GraphOpt = None, config: ConfigOpt = None) -> None:
    """Ask questions in a loop. Empty line: nothing happens; Ctrl-D or 'exit': quit; Ctrl-C: quit."""
    agent = build_agent(settings_from(config, graph=graph))
    console.print("kgqa chat — ask about the graph; Ctrl-D or 'exit' quits.")
    while True:
        try:
            question = console.input("[bold cyan]? [/bold cyan]")
        except (EOFError, KeyboardInterrupt):
            console.print()
            return
        question = question.strip()
        if not question:
            continue
        if question.lower() in {"exit", "quit", ":q"}:
            return
        render_result(agent.answer(question), explain)


@app.command()
def batch(input_file: Annotated[Path, typer.Argument(help="Questions: .txt (one a line), MetaQA .tsv, or .jsonl with id and question.")],
          output: Annotated[Path, typer.Option("--output", "-o", help="JSONL output, one record per input line.")],
          resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run, skipping ids already written.")] = False,
          overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output file.")] = False,
          graph: GraphOpt = None, config: ConfigOpt = None) -> None:
    """Answer a file of questions into JSONL; bad lines are reported and skipped."""
    from kgqa.batch import count_lines, run_batch

    if resume and overwrite:
        raise InputError("--resume and --overwrite exclude each other")
    total = count_lines(input_file)
    settings = settings_from(config, graph=graph)
    agent = build_agent(settings)
    started = time.perf_counter()
    with progress_bar() as progress:
        task = progress.add_task("answering", total=total)
        summary = run_batch(agent.answer_batch, input_file, output, resume=resume, overwrite=overwrite,
                            chunk_size=settings.batch_size, on_progress=lambda n: progress.advance(task, n),
                            on_bad_line=lambda m: progress.console.print(f"[yellow]skipped {input_file}, {m}[/yellow]"))
    elapsed = time.perf_counter() - started
    rate = summary.answered / elapsed if elapsed else 0.0
    err.print(f"answered {summary.answered}, already done {summary.skipped_done}, bad lines {len(summary.bad_lines)} "
              f"→ {output} ({rate:.1f} questions/s)")


@app.command("eval")
def eval_cmd(benchmark: Annotated[str, typer.Argument(help="A benchmark in eval/benchmarks/ (e.g. metaqa) or a .toml file.")],
             hops: Annotated[str, typer.Option(help="Comma-separated hops, e.g. 1,2,3.")] = "",
             split: Annotated[str, typer.Option(help="Which split (test is for evaluation only).")] = "test",
             limit: Annotated[Optional[int], typer.Option(help="At most this many questions per hop.")] = None,
             gold_entities: Annotated[bool, typer.Option("--gold-entities", help="Give the agent the gold topic entity.")] = False,
             out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Report folder (default eval/runs/<time>).")] = None,
             data: Annotated[Optional[Path], typer.Option(help="The benchmark's data folder.")] = None,
             graph: GraphOpt = None, config: ConfigOpt = None, json_out: JsonOpt = False) -> None:
    """Run a benchmark: Hits@1, F1, stage accuracies, latency and throughput per hop."""
    from kgqa.evaluate import Benchmark, environment, evaluate_hop, measure_latency, write_report

    bench = Benchmark.load(benchmark, str(data) if data else None)
    try:
        hop_list = [int(h) for h in hops.split(",")] if hops else bench.hops
    except ValueError:
        raise InputError(f"--hops {hops!r}: expected numbers like 1,2,3") from None
    unknown = sorted(set(hop_list) - set(bench.hops))
    if unknown:
        raise InputError(f"benchmark {bench.name} has no hop {unknown[0]}; it has {bench.hops}")
    settings = settings_from(config, graph=graph)
    per_hop = {h: bench.examples(h, split, limit) for h in hop_list}
    agent = build_agent(settings)
    report: dict = {"benchmark": bench.name, "split": split, "gold_entities": gold_entities, "limit": limit,
                    "command": "kgqa " + shlex.join(sys.argv[1:]), "settings": settings.to_dict(),
                    "environment": environment(), "hops": {}}
    rows: list = []
    with progress_bar() as progress:
        for hop, examples in per_hop.items():
            task = progress.add_task(f"{hop}-hop", total=len(examples))
            metrics, hop_rows = evaluate_hop(agent.answer_batch, examples, gold_entities, settings.batch_size,
                                             on_progress=lambda n, t=task: progress.advance(t, n))
            metrics.update(measure_latency(agent.answer, examples[:bench.latency_sample], gold_entities))
            report["hops"][str(hop)] = metrics
            rows += [{"hop": hop, **r} for r in hop_rows]
    out_dir = out or Path("eval/runs") / time.strftime("%Y%m%d-%H%M%S")
    json_file, md_file = write_report(report, rows, out_dir)
    if json_out:
        print(json.dumps(report, indent=2))
        return
    table = Table("hop", "questions", "Hits@1", "F1", "EM", "topic acc", "path acc", "q/s", "p50 ms", "p95 ms",
                  title=f"{bench.name} {split}{' (gold entities)' if gold_entities else ''}")
    for hop, m in report["hops"].items():
        table.add_row(hop, str(m["questions"]), f"{m['hits@1']:.2f}", f"{m['f1']:.2f}", f"{m['exact_match']:.2f}",
                      f"{m['topic_accuracy']:.2f}", f"{m['path_accuracy']:.2f}", f"{m['throughput_qps']:.1f}",
                      f"{m['latency_p50_ms']:.1f}", f"{m['latency_p95_ms']:.1f}")
    console.print(table)
    console.print(f"report: {json_file}  summary: {md_file}")


@kg_app.command("load")
def kg_load(file: Annotated[Path, typer.Argument(help="Triples: subject|relation|object, TSV, or N-Triples (.nt); .gz is fine.")],
            fmt: Annotated[Optional[str], typer.Option("--format", help="pipe, tsv or ntriples (default: from the name).")] = None,
            config: ConfigOpt = None, json_out: JsonOpt = False) -> None:
    """Check and index a triples file so that `--graph FILE` answers over it."""
    from kgqa.graph.embedded import EmbeddedGraph

    settings = settings_from(config)
    if not file.exists():
        raise InputError(f"{file}: no such file")
    started = time.perf_counter()
    with err.status(f"loading {file} …"):
        graph = EmbeddedGraph.from_file(file, fmt, cache_dir=settings.cache_dir)
    stats = graph.stats() | {"load_seconds": round(time.perf_counter() - started, 3)}
    if json_out:
        print(json.dumps(stats, indent=2))
        return
    print_stats(stats)
    console.print(f"Ask with: kgqa ask --graph {shlex.quote(str(file))} \"...\"  (or set KGQA_GRAPH)")


@kg_app.command("stats")
def kg_stats(graph: GraphOpt = None, config: ConfigOpt = None, json_out: JsonOpt = False) -> None:
    """Counts of entities, triples and relations of the configured graph."""
    from kgqa.graph import open_graph

    store = open_graph(settings_from(config, graph=graph))
    stats = store.stats()
    store.close()
    if json_out:
        print(json.dumps(stats, indent=2))
    else:
        print_stats(stats)


def print_stats(stats: dict) -> None:
    console.print(f"[bold]{stats['source']}[/bold]: {stats['entities']:,} entities, {stats['triples']:,} triples, "
                  f"{stats['relations']} relations")
    table = Table("relation", "triples")
    for relation, count in stats["triples_per_relation"].items():
        table.add_row(relation, f"{count:,}")
    console.print(table)


def main() -> None:
    """Entry point: library errors become one red line and exit code 1."""
    try:
        app()
    except KgqaError as exc:
        err.print(f"[red]error:[/red] {exc}")
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
