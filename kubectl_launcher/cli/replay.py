"""`replay JOURNAL`: re-run the kubectl commands of a journal and compare the results."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, TextIO

from kubectl_launcher import errors
from kubectl_launcher.kubectl import ShRunner
from kubectl_launcher.kubectl.replay import JournalEntry, JournalNote, Replayer, read_journal, starting_at


def _stdin_asker(stream: TextIO, out: TextIO) -> Callable[[str], str]:
    def ask(prompt: str) -> str:
        out.write(prompt)
        out.flush()
        line = stream.readline()
        return line if line else "q"  # end of input: stop rather than run unattended

    return ask


def _cmd_replay(ns: argparse.Namespace) -> int:
    try:
        items = starting_at(read_journal(ns.journal), ns.from_)
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


def add_parser(subparsers: Any) -> None:
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
