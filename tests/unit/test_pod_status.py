"""Recorded pod and event JSON → phase, JobState, return code and upstream's pending verdicts."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from nvflare.apis.job_launcher_spec import JobReturnCode
from nvflare.app_opt.job_launcher import k8s_launcher as upstream

from kubectl_launcher.domain import pod_status as ps
from kubectl_launcher.domain.pod_status import JobState, PendingAction, PodPhase, ReturnCode

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "pods"
CONTAINER = "container-j550e8400-e29b-41d4-a716-446655440000"
T0 = datetime.fromisoformat("2025-06-01T12:00:00+00:00").timestamp()


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def events(name: str) -> list[Any]:
    document = load(name)
    assert document["kind"] == "List"
    return list(document["items"])


def no_events() -> list[Any]:
    raise AssertionError("the verdict must not need the pod's events")


# --- enums and tables ---------------------------------------------------------------------------


def test_enums_have_upstreams_members_and_values() -> None:
    for ours, theirs in ((JobState, upstream.JobState), (PodPhase, upstream.PodPhase)):
        assert [(m.name, m.value) for m in ours] == [(m.name, m.value) for m in theirs]
    assert [(m.name, m.value) for m in PendingAction] == [(m.name, m.value) for m in upstream.PendingPodAction]


def test_state_and_return_code_tables_equal_upstreams() -> None:
    assert dict(ps.POD_STATE_MAPPING) == {k: JobState[v.name] for k, v in upstream.POD_STATE_MAPPING.items()}
    assert {k.name: v for k, v in ps.JOB_RETURN_CODE_MAPPING.items()} == {
        k.name: int(v) for k, v in upstream.JOB_RETURN_CODE_MAPPING.items()
    }


def test_return_codes_are_nvflares() -> None:
    for name in ("SUCCESS", "EXECUTION_ERROR", "ABORTED", "UNKNOWN", "EXCEPTION", "UNSAFE_COMPONENT", "CONFIG_ERROR"):
        assert getattr(ReturnCode, name) == getattr(JobReturnCode, name)
        assert type(getattr(ReturnCode, name)) is int


# --- every recorded pod: phase, state, return code ----------------------------------------------

STATE_TABLE = [
    # fixture, phase, job state, return code
    ("pending_just_created.json", "Pending", JobState.STARTING, 127),
    ("pending_unscheduled_insufficient_cpu.json", "Pending", JobState.STARTING, 127),
    ("pending_container_creating.json", "Pending", JobState.STARTING, 127),
    ("pending_image_pull_backoff.json", "Pending", JobState.STARTING, 127),
    ("running.json", "Running", JobState.RUNNING, 127),
    ("succeeded.json", "Succeeded", JobState.SUCCEEDED, 0),
    ("failed_exit_1.json", "Failed", JobState.TERMINATED, 9),
    ("failed_exit_101.json", "Failed", JobState.TERMINATED, 101),
    ("failed_exit_102.json", "Failed", JobState.TERMINATED, 102),
    ("failed_exit_103.json", "Failed", JobState.TERMINATED, 103),
    ("failed_exit_137_oomkilled.json", "Failed", JobState.TERMINATED, 9),
    ("failed_sidecar_exit_101.json", "Failed", JobState.TERMINATED, 9),
    ("unknown_node_lost.json", "Unknown", JobState.UNKNOWN, 127),
    ("no_phase.json", None, JobState.UNKNOWN, 127),
]


@pytest.mark.parametrize(("fixture", "phase", "state", "code"), STATE_TABLE)
def test_job_state_and_return_code_follow_the_recorded_pod(
    fixture: str, phase: str | None, state: JobState, code: int
) -> None:
    pod = load(fixture)
    assert ps.pod_phase(pod) == phase
    assert ps.job_state_for_phase(ps.pod_phase(pod)) is state
    assert ps.return_code_for(state, pod, CONTAINER) == code


def test_every_phase_has_a_row_in_the_state_table() -> None:
    assert {phase for _, phase, _, _ in STATE_TABLE} == {p.value for p in PodPhase} | {None}


def test_a_failed_pod_without_container_name_or_pod_is_aborted() -> None:
    assert ps.return_code_for(JobState.TERMINATED) == 9
    assert ps.return_code_for(JobState.TERMINATED, load("failed_exit_101.json"), None) == 9
    assert ps.return_code_for(JobState.TERMINATED, load("failed_exit_101.json"), "other") == 9


def test_exit_code_101_of_a_succeeded_pod_is_never_looked_at() -> None:
    # Only a Failed pod passes a deliberate exit code through.
    assert ps.return_code_for(JobState.SUCCEEDED, load("failed_exit_101.json"), CONTAINER) == 0


@pytest.mark.parametrize(
    ("fixture", "code"),
    [("succeeded.json", 0), ("failed_exit_1.json", 1), ("failed_exit_137_oomkilled.json", 137), ("running.json", None)],
)
def test_main_container_exit_code_is_read_by_container_name(fixture: str, code: int | None) -> None:
    assert ps.main_container_exit_code(load(fixture), CONTAINER) == code


def test_main_container_state_is_that_of_the_named_container() -> None:
    pod = load("failed_sidecar_exit_101.json")
    assert ps.main_container_state(pod, CONTAINER) == pod["status"]["containerStatuses"][0]["state"]
    assert ps.main_container_exit_code(pod, "workspace-keeper") == 101
    assert ps.main_container_state(pod, "nope") is None
    assert ps.main_container_state(None, CONTAINER) is None


def test_running_container_state_is_reported() -> None:
    state = ps.main_container_state(load("running.json"), CONTAINER)
    assert state is not None and "running" in state


# --- the pending classification -----------------------------------------------------------------

W, WR, F = PendingAction.WAIT, PendingAction.WAIT_FOR_RESOURCES, PendingAction.FAIL
NOW = T0 + 60  # the recorded events happened between T0 and T0 + 55

CLASSIFICATION_TABLE = [
    # pod fixture, events fixture (None: the verdict must not query events), now, action, detail fragment
    # -- not pending
    ("running.json", None, NOW, W, ""),
    ("succeeded.json", None, NOW, W, ""),
    ("failed_exit_1.json", None, NOW, W, ""),
    ("no_phase.json", None, NOW, W, ""),
    ("unknown_node_lost.json", None, NOW, F, "pod phase is Unknown"),
    # -- unscheduled, decided by the PodScheduled condition
    (
        "pending_unscheduled_insufficient_cpu.json",
        None,
        NOW,
        WR,
        "Unschedulable 0/3 nodes are available: 3 Insufficient cpu.",
    ),
    ("pending_unscheduled_insufficient_memory.json", None, NOW, WR, "Insufficient memory"),
    ("pending_unscheduled_insufficient_gpu.json", None, NOW, WR, "Insufficient nvidia.com/gpu"),
    ("pending_unscheduled_node_affinity.json", None, NOW, F, "didn't match Pod's node affinity/selector"),
    ("pending_unscheduled_insufficient_ephemeral_storage.json", None, NOW, F, "Insufficient ephemeral-storage"),
    ("pending_unscheduled_insufficient_mig.json", None, NOW, F, "nvidia.com/mig-1g.5gb"),
    # -- unscheduled, the condition does not decide: the events do (newest first, no age limit)
    ("pending_unscheduled_schedulergated.json", "events_empty.json", NOW, W, "pending without a scheduler failure"),
    ("pending_just_created.json", "events_empty.json", NOW, W, "pod is pending without a scheduler failure"),
    ("pending_just_created.json", "events_normal_only.json", NOW, W, "without a scheduler failure"),
    ("pending_just_created.json", "events_failed_scheduling_pvc.json", NOW, F, "FailedScheduling 0/3 nodes"),
    ("pending_just_created.json", "events_failed_scheduling_pvc.json", NOW + 86400, F, "FailedScheduling"),
    ("pending_just_created.json", "events_failed_scheduling_insufficient_cpu_series.json", NOW, WR, "Insufficient cpu"),
    ("pending_just_created.json", "events_shortage_then_failed_scheduling.json", NOW, F, "volume node affinity"),
    ("pending_just_created.json", "events_failed_scheduling_then_shortage.json", NOW, WR, "nvidia.com/gpu"),
    ("pending_just_created.json", "events_failed_mount_old.json", NOW, F, "FailedMount"),
    # -- scheduled: a container (init containers first) waiting for a reason that does not heal
    (
        "pending_image_pull_backoff.json",
        None,
        NOW,
        F,
        'ImagePullBackOff Back-off pulling image "nvflare/nvflare:2.9.0-typo"',
    ),
    ("pending_err_image_pull.json", None, NOW, F, "ErrImagePull failed to pull and unpack image"),
    ("pending_create_container_config_error.json", None, NOW, F, "CreateContainerConfigError secret"),
    (
        "pending_init_image_pull_backoff.json",
        None,
        NOW,
        F,
        'ImagePullBackOff Back-off pulling image "busybox:1.36-typo"',
    ),
    ("pending_init_create_container_config_error.json", None, NOW, F, 'configmap "nvflare-transfer" not found'),
    # -- scheduled and starting: only a recent Warning event with a failure reason fails it
    ("pending_container_creating.json", "events_empty.json", NOW, W, "pod is scheduled and still starting"),
    ("pending_init_running.json", "events_normal_only.json", NOW, W, "scheduled and still starting"),
    ("pending_container_creating.json", "events_image_pull_failed.json", NOW, F, "BackOff Back-off pulling image"),
    (
        "pending_container_creating.json",
        "events_image_pull_failed.json",
        T0 + 55 + 60,
        F,
        "BackOff Back-off pulling",
    ),
    ("pending_container_creating.json", "events_image_pull_failed.json", T0 + 55 + 61, W, "still starting"),
    ("pending_container_creating.json", "events_failed_mount_first_timestamp_only.json", T0 + 70, F, "FailedMount"),
    ("pending_container_creating.json", "events_failed_mount_first_timestamp_only.json", T0 + 71, W, "still starting"),
    ("pending_container_creating.json", "events_failed_mount_creation_timestamp_only.json", T0 + 72, F, "read-only"),
    ("pending_container_creating.json", "events_failed_mount_creation_timestamp_only.json", T0 + 73, W, "starting"),
    ("pending_container_creating.json", "events_failed_mount_old.json", NOW, W, "still starting"),
    ("pending_container_creating.json", "events_failed_scheduling_pvc.json", NOW, W, "still starting"),
    # -- a container has started: sandbox and volumes are there, the events are not read
    ("pending_init_running.json", None, NOW, W, "scheduled and still starting"),
]


@pytest.mark.parametrize(("pod", "events_file", "now", "action", "detail"), CLASSIFICATION_TABLE)
def test_classification_of_recorded_pods(
    pod: str, events_file: str | None, now: float, action: PendingAction, detail: str
) -> None:
    got_action, got_detail = ps.classify_starting_pod(
        load(pod), (lambda: events(events_file)) if events_file else no_events, now
    )
    assert got_action is action
    assert detail in got_detail
    if action is not PendingAction.WAIT:
        assert got_detail


@pytest.mark.parametrize(("pod", "events_file", "now", "action", "detail"), CLASSIFICATION_TABLE)
def test_classification_accepts_a_plain_event_list(
    pod: str, events_file: str | None, now: float, action: PendingAction, detail: str
) -> None:
    got_action, _ = ps.classify_starting_pod(load(pod), events(events_file) if events_file else [], now)
    assert got_action is action


def test_classification_of_no_pod_is_wait() -> None:
    assert ps.classify_starting_pod(None, no_events, NOW) == (PendingAction.WAIT, "")


def test_scheduled_is_read_from_spec_node_name_as_a_real_server_writes_it() -> None:
    pod = load("pending_container_creating.json")
    pod["status"]["conditions"] = [c for c in pod["status"]["conditions"] if c["type"] != "PodScheduled"]
    assert ps.pod_is_scheduled(pod)
    del pod["spec"]["nodeName"]
    assert not ps.pod_is_scheduled(pod)
    pod["status"]["conditions"].append({"type": "PodScheduled", "status": "True"})
    assert ps.pod_is_scheduled(pod)


def test_unscheduled_pods_are_not_scheduled() -> None:
    assert not ps.pod_is_scheduled(load("pending_unscheduled_insufficient_cpu.json"))
    assert not ps.pod_is_scheduled(load("pending_just_created.json"))
    assert not ps.pod_is_scheduled(None)


@pytest.mark.parametrize(
    ("text", "shortage"),
    [
        ("0/3 nodes are available: 3 Insufficient cpu.", True),
        ("Insufficient memory", True),
        ("insufficient CPU, insufficient ephemeral-storage", True),
        ("0/2 nodes are available: 2 Insufficient nvidia.com/gpu.", True),
        ("1 Insufficient amd.com/gpu;", True),
        ("Insufficient ephemeral-storage.", False),
        ("Insufficient pods", False),
        ("Insufficient nvidia.com/mig-1g.5gb", False),
        ("cpu is insufficient", False),
        ("Insufficientcpu", False),
        ("", False),
    ],
)
def test_resource_shortage_matches_upstream(text: str, shortage: bool) -> None:
    assert ps.is_resource_shortage(text) is shortage
    assert upstream._is_cpu_memory_gpu_shortage(text) is shortage


# --- event timestamps ---------------------------------------------------------------------------


def ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            {
                "eventTime": "2025-06-01T12:00:01.104722Z",
                "series": {"lastObservedTime": "2025-06-01T12:04:01.000000Z"},
                "lastTimestamp": "2025-06-01T12:03:00Z",
                "firstTimestamp": "2025-06-01T12:02:00Z",
                "metadata": {"creationTimestamp": "2025-06-01T12:01:00Z"},
            },
            ts("2025-06-01T12:00:01.104722Z"),
        ),
        (
            {
                "eventTime": None,
                "series": {"lastObservedTime": "2025-06-01T12:04:01.000000Z"},
                "lastTimestamp": "2025-06-01T12:03:00Z",
            },
            ts("2025-06-01T12:04:01Z"),
        ),
        (
            {"eventTime": None, "lastTimestamp": "2025-06-01T12:03:00Z", "firstTimestamp": "2025-06-01T12:02:00Z"},
            ts("2025-06-01T12:03:00Z"),
        ),
        (
            {"eventTime": None, "lastTimestamp": None, "firstTimestamp": "2025-06-01T12:02:00Z"},
            ts("2025-06-01T12:02:00Z"),
        ),
        ({"metadata": {"creationTimestamp": "2025-06-01T12:01:00Z"}}, ts("2025-06-01T12:01:00Z")),
        ({"eventTime": "not a time", "lastTimestamp": "2025-06-01T12:03:00Z"}, ts("2025-06-01T12:03:00Z")),
        ({"eventTime": 1748779200}, 1748779200.0),
        ({"eventTime": "", "metadata": {}}, None),
        ({}, None),
    ],
)
def test_event_timestamp_precedence(event: dict[str, Any], expected: float | None) -> None:
    assert ps.event_timestamp(event) == expected


def test_event_timestamps_of_every_recorded_event_parse() -> None:
    for path in FIXTURES.glob("events_*.json"):
        for event in events(path.name):
            assert ps.event_timestamp(event) is not None, (path.name, event["metadata"]["name"])


def test_newest_event_wins_whatever_the_servers_order() -> None:
    pod = load("pending_just_created.json")
    items = events("events_shortage_then_failed_scheduling.json")
    assert ps.classify_starting_pod(pod, items, NOW)[0] is PendingAction.FAIL
    assert ps.classify_starting_pod(pod, list(reversed(items)), NOW)[0] is PendingAction.FAIL


def test_odd_json_never_raises() -> None:
    odd: Any = {"status": {"phase": "Pending", "conditions": "nope", "containerStatuses": [None, 3]}, "spec": []}
    assert ps.classify_starting_pod(odd, [None, {"type": "Warning"}], NOW) == (
        PendingAction.WAIT,
        "pod is pending without a scheduler failure",
    )
    assert ps.main_container_exit_code(odd, CONTAINER) is None


# --- the same verdicts as upstream's handle gives for the same objects --------------------------


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def _as_client_model(value: Any) -> Any:
    # The kubernetes client's models: snake_case attributes, absent fields are None.
    if isinstance(value, dict):
        return SimpleNamespace(**{_snake(k): _as_client_model(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_as_client_model(v) for v in value]
    return value


class _Missing(SimpleNamespace):
    def __getattr__(self, name: str) -> None:
        return None


def _model(value: Any) -> Any:
    model = _as_client_model(value)

    def patch(obj: Any) -> Any:
        if isinstance(obj, SimpleNamespace):
            return _Missing(**{k: patch(v) for k, v in vars(obj).items()})
        if isinstance(obj, list):
            return [patch(v) for v in obj]
        return obj

    return patch(model)


@pytest.mark.parametrize(("pod", "events_file", "now", "action", "detail"), CLASSIFICATION_TABLE)
def test_classification_equals_upstream_handles_verdict(
    pod: str, events_file: str | None, now: float, action: PendingAction, detail: str
) -> None:
    handle: Any = object.__new__(upstream.K8sJobHandle)
    handle._last_event_query_failed = False
    handle._query_pod_events = lambda: [_model(e) for e in (events(events_file) if events_file else [])]
    document = load(pod)
    theirs = handle._classify_starting_pod(_model(document), ps.pod_phase(document), now=now)
    ours = ps.classify_starting_pod(document, events(events_file) if events_file else [], now)
    assert (ours[0].value, ours[1]) == (theirs[0].value, theirs[1])


def test_a_pod_with_a_started_container_is_not_failed_by_old_startup_events() -> None:
    # Deliberately unlike upstream: once a container runs, the sandbox and the volumes exist, so a
    # FailedMount or pull BackOff event is about an earlier attempt; no event query is made.
    verdict = ps.classify_starting_pod(load("pending_init_running.json"), no_events, NOW)
    assert verdict == (PendingAction.WAIT, "pod is scheduled and still starting")


@pytest.mark.parametrize(
    ("fixture", "started"),
    [
        ("pending_init_running.json", True),
        ("running.json", True),
        ("pending_container_creating.json", False),
        ("pending_just_created.json", False),
        ("pending_init_image_pull_backoff.json", False),
    ],
)
def test_a_started_container_is_a_running_one_or_a_finished_init_container(fixture: str, started: bool) -> None:
    assert ps.pod_has_started_a_container(load(fixture)) is started


def test_a_failed_init_container_is_not_a_start() -> None:
    pod = load("pending_init_running.json")
    pod["status"]["initContainerStatuses"][0]["state"] = {"terminated": {"exitCode": 1}}
    assert ps.pod_has_started_a_container(pod) is False
    pod["status"]["initContainerStatuses"][0]["state"] = {"terminated": {"exitCode": 0}}
    assert ps.pod_has_started_a_container(pod) is True


@pytest.mark.parametrize(
    ("code", "state", "return_code"),
    [(0, JobState.SUCCEEDED, 0), (1, JobState.TERMINATED, 9), (137, JobState.TERMINATED, 9)]
    + [(c, JobState.TERMINATED, c) for c in (101, 102, 103)],
)
def test_the_outcome_of_an_exit_code_is_what_the_pods_phase_will_say(
    code: int, state: JobState, return_code: int
) -> None:
    pod = load("running.json")
    name = pod["spec"]["containers"][0]["name"]
    pod["status"]["containerStatuses"][0]["state"] = {"terminated": {"exitCode": code}}
    assert ps.outcome_for_exit_code(code, pod, name) == (state, return_code)
