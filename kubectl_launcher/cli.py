"""`kubectl-launcher`: the command-line tool (replay a journal, run the local cluster; more to come)."""

from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from kubectl_launcher import errors
from kubectl_launcher.kubectl import CommandResult, Runner, ShRunner
from kubectl_launcher.kubectl.journal import (
    REDACTED,
    JournalEntry,
    JournalNote,
    clean_excerpt,
    json_output_digest,
    read_journal,
    wants_json,
)

LOCAL_CLUSTER_MODULE = "localkube.cli"


# --- replay --------------------------------------------------------------------------------------


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


def _stdin_asker(stream: TextIO, out: TextIO) -> Callable[[str], str]:
    def ask(prompt: str) -> str:
        out.write(prompt)
        out.flush()
        line = stream.readline()
        return line if line else "q"  # end of input: stop rather than run unattended

    return ask


def _from(items: Sequence[JournalEntry | JournalNote], first: int) -> list[JournalEntry | JournalNote]:
    """Items from entry `first` on, with the notes written just before it."""
    start = 0
    for position, item in enumerate(items):
        if isinstance(item, JournalEntry) and item.index < first:
            start = position + 1
    return [item for item in items[start:] if not isinstance(item, JournalEntry) or item.index >= first]


def _cmd_replay(ns: argparse.Namespace) -> int:
    try:
        items = _from(read_journal(ns.journal), ns.from_)
    except OSError as exc:
        print(f"error: cannot read the journal {ns.journal!r}: {exc.strerror}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"error: {ns.journal!r} is not a kubectl-launcher journal: {exc}", file=sys.stderr)
        return 2
    entries = [item for item in items if isinstance(item, JournalEntry)]
    if ns.dry_run:
        for item in items:
            if isinstance(item, JournalNote):
                print("\n".join(f"# {line}".rstrip() for line in item.text.split("\n")))
            else:
                print(item.shell)
        return 0
    ask = _stdin_asker(sys.stdin, sys.stdout) if ns.step else None
    replayer = Replayer(
        ShRunner(), out=sys.stdout, ask=ask, keep_going=ns.keep_going, kubectl=ns.kubectl, timeout=ns.timeout
    )
    try:
        return replayer.run(entries)
    except errors.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _add_replay(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="re-run the kubectl commands of a journal and compare the results",
        description="Re-run a kubectl-launcher journal (its .sh or .jsonl file, or the folder holding "
        "journal.jsonl), stopping at the first result that differs from the recorded one.",
    )
    parser.add_argument("journal", help="journal.sh, journal.jsonl, or the folder that holds them")
    parser.add_argument("--dry-run", action="store_true", help="only print the command lines, as pasteable text")
    parser.add_argument("--step", action="store_true", help="ask before each command (answers read from stdin)")
    parser.add_argument("--from", dest="from_", type=int, default=1, metavar="N", help="start at entry N")
    parser.add_argument("--keep-going", action="store_true", help="do not stop at the first difference")
    parser.add_argument("--kubectl", help="run this kubectl binary instead of the recorded one")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per command (default 120)")
    parser.set_defaults(func=_cmd_replay)


# --- local-cluster (implemented by the API double, when installed) ------------------------------


def _local_cluster_missing(ns: argparse.Namespace) -> int:
    print(
        f"error: `local-cluster` needs {LOCAL_CLUSTER_MODULE} (the local API double), which is not "
        "installed here; from a checkout of kubectl-launcher: pip install ./localkube",
        file=sys.stderr,
    )
    return 2


def _add_local_cluster(subparsers: Any, wanted: bool) -> None:
    # Imported only when asked for: the API double pulls in aiohttp, which the launcher never needs.
    if wanted:
        try:
            module = importlib.import_module(LOCAL_CLUSTER_MODULE)
        except ModuleNotFoundError as exc:
            if exc.name is None or not LOCAL_CLUSTER_MODULE.startswith(exc.name):
                raise
        else:
            module.add_parser(subparsers)
            return
    parser = subparsers.add_parser("local-cluster", help="run the local Kubernetes API double", add_help=not wanted)
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    parser.set_defaults(func=_local_cluster_missing)


# --- entry point ---------------------------------------------------------------------------------


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubectl-launcher", description="NVFlare jobs as Kubernetes pods, driven by kubectl."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_replay(subparsers)
    first = next((a for a in argv if not a.startswith("-")), None)
    _add_local_cluster(subparsers, wanted=first == "local-cluster")
    # Later: doctor, render, status, logs — each an _add_<name>(subparsers) here.
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args)
    ns = parser.parse_args(args)
    func = getattr(ns, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    code = func(ns)
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
