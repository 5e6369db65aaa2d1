"""A pod's life through the real kubectl: apply, watch it go Pending → Running → Failed, logs, delete."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
from localkube.testing import kubectl_env, wait_until

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


def get_pod(run_kubectl: Any, cluster: Any, name: str) -> dict[str, Any]:
    got = run_kubectl(cluster, "get", "pod", name, "-o", "json")
    assert got.returncode == 0, got.stderr
    pod: dict[str, Any] = json.loads(got.stdout)
    return pod


def test_failing_pod_goes_pending_running_failed_with_its_exit_code_and_logs(
    local_cluster: Any, run_kubectl: Any, kubectl_path: str
) -> None:
    watcher = subprocess.Popen(
        [
            kubectl_path,
            "--cache-dir",
            local_cluster.cache_dir,
            "get",
            "pods",
            "-l",
            "app=demo",
            "--watch",
            "--output-watch-events",
            "-o",
            "json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=kubectl_env(local_cluster),
    )
    try:
        wait_until(lambda: any("watch=true" in r.query for r in local_cluster.requests))
        applied = run_kubectl(local_cluster, "apply", "-f", "-", "-o", "name", stdin=FAILING_POD)
        assert applied.returncode == 0, applied.stderr
        assert applied.stdout.strip() == "pod/fails"
        pod = wait_until(
            lambda: (p := get_pod(run_kubectl, local_cluster, "fails"))["status"]["phase"] == "Failed" and p
        )
    finally:
        local_cluster.faults.cut_watches()
        out, err = watcher.communicate(timeout=30)
    assert watcher.returncode == 0, err
    phases = [json.loads(line)["object"]["status"]["phase"] for line in out.splitlines() if line.strip()]
    deduplicated = [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p]
    assert deduplicated == ["Pending", "Running", "Failed"]

    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")
    assert terminated["startedAt"] and terminated["finishedAt"]
    logs = run_kubectl(local_cluster, "logs", "fails")
    assert (logs.returncode, logs.stdout) == (0, "hi\n")

    deleted = run_kubectl(local_cluster, "delete", "pod", "fails")
    assert deleted.returncode == 0, deleted.stderr
    missing = run_kubectl(local_cluster, "get", "pod", "fails")
    assert missing.returncode == 1
    assert missing.stderr.strip() == 'Error from server (NotFound): pods "fails" not found'


def test_failing_init_container_fails_the_pod_and_main_never_starts(local_cluster: Any, run_kubectl: Any) -> None:
    pod = """
apiVersion: v1
kind: Pod
metadata: {name: badinit}
spec:
  restartPolicy: Never
  initContainers:
  - {name: first, image: busybox:1.36, command: [sh, -c, 'echo first']}
  - {name: second, image: busybox:1.36, command: [sh, -c, 'echo broken >&2; exit 7']}
  containers:
  - {name: main, image: busybox:1.36, command: [echo, never]}
"""
    assert run_kubectl(local_cluster, "apply", "-f", "-", stdin=pod).returncode == 0
    failed = wait_until(
        lambda: (p := get_pod(run_kubectl, local_cluster, "badinit"))["status"]["phase"] == "Failed" and p
    )
    init = {s["name"]: s["state"] for s in failed["status"]["initContainerStatuses"]}
    assert init["first"]["terminated"]["exitCode"] == 0
    assert (init["second"]["terminated"]["exitCode"], init["second"]["terminated"]["reason"]) == (7, "Error")
    assert failed["status"]["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
    table = run_kubectl(local_cluster, "get", "pod", "badinit")
    assert table.stdout.split("\n")[1].split()[:3] == ["badinit", "0/1", "Init:Error"]
    assert run_kubectl(local_cluster, "logs", "badinit", "-c", "second").stdout == "broken\n"
    conditions = {c["type"]: c["status"] for c in failed["status"]["conditions"]}
    assert conditions["Initialized"] == "False" and conditions["Ready"] == "False"
