"""The transfer containers' waiting script, run under the local /bin/sh: woken at once by whoever writes its
marker, and ending only once that writer (the launcher's exec, in the same PID namespace) has ended."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from kubectl_launcher.transfer import pod_scripts, pod_side
from kubectl_launcher.transfer.pod_scripts import DELIVER_SCRIPT


@pytest.fixture
def slow_ticks(tmp_path: Path) -> dict[str, str]:
    """An environment whose `sleep 1` (the waiting script's tick at one look a second) lasts 60 s: only a
    wake can end the script's wait soon; other sleeps are the real ones."""
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "sleep").write_text('#!/bin/sh\nif [ "$1" = 1 ]; then exec /bin/sleep 60; fi\nexec /bin/sleep "$@"\n')
    (shim / "sleep").chmod(0o755)
    return {**os.environ, "PATH": f"{shim}:{os.environ['PATH']}"}


def start_waiter(ctl: Path, marker: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    argv = ["sh", "-c", pod_side.WAIT_SCRIPT, "keeper", str(ctl), "1", marker, "600", "0", ""]
    waiter = subprocess.Popen(argv, env=env, start_new_session=True)
    deadline = time.monotonic() + 30
    pid_file = ctl / f"{marker}.pid"
    while not (pid_file.exists() and pid_file.read_text().endswith("\n")) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (ctl / f"{marker}.pid").read_text().strip() == str(waiter.pid)
    time.sleep(0.2)  # into its first tick's wait
    return waiter


def stop(process: subprocess.Popen[bytes]) -> None:
    """The waiter and what it left in its session (a woken waiter leaves its tick's sleep running)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def test_the_release_wakes_the_keeper_at_once_instead_of_at_its_next_look(
    tmp_path: Path, slow_ticks: dict[str, str]
) -> None:
    waiter = start_waiter(tmp_path, "released", slow_ticks)
    try:
        released = subprocess.run(["sh", "-c", pod_scripts.RELEASE_SCRIPT, "release", str(tmp_path)], env=slow_ticks)
        assert released.returncode == 0
        assert waiter.wait(timeout=30) == 0  # its tick lasts 60 s: only the wake ends it this soon
    finally:
        stop(waiter)


def test_the_waiter_ends_only_after_the_markers_writer_has_ended(tmp_path: Path, slow_ticks: dict[str, str]) -> None:
    waiter = start_waiter(tmp_path, "delivered", slow_ticks)
    writer = subprocess.Popen(["/bin/sleep", "60"])  # stands for the exec still answering the launcher
    try:
        (tmp_path / "delivered").write_text(f"{writer.pid}\n")
        os.kill(waiter.pid, signal.SIGUSR1)
        time.sleep(0.5)
        assert waiter.poll() is None  # the writer still runs: this container's end would kill it
        writer.kill()
        writer.wait()
        assert waiter.wait(timeout=30) == 0
    finally:
        stop(waiter)
        writer.kill()
        writer.wait()


def test_a_wake_without_the_marker_only_makes_the_waiter_look_again(tmp_path: Path) -> None:
    waiter = start_waiter(tmp_path, "released", dict(os.environ))
    try:
        os.kill(waiter.pid, signal.SIGUSR1)
        time.sleep(0.5)
        assert waiter.poll() is None  # USR1 is trapped: no marker, no end
        (tmp_path / "released").write_text("")
        assert waiter.wait(timeout=30) == 0  # a marker without a PID: nothing to wait for
    finally:
        stop(waiter)


def test_the_delivery_script_wakes_the_init_container_with_its_own_pid_in_the_marker() -> None:
    assert DELIVER_SCRIPT.rstrip().endswith('echo $$ > "$ctl/delivered" && wake "$ctl" delivered')
    assert DELIVER_SCRIPT.startswith(pod_scripts.WAKE_WAITER)


def test_the_container_command_has_nothing_the_kubelet_would_expand() -> None:
    # The kubelet turns "$$" into "$" and "$(NAME)" into a variable's value in a container's command and args.
    assert "$$" not in pod_side.WAIT_SCRIPT
    assert not re.search(r"\$\([A-Za-z_][A-Za-z0-9_]*\)", pod_side.WAIT_SCRIPT)
