"""JobTracker (pure): recorded pod JSON, events and the time → the job's state, return code and clean-up."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import pytest

from kubectl_launcher.domain.job_tracker import (
    JobTracker,
    PodRead,
    PodReadStatus,
    TrackerSettings,
    TransferView,
    Verdict,
    positive_seconds,
)
from kubectl_launcher.domain.pod_json import Event, Pod
from kubectl_launcher.domain.pod_status import JobState
from kubectl_launcher.errors import ConfigError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "pods"
CONTAINER = "container-j550e8400-e29b-41d4-a716-446655440000"
T0 = 1748779200.0  # when the recorded pods were created


def pod(name: str) -> Pod:
    document: Pod = json.loads((FIXTURES / name).read_text())
    return document


def events(name: str = "events_empty.json") -> list[Event]:
    items: list[Event] = json.loads((FIXTURES / name).read_text())["items"]
    return items


def found(name: str) -> PodRead:
    return PodRead(PodReadStatus.FOUND, pod(name))


GONE = PodRead(PodReadStatus.GONE)
REFUSED = PodRead(PodReadStatus.UNAVAILABLE, error="Forbidden", permanent=True)
UNREACHABLE = PodRead(PodReadStatus.UNAVAILABLE, error="connection refused")


def tracker(**settings: float | None) -> JobTracker:
    return JobTracker(CONTAINER, "job J pod P (namespace N)", TrackerSettings(**{"pending_timeout": 120, **settings}))


def no_events() -> Sequence[Event] | None:
    raise AssertionError("events were read although the verdict does not need them")


def observe(t: JobTracker, read: PodRead, now: float = T0, evs: list[Event] | None = None) -> Verdict:
    return t.observe(read, now, no_events if evs is None else (lambda: evs))


@pytest.mark.parametrize(
    ("fixture", "state", "ended", "code", "delete"),
    [
        ("running.json", JobState.RUNNING, False, None, False),
        ("pending_init_running.json", JobState.STARTING, False, None, False),
        ("succeeded.json", JobState.SUCCEEDED, True, None, False),
        ("failed_exit_1.json", JobState.TERMINATED, True, None, False),
        ("failed_exit_101.json", JobState.TERMINATED, True, 101, False),
        ("failed_exit_137_oomkilled.json", JobState.TERMINATED, True, None, False),
        ("pending_image_pull_backoff.json", JobState.TERMINATED, True, 101, True),
        ("pending_create_container_config_error.json", JobState.TERMINATED, True, 101, True),
        ("unknown_node_lost.json", JobState.TERMINATED, True, 101, True),
    ],
)
def test_the_verdict_follows_the_recorded_pod(
    fixture: str, state: JobState, ended: bool, code: int | None, delete: bool
) -> None:
    verdict = observe(tracker(), found(fixture))
    assert (verdict.state, verdict.ended, verdict.return_code, verdict.delete_pod) == (state, ended, code, delete)


def test_a_vanished_pod_ends_the_job_terminated_without_a_delete() -> None:
    verdict = observe(tracker(), GONE)
    assert (verdict.state, verdict.ended, verdict.delete_pod) == (JobState.TERMINATED, True, False)
    assert verdict.logs == ((logging.INFO, "job J pod P (namespace N) not found; assuming terminated"),)


def test_a_resource_shortage_fails_the_job_once_the_pending_timeout_has_passed() -> None:
    t = tracker(pending_timeout=120)
    shortage = events("events_failed_scheduling_insufficient_cpu_series.json")
    unscheduled = found("pending_unscheduled_insufficient_cpu.json")
    assert not observe(t, unscheduled, T0, shortage).ended
    assert not observe(t, unscheduled, T0 + 119, shortage).ended
    verdict = observe(t, unscheduled, T0 + 120, shortage)
    assert verdict.ended and verdict.return_code == 101 and verdict.delete_pod
    assert "timed out waiting for CPU/memory/GPU resources" in verdict.logs[-1][1]


def test_time_we_cannot_see_the_pod_does_not_count_against_the_pending_timeout() -> None:
    t = tracker(pending_timeout=120)
    shortage = events("events_failed_scheduling_insufficient_cpu_series.json")
    unscheduled = found("pending_unscheduled_insufficient_cpu.json")
    observe(t, unscheduled, T0, shortage)
    observe(t, UNREACHABLE, T0 + 100)
    assert not observe(t, unscheduled, T0 + 1000, shortage).ended  # 100 s seen, 900 s paused
    assert observe(t, unscheduled, T0 + 1020, shortage).ended


def test_no_pending_timeout_waits_for_resources_for_ever() -> None:
    t = tracker(pending_timeout=None)
    shortage = events("events_failed_scheduling_insufficient_cpu_series.json")
    assert not observe(t, found("pending_unscheduled_insufficient_cpu.json"), T0 + 10**6, shortage).ended


@pytest.mark.parametrize(("limit", "ends_at"), [(3.0, 3), (None, None)])
def test_refusals_fail_the_job_only_after_the_limit(limit: float | None, ends_at: int | None) -> None:
    t = tracker(permanent_failure_limit=limit)
    verdicts = [observe(t, REFUSED, T0 + second) for second in range(5)]
    ended = [second for second, verdict in enumerate(verdicts) if verdict.ended]
    assert (ended[0] if ended else None) == ends_at
    errors = [message for verdict in verdicts for level, message in verdict.logs if level == logging.ERROR]
    assert "kubectl was refused reading job J pod P" in errors[0]
    assert sum("kubectl was refused reading" in message for message in errors) == 1  # the same words: once


def test_a_transient_read_failure_never_fails_the_job_and_is_logged_once_then_quietly() -> None:
    t = tracker(permanent_failure_limit=1)
    levels = [observe(t, UNREACHABLE, T0 + 1000 * i).logs[0][0] for i in range(3)]
    assert levels == [logging.WARNING, logging.DEBUG, logging.DEBUG]
    assert observe(t, found("running.json"), T0 + 4000).logs[0][1].endswith("after 3 failed attempt(s)")


def test_a_transfer_error_keeps_a_pod_whose_job_container_has_ended() -> None:
    ended_job = pod("running.json")
    ended_job["status"]["containerStatuses"][0]["state"] = {"terminated": {"exitCode": 0}}
    failed = TransferView(error="collect failed")
    kept = tracker().observe(PodRead(PodReadStatus.FOUND, ended_job), T0, no_events, failed)
    deleted = tracker().observe(found("running.json"), T0, no_events, failed)
    assert (kept.return_code, kept.delete_pod) == (101, False)
    assert (deleted.return_code, deleted.delete_pod) == (101, True)


def test_collected_results_end_the_job_with_the_job_containers_exit_code() -> None:
    document = pod("running.json")
    document["status"]["containerStatuses"][0]["state"] = {"terminated": {"exitCode": 102}}
    verdict = tracker().observe(
        PodRead(PodReadStatus.FOUND, document), T0, no_events, TransferView(finished=True, collected=True)
    )
    assert (verdict.state, verdict.ended, verdict.return_code, verdict.delete_pod) == (
        JobState.TERMINATED,
        True,
        102,
        False,
    )


def test_the_quick_window_opens_on_delivery_and_closes_when_the_job_container_runs() -> None:
    t = tracker(poll_interval=1.0, quick_poll_interval=0.2, quick_poll_window=3.0)
    assert t.interval(T0) == 1.0
    t.observe(found("pending_init_running.json"), T0, lambda: [], TransferView(delivered=True))
    assert t.interval(T0 + 1) == 0.2
    assert t.interval(T0 + 3) == 1.0  # the window has passed
    t.observe(found("running.json"), T0 + 1, no_events, TransferView(delivered=True))
    assert t.interval(T0 + 1) == 1.0


@pytest.mark.parametrize("bad", [0, -1, "1", True, None])
def test_a_bad_poll_interval_is_a_config_error_naming_it(bad: object) -> None:
    with pytest.raises(ConfigError, match="poll_interval must be a positive number of seconds"):
        positive_seconds(bad, "poll_interval")
    with pytest.raises(ConfigError, match="poll_interval"):
        TrackerSettings(pending_timeout=None, poll_interval=bad)  # type: ignore[arg-type]


def test_a_pod_is_asked_about_its_events_only_once_seen_for_the_grace() -> None:
    t = tracker(events_grace=2.0)
    creating = found("pending_container_creating.json")
    first = T0 + 60
    assert not observe(t, creating, first).ended  # no_events: asking now would fail the test
    assert not observe(t, creating, first + 1.9).ended
    verdict = observe(t, creating, first + 2.0, events("events_image_pull_failed.json"))
    assert verdict.ended and verdict.return_code == 101  # the pull failure, from the events


def test_events_grace_zero_asks_at_the_first_look() -> None:
    verdict = observe(tracker(events_grace=0.0), found("pending_container_creating.json"), T0 + 60,
                      events("events_image_pull_failed.json"))  # fmt: skip
    assert verdict.ended and verdict.return_code == 101
