"""A step of the transfer (a delivery, a collection): what it knows, and the one place it is redone,
whole, within one deadline.

A delivery stream or a results stream that failed half-way leaves a staging folder in the pod, or a
partial archive here, that a second try of the same command would build on: the whole step has to be
done again (a fresh staging folder, a fresh temp folder). The seam cannot do that, so this is the
transfer's only retry, and the commands inside a step go to the seam as not idempotent: the seam runs
each once, and nothing is retried twice over.

The bound: at most ``settings.attempts`` attempts, ``retry_delay x attempt`` seconds apart, all of
them, pauses included, within ``settings.transfer_timeout`` seconds counted from the first. Each
command in a step gets ``command_timeout``, shortened to what is left of that deadline; no pause
starts that would reach it. So a collection runs ``tar`` at most ``attempts`` times and ends within
``transfer_timeout``, whatever the seam's own retry settings are.

A delivery that arrived damaged (the pod's check failed: nothing was placed) is redone here like any
other failed attempt. Not redone: results that try to leave their folder, or a job folder that is a
symlink (UnsafeArchiveError), a command the server refused (KubectlRejected), an image without tar or
sh. Another try cannot make them better.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from kubectl_launcher.domain.names import LAUNCHER_DIR
from kubectl_launcher.errors import KubectlError, KubectlRejected, TransferError, UnsafeArchiveError
from kubectl_launcher.transfer.pod_side import TransferSettings, tool_missing_failure

T = TypeVar("T")


@dataclass(frozen=True)
class Job:
    """What every step of one job's transfer knows: its folders, its settings, its log, clock and sleep."""

    site_workspace: str  # absolute
    job_id: str
    mount_path: str  # the workspace's path in the pod, without a trailing /
    settings: TransferSettings
    exclude: frozenset[str]  # paths under local/ that are not sent
    log: logging.Logger
    clock: Callable[[], float]
    sleep: Callable[[float], None]

    @property
    def job_dir(self) -> str:
        return os.path.join(self.site_workspace, self.job_id)

    @property
    def own_dir(self) -> str:
        """The launcher's own folder in the job's: never sent, never overwritten by results."""
        return os.path.join(self.job_dir, LAUNCHER_DIR)

    @property
    def pod_job_dir(self) -> str:
        return f"{self.mount_path.rstrip('/')}/{self.job_id}"

    def scratch(self, name: str) -> str:
        """A fresh, empty local folder for one attempt (the caller removes it)."""
        path = os.path.join(self.own_dir, name)
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path)
        return path

    def redo(self, what: str, step: Callable[[int, Deadline], T], *, image: str) -> T:
        """``step`` under the bound of the module docstring (see `redo`)."""
        return redo(what, step, settings=self.settings, clock=self.clock, sleep=self.sleep, log=self.log, image=image)


class Deadline:
    """The end of one step, all attempts included, on an injected monotonic clock."""

    def __init__(self, seconds: float, clock: Callable[[], float]) -> None:
        self.seconds = seconds
        self._clock = clock
        self._ends_at = clock() + seconds

    def left(self) -> float:
        """Seconds left (0 or less: passed)."""
        return self._ends_at - self._clock()

    def remaining(self, what: str) -> float:
        """Seconds left for the next command (the seam's ``total_timeout``); TransferError when none are."""
        left = self.left()
        if left <= 0:
            raise TransferError(f"no time left to {what} within the transfer's {self.seconds:g}s")
        return left


def redo(
    what: str,
    step: Callable[[int, Deadline], T],
    *,
    settings: TransferSettings,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    log: logging.Logger,
    image: str,
) -> T:
    """Run ``step(attempt, deadline)`` until it succeeds, within the bound of the module docstring."""
    deadline = Deadline(settings.transfer_timeout, clock)
    last: Exception | None = None
    attempt = 0
    while attempt < settings.attempts:
        attempt += 1
        try:
            return step(attempt, deadline)
        except UnsafeArchiveError:
            raise
        except (TransferError, KubectlError, OSError) as e:
            missing = tool_missing_failure(e, image) if isinstance(e, KubectlError) else None
            if missing is not None:
                raise missing from e
            if isinstance(e, KubectlRejected):
                raise TransferError(f"cannot {what}: {e}") from e
            last = e
        if attempt == settings.attempts:
            break
        pause = settings.retry_delay * attempt
        if deadline.left() <= pause:
            raise TransferError(
                f"could not {what} within {settings.transfer_timeout:g}s ({attempt} attempts): {last}"
            ) from last
        log.warning("could not %s (attempt %d of %d): %s", what, attempt, settings.attempts, last)
        sleep(pause)
    raise TransferError(f"could not {what} after {attempt} attempts: {last}") from last
