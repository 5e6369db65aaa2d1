"""A scripted Streamer: `Kubectl.stream` without processes, for unit tests of code that follows a stream."""

from __future__ import annotations

import shlex
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ScriptedRun:
    """One kubectl process as the stream sees it: these stdout lines, then this end."""

    lines: Sequence[str] = ()
    returncode: int = 0
    stderr: str = ""
    until_stopped: bool = False  # after its lines, run on until signalled, as a watch nobody closes


@dataclass
class ScriptedStreamer:
    """Plays one ScriptedRun per stream started, in order; one stream too many fails loudly."""

    runs: list[ScriptedRun]
    started: list[tuple[str, ...]] = field(default_factory=list)

    def __call__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        on_line: Callable[[str | bytes], bool],
        on_stderr: Callable[[str | bytes], object],
    ) -> ScriptedProcess:
        if not self.runs:
            raise AssertionError(f"unexpected stream: {shlex.join(argv)}")
        self.started.append(tuple(argv))
        return ScriptedProcess(self.runs.pop(0), on_line, on_stderr)


class ScriptedProcess:
    """Hands its lines over on the stream's waiter thread, as sh's output thread would."""

    def __init__(
        self,
        run: ScriptedRun,
        on_line: Callable[[str | bytes], bool],
        on_stderr: Callable[[str | bytes], object],
    ) -> None:
        self.run = run
        self._on_line = on_line
        self._on_stderr = on_stderr
        self._signalled = threading.Event()
        self.signals: list[int] = []

    def wait(self) -> int | None:
        for line in self.run.lines:
            if self._signalled.is_set() or self._on_line(line + "\n"):
                break
        if self.run.stderr:
            self._on_stderr(self.run.stderr)
        if self.run.until_stopped:
            self._signalled.wait()
        return -self.signals[0] if self.signals else self.run.returncode

    def signal(self, signum: int) -> None:
        if signum not in (signal.SIGTERM, signal.SIGKILL):
            raise AssertionError(f"unexpected signal {signum}")
        self.signals.append(signum)
        self._signalled.set()
