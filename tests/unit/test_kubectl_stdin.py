"""stdin through the seam: bytes, a path, an open file; what reaches the runner, the journal and retries."""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import pytest

from kubectl_launcher import errors
from kubectl_launcher.kubectl import CommandResult, Kubectl, ShRunner, StdinRecord
from kubectl_launcher.kubectl.journal import Journal
from tests.support.fake_runner import RunnerCall, ScriptedRunner
from tests.support.journals import recorded_commands

UNAVAILABLE = "Error from server (ServiceUnavailable): the server is currently unable to handle the request\n"
EXEC = ("exec", "-i", "pod", "--", "tar", "xf", "-")


@dataclass
class FileRunner(ScriptedRunner):
    """A scripted runner that reads what it is fed, from memory or from a file, as kubectl would."""

    takes_stdin_file: ClassVar[bool] = True
    script: list[int]
    fed: list[bytes | None] = field(default_factory=list)
    from_file: list[bool] = field(default_factory=list)

    def answer(self, call: RunnerCall) -> CommandResult:
        self.from_file.append(call.stdin_file is not None)
        self.fed.append(call.stdin_file.read() if call.stdin_file is not None else call.stdin)
        rc = self.next_scripted(self.script, call)
        return CommandResult(call.argv, rc, "", UNAVAILABLE if rc else "", 0.01, 1_700_000_000.0)


def make(tmp_path: Path, script: list[int]) -> tuple[Kubectl, FileRunner, Journal]:
    runner = FileRunner(list(script))
    journal = Journal(str(tmp_path / "journal"))
    kubectl = Kubectl(runner=runner, journal=journal, cache_dir=str(tmp_path), sleep=lambda s: None)
    return kubectl, runner, journal


def test_a_path_is_streamed_as_a_file_and_journaled_as_cat_of_that_path(tmp_path: Path) -> None:
    data = os.urandom(300_000)
    source = tmp_path / "workspace.tar"
    source.write_bytes(data)
    kubectl, runner, journal = make(tmp_path, [0])
    kubectl.run(EXEC, stdin_path=str(source))
    assert runner.from_file == [True] and runner.fed == [data]
    (entry,) = recorded_commands(journal.jsonl_path)
    assert entry.stdin is not None
    assert entry.stdin["sha256"] == hashlib.sha256(data).hexdigest()
    assert entry.stdin["bytes"] == len(data)
    assert entry.stdin["rebuild_argv"] == ["cat", str(source)]
    assert entry.shell.startswith(f"cat {source} | ")


def test_a_path_is_read_again_for_every_attempt(tmp_path: Path) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(b"abc" * 1000)
    kubectl, runner, journal = make(tmp_path, [1, 1, 0])
    kubectl.run(EXEC, stdin_path=str(source), idempotent=True)
    assert runner.fed == [b"abc" * 1000] * 3
    assert [e.data["attempt"] for e in recorded_commands(journal.jsonl_path)] == [1, 2, 3]


def test_an_open_file_is_fed_from_its_position_and_rewound_for_a_retry(tmp_path: Path) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(b"HEADER" + b"payload" * 100)
    kubectl, runner, journal = make(tmp_path, [1, 0])
    with open(source, "rb") as f:
        f.read(6)
        kubectl.run(EXEC, stdin=f, idempotent=True, stdin_record=StdinRecord("the payload"))
    assert runner.fed == [b"payload" * 100] * 2 and runner.from_file == [True, True]
    entries = recorded_commands(journal.jsonl_path)
    assert entries[0].stdin is not None and entries[0].stdin["description"] == "the payload"
    assert entries[0].stdin["sha256"] == hashlib.sha256(b"payload" * 100).hexdigest()


def test_a_pipe_cannot_be_rewound_so_it_is_not_retried(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, b"streamed")
    os.close(write_end)
    kubectl, runner, journal = make(tmp_path, [1])
    with os.fdopen(read_end, "rb") as pipe, pytest.raises(errors.KubectlUnavailable) as caught:
        kubectl.run(EXEC, stdin=pipe, idempotent=True)
    assert caught.value.attempts == 1
    assert runner.fed == [b"streamed"]
    (entry,) = recorded_commands(journal.jsonl_path)
    assert entry.stdin is not None and entry.stdin["sha256"] is None and entry.stdin["bytes"] is None
    assert "digest unknown" in Path(journal.sh_path).read_text()


def test_a_file_object_without_a_descriptor_is_fed_from_memory(tmp_path: Path) -> None:
    kubectl, runner, _ = make(tmp_path, [0])
    kubectl.run(EXEC, stdin=io.BytesIO(b"in memory"))
    assert runner.fed == [b"in memory"] and runner.from_file == [False]


def test_stdin_and_stdin_path_together_are_refused(tmp_path: Path) -> None:
    kubectl, _, _ = make(tmp_path, [])
    with pytest.raises(TypeError, match="not both"):
        kubectl.run(EXEC, stdin=b"x", stdin_path=str(tmp_path / "x"))


@pytest.mark.parametrize("how", ["bytes", "file"])
def test_sh_runner_delivers_megabytes_of_stdin_byte_identical(tmp_path: Path, how: str) -> None:
    """A real child (sha256sum, standing in for kubectl) reads every byte, in order."""
    data = os.urandom(5 * 1024 * 1024 + 123)
    source = tmp_path / "in.bin"
    source.write_bytes(data)
    env = {"PATH": os.environ.get("PATH", os.defpath), "LC_ALL": "C"}
    runner = ShRunner()
    if how == "bytes":
        result = runner(["sha256sum"], stdin=data, env=env, timeout=60, stdout_path=None)
    else:
        with open(source, "rb") as f:
            result = runner(["sha256sum"], stdin=None, env=env, timeout=60, stdout_path=None, stdin_file=f)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == hashlib.sha256(data).hexdigest()


def test_sh_runner_feeds_empty_stdin_as_end_of_file() -> None:
    env = {"PATH": os.environ.get("PATH", os.defpath)}
    result = ShRunner()(["wc", "-c"], stdin=b"", env=env, timeout=30, stdout_path=None)
    assert result.returncode == 0 and result.stdout.strip() == "0"
