"""The timeline's pure pieces: what each journalled kubectl command was for, and NVFlare log stamps."""

from __future__ import annotations

import datetime

import pytest

from kubectl_launcher.poc import timeline
from kubectl_launcher.transfer import LEASE_SCRIPT, LIST_SCRIPT, RELEASE_SCRIPT

GLOBALS = ["kubectl", "--kubeconfig", "/k", "--namespace", "default", "--request-timeout", "30s"]
POD = "j33c9d45b-23d3-4873-bcfe-24e8acb4f2fa-site-1-f505dccd"


@pytest.mark.parametrize(
    "args, kind",
    [
        (["version", "--client", "--output", "json"], "setup"),
        (["config", "current-context"], "setup"),
        (["create", "--filename", "-", "--output", "name"], "secret"),
        (["patch", "secret", "s", "--type", "merge"], "secret"),
        (["delete", "secret", "s", "--ignore-not-found"], "secret"),
        (["apply", "--filename", "/m.json"], "apply"),
        (["get", "pod", POD, "--ignore-not-found", "--output", "json"], "poll"),
        (["get", "events", "--field-selector", "involvedObject.name=x"], "events"),
        (["exec", POD, "--container", "kubectl-launcher-init", "--", "sh", "-c", "x"], "deliver"),
        (["cp", "--container", "kubectl-launcher-init", "/a", f"{POD}:/b"], "deliver"),
        (["exec", POD, "--container", "kubectl-launcher-keeper", "--", "sh", "-c", LEASE_SCRIPT], "lease"),
        (["exec", POD, "--container", "kubectl-launcher-keeper", "--", "sh", "-c", LIST_SCRIPT], "collect"),
        (["exec", POD, "--container", "kubectl-launcher-keeper", "--", "tar", "cf", "-"], "collect"),
        (["exec", POD, "--container", "kubectl-launcher-keeper", "--", "sh", "-c", RELEASE_SCRIPT], "release"),
        (["delete", "pod", POD], "delete"),
    ],
)
def test_each_journalled_command_is_classified_by_its_purpose(args: list[str], kind: str) -> None:
    assert timeline.classify([*GLOBALS, *args]) == kind


def test_continuation_lines_of_a_log_record_take_its_stamp() -> None:
    lines = ["2026-11-25 16:05:21,033 - FedAvg - INFO - x - ", "----", "      Round 0 started.     ", "no stamp yet?"]
    stamped = timeline.stamped(lines)
    expected = datetime.datetime(2026, 11, 25, 16, 5, 21, 33000).timestamp()
    assert [at for at, _ in stamped] == [expected] * 4


def test_commands_of_another_job_are_left_out() -> None:
    tl = timeline.SiteTimeline("site-1")
    entries = [
        {"argv": [*GLOBALS, "get", "pod", POD], "started_at": "2026-11-25T16:05:21.000Z", "duration": 0.1},
        {
            "argv": [*GLOBALS, "get", "pod", "j11111111-2222-3333-4444-555555555555-site-1-x"],
            "started_at": "2026-11-25T16:05:22.000Z",
            "duration": 0.1,
        },
        {"argv": [*GLOBALS, "create", "--filename", "-"], "started_at": "2026-11-25T16:05:20.000Z", "duration": 0.1},
    ]
    timeline.add_journal(tl, entries, "33c9d45b-23d3-4873-bcfe-24e8acb4f2fa")
    assert [c.kind for c in tl.commands] == ["secret", "poll"]
    assert tl.marks["launch: first kubectl"] == timeline.iso_time("2026-11-25T16:05:20.000Z")
