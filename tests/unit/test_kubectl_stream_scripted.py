"""Kubectl.stream with a scripted Streamer: no process starts, the stream's logic is all that runs."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

from kubectl_launcher import errors
from kubectl_launcher.kubectl import CommandResult, Kubectl
from kubectl_launcher.kubectl.journal import Journal
from tests.support.journals import recorded_commands

try:
    from tests.support.scripted_streamer import ScriptedProcess, ScriptedRun, ScriptedStreamer
except ModuleNotFoundError:  # run as `pytest`, not `python -m pytest`: the repository root is not on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.support.scripted_streamer import ScriptedProcess, ScriptedRun, ScriptedStreamer

WATCH = ("get", "pods", "--watch", "--output-watch-events", "--output", "json")
FORBIDDEN = 'Error from server (Forbidden): pods is forbidden: User "x" cannot watch resource "pods"\n'


def event(kind: str, name: str, phase: str) -> list[str]:
    document = {"type": kind, "object": {"kind": "Pod", "metadata": {"name": name}, "status": {"phase": phase}}}
    return json.dumps(document, indent=4).splitlines()


def make(tmp_path: Path, *runs: ScriptedRun) -> tuple[Kubectl, ScriptedStreamer]:
    streamer = ScriptedStreamer(list(runs))
    kubectl = Kubectl(
        kubectl="/nonexistent/kubectl",  # nothing may start it
        namespace="ns1",
        cache_dir=str(tmp_path / "cache"),
        journal=Journal(str(tmp_path / "j")),
        streamer=streamer,
    )
    return kubectl, streamer


def test_scripted_watch_events_arrive_as_documents_and_the_end_is_journaled(tmp_path: Path) -> None:
    lines = event("ADDED", "a", "Pending") + event("MODIFIED", "a", "Running")
    kubectl, streamer = make(tmp_path, ScriptedRun(lines, returncode=0))
    ended: list[CommandResult] = []
    stream = kubectl.stream(WATCH, on_exit=ended.append)
    phases = [(e["type"], e["object"]["status"]["phase"]) for e in stream.documents()]
    assert phases == [("ADDED", "Pending"), ("MODIFIED", "Running")]
    result = stream.wait(10)
    assert result is not None and result.returncode == 0 and stream.error is None
    assert ended == [result]
    (argv,) = streamer.started
    assert argv[0] == "/nonexistent/kubectl" and argv[-len(WATCH) :] == WATCH and "ns1" in argv
    (entry,) = recorded_commands(str(tmp_path / "j"))
    assert entry.data["stream"] == "ended" and entry.returncode == 0


def test_a_watch_the_server_closed_is_started_again_from_the_next_scripted_run(tmp_path: Path) -> None:
    kubectl, streamer = make(
        tmp_path,
        ScriptedRun(event("ADDED", "a", "Pending"), returncode=0),
        ScriptedRun(event("MODIFIED", "a", "Succeeded"), until_stopped=True),
    )
    first = kubectl.stream(WATCH)
    assert [e["type"] for e in first.documents()] == ["ADDED"]
    with kubectl.stream(WATCH) as second:
        assert next(second.documents())["object"]["status"]["phase"] == "Succeeded"
        assert not second.ended
    assert second.stopped and second.returncode == -15 and second.error is None
    assert len(streamer.started) == 2
    assert [e.data["stream"] for e in recorded_commands(str(tmp_path / "j"))] == ["ended", "stopped"]


def test_a_scripted_failure_is_the_typed_error_of_the_stream(tmp_path: Path) -> None:
    kubectl, _ = make(tmp_path, ScriptedRun(stderr=FORBIDDEN, returncode=1))
    stream = kubectl.stream(WATCH)
    assert list(stream) == []
    assert stream.returncode == 1 and isinstance(stream.error, errors.KubectlForbidden)


def test_one_stream_more_than_scripted_fails_loudly(tmp_path: Path) -> None:
    kubectl, _ = make(tmp_path)
    with pytest.raises(AssertionError, match="unexpected stream"):
        kubectl.stream(WATCH)


class EagerStreamer:
    """Hands lines over before it returns, as sh's output thread may: the stream has no process yet."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.process: ScriptedProcess | None = None

    def __call__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        on_line: Callable[[str | bytes], bool],
        on_stderr: Callable[[str | bytes], object],
    ) -> ScriptedProcess:
        for line in self.lines:
            if on_line(line):
                break
        self.process = ScriptedProcess(ScriptedRun(until_stopped=True), on_line, on_stderr)
        return self.process


def test_an_overflow_before_the_streamer_returned_still_stops_the_process(tmp_path: Path) -> None:
    streamer = EagerStreamer(["x" * 100] * 50)
    kubectl = Kubectl(cache_dir=str(tmp_path), streamer=streamer)
    stream = kubectl.stream(WATCH, max_buffered=1000)
    result = stream.wait(10)
    assert result is not None and result.returncode == -9
    assert stream.overflowed and stream.stopped and len(stream.read()) == 10
    assert streamer.process is not None and streamer.process.signals == [9]
