"""The timeline's pure pieces: the journalled purpose of each kubectl command, NVFlare log stamps, the handle's end
lines, and which job pods the watch saw end."""

from __future__ import annotations

import datetime

import pytest
from kubectl_launcher_demo import timeline
from kubectl_launcher_demo.watch import PodHistory, PodSighting

GLOBALS = ["kubectl", "--kubeconfig", "/k", "--namespace", "default", "--request-timeout", "30s"]
POD = "j33c9d45b-23d3-4873-bcfe-24e8acb4f2fa-site-1-f505dccd"


def test_continuation_lines_of_a_log_record_take_its_stamp() -> None:
    lines = ["2026-11-25 16:05:21,033 - FedAvg - INFO - x - ", "----", "      Round 0 started.     ", "no stamp yet?"]
    stamped = timeline.stamped(lines)
    expected = datetime.datetime(2026, 11, 25, 16, 5, 21, 33000).timestamp()
    assert [at for at, _ in stamped] == [expected] * 4


def test_commands_of_another_job_are_left_out_and_each_kind_is_the_journalled_purpose() -> None:
    tl = timeline.SiteTimeline("site-1")
    entries = [
        {
            "argv": [*GLOBALS, "get", "pod", POD],
            "purpose": "read",
            "started_at": "2026-11-25T16:05:21.000Z",
            "duration": 0.1,
        },
        {
            "argv": [*GLOBALS, "get", "pod", "j11111111-2222-3333-4444-555555555555-site-1-x"],
            "purpose": "read",
            "started_at": "2026-11-25T16:05:22.000Z",
            "duration": 0.1,
        },
        {
            "argv": [*GLOBALS, "create", "--filename", "-"],
            "purpose": "secret",
            "started_at": "2026-11-25T16:05:20.000Z",
            "duration": 0.1,
        },
        {"argv": [*GLOBALS, "version"], "started_at": "2026-11-25T16:05:19.000Z", "duration": 0.1},
    ]
    timeline.add_journal(tl, entries, "33c9d45b-23d3-4873-bcfe-24e8acb4f2fa")
    assert [c.kind for c in tl.commands] == ["?", "secret", "read"]
    assert tl.marks["launch: first kubectl"] == timeline.iso_time("2026-11-25T16:05:19.000Z")


def test_the_launch_starts_at_its_first_command_not_at_the_sites_setup_and_take_over() -> None:
    tl = timeline.SiteTimeline("site-1")
    entries = [
        {"argv": [*GLOBALS, "version"], "purpose": "setup", "started_at": "2026-11-25T16:05:10.000Z"},
        {"argv": [*GLOBALS, "get", "pods"], "purpose": "takeover", "started_at": "2026-11-25T16:05:11.000Z"},
        {"argv": [*GLOBALS, "get", "pod", POD], "purpose": "secret", "started_at": "2026-11-25T16:05:20.000Z"},
    ]
    timeline.add_journal(tl, entries, "33c9d45b-23d3-4873-bcfe-24e8acb4f2fa")
    assert tl.marks["launch: first kubectl"] == timeline.iso_time("2026-11-25T16:05:20.000Z")


JOB_ID = "33c9d45b-23d3-4873-bcfe-24e8acb4f2fa"
HANDLE = f"K8sJobHandle - INFO - job j{JOB_ID} pod {POD} (namespace default)"


@pytest.mark.parametrize(
    "line",
    [
        f"{HANDLE} ended: phase Succeeded, return code 0",
        # Since the handle reports the outcome once the results are collected (design, contract 7).
        f"{HANDLE} ended: job container exit code 0, results collected, return code 0",
    ],
)
def test_the_handle_saw_the_end_from_either_of_its_end_lines(line: str) -> None:
    tl = timeline.SiteTimeline("site-1")
    lines = ["2026-11-25 16:05:20,000 - other job j11111111-2222-3333-4444-555555555555 ended: phase Failed"]
    lines.append(f"2026-11-25 16:05:21,033 - {line}")
    timeline.parent_marks(tl, lines, JOB_ID)
    assert tl.marks == {"handle saw the end": datetime.datetime(2026, 11, 25, 16, 5, 21, 33000).timestamp()}


def test_the_handle_warning_of_an_early_end_is_not_the_end_line() -> None:
    tl = timeline.SiteTimeline("site-1")
    line = f"2026-11-25 16:05:21,033 - {HANDLE} ended (Failed) before the workspace transfer finished"
    timeline.parent_marks(tl, [line], JOB_ID)
    assert tl.marks == {}


def test_the_watch_history_names_each_pod_of_the_job_not_seen_ending() -> None:
    history = PodHistory()
    for name, site, job, phase, milestones in (
        ("a-server", "server", "a", "Succeeded", ["phase-Succeeded"]),
        ("a-site-1", "site-1", "a", "Running", ["phase-Running"]),
        ("a-site-2", "site-2", "a", "Deleted", ["deleted"]),
        ("b-site-1", "site-1", "b", "Running", ["phase-Running"]),  # another job
    ):
        history.jobs[name] = job
        history.add(PodSighting(name, site, phase))
        history.mark(name, milestones, 0.0)
    assert history.not_ended("a", ["server", "site-1", "site-2", "site-3"]) == [
        "site-1: pod a-site-1 last seen Running",
        "site-3: no pod of the job seen",
    ]
    history.mark("a-site-1", ["phase-Failed"], 1.0)
    assert history.not_ended("a", ["server", "site-1", "site-2"]) == []


def test_the_sites_watch_is_one_row_of_its_own_counted_once_for_the_site() -> None:
    tl = timeline.SiteTimeline("site-1")
    selector = "app.kubernetes.io/managed-by=kubectl-launcher,kubectl-launcher/site=site-1-f505dccd"
    entries = [
        {
            "argv": [*GLOBALS, "get", "--raw", f"/api/v1/namespaces/default/pods?labelSelector={selector}{watch}"],
            "purpose": "watch",
            "started_at": f"2026-11-25T16:05:2{i}.000Z",
            "duration": 0.1 if not watch else 20.0,
        }
        for i, watch in enumerate(("", "&watch=true"))
    ]
    timeline.add_journal(tl, entries, "33c9d45b-23d3-4873-bcfe-24e8acb4f2fa")  # names no job: the site's
    rows = [line for line in timeline.render([tl], 0.0) if "watch" in line]
    assert len(rows) == 1 and "watch (site-wide)" in rows[0] and "2 (20.1)" in rows[0]
