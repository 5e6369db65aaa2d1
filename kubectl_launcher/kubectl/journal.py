"""The command journal: every kubectl command as a pasteable shell line plus a JSON-lines twin."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import shlex
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubectl_launcher.kubectl import CommandResult

REDACTED = "***"

# Flags whose value is a credential. Both `--flag=value` and `--flag value` are covered.
_SECRET_FLAGS = frozenset({"--token", "--password", "--username", "--client-key-data", "--auth-provider-arg"})
# `--from-literal=key=value` puts a Secret's value on the command line; keep the key, hide the value.
_LITERAL_FLAGS = frozenset({"--from-literal"})
_SECRET_ENV_WORDS = ("TOKEN", "PASSWORD", "SECRET", "CREDENTIAL")
_TEXT_PATTERNS = (
    (re.compile(r"(?i)(bearer\s+)[^\s\"',;]+"), r"\1" + REDACTED),
    (re.compile(r"(?i)(--token[= ])[^\s\"',;]+"), r"\1" + REDACTED),
    (re.compile(r"(?i)(\"?(?:token|password|client-key-data)\"?\s*[:=]\s*\"?)[^\s\"',;]+"), r"\1" + REDACTED),
)
# Registered values shorter than this would mangle ordinary text; real secrets are longer.
_MIN_SECRET_LENGTH = 4

SH_HEADER = """\
#!/bin/sh
# kubectl-launcher command journal: every kubectl command, in the order it ran.
# Each command line is preceded by a comment with its index, start time (UTC), duration and exit code,
# and followed, when it failed, by kubectl's own message. Paste a command line to run it again
# exactly as the launcher did (same flags, same environment). `kubectl-launcher replay <this file>`
# re-runs them one by one and compares each result with the recorded one.
# Tokens and registered secrets appear as *** and stdin carrying a Secret is never written here:
# such commands rebuild their stdin from its source files, or are marked as not replayable.
# Running the whole file repeats every create and delete: read it before you do.
"""


class Redactor:
    """Replaces credentials in argv, environments and free text. Thread-safe; shared by copies."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, value: str) -> None:
        """Never write `value` anywhere from now on."""
        if len(value) >= _MIN_SECRET_LENGTH:
            with self._lock:
                self._secrets.add(value)

    def text(self, text: str) -> str:
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
            text = text.replace(secret, REDACTED)
        for pattern, replacement in _TEXT_PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def argv(self, argv: Sequence[str]) -> list[str]:
        out: list[str] = []
        hide_next = False
        for arg in argv:
            if hide_next:
                out.append(REDACTED)
                hide_next = False
                continue
            flag, eq, value = arg.partition("=")
            if flag in _SECRET_FLAGS:
                if eq:
                    out.append(f"{flag}={REDACTED}")
                else:
                    out.append(arg)
                    hide_next = True
                continue
            if flag in _LITERAL_FLAGS and eq:
                key = value.partition("=")[0]
                out.append(f"{flag}={key}={REDACTED}")
                continue
            out.append(self.text(arg))
        return out

    def env(self, env: Mapping[str, str]) -> dict[str, str]:
        return {
            key: REDACTED if any(word in key.upper() for word in _SECRET_ENV_WORDS) else self.text(value)
            for key, value in env.items()
        }


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _chain(text: str, redactors: Iterable[Redactor]) -> str:
    for redactor in redactors:
        text = redactor.text(text)
    return text


def shell_line(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    rebuild_argv: Sequence[str] | None = None,
) -> str:
    """The text an operator pastes: `ENV=... kubectl ...`, or `<rebuild> | ENV=... kubectl ... -f -`."""
    prefix = " ".join(f"{key}={shlex.quote(value)}" for key, value in env.items())
    command = f"{prefix} {shlex.join(argv)}" if prefix else shlex.join(argv)
    if rebuild_argv:
        rebuild = shlex.join(rebuild_argv)
        # A rebuild step that is kubectl itself gets the same environment as the command it feeds.
        if prefix and argv and rebuild_argv[0] == argv[0]:
            rebuild = f"{prefix} {rebuild}"
        command = f"{rebuild} | {command}"
    return command


def clean_excerpt(text: str, limit: int = 2048) -> str:
    """One line: control characters dropped, whitespace collapsed, head and tail kept within `limit`."""
    text = "".join(ch if ch.isprintable() or ch.isspace() else " " for ch in text)
    text = " ".join(text.split())
    if len(text) > limit:
        half = (limit - 5) // 2
        text = f"{text[:half]} ... {text[-half:]}"
    return text


def iso_utc(epoch: float) -> str:
    moment = datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# Fields that change on every read of the same object; a replay ignores them when comparing output.
VOLATILE_FIELDS = frozenset(
    {
        "resourceVersion",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "generation",
        "managedFields",
        "selfLink",
        "startTime",
        "startedAt",
        "finishedAt",
        "lastTransitionTime",
        "lastProbeTime",
        "lastHeartbeatTime",
        "lastTimestamp",
        "firstTimestamp",
        "eventTime",
        "containerID",
        "imageID",
        "podIP",
        "podIPs",
        "hostIP",
        "hostIPs",
        "count",
        "kubectl.kubernetes.io/last-applied-configuration",
    }
)


def _strip_volatile(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_volatile(v) for k, v in value.items() if k not in VOLATILE_FIELDS}
    if isinstance(value, list):
        return [_strip_volatile(v) for v in value]
    return value


def json_output_digest(stdout: str) -> tuple[str, dict[str, Any]] | None:
    """(digest, summary) of JSON output with volatile fields removed; None when stdout is not JSON.

    Only the digest and a summary without data (kind, name, item count, phase) are kept, so that a
    `get secret -o json` leaves nothing secret in the journal.
    """
    try:
        document = json.loads(stdout)
    except ValueError:
        return None
    stable = json.dumps(_strip_volatile(document), sort_keys=True, separators=(",", ":"))
    summary: dict[str, Any] = {}
    if isinstance(document, dict):
        summary["kind"] = document.get("kind")
        metadata = document.get("metadata")
        if isinstance(metadata, dict) and metadata.get("name"):
            summary["name"] = metadata["name"]
        if isinstance(document.get("items"), list):
            summary["items"] = len(document["items"])
        status = document.get("status")
        if isinstance(status, dict) and isinstance(status.get("phase"), str):
            summary["phase"] = status["phase"]
    return hashlib.sha256(stable.encode()).hexdigest(), summary


def wants_json(argv: Sequence[str]) -> bool:
    for i, arg in enumerate(argv):
        if arg in ("-o", "--output") and i + 1 < len(argv) and argv[i + 1] == "json":
            return True
        if arg in ("-ojson", "--output=json", "-o=json"):
            return True
    return False


@dataclass(frozen=True)
class StdinDigest:
    """What the journal keeps of stdin streamed from a file: its size and digest (None when unknown)."""

    size: int | None
    sha256: str | None


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


class Journal:
    """Appends to `<directory>/<name>.sh` and `<directory>/<name>.jsonl`; safe to share between threads."""

    def __init__(self, directory: str, name: str = "journal", *, redactor: Redactor | None = None) -> None:
        self.directory = directory
        self.name = name
        self.sh_path = os.path.join(directory, f"{name}.sh")
        self.jsonl_path = os.path.join(directory, f"{name}.jsonl")
        self.redactor = redactor or Redactor()
        self._lock = threading.Lock()
        self._next_index: int | None = None

    def redact(self, value: str) -> None:
        """Register a secret value: it is replaced by *** wherever it would be written."""
        self.redactor.add(value)

    def _open_append(self, path: str) -> int:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)

    def _prepare(self) -> int:
        # Directory and index are set up on the first record, so a Journal that never records
        # leaves no files; a reopened journal continues its numbering.
        if self._next_index is None:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            count = 0
            if os.path.exists(self.jsonl_path):
                with open(self.jsonl_path, encoding="utf-8") as existing:
                    count = sum(1 for line in existing if line.strip() and not _is_note(line))
            if not os.path.exists(self.sh_path) or os.path.getsize(self.sh_path) == 0:
                fd = self._open_append(self.sh_path)
                try:
                    os.write(fd, SH_HEADER.encode())
                finally:
                    os.close(fd)
            self._next_index = count + 1
        return self._next_index

    def record(
        self,
        result: CommandResult,
        *,
        stdin: bytes | StdinDigest | None = None,
        stdin_record: Any = None,
        env: Mapping[str, str] | None = None,
        attempt: int = 1,
        redactor: Redactor | None = None,
        stream: str | None = None,
        purpose: str = "",
    ) -> int:
        """Append one command; returns its index. `stdin` is only hashed, never written.

        `purpose` says what the command was for, in the launcher's words (kubectl.purpose): tools such as
        the demo's timeline read it instead of guessing from argv.

        A stream read from a file comes as a StdinDigest: the caller hashed it without holding it.
        `stream` marks a long-running command (a watch, logs -f) recorded when it ended: "ended" by
        itself, "stopped" by us, or "overflowed" (stopped because nobody read it). Replay skips it.
        """
        redactors = [r for r in (redactor, self.redactor) if r is not None]

        def red_argv(argv: Sequence[str]) -> list[str]:
            out = list(argv)
            for r in redactors:
                out = r.argv(out)
            return out

        argv = red_argv(result.argv)
        child_env = dict(env or {})
        for r in redactors:
            child_env = r.env(child_env)
        stdin_note: dict[str, Any] | None = None
        rebuild: list[str] | None = None
        if stdin is not None:
            digest = stdin if isinstance(stdin, StdinDigest) else StdinDigest(len(stdin), _sha256(stdin))
            size = "an unknown number of" if digest.size is None else str(digest.size)
            description = getattr(stdin_record, "description", None) or f"{size} bytes"
            rebuild_argv = getattr(stdin_record, "rebuild_argv", None)
            rebuild = red_argv(rebuild_argv) if rebuild_argv else None
            stdin_note = {
                "description": _chain(str(description), redactors),
                "sha256": digest.sha256,
                "bytes": digest.size,
                "rebuild_argv": rebuild,
            }
        shell = shell_line(argv, child_env, rebuild_argv=rebuild)
        failed = result.returncode != 0
        excerpt = _chain(clean_excerpt(result.stderr, 600), redactors) if failed and result.stderr else ""
        data: dict[str, Any] = {
            "started_at": iso_utc(result.started_at),
            "duration": round(result.duration, 3),
            "returncode": result.returncode,
            "timed_out": bool(getattr(result, "timed_out", False)),
            "attempt": attempt,
            "purpose": purpose,
            "argv": argv,
            "env": child_env,
            "stdin": stdin_note,
            "shell": shell,
        }
        if excerpt:
            data["stderr_excerpt"] = excerpt
        if stream is not None:
            data["stream"] = stream
        if result.returncode == 0 and wants_json(result.argv) and result.stdout:
            digested = json_output_digest(result.stdout)
            if digested is not None:
                data["stdout_json_sha256"], data["stdout_summary"] = digested

        with self._lock:
            index = self._prepare()
            data = {"index": index, **data}
            rc_text = "killed by deadline" if result.returncode is None else f"exit code {result.returncode}"
            took = f"took {result.duration:.3f}s"
            if stream:
                took = f"streamed for {result.duration:.3f}s, {_STREAM_ENDS.get(stream, stream)}"
            what = f" ({purpose})" if purpose else ""
            lines = [f"\n# [{index}]{what} {data['started_at']} {took}, {rc_text}"]
            if stdin_note is not None:
                how = "not recorded, rebuilt by the command before the pipe" if rebuild else "not recorded"
                sha = f"sha256 {stdin_note['sha256']}" if stdin_note["sha256"] else "digest unknown"
                lines.append(f"# stdin: {stdin_note['description']}, {sha} — {how}")
            lines.append(shell)
            if excerpt:
                lines.append(f"# stderr: {excerpt}")
            sh_text = "\n".join(lines) + "\n"
            json_text = json.dumps(data, ensure_ascii=False) + "\n"
            self._append(sh_text, json_text)
            self._next_index = index + 1
        return index

    def note(self, text: str, *, redactor: Redactor | None = None) -> None:
        """Append a remark for the operator: comment lines in the .sh file, a {"note": ...} line in
        the .jsonl. Redacted like every command; replay skips it."""
        redactors = [r for r in (redactor, self.redactor) if r is not None]
        clean = "".join(ch if ch.isprintable() or ch == "\n" else " " for ch in text.replace("\t", " "))
        clean = _chain(clean, redactors).strip("\n")
        at = iso_utc(datetime.datetime.now(tz=datetime.UTC).timestamp())
        first, *rest = clean.split("\n") or [""]
        lines = [f"\n# note ({at}): {first}".rstrip(), *(f"# {line}".rstrip() for line in rest)]
        with self._lock:
            self._prepare()
            self._append("\n".join(lines) + "\n", json.dumps({"note": clean, "at": at}, ensure_ascii=False) + "\n")

    def _append(self, sh_text: str, json_text: str) -> None:
        # One write() per file per entry, with O_APPEND: entries never interleave, even
        # between processes appending to the same launcher journal.
        for path, text in ((self.sh_path, sh_text), (self.jsonl_path, json_text)):
            fd = self._open_append(path)
            try:
                os.write(fd, text.encode())
            finally:
                os.close(fd)


_STREAM_ENDS = {
    "ended": "ended by itself",
    "stopped": "stopped by the launcher",
    "overflowed": "stopped by the launcher: its output was not read",
}


def _is_note(line: str) -> bool:
    return line.startswith('{"note":')


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
            if _is_note(line):
                items.append(JournalNote(str(data.get("note", "")), str(data.get("at", ""))))
            else:
                items.append(JournalEntry(int(data.get("index", number)), data))
    return items


def read_entries(path: str) -> list[JournalEntry]:
    """The commands of a journal, without its notes."""
    return [item for item in read_journal(path) if isinstance(item, JournalEntry)]
