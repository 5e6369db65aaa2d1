"""status, logs and cleanup, pure: recorded pod JSON → rows, tables, selectors, the cleanup plan, durations."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kubectl_launcher.cli import output
from kubectl_launcher.cli.cleanup import SecretMeta, cleanup_plan, parse_secret_lines
from kubectl_launcher.cli.logs import containers_of, logs_argv, prefix, started_containers
from kubectl_launcher.cli.options import parse_duration
from kubectl_launcher.cli.status import render_table, rows_of
from kubectl_launcher.domain.job_rows import events_by_pod, job_label_value, job_row, selector
from kubectl_launcher.domain.names import managed_labels

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "pods"
NOW = datetime(2030, 1, 1, tzinfo=UTC)
OURS = managed_labels("site-1", "0f3e-job")


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


@pytest.mark.parametrize(
    ("name", "phase", "state", "verdict"),
    [
        ("running.json", "Running", "RUNNING", ""),
        ("succeeded.json", "Succeeded", "SUCCEEDED", ""),
        ("pending_unscheduled_insufficient_cpu.json", "Pending", "STARTING", "wait_for_resources"),
        ("pending_image_pull_backoff.json", "Pending", "STARTING", "fail"),
        ("unknown_node_lost.json", "Unknown", "UNKNOWN", "fail"),
    ],
)
def test_a_recorded_pod_becomes_its_status_row(name: str, phase: str, state: str, verdict: str) -> None:
    row = job_row(fixture(name), [], NOW.timestamp())
    assert (row.phase, row.state, row.verdict) == (phase, state, verdict)
    if verdict:
        assert row.reason


def test_job_id_and_site_come_from_the_annotations_else_the_labels() -> None:
    pod = {"metadata": {"name": "p", "labels": OURS}, "status": {"phase": "Running"}}
    assert (job_row(pod, [], 0).job_id, job_row(pod, [], 0).site) == (
        OURS["kubectl-launcher/job"],
        OURS["kubectl-launcher/site"],
    )
    pod["metadata"]["annotations"] = {
        "kubectl-launcher/nvflare-job-id": "0f3e-job",
        "kubectl-launcher/nvflare-site": "site-1",
    }
    assert (job_row(pod, [], 0).job_id, job_row(pod, [], 0).site) == ("0f3e-job", "site-1")


def test_selectors_use_the_labels_every_launch_sets() -> None:
    assert selector() == "app.kubernetes.io/managed-by=kubectl-launcher"
    assert selector(site="site-1", job_id="0f3e-job") == (
        f"app.kubernetes.io/managed-by=kubectl-launcher,kubectl-launcher/site={OURS['kubectl-launcher/site']},"
        f"kubectl-launcher/job={job_label_value('0f3e-job')}"
    )


def test_events_are_matched_to_their_pod_by_namespace_and_name() -> None:
    events = {"items": [{"involvedObject": {"kind": "Pod", "namespace": "n", "name": "p"}, "reason": "X"}]}
    assert list(events_by_pod(events)) == [("n", "p")]
    pod = {"metadata": {"name": "p", "namespace": "n"}, "status": {"phase": "Running"}}
    assert rows_of([pod], events_by_pod(events), 0)[0].pod == "p"


def test_the_table_is_plain_when_not_on_a_terminal() -> None:
    pod = {"metadata": {"name": "p", "namespace": "n", "labels": OURS, "creationTimestamp": "2029-12-31T23:50:00Z"},
           "status": {"phase": "Running"}, "spec": {"nodeName": "node-a"}}  # fmt: skip
    rows = rows_of([pod], {}, NOW.timestamp())
    text = render_table(rows, NOW, wide=True, namespaces=True, bold=False)
    header, line = text.splitlines()
    assert header.split() == ["NAMESPACE", "JOB", "SITE", "POD", "PHASE", "STATE", "AGE", "REASON", "NODE", "VERDICT"]
    assert line.split()[6:9] == ["10m", "-", "node-a"]
    assert "\033" not in text


@pytest.mark.parametrize(("seconds", "shown"), [(5, "5s"), (90, "1m"), (7200, "2h"), (3 * 86400, "3d")])
def test_age_is_kubectls_short_form(seconds: int, shown: str) -> None:
    then = datetime.fromtimestamp(NOW.timestamp() - seconds, UTC).isoformat().replace("+00:00", "Z")
    assert output.age(then, NOW) == shown
    assert output.age(None, NOW) == "<unknown>"


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("15m", 900), ("2h", 7200), ("7d", 604800)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_a_duration_without_unit_is_a_usage_error() -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration("10")


def test_logs_reads_started_containers_in_the_pods_order() -> None:
    pod = {"spec": {"initContainers": [{"name": "init"}], "containers": [{"name": "job"}, {"name": "keeper"}]},
           "status": {"initContainerStatuses": [{"name": "init", "state": {"terminated": {"exitCode": 0}}}],
                      "containerStatuses": [{"name": "job", "state": {"running": {}}},
                                            {"name": "keeper", "state": {"waiting": {}}}]}}  # fmt: skip
    assert containers_of(pod) == ["init", "job", "keeper"]
    assert containers_of(pod, "job") == ["job"]
    assert started_containers(pod) == {"init", "job"}
    assert logs_argv("p", "job", since=300, follow=True) == [
        "logs",
        "p",
        "--container",
        "job",
        "--since=300s",
        "--follow",
    ]
    assert prefix("site-1", "job", False) == "site-1/job "
    assert prefix("site-1", "job", True).startswith("\033[")


def _pod(name: str, phase: str, job: str, finished: str | None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase}
    if finished:
        status["containerStatuses"] = [{"state": {"terminated": {"finishedAt": finished}}}]
    return {"metadata": {"name": name, "labels": labels or managed_labels("site-1", job),
                         "creationTimestamp": "2029-12-01T00:00:00Z"}, "status": status}  # fmt: skip


def test_cleanup_plans_ended_pods_and_orphaned_job_secrets_only() -> None:
    pods = [
        _pod("old-done", "Succeeded", "a", "2029-12-31T00:00:00Z"),
        _pod("just-done", "Failed", "b", "2029-12-31T23:59:00Z"),
        _pod("running", "Running", "c", None),
        _pod("not-ours", "Succeeded", "d", "2029-12-01T00:00:00Z", labels={"app": "x"}),
    ]
    old = "2029-12-01T00:00:00Z"
    secrets = [
        SecretMeta("cred-a", managed_labels("site-1", "a"), old),  # its pod is being removed
        SecretMeta("cred-c", managed_labels("site-1", "c"), old),  # its pod runs
        SecretMeta("cred-gone", managed_labels("site-1", "e"), old),  # no pod at all
        SecretMeta("cred-new", managed_labels("site-1", "f"), "2029-12-31T23:59:30Z"),  # a launch in progress
        SecretMeta("startup", {k: v for k, v in managed_labels("site-1", "a").items() if "job" not in k}, old),
        SecretMeta("someone", {"kubectl-launcher/job": "e"}, old),
    ]
    actions = cleanup_plan(pods, secrets, NOW, 3600)
    assert [(a.kind, a.name) for a in actions] == [("pod", "old-done"), ("secret", "cred-a"), ("secret", "cred-gone")]


def test_secret_listing_is_names_labels_and_times_only() -> None:
    text = 'a\t{"app.kubernetes.io/managed-by":"kubectl-launcher"}\t2029-12-01T00:00:00Z\nb\t\t\n'
    assert parse_secret_lines(text) == [
        SecretMeta("a", {"app.kubernetes.io/managed-by": "kubectl-launcher"}, "2029-12-01T00:00:00Z"),
        SecretMeta("b", {}, ""),
    ]
