"""Pod and event JSON (as `kubectl get -o json` prints it) → PodPhase, JobState, return codes, pending verdicts."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from enum import Enum
from typing import Any, Final, cast

from kubectl_launcher.domain.pod_json import ContainerState, Event, Pod

__all__ = [
    "JOB_RETURN_CODE_MAPPING",
    "PASSTHROUGH_EXIT_CODES",
    "POD_STATE_MAPPING",
    "RECENT_EVENT_MAX_AGE",
    "Event",
    "JobState",
    "PendingAction",
    "Pod",
    "PodPhase",
    "ReturnCode",
    "classify_starting_pod",
    "container_waiting_failure",
    "event_timestamp",
    "is_resource_shortage",
    "job_state_for_phase",
    "main_container_exit_code",
    "main_container_state",
    "outcome_for_exit_code",
    "pod_has_started_a_container",
    "pod_is_scheduled",
    "pod_phase",
    "return_code_for",
]


class JobState(Enum):
    STARTING = "starting"
    RUNNING = "running"
    TERMINATED = "terminated"
    SUCCEEDED = "succeeded"
    UNKNOWN = "unknown"


class PodPhase(Enum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    UNKNOWN = "Unknown"


class PendingAction(Enum):
    """What to do about a pod that has not started yet."""

    WAIT = "wait"
    WAIT_FOR_RESOURCES = "wait_for_resources"
    FAIL = "fail"


class ReturnCode:
    """NVFlare's JobReturnCode / ProcessExitCode values, as plain ints (what NVFlare compares against)."""

    SUCCESS: Final = 0
    EXECUTION_ERROR: Final = 1
    ABORTED: Final = 9
    EXCEPTION: Final = 101
    UNSAFE_COMPONENT: Final = 102
    CONFIG_ERROR: Final = 103
    UNKNOWN: Final = 127


# --- tables ---------------------------------------------------------------------------------------

POD_STATE_MAPPING: Final[Mapping[str, JobState]] = {
    PodPhase.PENDING.value: JobState.STARTING,
    PodPhase.RUNNING.value: JobState.RUNNING,
    PodPhase.SUCCEEDED.value: JobState.SUCCEEDED,
    PodPhase.FAILED.value: JobState.TERMINATED,
    PodPhase.UNKNOWN.value: JobState.UNKNOWN,
}

JOB_RETURN_CODE_MAPPING: Final[Mapping[JobState, int]] = {
    JobState.SUCCEEDED: ReturnCode.SUCCESS,
    JobState.STARTING: ReturnCode.UNKNOWN,
    JobState.RUNNING: ReturnCode.UNKNOWN,
    JobState.TERMINATED: ReturnCode.ABORTED,
    JobState.UNKNOWN: ReturnCode.UNKNOWN,
}

#: Exit codes of the job container that NVFlare's job process uses on purpose; a Failed pod reports
#: them instead of ABORTED (nvflare 2.9). Anything else (1, 137 OOM/SIGKILL, ...) stays ABORTED.
PASSTHROUGH_EXIT_CODES: Final = frozenset({ReturnCode.EXCEPTION, ReturnCode.UNSAFE_COMPONENT, ReturnCode.CONFIG_ERROR})

#: A Warning event on a scheduled pod only fails it if it is at most this old (seconds): an old
#: event may belong to an earlier pod of the same name.
RECENT_EVENT_MAX_AGE: Final = 60.0

_FAILURE_WAITING_REASONS: Final = frozenset(
    {
        "CreateContainerConfigError",
        "CreateContainerError",
        "ErrImagePull",
        "ErrImageNeverPull",
        "ImagePullBackOff",
        "InvalidImageName",
        "RunContainerError",
        "CrashLoopBackOff",
    }
)
_FAILURE_EVENT_REASONS: Final = frozenset(
    {
        "BackOff",
        "Failed",
        "FailedAttachVolume",
        "FailedCreatePodSandBox",
        "FailedMount",
        "FailedScheduling",
        "FailedSync",
        "InspectFailed",
        "InvalidImageName",
        "NetworkNotReady",
    }
)
_INSUFFICIENT = re.compile(r"\binsufficient\s+([a-z0-9./_-]+)", re.IGNORECASE)

Events = Sequence[Event] | Callable[[], Sequence[Event]]


# --- small readers that never raise on odd JSON ---------------------------------------------------


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _items(value: object) -> list[Mapping[str, Any]]:
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, Mapping)]


def _text(*values: object) -> str:
    return " ".join(str(v) for v in values if v)


def pod_phase(pod: Pod | None) -> str | None:
    """``status.phase``, or None when there is no pod or it has no phase yet."""
    phase = _mapping(_mapping(pod).get("status")).get("phase")
    return phase if isinstance(phase, str) and phase else None


def job_state_for_phase(phase: str | None) -> JobState:
    return POD_STATE_MAPPING.get(phase or "", JobState.UNKNOWN)


def pod_is_scheduled(pod: Pod | None) -> bool:
    """Bound to a node: ``spec.nodeName`` is set, or the PodScheduled condition is True."""
    spec = _mapping(_mapping(pod).get("spec"))
    status = _mapping(_mapping(pod).get("status"))
    # status.nodeName does not exist in the API; upstream's test doubles put it there, so accept both.
    for node in (spec.get("nodeName"), status.get("nodeName")):
        if isinstance(node, str) and node:
            return True
    return any(c.get("type") == "PodScheduled" and c.get("status") == "True" for c in _items(status.get("conditions")))


def is_resource_shortage(text: str) -> bool:
    """True when the scheduler says CPU, memory or a GPU is short ("Insufficient nvidia.com/gpu")."""
    for name in _INSUFFICIENT.findall(text or ""):
        resource = name.lower().rstrip(".,;:")
        if resource in ("cpu", "memory") or "gpu" in resource:
            return True
    return False


def _seconds(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip().replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def event_timestamp(event: Event | Mapping[str, Any]) -> float | None:
    """When the event last happened: eventTime, series.lastObservedTime, lastTimestamp, firstTimestamp,
    metadata.creationTimestamp — the first that parses (epoch seconds)."""
    ev = _mapping(event)
    for value in (
        ev.get("eventTime"),
        _mapping(ev.get("series")).get("lastObservedTime"),
        ev.get("lastTimestamp"),
        ev.get("firstTimestamp"),
        _mapping(ev.get("metadata")).get("creationTimestamp"),
    ):
        seconds = _seconds(value)
        if seconds is not None:
            return seconds
    return None


def _newest_first(events: Sequence[Event]) -> list[Mapping[str, Any]]:
    # A stable sort: events with equal (or no) timestamps keep the server's order.
    return sorted(_items(list(events)), key=lambda e: event_timestamp(e) or 0.0, reverse=True)


def container_waiting_failure(pod: Pod | None) -> str:
    """'<reason> <message>' of the first init or app container waiting for a reason that will not heal."""
    status = _mapping(_mapping(pod).get("status"))
    for cs in _items(status.get("initContainerStatuses")) + _items(status.get("containerStatuses")):
        waiting = _mapping(_mapping(cs.get("state")).get("waiting"))
        if waiting and waiting.get("reason") in _FAILURE_WAITING_REASONS:
            return _text(waiting.get("reason"), waiting.get("message"))
    return ""


def _recent_event_failure(events: Sequence[Event], now: float) -> str:
    for ev in _newest_first(events):
        reason = ev.get("reason")
        # The scheduler's complaints are about the time before the pod was bound; it is bound now.
        if reason == "FailedScheduling" or ev.get("type") != "Warning" or reason not in _FAILURE_EVENT_REASONS:
            continue
        when = event_timestamp(ev)
        if when is None or now - when > RECENT_EVENT_MAX_AGE:
            continue
        return _text(reason, ev.get("message")) or "pod event reported startup issue"
    return ""


def _classify_unscheduled(pod: Pod | None, events: Callable[[], Sequence[Event]]) -> tuple[PendingAction, str]:
    for cond in _items(_mapping(_mapping(pod).get("status")).get("conditions")):
        if cond.get("type") != "PodScheduled" or cond.get("status") != "False":
            continue
        detail = _text(cond.get("reason"), cond.get("message")) or "pod is not scheduled"
        if is_resource_shortage(detail):
            return PendingAction.WAIT_FOR_RESOURCES, detail
        if cond.get("reason") == "Unschedulable":
            return PendingAction.FAIL, detail
    for ev in _newest_first(events()):
        if ev.get("type") != "Warning":
            continue
        reason = ev.get("reason")
        detail = _text(reason, ev.get("message")) or "pod event reported startup issue"
        if is_resource_shortage(detail):
            return PendingAction.WAIT_FOR_RESOURCES, detail
        if reason in _FAILURE_EVENT_REASONS:  # FailedScheduling is one of them
            return PendingAction.FAIL, detail
    return PendingAction.WAIT, "pod is pending without a scheduler failure"


def classify_starting_pod(pod: Pod | None, events: Events, now: float) -> tuple[PendingAction, str]:
    """Upstream's verdict on a pod that has not started: wait, wait for resources, or fail now.

    ``events`` are the pod's events (any order), or a function returning them: it is called only
    when the verdict needs them, so a running pod costs no event query. ``now`` is epoch seconds.
    """
    phase = pod_phase(pod)
    if phase == PodPhase.UNKNOWN.value:
        return PendingAction.FAIL, "pod phase is Unknown"
    if phase != PodPhase.PENDING.value:
        return PendingAction.WAIT, ""
    fetch: Callable[[], Sequence[Event]] = events if callable(events) else (lambda: events)
    if not pod_is_scheduled(pod):
        return _classify_unscheduled(pod, fetch)
    failure = container_waiting_failure(pod)
    if not failure and not pod_has_started_a_container(pod):
        failure = _recent_event_failure(fetch(), now)
    if failure:
        return PendingAction.FAIL, failure
    return PendingAction.WAIT, "pod is scheduled and still starting"


def pod_has_started_a_container(pod: Pod | None) -> bool:
    """An init or app container runs, or an init container finished with exit code 0.

    The kubelet starts a container only once the pod's sandbox exists and all its volumes are
    mounted, so the event reasons that fail a starting pod (FailedMount, FailedCreatePodSandBox, ...)
    no longer apply; what can still go wrong (a later image that cannot be pulled, a crash loop)
    shows in a container's waiting reason. Such a pod costs no event query.
    """
    status = _mapping(_mapping(pod).get("status"))
    for key in ("initContainerStatuses", "containerStatuses"):
        for cs in _items(status.get(key)):
            state = _mapping(cs.get("state"))
            if state.get("running") is not None:
                return True
            terminated = _mapping(state.get("terminated"))
            if key == "initContainerStatuses" and terminated and terminated.get("exitCode") == 0:
                return True
    return False


def main_container_state(pod: Pod | None, container_name: str) -> ContainerState | None:
    """The state of the container named ``container_name`` (the job's), or None if not reported."""
    status = _mapping(_mapping(pod).get("status"))
    for cs in _items(status.get("containerStatuses")):
        if cs.get("name") == container_name:
            state = cs.get("state")
            return cast(ContainerState, state) if isinstance(state, dict) else None
    return None


def main_container_exit_code(pod: Pod | None, container_name: str) -> int | None:
    """The job container's exit code once it has terminated, else None."""
    terminated = _mapping(_mapping(main_container_state(pod, container_name)).get("terminated"))
    code = terminated.get("exitCode")
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def return_code_for(state: JobState, pod: Pod | None = None, container_name: str | None = None) -> int:
    """NVFlare's return code for a job state; for a Failed pod, the job container's deliberate exit
    code (101/102/103) when it used one."""
    if state is JobState.TERMINATED and pod is not None and container_name:
        code = main_container_exit_code(pod, container_name)
        if code in PASSTHROUGH_EXIT_CODES:
            return code
    return JOB_RETURN_CODE_MAPPING[state]


def outcome_for_exit_code(code: int, pod: Pod | None, container_name: str) -> tuple[JobState, int]:
    """The state and return code the pod's phase will show once its other containers end cleanly.

    For a pod whose job container has exited while a helper container (the workspace keeper) still
    runs: exit code 0 becomes Succeeded, anything else Failed, as the kubelet decides the phase.
    """
    state = JobState.SUCCEEDED if code == 0 else JobState.TERMINATED
    return state, return_code_for(state, pod, container_name)
