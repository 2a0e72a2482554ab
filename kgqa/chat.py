"""`kgqa chat`: the terminal loop (prompt, /commands, history, Ctrl-C) and its scripted twin, `--json`.

Both drive one `Conversation`, so a follow-up is resolved the same way whether a person types it or a
script pipes it. A line that starts with `/` is a command, never a question.

- Interactive: the resolved question is shown ("→ ..."); Ctrl-C cancels the answer being computed (at the
  prompt it clears the line), Ctrl-D or /quit leaves; typed lines are kept in a history file in the cache
  folder, which the up-arrow reaches in the next session too (Python's readline, where the platform has it).
- `--json`: reads lines from stdin and writes one JSON record per non-blank line to stdout, nothing else
  (no prompt, no banner): a turn's `ask --json` record with `turn`, `resolved_question` and
  `resolved_from`; a command's `{"command", "message"}` (an unknown one: `"error"`); a question that failed:
  `{"question", "error"}`.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.markup import escape

from kgqa.conversation import Conversation, Turn, names_list
from kgqa.errors import KgqaError

HISTORY_FILE = "chat_history"
HISTORY_LENGTH = 1000
QUIT_WORDS = {"exit", "quit", ":q"}

COMMANDS = {
    "/help": "this list",
    "/explain": "show (or stop showing) the entity, paths, evidence and timings of each answer",
    "/json": "print (or stop printing) each turn as its JSON record",
    "/reset": "forget the conversation: the next question is read on its own",
    "/history": "the questions of this conversation, as they were resolved",
    "/quit": "leave (also /exit, Ctrl-D)",
}
HELP_TAIL = ("Follow-ups are read against earlier turns: 'what other films did he direct', 'who starred in the "
             "first one', 'which of them ...', 'and the writer?', 'what about Tom Hanks?'. The resolved question is "
             "shown after →. Ctrl-C cancels an answer; the up-arrow recalls earlier questions.")


def history_file(cache_dir: Path) -> Path:
    return Path(cache_dir) / HISTORY_FILE


class LineHistory:
    """Up-arrow history kept in a file across sessions, through the stdlib readline where there is one."""

    def __init__(self, file: Path) -> None:
        self.file = file
        try:
            import readline
        except ImportError:  # e.g. Windows without pyreadline: plain input(), no history
            self.readline = None
            return
        self.readline = readline
        readline.set_history_length(HISTORY_LENGTH)
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            if file.exists():
                readline.read_history_file(str(file))
        except OSError:
            pass  # an unreadable history file only costs the up-arrow its past

    def add(self, line: str) -> None:
        """input() has put the line in readline's history; keep it in the file now, so a kill loses nothing."""
        if self.readline is None:
            return
        try:
            if not self.file.exists():
                self.file.touch()
            self.readline.append_history_file(1, str(self.file))
        except OSError:
            pass

    def prompt(self, colour: bool) -> str:
        if colour and self.readline is not None:  # \001 \002 tell readline the colour codes take no room
            return "\001\033[1;36m\002? \001\033[0m\002"
        return "? "


@dataclass
class Modes:
    explain: bool = False
    json: bool = False


class ChatSession:
    """One chat: the conversation, the modes the /commands toggle, and how turns are shown."""

    def __init__(self, agent: Any, console: Console, err: Console,
                 render: Callable[[Any, bool, bool], None], explain: bool = False, reply: bool = True) -> None:
        self.agent = agent
        self.conversation = Conversation(agent)
        self.console, self.err, self.render = console, err, render
        self.modes = Modes(explain=explain)
        self.stream = reply and getattr(agent, "replier", None) is not None

    # -- commands -------------------------------------------------------------------------------------

    def command(self, line: str) -> tuple[str | None, str]:
        """Run a /command: (the command, or None if unknown, and what to say). '/quit' is answered by the loop."""
        name = line.split()[0].lower()
        if name in ("/exit", "/q"):
            name = "/quit"
        if name == "/help":
            width = max(len(c) for c in COMMANDS)
            return name, "\n".join(f"{c:<{width}}  {text}" for c, text in COMMANDS.items()) + "\n" + HELP_TAIL
        if name == "/explain":
            self.modes.explain = not self.modes.explain
            return name, f"explain is {'on' if self.modes.explain else 'off'}"
        if name == "/json":
            self.modes.json = not self.modes.json
            return name, f"JSON records are {'on' if self.modes.json else 'off'}"
        if name == "/reset":
            self.conversation.reset()
            return name, "forgot the conversation; the next question starts afresh"
        if name == "/history":
            return name, self.history_text()
        if name == "/quit":
            return name, "bye"
        return None, f"unknown command {line.split()[0]}; /help lists the commands"

    def history_text(self) -> str:
        turns = self.conversation.turns
        if not turns:
            return "no questions yet in this conversation (the up-arrow recalls those of earlier sessions)"
        lines = []
        for t in turns:
            resolved = f" → {t.resolution.text}" if t.resolution.resolved else ""
            answers = names_list(t.result.answer_names) or "no answer"
            lines.append(f"{t.number}. {t.question}{resolved}  [{answers}]")
        return "\n".join(lines)

    # -- turns ----------------------------------------------------------------------------------------

    def show(self, turn: Turn) -> None:
        """The resolution (when there was one), then the answer: streamed by the LLM, or the graph's reply."""
        if self.modes.json:
            print(json.dumps(turn.record(), ensure_ascii=False, indent=2), flush=True)
            return
        res = turn.resolution
        if res.resolved:
            self.console.print(f"[dim]→ {escape(res.text)}[/dim]", soft_wrap=True, highlight=False)
            if self.modes.explain and res.alternatives:
                others = "; ".join(f"{names_list(a['entities'])} ({a['answers']} answers)" for a in res.alternatives)
                self.console.print(f"[dim]  also read as: {escape(others)}[/dim]", soft_wrap=True)
        result = turn.result
        if self.stream and result.answers:
            for delta in self.agent.stream_reply(result):
                self.console.print(delta, end="", style="bold", markup=False, highlight=False, soft_wrap=True)
            self.console.print()
            self.render(result, self.modes.explain, False)
        else:
            self.render(result, self.modes.explain, True)

    def interactive(self, stdin: TextIO, history: LineHistory | None) -> None:
        """The loop a person types into (read with input(); `history` None: no history file)."""
        self.console.print("kgqa chat — ask about the graph; follow-ups are understood. /help lists commands, "
                           "Ctrl-D quits.")
        prompt = history.prompt(colour=self.console.is_terminal and not self.console.no_color) if history else "? "
        while True:
            try:
                line = input(prompt)
            except KeyboardInterrupt:  # at the prompt: the line is dropped, the chat goes on
                self.console.print()
                continue
            except EOFError:
                self.console.print()
                return
            try:
                if self.take(line.strip(), history):
                    return
            except KeyboardInterrupt:  # from Enter on (the history write included) Ctrl-C cancels this line only
                self.err.print("cancelled")

    def take(self, line: str, history: LineHistory | None) -> bool:
        """One typed line: a question, a /command or a quit word; True when the chat should end."""
        if not line:
            return False
        if history:
            history.add(line)
        if line.lower() in QUIT_WORDS:
            return True
        if line.startswith("/"):
            name, message = self.command(line)
            (self.console if name else self.err).print(escape(message), soft_wrap=True, highlight=False)
            return name == "/quit"
        try:
            self.show(self.conversation.ask(line))
        except KgqaError as exc:  # this question failed; the next one may not
            self.err.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        return False

    def scripted(self, stdin: TextIO, out: TextIO) -> None:
        """`--json`: one record per non-blank line of stdin, flushed as it is written."""
        for raw in stdin:
            line = raw.strip()
            if not line:
                continue
            if line.startswith("/"):
                name, message = self.command(line)
                record: dict[str, Any] = {"command": line.split()[0]}
                record["message" if name else "error"] = message
                if name in ("/explain", "/json"):
                    record["message"] = f"{name} has no effect with --json (every record is complete)"
                _write(out, record)
                if name == "/quit":
                    return
                continue
            try:
                _write(out, self.conversation.ask(line).record())
            except KgqaError as exc:
                _write(out, {"question": line, "error": str(exc)})


def _write(out: TextIO, record: dict[str, Any]) -> None:
    out.write(json.dumps(record, ensure_ascii=False) + "\n")
    out.flush()


def run_chat(agent: Any, cache_dir: Path, console: Console, err: Console, render: Callable[[Any, bool, bool], None],
             explain: bool = False, reply: bool = True, json_lines: bool = False) -> None:
    """Chat on stdin/stdout: interactive, or with `json_lines` one JSON record per line."""
    if hasattr(sys.stdin, "reconfigure"):
        sys.stdin.reconfigure(errors="replace")  # a line that is not UTF-8 is asked with U+FFFD, not a crash
    session = ChatSession(agent, console, err, render, explain=explain, reply=reply)
    if json_lines:
        session.scripted(sys.stdin, sys.stdout)
    else:
        # Ctrl-C cancels an answer even when kgqa was started with SIGINT ignored (a background job of a script)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        # lines piped in are not a person's: only a terminal's lines go into the history file
        session.interactive(sys.stdin, LineHistory(history_file(cache_dir)) if sys.stdin.isatty() else None)
