"""The command journal's writer: every kubectl command as a pasteable shell line plus a JSON-lines twin.

The format is defined here (the .sh header and comments, the .jsonl fields, the JSON output digest);
replay.py reads it back and re-runs it.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shlex
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from kubectl_launcher.kubectl.redact import Redactor
from kubectl_launcher.kubectl.runner import CommandResult, StdinDigest, StdinRecord
from kubectl_launcher.kubectl.stderr import clean_excerpt

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


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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


class Journal:
    """Appends to `<directory>/<name>.sh` and `<directory>/<name>.jsonl`; safe to share between threads.

    A journal has no redaction registry of its own: whoever records into it hands over theirs, which
    is always the site's (`Kubectl` passes its own, shared with its `for_job` copies). So a secret
    registered once, through `Kubectl.redact`, is hidden in the site journal and in every job journal.
    """

    def __init__(self, directory: str, name: str = "journal") -> None:
        self.directory = directory
        self.name = name
        self.sh_path = os.path.join(directory, f"{name}.sh")
        self.jsonl_path = os.path.join(directory, f"{name}.jsonl")
        self._lock = threading.Lock()
        self._next_index: int | None = None

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
                    count = sum(1 for line in existing if line.strip() and not is_note(line))
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
        redactor: Redactor,
        stdin_record: StdinRecord | None = None,
        env: Mapping[str, str] | None = None,
        attempt: int = 1,
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
        argv = redactor.argv(result.argv)
        child_env = redactor.env(env or {})
        stdin_note: dict[str, Any] | None = None
        rebuild: list[str] | None = None
        if stdin is not None:
            digest = stdin if isinstance(stdin, StdinDigest) else StdinDigest(len(stdin), _sha256(stdin))
            size = "an unknown number of" if digest.size is None else str(digest.size)
            description = (stdin_record.description if stdin_record is not None else "") or f"{size} bytes"
            rebuild_argv = stdin_record.rebuild_argv if stdin_record is not None else None
            rebuild = redactor.argv(rebuild_argv) if rebuild_argv else None
            stdin_note = {
                "description": redactor.text(description),
                "sha256": digest.sha256,
                "bytes": digest.size,
                "rebuild_argv": rebuild,
            }
        shell = shell_line(argv, child_env, rebuild_argv=rebuild)
        failed = result.returncode != 0
        excerpt = redactor.text(clean_excerpt(result.stderr, 600)) if failed and result.stderr else ""
        data: dict[str, Any] = {
            "started_at": iso_utc(result.started_at),
            "duration": round(result.duration, 3),
            "returncode": result.returncode,
            "timed_out": result.timed_out,
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

    def note(self, text: str, *, redactor: Redactor) -> None:
        """Append a remark for the operator: comment lines in the .sh file, a {"note": ...} line in
        the .jsonl. Redacted like every command; replay skips it."""
        clean = "".join(ch if ch.isprintable() or ch == "\n" else " " for ch in text.replace("\t", " "))
        clean = redactor.text(clean).strip("\n")
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


def is_note(line: str) -> bool:
    """A line of the .jsonl file written by Journal.note rather than by Journal.record."""
    return line.startswith('{"note":')
