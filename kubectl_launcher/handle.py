"""K8sJobHandle: one NVFlare job pod, followed through kubectl (poll, wait, enter_states, terminate)."""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol, cast

from nvflare.apis.job_launcher_spec import JobHandleSpec

from kubectl_launcher.domain.manifest import build_pod_manifest
from kubectl_launcher.domain.pod_status import (
    JOB_RETURN_CODE_MAPPING,
    Event,
    JobState,
    PendingAction,
    Pod,
    PodPhase,
    ReturnCode,
    classify_starting_pod,
    job_state_for_phase,
    main_container_exit_code,
    main_container_state,
    normalize_pending_timeout,
    outcome_for_exit_code,
    pod_is_scheduled,
    pod_phase,
    return_code_for,
)
from kubectl_launcher.errors import KubectlError, KubectlNotFound, ProtocolError, TransferError
from kubectl_launcher.kubectl import Kubectl, commands
from kubectl_launcher.objects.job_pod import PodRead, PodReadStatus

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
#: Seconds between two looks at the pod in wait() and enter_states().
POLL_INTERVAL = 1.0
#: Seconds between two looks while the pod is about to change: its workspace is delivered and the
#: job container has not started yet (the init container ends, then the job container starts).
QUICK_POLL_INTERVAL = 0.2
#: For at most this long after the delivery; a slow kubelet then gets the normal interval again.
QUICK_POLL_WINDOW = 3.0
#: How long the server may refuse to show us the pod (RBAC revoked, credentials expired) before the
#: handle gives up on the job. Transient failures (unreachable server, 5xx, timeouts) never count.
PERMANENT_FAILURE_LIMIT = 300.0


class WorkspaceTransferSpec(Protocol):
    """The per-job workspace transfer as the handle sees it (docs/design.md, Contract 7)."""

    def decorate(self, pod: dict[str, Any], main_container: str) -> None: ...

    def advance(self, kubectl: Kubectl, pod: dict[str, Any]) -> None: ...

    @property
    def finished(self) -> bool: ...

    #: The workspace is in the pod, so the job container starts within moments: look again soon.
    delivered: bool
    #: The results are back and the keeper released, so the job container's exit code (already
    #: terminated) is the job's outcome without waiting for the pod's phase.
    collected: bool


class _Seen(NamedTuple):
    state: JobState
    interrupted: bool  # the pod vanished, or the handle (or terminate()) ended the job
    now: float


class K8sJobHandle(JobHandleSpec):  # type: ignore[misc]  # NVFlare ships no type information
    """Follows one job pod. Same constructor and behaviour as upstream's handle, with kubectl as the client.

    Thread safety: NVFlare may call poll()/wait() in one thread and terminate() in another. Looks at
    the pod are serialised; terminate() never waits for one to finish, and its verdict wins.

    When kubectl fails: a transient failure (server unreachable, 5xx, 429, our deadline, output that
    is not the expected JSON) only ever makes poll() say UNKNOWN; the next look tries again, however
    long it lasts. A refusal (Forbidden, Unauthorized, a broken kubeconfig, an error kubectl's words
    do not classify) is logged as an error, also reads as UNKNOWN, and only after
    `permanent_failure_limit` seconds of nothing but refusals is the job failed (EXCEPTION, pod
    delete attempted): otherwise NVFlare's wait() would block for ever on a pod we may never see again.

    Where we differ from upstream on purpose: terminate() on a job that already ended keeps its
    outcome (upstream turns a success into ABORTED), and deletions are done once, not on every call.
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
        workspace_job_id: str = "",
        pod_name: str | None = None,
        *,
        credential_secret_name: str | None = None,
    ) -> None:
        super().__init__()
        self.job_id = job_id
        self.api_instance = api_instance
        self.namespace = namespace
        self.timeout = timeout
        self.pending_timeout = normalize_pending_timeout(pending_timeout)
        self.python_path = python_path
        self.workspace_transfer = workspace_transfer
        self.workspace_job_id = workspace_job_id
        self.pod_name = pod_name if pod_name is not None else job_id
        self.credential_secret_name = credential_secret_name
        self.terminal_state: JobState | None = None
        self.terminal_return_code: int | None = None
        self.logger = logging.getLogger(self.__class__.__name__)

        manifest = build_pod_manifest(job_config, python_path=python_path)
        self.container_name: str = manifest["spec"]["containers"][0]["name"]
        if workspace_transfer is not None:
            workspace_transfer.decorate(manifest, self.container_name)
        self._manifest = manifest

        # Injectable for tests: where time comes from, how to wait, and the policy knobs.
        self._clock: Callable[[], float] = time.time
        self._sleep: Callable[[float], None] = time.sleep
        self.poll_interval = POLL_INTERVAL
        self.quick_poll_interval = QUICK_POLL_INTERVAL
        self.quick_poll_window = QUICK_POLL_WINDOW
        self._quick_until: float | None = None  # None: not yet delivered; then until when to look quickly
        self.permanent_failure_limit: float | None = PERMANENT_FAILURE_LIMIT
        self.termination_grace_period = 1  # see commands.py on why not 0

        # The resource-wait timer (upstream's semantics: paused while we cannot see, reset on progress).
        self._stuck_count = 0
        self._pending_since: float | None = None
        self._pending_paused_at: float | None = None
        # Read failures, for quiet retries and for giving up on a server that keeps refusing us.
        self._read_failures = 0
        self._refused_since: float | None = None
        self._last_refusal = ""

        self._lock = threading.RLock()  # guards the fields above and the terminal state
        self._step_lock = threading.Lock()  # one look at the pod at a time
        self._cleanup_lock = threading.Lock()  # one deletion at a time
        self._pod_deleted = False
        self._secret_delete_tried = False

    # -- the manifest --

    def get_manifest(self) -> dict[str, Any]:
        return copy.deepcopy(self._manifest)

    # -- NVFlare's JobHandleSpec --

    def poll(self) -> int:
        """The job's return code: NVFlare's UNKNOWN (127) while it runs or while we cannot see it."""
        seen = self._step()
        with self._lock:
            if self.terminal_state is not None:
                return self._terminal_code()
        return JOB_RETURN_CODE_MAPPING[seen.state]

    def wait(self) -> None:
        """Return once the job has ended (no time limit, as upstream)."""
        while True:
            seen = self._step()
            if seen.interrupted or self.terminal_state is not None:
                return
            self._sleep(self._interval(seen))

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
            if self.terminal_state is not None:
                return False
            if self.timeout is not None and seen.now - started >= self.timeout:
                names = [cast(JobState, state).name for state in targets]
                self._fail(f"timed out after {self.timeout}s waiting for the pod to enter {names}")
                return False
            self._sleep(self._interval(seen))

    def terminate(self) -> None:
        """Delete the pod and the job's credential Secret (once; safe to call again, from any thread).

        A job that already ended keeps its outcome; otherwise it ends TERMINATED (ABORTED).
        """
        with self._lock:
            if self.terminal_state is None:
                self.terminal_state = JobState.TERMINATED
        self._clean_up(delete_pod=True)

    # -- one look at the pod --

    def _step(self) -> _Seen:
        with self._step_lock:
            with self._lock:
                if self.terminal_state is not None:
                    return _Seen(self.terminal_state, True, self._clock())
            read = self._read_pod()
            now = self._clock()
            transfer_error = self._advance_transfer(read)
            events_failed = False

            def events() -> Sequence[Event]:
                nonlocal events_failed
                found = self._read_events()
                events_failed = found is None
                return found or []

            pod = read.pod if read.status is PodReadStatus.FOUND else None
            phase = pod_phase(pod)
            verdict = (PendingAction.WAIT, "") if transfer_error else classify_starting_pod(pod, events, now)
            delete_pod = False
            with self._lock:
                if self.terminal_state is not None:  # terminate() came first
                    return _Seen(self.terminal_state, True, now)
                if read.status is PodReadStatus.GONE:
                    self.logger.info(f"{self._what()} not found; assuming terminated")
                    self.terminal_state = JobState.TERMINATED
                elif transfer_error is not None:
                    # Keep a pod whose job has ended: its results can still be fetched by hand.
                    delete_pod = main_container_exit_code(pod, self.container_name) is None
                    self._mark_failed(f"workspace transfer failed: {transfer_error}", delete_pod)
                else:
                    failure = self._note_read(read, now)
                    failure = failure or self._handle_starting_pod(verdict, phase, pod, events_failed, now)
                    if failure:
                        self._mark_failed(failure, True)
                        delete_pod = True
                    elif phase in (PodPhase.SUCCEEDED.value, PodPhase.FAILED.value):
                        self._record_end(pod, phase)
                    elif self._results_collected():
                        self._record_exit(pod)
                ended = self.terminal_state is not None
            if ended:
                self._clean_up(delete_pod=delete_pod)
                return _Seen(cast(JobState, self.terminal_state), True, now)
            self._note_progress(pod, now)
            return _Seen(job_state_for_phase(phase), False, now)

    def _interval(self, seen: _Seen) -> float:
        """How long to wait before the next look: short while the pod is about to start its job container."""
        until = self._quick_until
        if until is not None and seen.now < until:
            return min(self.quick_poll_interval, self.poll_interval)
        return self.poll_interval

    def _note_progress(self, pod: Pod | None, now: float) -> None:
        """Open the quick window once the workspace is delivered; close it once the job container runs."""
        if self._quick_until is None:
            if self.workspace_transfer is not None and self.workspace_transfer.delivered:
                self._quick_until = now + self.quick_poll_window
        elif "running" in (main_container_state(pod, self.container_name) or {}):
            self._quick_until = now  # the window is spent: nothing is about to change now

    def _read_pod(self) -> PodRead:
        """The one place the handle reads the pod (a shared watch can take its place later)."""
        kubectl = self._kubectl()
        try:
            document = kubectl.get_json((*commands.get_pod(self.pod_name), *self._ns_args()), expect_kind="Pod")
        except KubectlNotFound:
            return PodRead(PodReadStatus.GONE)
        except KubectlError as e:
            return PodRead(PodReadStatus.UNAVAILABLE, error=str(e), permanent=not e.transient)
        except ProtocolError as e:
            return PodRead(PodReadStatus.UNAVAILABLE, error=str(e))
        except Exception as e:  # poll() must not raise; an unexpected failure is reported loudly
            self.logger.exception(f"unexpected error reading {self._what()}")
            return PodRead(PodReadStatus.UNAVAILABLE, error=f"unexpected error: {e!r}", permanent=True)
        if document is None:
            return PodRead(PodReadStatus.GONE)
        return PodRead(PodReadStatus.FOUND, cast(Pod, document))

    def _read_events(self) -> list[Event] | None:
        """The pod's events, or None when they could not be read (which pauses the resource timer)."""
        kubectl = self._kubectl()
        try:
            document = kubectl.get_json((*commands.get_pod_events(self.pod_name), *self._ns_args()))
        except (KubectlError, ProtocolError) as e:
            self.logger.warning(f"failed to query events for {self._what()}: {e}")
            return None
        items = (document or {}).get("items")
        if not isinstance(items, list):
            return []
        return [cast(Event, item) for item in items if isinstance(item, dict)]

    def _advance_transfer(self, read: PodRead) -> TransferError | None:
        transfer = self.workspace_transfer
        if transfer is None or read.pod is None or read.status is not PodReadStatus.FOUND or transfer.finished:
            return None
        try:
            transfer.advance(self._kubectl(), cast(dict[str, Any], read.pod))
        except TransferError as e:
            return e
        except Exception:
            # A bug in the transfer must not end a job that may be fine; the next look tries again.
            self.logger.exception(f"unexpected error in the workspace transfer of {self._what()}")
        return None

    # -- state decisions (called with self._lock held) --

    def _note_read(self, read: PodRead, now: float) -> str | None:
        """Log read failures without flooding, and decide when a refusing server means giving up."""
        if read.status is PodReadStatus.FOUND:
            if self._read_failures:
                self.logger.info(f"{self._what()} can be read again after {self._read_failures} failed attempt(s)")
            self._read_failures = 0
            self._refused_since = None
            self._last_refusal = ""
            return None
        self._read_failures += 1
        if not read.permanent:
            log = self.logger.warning if self._read_failures == 1 else self.logger.debug
            log(f"cannot read {self._what()} (will retry; the job is not failed for this): {read.error}")
            return None
        if self._refused_since is None:
            self._refused_since = now
        if read.error != self._last_refusal:
            self._last_refusal = read.error
            self.logger.error(
                f"kubectl was refused reading {self._what()}; fix the access (RBAC, credentials) - the job is "
                f"failed if this lasts {self.permanent_failure_limit}s: {read.error}"
            )
        limit = self.permanent_failure_limit
        if limit is not None and now - self._refused_since >= limit:
            return f"could not read the pod for {now - self._refused_since:.0f}s: {read.error}"
        return None

    def _handle_starting_pod(
        self, verdict: tuple[PendingAction, str], phase: str | None, pod: Pod | None, events_failed: bool, now: float
    ) -> str | None:
        """Upstream's pending policy: the reason to fail the pod now, or None (timers updated)."""
        action, detail = verdict
        if action is PendingAction.FAIL:
            return f"pod startup failure: {detail}"
        if action is PendingAction.WAIT_FOR_RESOURCES:
            if self._resource_wait_expired(now):
                return f"timed out waiting for CPU/memory/GPU resources: {detail}"
            return None
        if phase is None:
            self._pause_pending_timer(now)
        elif (
            phase == PodPhase.PENDING.value
            and self._pending_since is not None
            and events_failed
            and not pod_is_scheduled(pod)
        ):
            # The shortage may persist, we just cannot see it: the gap does not count, nor reset.
            self._pause_pending_timer(now)
        else:
            self._reset_pending_timer()
        return None

    def _resource_wait_expired(self, now: float) -> bool:
        self._stuck_count += 1
        if self.pending_timeout is None:
            return False
        if self._pending_since is None:
            self._pending_since = now
        elif self._pending_paused_at is not None:
            self._pending_since += max(0.0, now - self._pending_paused_at)
        self._pending_paused_at = None
        return now - self._pending_since >= self.pending_timeout

    def _pause_pending_timer(self, now: float) -> None:
        if self._pending_since is not None and self._pending_paused_at is None:
            self._pending_paused_at = now

    def _reset_pending_timer(self) -> None:
        self._stuck_count = 0
        self._pending_since = None
        self._pending_paused_at = None

    def _mark_failed(self, reason: str, deleting: bool) -> None:
        self.logger.warning(f"{self._what()}: {reason}" + ("; deleting the pod" if deleting else ""))
        self.terminal_state = JobState.TERMINATED
        self.terminal_return_code = ReturnCode.EXCEPTION

    def _record_end(self, pod: Pod | None, phase: str) -> None:
        transfer = self.workspace_transfer
        if transfer is not None and not transfer.finished:
            self.logger.warning(f"{self._what()} ended ({phase}) before the workspace transfer finished")
        state = job_state_for_phase(phase)
        self.terminal_state = state
        code = return_code_for(state, pod, self.container_name)
        if code != JOB_RETURN_CODE_MAPPING[state]:
            self.terminal_return_code = code
        self.logger.info(f"{self._what()} ended: phase {phase}, return code {code}")

    def _results_collected(self) -> bool:
        transfer = self.workspace_transfer
        return transfer is not None and transfer.finished and transfer.collected

    def _record_exit(self, pod: Pod | None) -> None:
        """The results are back and the keeper released: the job container's exit code decides, as the
        pod's phase will once the keeper has ended (the pod is not deleted; it ends by itself)."""
        code = main_container_exit_code(pod, self.container_name)
        if code is None:
            return  # collected before the job container ended? Not by our transfer; follow the phase
        state, return_code = outcome_for_exit_code(code, pod, self.container_name)
        self.terminal_state = state
        if return_code != JOB_RETURN_CODE_MAPPING[state]:
            self.terminal_return_code = return_code
        self.logger.info(
            f"{self._what()} ended: job container exit code {code}, results collected, return code {return_code}"
        )

    def _terminal_code(self) -> int:
        if self.terminal_return_code is not None:
            return self.terminal_return_code
        return JOB_RETURN_CODE_MAPPING[cast(JobState, self.terminal_state)]

    def _fail(self, reason: str) -> None:
        with self._lock:
            if self.terminal_state is not None:
                return
            self._mark_failed(reason, True)
        self._clean_up(delete_pod=True)

    # -- deleting what the job left --

    def _clean_up(self, *, delete_pod: bool) -> None:
        """Delete the pod (when asked; retried by a later call if it failed) and the credential Secret (once)."""
        kubectl = self.api_instance
        if kubectl is None:
            return
        with self._cleanup_lock:
            if delete_pod and not self._pod_deleted:
                args = (
                    *commands.delete_pod(self.pod_name, grace_period=self.termination_grace_period),
                    *self._ns_args(),
                )
                try:
                    kubectl.run(args, idempotent=True)
                    self._pod_deleted = True
                    self.logger.info(f"deleted {self._what()}: {kubectl.describe(kubectl.argv(args))}")
                except KubectlError as e:
                    self.logger.error(f"failed to delete {self._what()}: {e}")
            secret = self.credential_secret_name
            if secret and not self._secret_delete_tried:
                self._secret_delete_tried = True
                try:
                    kubectl.run((*commands.delete_secret(secret), *self._ns_args()), idempotent=True)
                except KubectlError as e:
                    # The Secret's ownerReference on the pod remains the backstop.
                    self.logger.warning(
                        f"failed to delete credential Secret {secret} (namespace {self.namespace}): {e}"
                    )

    # -- helpers --

    def _kubectl(self) -> Kubectl:
        if self.api_instance is None:
            raise RuntimeError(
                f"job {self.job_id}: this K8sJobHandle has no kubectl (api_instance=None); it can only build "
                "the manifest"
            )
        return self.api_instance

    def _ns_args(self) -> tuple[str, ...]:
        # Kubectl adds its own --namespace first; a later one wins, so only add ours when it differs.
        kubectl = self.api_instance
        return () if kubectl is None or kubectl.namespace == self.namespace else ("--namespace", self.namespace)

    def _what(self) -> str:
        return f"job {self.job_id} pod {self.pod_name} (namespace {self.namespace})"
