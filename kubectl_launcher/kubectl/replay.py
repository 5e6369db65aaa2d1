"""Reading a journal back, and replaying it: `kubectl-launcher replay` (cli.py parses its arguments).

`read_journal` gives the commands (JournalEntry) and the operator's notes (JournalNote) in the order
journal.py wrote them; `Replayer` re-runs commands through a Runner (argv lists, never a shell) and
compares each result with the recorded one: the exit code, and for JSON output its digest without
the fields that change on every read (journal.VOLATILE_FIELDS).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from kubectl_launcher.kubectl.journal import is_note, json_output_digest, wants_json
from kubectl_launcher.kubectl.redact import REDACTED
from kubectl_launcher.kubectl.runner import CommandResult, Runner
from kubectl_launcher.kubectl.stderr import clean_excerpt

# --- reading -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JournalEntry:
    """One recorded command, as read back from the JSON-lines file."""

    index: int
    data: Mapping[str, Any]

    @property
    def shell(self) -> str:
        return str(self.data.get("shell", ""))

    @property
    def argv(self) -> list[str]:
        return [str(a) for a in self.data.get("argv", [])]

    @property
    def env(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in dict(self.data.get("env") or {}).items()}

    @property
    def returncode(self) -> int | None:
        rc = self.data.get("returncode")
        return int(rc) if rc is not None else None

    @property
    def stdin(self) -> Mapping[str, Any] | None:
        note = self.data.get("stdin")
        return note if isinstance(note, Mapping) else None


@dataclass(frozen=True)
class JournalNote:
    """A remark written with Journal.note, as read back from the JSON-lines file."""

    text: str
    at: str


def jsonl_path_for(path: str) -> str:
    """The JSON-lines file of a journal named by its .sh file, its .jsonl file, or its directory."""
    if os.path.isdir(path):
        return os.path.join(path, "journal.jsonl")
    base, ext = os.path.splitext(path)
    return base + ".jsonl" if ext in (".sh", "") else path


def read_journal(path: str) -> list[JournalEntry | JournalNote]:
    """Commands and notes, in the order they were written."""
    items: list[JournalEntry | JournalNote] = []
    with open(jsonl_path_for(path), encoding="utf-8") as source:
        for number, line in enumerate(source, start=1):
            if not line.strip():
                continue
            data = json.loads(line)
            if is_note(line):
                items.append(JournalNote(str(data.get("note", "")), str(data.get("at", ""))))
            else:
                items.append(JournalEntry(int(data.get("index", number)), data))
    return items


def starting_at(items: Sequence[JournalEntry | JournalNote], first: int) -> list[JournalEntry | JournalNote]:
    """Items from entry `first` on, with the notes written just before it."""
    start = 0
    for position, item in enumerate(items):
        if isinstance(item, JournalEntry) and item.index < first:
            start = position + 1
    return [item for item in items[start:] if not isinstance(item, JournalEntry) or item.index >= first]


# --- replaying ----------------------------------------------------------------------------------


def _cell(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _rc_text(rc: int | None) -> str:
    return "killed (deadline)" if rc is None else str(rc)


def _output_text(summary: Any, digest: str | None) -> str:
    if not digest:
        return "-"
    described = ""
    if isinstance(summary, dict):
        parts = [str(summary.get(k)) for k in ("kind", "name") if summary.get(k)]
        if "phase" in summary:
            parts.append(f"phase={summary['phase']}")
        if "items" in summary:
            parts.append(f"items={summary['items']}")
        described = " ".join(parts) + " "
    return f"{described}sha256:{digest[:12]}"


def side_by_side(rows: Sequence[tuple[str, str, str]], out: TextIO, width: int = 48) -> None:
    out.write(f"    {'':<10} {'recorded':<{width}} | replay\n")
    for label, recorded, new in rows:
        out.write(f"    {label:<10} {_cell(recorded, width):<{width}} | {_cell(new, width)}\n")


class Replayer:
    """Re-runs journal entries through a Runner (argv lists, never a shell) and compares results."""

    def __init__(
        self,
        runner: Runner,
        *,
        out: TextIO,
        ask: Callable[[str], str] | None = None,
        keep_going: bool = False,
        kubectl: str | None = None,
        timeout: float = 120.0,
    ) -> None:
        self.runner = runner
        self.out = out
        self.ask = ask
        self.keep_going = keep_going
        self.kubectl = kubectl
        self.timeout = timeout

    def _binary(self, argv: list[str], original: str) -> list[str]:
        if self.kubectl and argv and argv[0] == original:
            return [self.kubectl, *argv[1:]]
        return argv

    def _env(self, entry: JournalEntry) -> dict[str, str]:
        env = entry.env
        env["HOME"] = os.environ.get("HOME", "/")
        env["PATH"] = os.environ.get("PATH", os.defpath)
        return env

    def _rebuild_stdin(self, entry: JournalEntry, note: Any, env: dict[str, str]) -> tuple[bytes | None, str]:
        rebuild = note.get("rebuild_argv")
        if not rebuild:
            return None, f"stdin ({note.get('description')}) was not recorded and there is no command to rebuild it"
        argv = self._binary([str(a) for a in rebuild], entry.argv[0])
        if any(REDACTED in a for a in argv):
            return None, "the command that rebuilds stdin contains a redacted value"
        with tempfile.TemporaryDirectory(prefix="kubectl-launcher-replay-") as tmp:
            path = os.path.join(tmp, "stdin")
            result = self.runner(argv, stdin=None, env=env, timeout=self.timeout, stdout_path=path)
            if result.returncode != 0:
                return None, f"rebuilding stdin failed (exit {_rc_text(result.returncode)}): " + clean_excerpt(
                    result.stderr, 300
                )
            with open(path, "rb") as rebuilt:
                data = rebuilt.read()
        if note.get("sha256") and hashlib.sha256(data).hexdigest() != note.get("sha256"):
            self.out.write(f"    note: rebuilt stdin differs from the recorded one (sha256 {note.get('sha256')})\n")
        return data, ""

    def _compare(self, entry: JournalEntry, result: CommandResult) -> list[str]:
        differences = []
        if result.returncode != entry.returncode:
            differences.append("exit code")
        recorded_digest = entry.data.get("stdout_json_sha256")
        if recorded_digest and result.returncode == 0:
            digested = json_output_digest(result.stdout)
            if digested is None or digested[0] != recorded_digest:
                differences.append("output")
        return differences

    def _show(self, entry: JournalEntry, result: CommandResult) -> None:
        new_digest = json_output_digest(result.stdout) if result.returncode == 0 and wants_json(entry.argv) else None
        rows = [
            ("exit code", _rc_text(entry.returncode), _rc_text(result.returncode)),
            ("duration", f"{entry.data.get('duration', 0):.3f}s", f"{result.duration:.3f}s"),
            (
                "stderr",
                str(entry.data.get("stderr_excerpt", "")) or "-",
                clean_excerpt(result.stderr, 300) if result.returncode != 0 else "-",
            ),
            (
                "output",
                _output_text(entry.data.get("stdout_summary"), entry.data.get("stdout_json_sha256")),
                _output_text(new_digest[1], new_digest[0]) if new_digest else "-",
            ),
        ]
        side_by_side(rows, self.out)

    def run(self, entries: Sequence[JournalEntry]) -> int:
        """0 when every replayed result matched the recorded one, 1 otherwise."""
        problems = 0
        for entry in entries:
            self.out.write(f"[{entry.index}] {entry.shell}\n")
            if self.ask is not None:
                answer = self.ask(f"run [{entry.index}]? [Y]es / [s]kip / [q]uit: ").strip().lower()
                if answer.startswith("q"):
                    self.out.write("stopped by the operator\n")
                    break
                if answer.startswith("s"):
                    self.out.write(f"[{entry.index}] skipped\n")
                    continue
            if entry.data.get("stream"):
                # A watch or `logs -f` has no result to compare and would only end at our deadline.
                self.out.write(f"[{entry.index}] long-running (a watch or logs -f): not replayed\n")
                continue
            argv = self._binary(entry.argv, entry.argv[0] if entry.argv else "")
            env = self._env(entry)
            reason = ""
            stdin: bytes | None = None
            if any(REDACTED in a for a in argv) or any(REDACTED in v for v in env.values()):
                reason = "the command contains a redacted value (a token or secret)"
            elif entry.stdin is not None:
                stdin, reason = self._rebuild_stdin(entry, entry.stdin, env)
            if reason:
                problems += 1
                self.out.write(f"[{entry.index}] not replayable: {reason}\n")
                if not self.keep_going:
                    self.out.write("stopping (use --keep-going to go on, --from N to start later)\n")
                    break
                continue
            result = self.runner(argv, stdin=stdin, env=env, timeout=self.timeout, stdout_path=None)
            differences = self._compare(entry, result)
            if not differences:
                self.out.write(f"[{entry.index}] same (exit code {_rc_text(result.returncode)})\n")
                continue
            problems += 1
            self.out.write(f"[{entry.index}] DIFFERENT: {', '.join(differences)}\n")
            self._show(entry, result)
            if not self.keep_going:
                self.out.write("stopping at the first difference (use --keep-going to go on)\n")
                break
        return 1 if problems else 0


__all__ = ["JournalEntry", "JournalNote", "Replayer", "jsonl_path_for", "read_journal", "side_by_side", "starting_at"]
