"""The job's workspace into its pod before it starts, and its results back before the pod ends (Contract 7).

The launcher constructs one `WorkspaceTransfer` per job and gives it to the handle::

    WorkspaceTransfer(site_workspace, job_id, workspace_mount_path, settings=TransferSettings(), *,
                      exclude=(), logger=None, clock=time.monotonic, sleep=time.sleep, advance_wait=1.0)

``decorate(pod, main_container)`` adds the init container that waits for the workspace and the keeper
that holds it after the job process exits (pod_side.py: both, their lease and their scripts).

``advance(kubectl, pod)`` is called by the handle with every pod it reads, and decides the next step:

* init container running → deliver the workspace (delivery.py);
* main container terminated, keeper running → collect the results (collection.py); once they are in
  place, ``collected`` is true and the keeper's release starts on a thread of its own: the job's outcome
  does not wait for that exec (``settle`` does);
* otherwise, while the keeper runs → renew its lease when due (lease.py), unless the pod carries our labels:
  then the site's one lease renews it (site_lease.py), joined on the first look, left once finished or closed.

A step runs on a background thread (background.Task), never in the handle's: ``advance`` starts it,
waits at most ``advance_wait`` seconds for it (a small delivery is done by then), and returns. A later
``advance`` picks up its outcome: ``delivered`` or ``collected`` becomes true, or its TransferError is
raised from there (the handle turns it into EXCEPTION). While a step runs, ``advance`` starts nothing
else. Several threads may call ``advance`` (the handle's poll and wait); one lock orders them.
``close()`` stops it all when the handle lets go of the job: no new step, no more lease.

How often and how long a step is redone is step.py's; where a result archive is checked, archive.py's.
The main container's own exit code still decides the job's return code.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NoReturn

from kubectl_launcher.domain.names import LAUNCHER_DIR
from kubectl_launcher.errors import ConfigError, TransferError
from kubectl_launcher.kubectl import Kubectl
from kubectl_launcher.objects.job_pod import JobPod
from kubectl_launcher.transfer.background import Task
from kubectl_launcher.transfer.collection import Collector
from kubectl_launcher.transfer.delivery import deliver
from kubectl_launcher.transfer.excludes import local_excludes
from kubectl_launcher.transfer.lease import Lease
from kubectl_launcher.transfer.pod_side import (
    INIT_CONTAINER,
    KEEPER_CONTAINER,
    TransferSettings,
    container_state,
    decorate_pod,
    init_container_failure,
)
from kubectl_launcher.transfer.step import Job

__all__ = ["TransferSettings", "WorkspaceTransfer"]

#: The steps a Task runs, and what their success means once picked up.
_DELIVER, _COLLECT, _LEASE = "deliver", "collect", "lease"


class WorkspaceTransfer:
    """One job's workspace transfer; see the module docstring for the protocol."""

    def __init__(
        self,
        site_workspace: str,
        job_id: str,
        workspace_mount_path: str,
        settings: TransferSettings | None = None,
        *,
        exclude: Iterable[str] = (),
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        advance_wait: float = 1.0,
    ) -> None:
        if not job_id or "/" in job_id or job_id in (".", "..", LAUNCHER_DIR):
            raise ConfigError(f"job id {job_id!r} cannot name a folder in the workspace")
        if not workspace_mount_path.startswith("/"):
            raise ConfigError(f"workspace_mount_path must be absolute, got {workspace_mount_path!r}")
        if isinstance(advance_wait, bool) or not isinstance(advance_wait, int | float) or advance_wait < 0:
            raise ConfigError(f"advance_wait must be a non-negative number of seconds, got {advance_wait!r}")
        site = os.path.abspath(site_workspace)
        mount = workspace_mount_path.rstrip("/") or "/"
        settings = settings or TransferSettings()
        log = logger or logging.getLogger(__name__)
        self.job = Job(site, job_id, mount, settings, local_excludes(site, exclude, mount), log, clock, sleep)
        self.settings = settings
        self.log = log
        self.lease = Lease(settings, clock, log)
        self._advance_wait = float(advance_wait)
        self._closed = threading.Event()
        self._collector = Collector(self.job, self.lease, self._closed)
        self._lock = threading.Lock()  # advance() from the handle's poll and wait threads
        self._task: Task[None] | None = None
        self._task_kind = ""
        self._collecting: JobPod | None = None  # the pod whose keeper the collection's success releases
        self._release: Task[None] | None = None
        self._main: str | None = None
        self._image = ""
        self.delivered = False
        self.collected = False
        self._finished = False
        self.error: TransferError | None = None

    @property
    def finished(self) -> bool:
        """Nothing more to do: results collected, the pod ended with nothing to collect, failed for good, or closed."""
        return self._finished

    @property
    def recovery_command(self) -> str | None:
        """The kubectl command that fetches the results by hand, once their collection failed."""
        return self._collector.recovery_command

    # -- Contract 7: decorate --

    def decorate(self, pod: dict[str, Any], main_container: str) -> None:
        image = decorate_pod(pod, main_container, self.job.mount_path, self.settings)
        if image is not None:
            self._main = main_container
            self._image = image

    # -- Contract 7: advance --

    def advance(self, kubectl: Kubectl, pod: Mapping[str, Any]) -> None:
        """Take the next step for this look at the pod, off the caller's thread; returns within ~advance_wait."""
        with self._lock:
            task = self._next(kubectl, pod)
        if task is not None and task.wait(self._advance_wait):
            with self._lock:
                self._pick_up()

    def settle(self, timeout: float) -> bool:
        """Wait at most `timeout` seconds for the keeper's release, which runs after the outcome is known;
        whether nothing is left running."""
        release = self._release
        return release is None or release.wait(timeout)

    def close(self) -> None:
        """Stop: no new step, no more lease renewals (from any thread). A command in flight ends by itself."""
        self._closed.set()
        self.lease.lapse()
        with self._lock:
            self._finished = True

    def _next(self, kubectl: Kubectl, pod: Mapping[str, Any]) -> Task[None] | None:
        self._pick_up()
        if self._task is not None:
            return self._task  # still running: its lease is kept by its own renewer
        if self._finished:
            return None
        if self._main is None:
            raise TransferError("the workspace transfer's decorate() was never called for this pod")
        job_pod = JobPod(kubectl, str((pod.get("metadata") or {}).get("name") or ""), logger=self.log)
        self.lease.attach(kubectl, pod)  # the site's one annotate renews it from now on (lease.py)
        phase = (pod.get("status") or {}).get("phase")
        init = container_state(pod, "initContainerStatuses", INIT_CONTAINER)
        main = container_state(pod, "containerStatuses", self._main)
        keeper = container_state(pod, "containerStatuses", KEEPER_CONTAINER)
        if not self.delivered:
            if "running" in init:
                return self._start(_DELIVER, lambda: deliver(self.job, job_pod, self.lease, self._image))
            if "terminated" in init:
                error = init_container_failure(init["terminated"], self._image)
                if error is not None:
                    self._fail(error)
                self.delivered = True  # exit code 0 is our marker: an earlier placement went through, its answer lost
            elif phase in ("Succeeded", "Failed"):
                self._finish()  # ended before its workspace was wanted: nothing to collect
            return None
        if "terminated" in main:
            if "running" in keeper:
                self._collecting = job_pod
                return self._start(_COLLECT, lambda: self._collector.collect(job_pod, self._image))
            if "terminated" in keeper:
                code = keeper["terminated"].get("exitCode")
                reason = (
                    "the keeper container ended before the results were collected "
                    f"(exit code {code}; the launcher's lease lapsed)"
                )
                self._fail(self._collector.keep_and_fail(job_pod, reason, fetch=False))
        elif "running" in keeper and self.lease.due():
            return self._start(_LEASE, lambda: self.lease.refresh(job_pod))
        return None

    def _start(self, kind: str, work: Callable[[], None]) -> Task[None]:
        self._task, self._task_kind = Task(work, f"transfer-{kind}").start(), kind
        return self._task

    def _pick_up(self) -> None:
        """Apply the outcome of a step that has ended (under the lock); its TransferError is raised here."""
        task, kind = self._task, self._task_kind
        if task is None or not task.done:
            return
        self._task = None
        if self._closed.is_set():
            return  # the handle let go of the job: whatever the step did is nobody's news
        try:
            task.outcome()
        except TransferError as e:
            self._fail(e)
        if kind == _DELIVER:
            self.delivered = True
            # The keeper starts after the delivery and counts its bound from its own start: its first
            # lease is due an interval from now, not on the next look.
            self.lease.renewed_now()
        elif kind == _COLLECT:
            self.collected = True
            self._finish()
            pod, self._collecting = self._collecting, None
            if pod is not None:
                # Off the outcome's path: the exit code decides the job, and a keeper not released ends by itself.
                self._release = Task(lambda: self._collector.release(pod), "transfer-release").start()

    def _finish(self) -> None:
        """Nothing more to do for this pod: no more word to it either."""
        self._finished = True
        self.lease.lapse()

    def _fail(self, error: TransferError) -> NoReturn:
        self._finish()
        self.error = error
        raise error
