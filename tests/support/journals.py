"""Reading a journal back in tests: its commands without its notes (replay.read_journal, filtered)."""

from __future__ import annotations

from kubectl_launcher.kubectl.replay import JournalEntry, read_journal


def recorded_commands(path: str) -> list[JournalEntry]:
    """The commands of the journal at `path` (its .sh or .jsonl file, or its folder), in order."""
    return [item for item in read_journal(path) if isinstance(item, JournalEntry)]
