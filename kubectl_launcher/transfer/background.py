"""The transfer's background threads: a periodic caller (the lease renewed while a long copy holds up
``advance``) and progress lines while one long kubectl command runs. Daemon threads: they die with the
launcher's process, which is what the pod's lease relies on."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from kubectl_launcher.transfer.archive import TreeManifest
from kubectl_launcher.transfer.pod_side import human_size


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


class Step:
    """One delivery or collection, run away from the handle's look that started it: ``done`` is set when
    it ended, ``error`` holds what it raised (a later look raises it)."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None

    def runner(self, work: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                work()
            except BaseException as e:  # handed to the next look, which raises it in the caller's thread
                self.error = e
            finally:
                self.done.set()

        return run


def in_background(run: Callable[[], None]) -> None:
    """The default way a transfer runs a Step: a daemon thread (it dies with the launcher, as the lease wants)."""
    threading.Thread(target=run, name="kubectl-launcher-transfer", daemon=True).start()


def inline(run: Callable[[], None]) -> None:
    """Run a Step in the caller's thread: the look that starts it also takes its outcome (tests, tools)."""
    run()
