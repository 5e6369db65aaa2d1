"""The transfer's background threads: the step that runs off the handle's thread (`Task`), a periodic
caller (the lease renewed while a long copy runs) and progress lines while one long kubectl command
runs. Daemon threads: they die with the launcher's process, which is what the pod's lease relies on."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from kubectl_launcher.transfer.archive import TreeManifest
from kubectl_launcher.transfer.pod_side import human_size

T = TypeVar("T")


class Task(Generic[T]):
    """One call of ``work`` on a daemon thread; whoever asks later gets its value or its exception.

    The handle's poll() must not wait for a copy that takes minutes: workspace.py hands each step to a
    Task and looks at it again on the next advance().
    """

    def __init__(self, work: Callable[[], T], name: str) -> None:
        self.name = name
        self._work = work
        self._done = threading.Event()
        self._value: T | None = None
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._run, name=f"kubectl-launcher-{name}", daemon=True)

    def start(self) -> Task[T]:
        self._thread.start()
        return self

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds for the work to end; whether it has."""
        return self._done.wait(timeout) if timeout > 0 else self.done

    def outcome(self) -> T | None:
        """The work's value, or its exception raised here (only once it is done)."""
        if not self.done:
            raise RuntimeError(f"task {self.name} is still running")
        if self._error is not None:
            raise self._error
        return self._value

    def _run(self) -> None:
        try:
            self._value = self._work()
        except Exception as e:  # kept for outcome(): raised in the thread that asks
            self._error = e
        finally:
            self._done.set()


class Periodic:
    """Calls ``tick`` every ``interval`` seconds from a daemon thread until stopped; ``stop`` joins it.

    Restartable, and never runs two threads at once: ``start`` while running does nothing. A daemon
    thread dies with the launcher's process, which is what the pod's lease relies on.
    """

    def __init__(self, tick: Callable[[], None], interval: float, name: str) -> None:
        self._tick, self._interval, self._name = tick, interval, name
        self._lock = threading.Lock()
        self._running: tuple[threading.Thread, threading.Event] | None = None

    @property
    def running(self) -> bool:
        return self._running is not None

    def start(self) -> None:
        if self._interval <= 0:
            return
        with self._lock:
            if self._running is not None:
                return
            stop = threading.Event()
            thread = threading.Thread(target=self._loop, args=(stop,), name=self._name, daemon=True)
            self._running = (thread, stop)
            thread.start()

    def stop(self) -> None:
        with self._lock:
            running, self._running = self._running, None
        if running is not None:
            thread, stop = running
            stop.set()
            if thread is not threading.current_thread():
                thread.join()

    def __enter__(self) -> Periodic:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self, stop: threading.Event) -> None:
        while not stop.wait(self._interval):
            self._tick()


class Progress(Periodic):
    """Logs 'still going' lines every interval while one long kubectl command runs."""

    def __init__(
        self,
        log: logging.Logger,
        what: str,
        interval: float,
        clock: Callable[[], float],
        measure: Callable[[], int] | None = None,
    ) -> None:
        super().__init__(self._report, interval, "kubectl-launcher-progress")
        self._log, self._what, self._clock, self._measure = log, what, clock, measure
        self.started = clock()

    def __enter__(self) -> Progress:
        self.start()
        return self

    def _report(self) -> None:
        elapsed = max(self._clock() - self.started, 1e-6)
        if self._measure is None:
            self._log.info("%s: still running after %.0fs", self._what, elapsed)
            return
        try:
            done = self._measure()
        except OSError:
            return
        self._log.info(
            "%s: %s so far after %.0fs (%s/s)", self._what, human_size(done), elapsed, human_size(done / elapsed)
        )


def file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


def log_transferred(log: logging.Logger, what: str, manifest: TreeManifest, seconds: float) -> None:
    """One line once a delivery or a collection is verified: files, bytes, time and rate."""
    rate = human_size(manifest.total_bytes / max(seconds, 1e-6))
    log.info(
        "%s: %d files, %s in %.1fs (%s/s), verified",
        what,
        manifest.files,
        human_size(manifest.total_bytes),
        seconds,
        rate,
    )
