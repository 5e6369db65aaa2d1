"""Kubectl.stream with tiny scripts standing in for kubectl; iter_json_objects on recorded watch output."""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from pathlib import Path

import pytest

from kubectl_launcher import errors
from kubectl_launcher.kubectl import CommandResult, Kubectl
from kubectl_launcher.kubectl.journal import Journal
from kubectl_launcher.kubectl.stream import iter_json_objects
from tests.support.journals import recorded_commands

WATCH = ("get", "pods", "--watch", "--output-watch-events", "--output", "json")


def fake_kubectl(tmp_path: Path, body: str) -> str:
    """An executable that ignores kubectl's arguments and runs `body` (sh)."""
    path = tmp_path / "fake-kubectl"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def make(tmp_path: Path, body: str, **kw: object) -> Kubectl:
    options: dict[str, object] = {"cache_dir": str(tmp_path / "cache"), "journal": Journal(str(tmp_path / "j"))}
    options.update(kw)
    return Kubectl(str(tmp_path / "kubeconfig"), kubectl=fake_kubectl(tmp_path, body), **options)  # type: ignore[arg-type]


def alive(pid_file: Path) -> bool:
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_lines_arrive_in_order_and_the_end_carries_the_exit_code(tmp_path: Path) -> None:
    seen: list[CommandResult] = []
    kubectl = make(tmp_path, 'echo one; echo "two words"; echo oops >&2; exit 3')
    stream = kubectl.stream(WATCH, on_exit=seen.append)
    assert list(stream) == ["one", "two words"]
    result = stream.wait(10)
    assert result is not None and result.returncode == 3 and stream.returncode == 3
    assert "oops" in stream.stderr and stream.ended and not stream.stopped
    assert seen == [result]
    assert isinstance(stream.error, errors.KubectlError) and "oops" in str(stream.error)


def test_the_stream_gets_the_global_flags_and_environment_of_run(tmp_path: Path) -> None:
    kubectl = make(tmp_path, 'echo "$@"; echo "$KUBERC $LC_ALL $KUBECACHEDIR"', namespace="ns1")
    lines = list(kubectl.stream(WATCH, request_timeout=0))
    assert lines[0] == f"--kubeconfig {tmp_path / 'kubeconfig'} --namespace ns1 --request-timeout 0s " + " ".join(WATCH)
    assert lines[1] == f"off C {tmp_path / 'cache'}"


def test_stop_ends_kubectl_and_the_journal_says_so(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    kubectl = make(tmp_path, f"echo $$ > {pid_file}; echo started; exec sleep 300")
    with kubectl.stream(WATCH) as stream:
        assert next(iter(stream)) == "started"
    assert stream.stopped and stream.returncode is not None and stream.returncode != 0
    assert stream.error is None  # we ended it: not a failure
    assert not alive(pid_file)
    (entry,) = recorded_commands(str(tmp_path / "j"))
    assert entry.data["stream"] == "stopped" and entry.argv[-len(WATCH) :] == list(WATCH)
    assert "streamed for" in Path(tmp_path / "j" / "journal.sh").read_text()


def test_a_kubectl_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    kubectl = make(tmp_path, f"trap '' TERM; echo $$ > {pid_file}; echo ready; while :; do sleep 1; done")
    stream = kubectl.stream(WATCH, grace=0.3)
    assert stream.read(timeout=10) == ["ready"]
    result = stream.stop()
    assert result.returncode == -9
    assert not alive(pid_file)


def test_read_returns_what_has_arrived_without_waiting_for_the_end(tmp_path: Path) -> None:
    kubectl = make(tmp_path, "echo first; sleep 300")
    with kubectl.stream(WATCH) as stream:
        assert stream.read(timeout=10) == ["first"]
        assert stream.read(timeout=0.2) == []
        assert not stream.ended and stream.returncode is None


def test_unread_output_beyond_the_buffer_stops_the_stream(tmp_path: Path) -> None:
    kubectl = make(tmp_path, "yes line")
    stream = kubectl.stream(WATCH, max_buffered=10_000)
    assert stream.wait(30) is not None
    assert stream.overflowed and stream.stopped
    assert 0 < len(stream.read()) <= 10_000 // 4
    assert recorded_commands(str(tmp_path / "j"))[0].data["stream"] == "overflowed"


def test_a_failing_on_exit_is_logged_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def boom(result: CommandResult) -> None:
        raise RuntimeError("consumer bug")

    kubectl = make(tmp_path, "exit 0")
    with caplog.at_level(logging.ERROR, logger="kubectl_launcher.kubectl.stream"):
        stream = kubectl.stream(WATCH, on_exit=boom)
        stream.wait(10)
        deadline = time.monotonic() + 10
        while "on_exit" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
    assert "on_exit" in caplog.text and stream.returncode == 0


def test_a_missing_binary_is_a_config_error(tmp_path: Path) -> None:
    kubectl = Kubectl(kubectl=str(tmp_path / "no-kubectl"), cache_dir=str(tmp_path))
    with pytest.raises(errors.ConfigError, match="not found"):
        kubectl.stream(WATCH)


# --- iter_json_objects -----------------------------------------------------------------------------


def indented(*objects: object) -> list[str]:
    return "\n".join(json.dumps(o, indent=4) for o in objects).splitlines()


def test_indented_watch_events_are_split_into_objects() -> None:
    events = [
        {"type": "ADDED", "object": {"kind": "Pod", "metadata": {"name": "a"}, "note": "}\n{"}},
        {"type": "DELETED", "object": {"kind": "Pod", "metadata": {"name": "a"}}},
    ]
    assert list(iter_json_objects(indented(*events), limit=1 << 20)) == events


def test_objects_on_one_line_each_are_read_too() -> None:
    lines = ['{"type": "ADDED"}', "", '{"type": "MODIFIED"}']
    assert [e["type"] for e in iter_json_objects(lines, limit=1 << 20)] == ["ADDED", "MODIFIED"]


def test_output_that_is_not_json_is_a_protocol_error() -> None:
    with pytest.raises(errors.ProtocolError, match="not a JSON object"):
        list(iter_json_objects(["NAME   READY"] * 100, limit=1000))


def test_output_cut_inside_an_object_is_a_protocol_error() -> None:
    with pytest.raises(errors.ProtocolError, match="ended inside"):
        list(iter_json_objects(indented({"type": "ADDED"})[:-1], limit=1 << 20))
