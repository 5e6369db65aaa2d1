"""Following one job pod (pure): one look at the pod, and the job's state after it.

`JobTracker.observe` takes what the handle saw (a `PodRead`, the pod's events on demand, the
workspace transfer's progress, the time) and returns a `Verdict`: the job's state, whether it has
ended and with which return code, whether to delete the pod, and what to log. It keeps upstream's
timers: the resource-wait timer (`pending_timeout`, paused while we cannot see, reset on progress)
and the refusal limit (`permanent_failure_limit` seconds of nothing but refusals fail the job).
It starts nothing and reads no clock; the handle does the I/O and owns the terminal state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum

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
    outcome_for_exit_code,
    pod_is_scheduled,
    pod_phase,
    return_code_for,
)
from kubectl_launcher.errors import ConfigError

__all__ = [
    "EVENTS_GRACE",
    "PERMANENT_FAILURE_LIMIT",
    "POLL_INTERVAL",
    "QUICK_POLL_INTERVAL",
    "QUICK_POLL_WINDOW",
    "JobTracker",
    "PodRead",
    "PodReadStatus",
    "TrackerSettings",
    "TransferView",
    "Verdict",
    "positive_seconds",
]

#: Seconds between two looks at the pod in wait() and enter_states() (upstream's POLL_INTERVAL).
POLL_INTERVAL = 1.0
#: Seconds between two looks while the pod is about to change: its workspace is delivered and the
#: job container has not started yet (the init container ends, then the job container starts).
QUICK_POLL_INTERVAL = 0.2
#: For at most this long after the delivery; a slow kubelet then gets the normal interval again.
QUICK_POLL_WINDOW = 3.0
#: How long the server may refuse to show us the pod (RBAC revoked, credentials expired) before the
#: job is failed. Transient failures (unreachable server, 5xx, timeouts) never count.
PERMANENT_FAILURE_LIMIT = 300.0
#: A pod seen for less than this long is not asked about its events: what they could say (a volume
#: that does not mount, no node with room) is no reason to act within a pod's first moments, which
#: every launch spends pending while its containers start; an events query there cost each launch a
#: kubectl process on its critical path. Upstream looks once a second; this delays a verdict by 2 s.
EVENTS_GRACE = 2.0

_ENDED_PHASES = (PodPhase.SUCCEEDED.value, PodPhase.FAILED.value)


class PodReadStatus(Enum):
    FOUND = "found"
    GONE = "gone"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class PodRead:
    """One look at the pod: found (with its JSON), gone, or unavailable (and why)."""

    status: PodReadStatus
    pod: Pod | None = None
    error: str = ""  # the typed error's message: kubectl's capped words and the command, no secrets
    permanent: bool = False  # the server refused (not: could not be reached)
    #: The typed error behind UNAVAILABLE, for a caller that must fail with it (the launch's own checks).
    exception: Exception | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class TransferView:
    """The workspace transfer as this look left it (docs/design.md, Contract 7)."""

    finished: bool = False
    delivered: bool = False  # the workspace is in the pod: the job container starts within moments
    collected: bool = False  # results back in place (the keeper released after): the job container's exit code decides
    error: str | None = None  # the transfer failed during this look


def positive_seconds(value: object, name: str, *, zero: bool = False) -> float:
    """A number of seconds (positive, or not negative with `zero`); otherwise a ConfigError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or (value == 0 and not zero):
        kind = "a non-negative" if zero else "a positive"
        raise ConfigError(f"{name} must be {kind} number of seconds, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class TrackerSettings:
    """How often to look at the pod and how long to put up with what it shows (checked on creation)."""

    pending_timeout: float | None  # already normalised (plan.normalize_pending_timeout)
    permanent_failure_limit: float | None = PERMANENT_FAILURE_LIMIT
    poll_interval: float = POLL_INTERVAL
    quick_poll_interval: float = QUICK_POLL_INTERVAL
    quick_poll_window: float = QUICK_POLL_WINDOW
    events_grace: float = EVENTS_GRACE

    def __post_init__(self) -> None:
        positive_seconds(self.poll_interval, "poll_interval")
        positive_seconds(self.quick_poll_interval, "quick_poll_interval")
        positive_seconds(self.quick_poll_window, "quick_poll_window", zero=True)
        positive_seconds(self.events_grace, "events_grace", zero=True)
        if self.permanent_failure_limit is not None:
            positive_seconds(self.permanent_failure_limit, "permanent_failure_limit", zero=True)


@dataclass(frozen=True)
class Verdict:
    """The job after one look: its state, and when it ended, how (and what the handle should do)."""

    state: JobState
    ended: bool = False
    return_code: int | None = None  # None: NVFlare's code for `state`
    delete_pod: bool = False
    logs: tuple[tuple[int, str], ...] = ()  # (logging level, message), in order


class JobTracker:
    """The decisions about one job pod; `what` names it in messages ("job J pod P (namespace N)")."""

    def __init__(self, container_name: str, what: str, settings: TrackerSettings) -> None:
        self.container_name = container_name
        self.what = what
        self.settings = settings
        self._first_seen: float | None = None  # the first look that found the pod (EVENTS_GRACE)
        self._pending_since: float | None = None  # the resource-wait timer
        self._pending_paused_at: float | None = None
        self._read_failures = 0
        self._refused_since: float | None = None
        self._last_refusal = ""
        self._quick_until: float | None = None  # None: not yet delivered; then until when to look quickly
        self._logs: list[tuple[int, str]] = []

    def observe(
        self,
        read: PodRead,
        now: float,
        events: Callable[[], Sequence[Event] | None],
        transfer: TransferView | None = None,
    ) -> Verdict:
        """Judge one look. `events` is called only when the verdict needs the pod's events."""
        self._logs = []
        pod = read.pod if read.status is PodReadStatus.FOUND else None
        phase = pod_phase(pod)
        if read.status is PodReadStatus.GONE:
            self._log(logging.INFO, f"{self.what} not found; assuming terminated")
            return self._ended(JobState.TERMINATED)
        if transfer is not None and transfer.error is not None:
            # Keep a pod whose job has ended: its results can still be fetched by hand.
            keep = main_container_exit_code(pod, self.container_name) is not None
            return self._failed(f"workspace transfer failed: {transfer.error}", delete_pod=not keep)
        events_failed = False
        if pod is not None and self._first_seen is None:
            self._first_seen = now

        def fetch() -> Sequence[Event]:
            nonlocal events_failed
            if self._first_seen is not None and now - self._first_seen < self.settings.events_grace:
                return []  # none seen yet, not "could not be read": the pending timers run as usual
            found = events()
            events_failed = found is None
            return found or []

        action, detail = classify_starting_pod(pod, fetch, now)
        failure = self._note_read(read, now) or self._pending(action, detail, phase, pod, events_failed, now)
        if failure:
            return self._failed(failure, delete_pod=True)
        if phase in _ENDED_PHASES:
            return self._phase_ended(pod, str(phase), transfer)
        if transfer is not None and transfer.finished and transfer.collected:
            code = main_container_exit_code(pod, self.container_name)
            if code is not None:  # collected before the job container ended? Not by our transfer
                state, return_code = outcome_for_exit_code(code, pod, self.container_name)
                self._log(
                    logging.INFO,
                    f"{self.what} ended: job container exit code {code}, results collected, return code {return_code}",
                )
                return self._ended(state, return_code)
        self._note_progress(pod, now, transfer)
        return Verdict(job_state_for_phase(phase), logs=tuple(self._logs))

    def interval(self, now: float) -> float:
        """How long to wait before the next look: short while the pod is about to start its job container."""
        s = self.settings
        if self._quick_until is not None and now < self._quick_until:
            return min(s.quick_poll_interval, s.poll_interval)
        return s.poll_interval

    # -- the parts of a verdict --

    def _log(self, level: int, message: str) -> None:
        self._logs.append((level, message))

    def _ended(self, state: JobState, return_code: int | None = None, *, delete_pod: bool = False) -> Verdict:
        code = None if return_code == JOB_RETURN_CODE_MAPPING[state] else return_code
        return Verdict(state, ended=True, return_code=code, delete_pod=delete_pod, logs=tuple(self._logs))

    def _failed(self, reason: str, *, delete_pod: bool) -> Verdict:
        self._log(logging.WARNING, f"{self.what}: {reason}" + ("; deleting the pod" if delete_pod else ""))
        return self._ended(JobState.TERMINATED, ReturnCode.EXCEPTION, delete_pod=delete_pod)

    def _phase_ended(self, pod: Pod | None, phase: str, transfer: TransferView | None) -> Verdict:
        if transfer is not None and not transfer.finished:
            self._log(logging.WARNING, f"{self.what} ended ({phase}) before the workspace transfer finished")
        state = job_state_for_phase(phase)
        code = return_code_for(state, pod, self.container_name)
        self._log(logging.INFO, f"{self.what} ended: phase {phase}, return code {code}")
        return self._ended(state, code)

    def _note_read(self, read: PodRead, now: float) -> str | None:
        """Log read failures without flooding, and decide when a refusing server means giving up."""
        if read.status is PodReadStatus.FOUND:
            if self._read_failures:
                self._log(logging.INFO, f"{self.what} can be read again after {self._read_failures} failed attempt(s)")
            self._read_failures = 0
            self._refused_since = None
            self._last_refusal = ""
            return None
        self._read_failures += 1
        if not read.permanent:
            level = logging.WARNING if self._read_failures == 1 else logging.DEBUG
            self._log(level, f"cannot read {self.what} (will retry; the job is not failed for this): {read.error}")
            return None
        if self._refused_since is None:
            self._refused_since = now
        limit = self.settings.permanent_failure_limit
        if read.error != self._last_refusal:
            self._last_refusal = read.error
            self._log(
                logging.ERROR,
                f"kubectl was refused reading {self.what}; fix the access (RBAC, credentials) - the job is "
                f"failed if this lasts {limit}s: {read.error}",
            )
        if limit is not None and now - self._refused_since >= limit:
            return f"could not read the pod for {now - self._refused_since:.0f}s: {read.error}"
        return None

    def _pending(
        self, action: PendingAction, detail: str, phase: str | None, pod: Pod | None, events_failed: bool, now: float
    ) -> str | None:
        """Upstream's pending policy: the reason to fail the pod now, or None (timers updated)."""
        if action is PendingAction.FAIL:
            return f"pod startup failure: {detail}"
        if action is PendingAction.WAIT_FOR_RESOURCES:
            if self._resource_wait_expired(now):
                return f"timed out waiting for CPU/memory/GPU resources: {detail}"
            return None
        unseen_shortage = (
            phase == PodPhase.PENDING.value
            and self._pending_since is not None
            and events_failed
            and not pod_is_scheduled(pod)
        )
        if phase is None or unseen_shortage:
            # We cannot see the pod, or the shortage may persist unseen: the gap neither counts nor resets.
            if self._pending_since is not None and self._pending_paused_at is None:
                self._pending_paused_at = now
        else:
            self._pending_since = None
            self._pending_paused_at = None
        return None

    def _resource_wait_expired(self, now: float) -> bool:
        timeout = self.settings.pending_timeout
        if timeout is None:
            return False
        if self._pending_since is None:
            self._pending_since = now
        elif self._pending_paused_at is not None:
            self._pending_since += max(0.0, now - self._pending_paused_at)
        self._pending_paused_at = None
        return now - self._pending_since >= timeout

    def _note_progress(self, pod: Pod | None, now: float, transfer: TransferView | None) -> None:
        """Open the quick window once the workspace is delivered; close it once the job container runs."""
        if self._quick_until is None:
            if transfer is not None and transfer.delivered:
                self._quick_until = now + self.settings.quick_poll_window
        elif "running" in (main_container_state(pod, self.container_name) or {}):
            self._quick_until = now  # the window is spent: nothing is about to change now
