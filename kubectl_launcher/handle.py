"""K8sJobHandle: NVFlare's JobHandleSpec for one job pod. What a look at the pod means is decided in
domain/job_tracker.py, the commands are objects/job_pod.py's; here: the NVFlare surface, threads, outcome."""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, cast

from nvflare.apis.job_launcher_spec import JobHandleSpec

from kubectl_launcher.domain.job_tracker import (
    EVENTS_GRACE,
    PERMANENT_FAILURE_LIMIT,
    POLL_INTERVAL,
    QUICK_POLL_INTERVAL,
    QUICK_POLL_WINDOW,
    JobTracker,
    TrackerSettings,
    positive_seconds,
)
from kubectl_launcher.domain.manifest import build_pod_manifest
from kubectl_launcher.domain.plan import normalize_pending_timeout
from kubectl_launcher.domain.pod_status import JOB_RETURN_CODE_MAPPING, JobState, ReturnCode
from kubectl_launcher.kubectl import Kubectl
from kubectl_launcher.objects import job_pod
from kubectl_launcher.objects.job_pod import JobPod, PodRead, PodReadStatus, WorkspaceTransferSpec
from kubectl_launcher.objects.pod_watch import site_selector

__all__ = [
    "DEFAULT_NAMESPACE",
    "DEFAULT_PENDING_TIMEOUT",
    "DEFAULT_PYTHON_PATH",
    "K8sJobHandle",
    "PodRead",
    "PodReadStatus",
    "WorkspaceTransferSpec",
    "normalize_pending_timeout",
]

DEFAULT_NAMESPACE = "default"
DEFAULT_PENDING_TIMEOUT = 120
DEFAULT_PYTHON_PATH = "/usr/local/bin/python"


class _Seen(NamedTuple):
    state: JobState
    interrupted: bool  # the pod vanished, or the handle (or terminate()) ended the job
    now: float


class K8sJobHandle(JobHandleSpec):  # type: ignore[misc]  # NVFlare ships no type information
    """Follows one job pod. Same constructor and behaviour as upstream's handle, with kubectl as the client.

    A pod carrying our labels (job_config's `labels`, as every launch's) is followed through its site's
    one pod watch (objects/pod_watch.py): poll() answers from its cache, wait() and enter_states()
    wake when the pod changes. Any other pod is read with one `kubectl get pod` per look.

    Threads: NVFlare may call poll()/wait() in one thread and terminate() in another. Looks are
    serialised; terminate() never waits for one, and its verdict wins. The terminal state changes only
    through `end()`, under the lock: the first verdict stays. A transient kubectl failure only makes
    poll() say UNKNOWN; refusals fail the job after `permanent_failure_limit` seconds (job_tracker.py).

    The namespace is held once, by the JobPod's Kubectl (a copy for `namespace` when the given one
    works in another); a handle without kubectl (api_instance=None) only builds the manifest.

    On purpose unlike upstream: terminate() keeps the outcome of a job that already ended (upstream
    turns a success into ABORTED), and deletions are done once, not on every call.
    """

    def __init__(
        self,
        job_id: str,
        api_instance: Kubectl | None,
        job_config: Mapping[str, Any],
        namespace: str = DEFAULT_NAMESPACE,
        timeout: float | None = None,
        pending_timeout: float | None = DEFAULT_PENDING_TIMEOUT,
        python_path: str = DEFAULT_PYTHON_PATH,
        workspace_transfer: WorkspaceTransferSpec | None = None,
        pod_name: str | None = None,
        *,
        credential_secret_name: str | None = None,
        retire_credentials: float | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        poll_interval: float = POLL_INTERVAL,
        quick_poll_interval: float = QUICK_POLL_INTERVAL,
        quick_poll_window: float = QUICK_POLL_WINDOW,
        permanent_failure_limit: float | None = PERMANENT_FAILURE_LIMIT,
        events_grace: float = EVENTS_GRACE,
        subscribe: job_pod.Subscribe = job_pod.subscribe_to_site_watch,
    ) -> None:
        super().__init__()
        self.job_id = job_id
        self.api_instance = api_instance
        self.timeout = timeout
        self.pending_timeout = normalize_pending_timeout(pending_timeout)
        self.python_path = python_path
        self.workspace_transfer = workspace_transfer
        self.pod_name = pod_name if pod_name is not None else job_id
        self.credential_secret_name = credential_secret_name
        # Seconds after the job container started to delete the credential Secret (the launcher's choice,
        # job_pod.CREDENTIAL_RETIRE_DELAY); None, as upstream's handle: kept until the job ends.
        self._retire_credentials: float | None = None
        if retire_credentials is not None:
            self._retire_credentials = positive_seconds(retire_credentials, "retire_credentials", zero=True)
        self.logger = logging.getLogger(self.__class__.__name__)
        self._clock, self._sleep = clock, sleep
        self._namespace = namespace  # for messages only when there is no JobPod
        self._pod: JobPod | None = None
        manifest = build_pod_manifest(job_config, python_path=python_path)
        if api_instance is not None:
            selector = site_selector(manifest["metadata"].get("labels") or {})
            self._pod = JobPod(
                api_instance, self.pod_name, namespace, label=self._what(), logger=self.logger, selector=selector,
                subscribe=subscribe,
            )  # fmt: skip
        self.container_name: str = manifest["spec"]["containers"][0]["name"]
        if workspace_transfer is not None:
            workspace_transfer.decorate(manifest, self.container_name)
            if self._pod is not None and isinstance(workspace_transfer, job_pod.WakesOnStepEnd):
                workspace_transfer.on_step_end(self._pod.wake)
        self._manifest = manifest

        settings = TrackerSettings(
            self.pending_timeout,
            permanent_failure_limit,
            poll_interval,
            quick_poll_interval,
            quick_poll_window,
            events_grace,
        )
        self._tracker = JobTracker(self.container_name, self._what(), settings)  # used under _step_lock
        self._terminal_state: JobState | None = None
        self._terminal_return_code: int | None = None
        self._lock = threading.RLock()  # guards the terminal state
        self._step_lock = threading.Lock()  # one look at the pod at a time

    @property
    def namespace(self) -> str:
        return self._pod.namespace if self._pod is not None else self._namespace

    @property
    def poll_interval(self) -> float:
        return self._tracker.settings.poll_interval

    @property
    def terminal_state(self) -> JobState | None:
        return self._terminal_state

    @property
    def terminal_return_code(self) -> int | None:
        return self._terminal_return_code

    def end(self, state: JobState, return_code: int | None = None) -> bool:
        """Record the outcome unless one is recorded (the first verdict stays); True if this one was."""
        with self._lock:
            if self._terminal_state is not None:
                return False
            self._terminal_state = state
            self._terminal_return_code = None if return_code == JOB_RETURN_CODE_MAPPING[state] else return_code
        if self._pod is not None:
            self._pod.wake()  # a wait() in another thread returns now
        return True

    def get_manifest(self) -> dict[str, Any]:
        return copy.deepcopy(self._manifest)

    # -- NVFlare's JobHandleSpec --

    def poll(self) -> int:
        """The job's return code: NVFlare's UNKNOWN (127) while it runs or while we cannot see it."""
        seen = self._step()
        with self._lock:
            state, code = self._terminal_state, self._terminal_return_code
        if state is None:
            return JOB_RETURN_CODE_MAPPING[seen.state]
        return code if code is not None else JOB_RETURN_CODE_MAPPING[state]

    def wait(self) -> None:
        """Return once the job has ended (no time limit, as upstream)."""
        while True:
            seen = self._step()
            if seen.interrupted or self._terminal_state is not None:
                return
            self._pause(seen.now)

    def enter_states(self, job_states_to_enter: JobState | Sequence[JobState]) -> bool:
        """True once the pod is in one of the states; False when the job ended or `timeout` passed first."""
        given: object = job_states_to_enter
        targets: list[object] = list(given) if isinstance(given, list | tuple) else [given]
        if not all(isinstance(state, JobState) for state in targets):
            raise ValueError(f"expect job_states_to_enter with valid values, but get {job_states_to_enter}")
        started = self._clock()
        while True:
            seen = self._step()
            if seen.interrupted:
                return False
            if seen.state in targets:
                return True
            if self._terminal_state is not None:
                return False
            if self.timeout is not None and seen.now - started >= self.timeout:
                names = [cast(JobState, state).name for state in targets]
                self._fail(f"timed out after {self.timeout}s waiting for the pod to enter {names}")
                return False
            self._pause(seen.now)

    def terminate(self) -> None:
        """Delete the pod and the job's credential Secret (once; safe to call again, from any thread).

        A job that already ended keeps its outcome; otherwise it ends TERMINATED (ABORTED).
        """
        self.end(JobState.TERMINATED)
        self._clean_up(delete_pod=True)

    # -- one look at the pod --

    def _step(self) -> _Seen:
        with self._step_lock:
            if self._terminal_state is not None:
                return _Seen(self._terminal_state, True, self._clock())
            pod = self._job_pod()
            read = pod.read()
            now = self._clock()
            verdict = self._tracker.observe(read, now, pod.events, pod.advance(self.workspace_transfer, read))
            with self._lock:
                if self._terminal_state is not None:  # terminate() came first
                    return _Seen(self._terminal_state, True, now)
                for level, message in verdict.logs:
                    self.logger.log(level, message)
                if verdict.ended:
                    self.end(verdict.state, verdict.return_code)
            if verdict.ended:
                self._clean_up(delete_pod=verdict.delete_pod)
            elif self._retire_credentials is not None:
                pod.retire_credentials(
                    read, self.container_name, self.credential_secret_name, delay=self._retire_credentials
                )
            return _Seen(verdict.state, verdict.ended, now)

    def _pause(self, now: float) -> None:
        """Until the next look: the pod's next change (following) or the tracker's interval, whichever first."""
        self._job_pod().pause(self._tracker.interval(now), self._sleep)

    def _fail(self, reason: str) -> None:
        if self.end(JobState.TERMINATED, ReturnCode.EXCEPTION):
            self.logger.warning(f"{self._what()}: {reason}; deleting the pod")
            self._clean_up(delete_pod=True)

    def _clean_up(self, *, delete_pod: bool) -> None:
        if self._pod is not None:
            self._pod.clean_up(delete_pod=delete_pod, secret=self.credential_secret_name)

    def _job_pod(self) -> JobPod:
        if self._pod is None:
            raise RuntimeError(
                f"job {self.job_id}: this K8sJobHandle has no kubectl (api_instance=None); it can only build "
                "the manifest"
            )
        return self._pod

    def _what(self) -> str:
        return f"job {self.job_id} pod {self.pod_name} (namespace {self.namespace})"
