"""A pod's life through the real kubectl: apply, watch it go Pending → Running → Failed, logs, delete."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

pytestmark = pytest.mark.integration

FAILING_POD = """
apiVersion: v1
kind: Pod
metadata: {name: fails, labels: {app: demo}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: python:3.11
    command: [python3, -c, 'print("hi"); raise SystemExit(3)']
"""


def wait_for(predicate: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_failing_pod_goes_pending_running_failed_with_its_exit_code_and_logs(
    local_cluster: Any, run_kubectl: Any
) -> None:
    applied = run_kubectl(local_cluster, "apply", "-f", "-", "-o", "name", stdin=FAILING_POD)
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.strip() == "pod/fails"

    def phase_failed() -> dict[str, Any] | None:
        got = run_kubectl(local_cluster, "get", "pod", "fails", "-o", "json")
        assert got.returncode == 0, got.stderr
        pod: dict[str, Any] = json.loads(got.stdout)
        return pod if pod["status"]["phase"] == "Failed" else None

    pod = wait_for(phase_failed)
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 3
    assert terminated["reason"] == "Error"
    logs = run_kubectl(local_cluster, "logs", "fails")
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout == "hi\n"

    watched = run_kubectl(
        local_cluster,
        "get",
        "pods",
        "-l",
        "app=demo",
        "--watch",
        "--output-watch-events",
        "-o",
        "json",
        "--request-timeout=2s",
    )
    events = [json.loads(line) for line in watched.stdout.splitlines() if line.strip()]
    assert events and events[0]["type"] == "ADDED" and events[0]["object"]["status"]["phase"] == "Failed"

    deleted = run_kubectl(local_cluster, "delete", "pod", "fails")
    assert deleted.returncode == 0, deleted.stderr
    missing = run_kubectl(local_cluster, "get", "pod", "fails")
    assert missing.returncode == 1
    assert missing.stderr.strip() == 'Error from server (NotFound): pods "fails" not found'
