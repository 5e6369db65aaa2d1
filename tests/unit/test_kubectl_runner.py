"""ShRunner with tiny scripts standing in for kubectl: what our deadline and output cap leave behind."""

from __future__ import annotations

import os
import signal
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubectl_launcher.kubectl import ShRunner

ENV = {"PATH": os.environ.get("PATH", os.defpath), "LC_ALL": "C"}


def fake_kubectl(tmp_path: Path, body: str) -> str:
    """An executable that ignores its arguments and runs `body` (sh)."""
    path = tmp_path / "fake-kubectl"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def with_plugin(tmp_path: Path, then: str) -> tuple[str, Path]:
    """A kubectl that starts a helper (as it runs a credential plugin), then becomes `then`.
    The pid file holds the helper's pid and kubectl's own."""
    pid_file = tmp_path / "pids"
    body = f"sleep 300 &\necho $! $$ > {pid_file}.tmp && mv {pid_file}.tmp {pid_file}\nexec {then}"
    return fake_kubectl(tmp_path, body), pid_file


def pids(pid_file: Path) -> list[int]:
    return [int(word) for word in pid_file.read_text().split()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return Path(f"/proc/{pid}/stat").read_text().split()[2] not in ("Z", "X")
    except (ProcessLookupError, FileNotFoundError):
        return False


def gone_soon(pid: int) -> bool:
    """SIGKILL is delivered at once but the process ends a moment later: wait for it, boundedly."""
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not alive(pid)


@pytest.fixture
def no_strays() -> Iterator[list[int]]:
    """Pids a test saw; any still alive at the end is killed, so a failing test leaves nothing running."""
    seen: list[int] = []
    yield seen
    for pid in seen:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_the_deadline_kills_kubectl_and_the_helpers_it_started(tmp_path: Path, no_strays: list[int]) -> None:
    script, pid_file = with_plugin(tmp_path, "sleep 300")
    result = ShRunner()([script, "get", "pods"], stdin=None, env=ENV, timeout=1.0, stdout_path=None)
    no_strays += pids(pid_file)
    assert result.timed_out and result.returncode is None
    assert all(gone_soon(pid) for pid in no_strays), "kubectl or its helper outlived our deadline"


def test_the_output_cap_kills_kubectl_and_the_helpers_it_started(tmp_path: Path, no_strays: list[int]) -> None:
    script, pid_file = with_plugin(tmp_path, "yes line")
    result = ShRunner(max_stdout=10_000)([script], stdin=None, env=ENV, timeout=60, stdout_path=None)
    no_strays += pids(pid_file)
    assert result.stdout_truncated and not result.timed_out and result.returncode == -9
    assert all(gone_soon(pid) for pid in no_strays), "kubectl or its helper outlived the output cap"


def test_a_command_that_ends_in_time_is_not_a_timeout(tmp_path: Path) -> None:
    script = fake_kubectl(tmp_path, "echo out; echo err >&2; exit 3")
    result = ShRunner()([script], stdin=b"", env=ENV, timeout=60, stdout_path=None)
    assert (result.returncode, result.stdout, result.stderr, result.timed_out) == (3, "out\n", "err\n", False)


def test_an_interrupt_while_waiting_kills_kubectl_and_its_helpers(tmp_path: Path, no_strays: list[int]) -> None:
    # kubectl runs in its own session, so the terminal's Ctrl-C no longer reaches it by itself.
    script, pid_file = with_plugin(tmp_path, "sleep 300")

    def interrupt_once_started() -> None:
        deadline = time.monotonic() + 30
        while not pid_file.exists():
            if time.monotonic() > deadline:
                return  # never started: pytest.raises below fails
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGINT)

    interrupter = threading.Thread(target=interrupt_once_started, daemon=True)
    interrupter.start()
    with pytest.raises(KeyboardInterrupt):
        ShRunner()([script], stdin=None, env=ENV, timeout=60, stdout_path=None)
    interrupter.join()
    no_strays += pids(pid_file)
    assert all(gone_soon(pid) for pid in no_strays), "kubectl or its helper outlived the interrupt"
