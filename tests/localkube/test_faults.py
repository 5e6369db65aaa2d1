"""Each injected fault, seen through the real kubectl as a user would see it on a real cluster."""

from __future__ import annotations

import json
import threading
import urllib.request
from typing import Any

import pytest
from localkube.testing import wait_until

pytestmark = pytest.mark.integration


def pod(name: str, image: str = "python:3.11", extra: str = "") -> str:
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: {image}
    command: [sleep, "600"]
{extra}
"""


def get_pod(run: Any, cluster: Any, name: str) -> dict[str, Any]:
    got = run(cluster, "get", "pod", name, "-o", "json")
    assert got.returncode == 0, got.stderr
    result: dict[str, Any] = json.loads(got.stdout)
    return result


def reasons(run: Any, cluster: Any, name: str) -> list[tuple[str, str, str]]:
    got = run(cluster, "get", "events", "--field-selector", f"involvedObject.name={name}", "-o", "json")
    return [(e["type"], e["reason"], e["message"]) for e in json.loads(got.stdout)["items"]]


def test_over_capacity_pod_is_unschedulable_until_capacity_frees(local_cluster_factory: Any, run_kubectl: Any) -> None:
    cluster = local_cluster_factory(capacity={"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "1"})
    resources = "    resources: {requests: {cpu: 600m, memory: 100Mi}}"
    assert run_kubectl(cluster, "apply", "-f", "-", stdin=pod("first", extra=resources)).returncode == 0
    wait_until(lambda: get_pod(run_kubectl, cluster, "first")["status"]["phase"] == "Running")
    assert run_kubectl(cluster, "apply", "-f", "-", stdin=pod("second", extra=resources)).returncode == 0
    huge = "    resources: {limits: {memory: 2Gi, nvidia.com/gpu: 2}}"
    assert run_kubectl(cluster, "apply", "-f", "-", stdin=pod("huge", extra=huge)).returncode == 0

    def condition(name: str) -> dict[str, Any] | None:
        conds = get_pod(run_kubectl, cluster, name)["status"].get("conditions") or []
        return next((c for c in conds if c["type"] == "PodScheduled" and c["status"] == "False"), None)

    second = wait_until(lambda: condition("second"))
    assert second["reason"] == "Unschedulable"
    assert second["message"].startswith("0/1 nodes are available: 1 Insufficient cpu.")
    huge_cond = wait_until(lambda: condition("huge"))
    assert huge_cond["message"].startswith(
        "0/1 nodes are available: 1 Insufficient memory, 1 Insufficient nvidia.com/gpu."
    )
    assert ("Warning", "FailedScheduling", second["message"]) in reasons(run_kubectl, cluster, "second")

    assert run_kubectl(cluster, "delete", "pod", "first", "--grace-period=1").returncode == 0
    wait_until(lambda: get_pod(run_kubectl, cluster, "second")["status"]["phase"] == "Running")
    assert get_pod(run_kubectl, cluster, "huge")["status"]["phase"] == "Pending"


def test_forced_unschedulable_and_slow_scheduling(local_cluster: Any, run_kubectl: Any) -> None:
    local_cluster.faults.unschedulable = True
    assert run_kubectl(local_cluster, "apply", "-f", "-", stdin=pod("cordoned")).returncode == 0
    wait_until(lambda: any(r[1] == "FailedScheduling" for r in reasons(run_kubectl, local_cluster, "cordoned")))
    cond = get_pod(run_kubectl, local_cluster, "cordoned")["status"]["conditions"][0]
    assert cond["message"].startswith("0/1 nodes are available: 1 node(s) were unschedulable.")
    local_cluster.faults.unschedulable = False
    local_cluster.faults.schedule_delay = 0.5
    local_cluster.faults.start_delay = 0.5
    assert run_kubectl(local_cluster, "apply", "-f", "-", stdin=pod("slow")).returncode == 0
    assert get_pod(run_kubectl, local_cluster, "slow")["spec"].get("nodeName") is None
    wait_until(lambda: get_pod(run_kubectl, local_cluster, "slow")["status"]["phase"] == "Running")
    wait_until(lambda: get_pod(run_kubectl, local_cluster, "cordoned")["status"]["phase"] == "Running")


def test_unpullable_image_backs_off_with_events(local_cluster: Any, run_kubectl: Any) -> None:
    local_cluster.faults.make_unpullable("registry.example/private:1")
    assert run_kubectl(local_cluster, "apply", "-f", "-", stdin=pod("marker", image="x/unpullable:1")).returncode == 0
    applied = run_kubectl(local_cluster, "apply", "-f", "-", stdin=pod("named", image="registry.example/private:1"))
    assert applied.returncode == 0
    for name in ("marker", "named"):

        def backoff(n: str = name) -> bool:
            statuses = get_pod(run_kubectl, local_cluster, n)["status"].get("containerStatuses") or [{}]
            return statuses[0].get("state", {}).get("waiting", {}).get("reason") == "ImagePullBackOff"

        wait_until(backoff)
        assert get_pod(run_kubectl, local_cluster, name)["status"]["phase"] == "Pending"
    seen = {(t, r) for t, r, _ in reasons(run_kubectl, local_cluster, "marker")}
    assert {("Normal", "Pulling"), ("Warning", "Failed"), ("Normal", "BackOff")} <= seen
    logs = run_kubectl(local_cluster, "logs", "marker")
    assert logs.returncode == 1
    assert "is waiting to start: trying and failing to pull image" in logs.stderr


def test_missing_secret_is_a_create_container_config_error_until_it_exists(
    local_cluster: Any, run_kubectl: Any
) -> None:
    env = "    env: [{name: T, valueFrom: {secretKeyRef: {name: later, key: token}}}]"
    assert run_kubectl(local_cluster, "apply", "-f", "-", stdin=pod("needs", extra=env)).returncode == 0

    def waiting() -> dict[str, Any] | None:
        statuses = get_pod(run_kubectl, local_cluster, "needs")["status"].get("containerStatuses") or [{}]
        return statuses[0].get("state", {}).get("waiting")

    state = wait_until(lambda: (w := waiting()) and w.get("reason") == "CreateContainerConfigError" and w)
    assert state["message"] == 'secret "later" not found'
    made = run_kubectl(local_cluster, "create", "secret", "generic", "later", "--from-literal=other=x")
    assert made.returncode == 0
    state = wait_until(lambda: (w := waiting()) and w.get("message", "").startswith("couldn't") and w)
    assert state["message"] == "couldn't find key token in Secret default/later"
    patched = run_kubectl(
        local_cluster, "patch", "secret", "later", "--type=merge", "-p", '{"stringData":{"token":"t"}}'
    )
    assert patched.returncode == 0, patched.stderr
    wait_until(lambda: get_pod(run_kubectl, local_cluster, "needs")["status"]["phase"] == "Running")


def test_node_lost_reports_unknown(local_cluster: Any, run_kubectl: Any) -> None:
    assert run_kubectl(local_cluster, "apply", "-f", "-", stdin=pod("victim")).returncode == 0
    wait_until(lambda: get_pod(run_kubectl, local_cluster, "victim")["status"]["phase"] == "Running")
    assert local_cluster.faults.node_lost("victim") == ["victim"]
    status = get_pod(run_kubectl, local_cluster, "victim")["status"]
    assert (status["phase"], status["reason"]) == ("Unknown", "NodeLost")
    wait_until(lambda: not local_cluster.leftovers())
    forced = run_kubectl(local_cluster, "delete", "pod", "victim", "--grace-period=0", "--force")
    assert forced.returncode == 0, forced.stderr


def test_api_errors_reach_kubectl_as_status_reasons(local_cluster: Any, run_kubectl: Any) -> None:
    assert run_kubectl(local_cluster, "get", "pods", "-o", "name").returncode == 0  # warm the discovery cache
    local_cluster.faults.api_errors(500, times=1, verbs=["list"])
    failed = run_kubectl(local_cluster, "get", "pods", "-o", "name")
    assert (failed.returncode, failed.stderr.strip()) == (
        1,
        "Error from server (InternalError): Internal error occurred: injected fault",
    )
    assert run_kubectl(local_cluster, "get", "pods", "-o", "name").returncode == 0
    local_cluster.faults.api_errors(503, times=20, paths=["/api/v1/namespaces/default/pods"], retry_after=0)
    unavailable = run_kubectl(local_cluster, "get", "pods", "-o", "name")
    assert unavailable.stderr.strip() == (
        "Error from server (ServiceUnavailable): the server is currently unable to handle the request"
    )
    local_cluster.faults.clear()
    local_cluster.faults.api_errors(429, times=2, retry_after=0)
    retried = run_kubectl(local_cluster, "get", "pods", "-o", "name")
    assert retried.returncode == 0, "client-go retries a 429 that carries Retry-After"
    local_cluster.faults.api_errors(429, times=11, retry_after=0)
    throttled = run_kubectl(local_cluster, "get", "pods", "-o", "name")
    assert throttled.stderr.strip() == (
        "Error from server (TooManyRequests): Too many requests, please try again later."
    )


def test_refused_connections_then_the_same_port_again(local_cluster: Any, run_kubectl: Any) -> None:
    local_cluster.faults.refuse_connections(1.0)
    refused = run_kubectl(local_cluster, "get", "pods", "-o", "name")
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1] == (
        f"The connection to the server 127.0.0.1:{local_cluster.port} was refused - "
        "did you specify the right host or port?"
    )
    wait_until(lambda: run_kubectl(local_cluster, "get", "pods", "-o", "name").returncode == 0)


def test_cut_watch_ends_kubectl_watch_with_rc_0(local_cluster: Any, run_kubectl: Any) -> None:
    assert run_kubectl(local_cluster, "apply", "-f", "-", stdin=pod("watched")).returncode == 0
    cutter = threading.Timer(1.0, local_cluster.faults.cut_watches)
    cutter.start()
    try:
        watched = run_kubectl(local_cluster, "get", "pods", "--watch", "--output-watch-events", "-o", "json")
    finally:
        cutter.cancel()
    assert watched.returncode == 0, watched.stderr
    assert json.loads(watched.stdout.splitlines()[0])["object"]["metadata"]["name"] == "watched"


def test_faults_over_http_and_access_review(local_cluster: Any, run_kubectl: Any) -> None:
    request = urllib.request.Request(
        f"{local_cluster.url}/_localkube/faults",
        data=json.dumps({"action": "deny", "verb": "delete", "resource": "pods"}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert json.loads(resp.read())["denied"] == [{"verb": "delete", "resource": "pods"}]
    denied = run_kubectl(local_cluster, "auth", "can-i", "delete", "pods")
    assert (denied.returncode, denied.stdout.strip()) == (1, "no")
    allowed = run_kubectl(local_cluster, "auth", "can-i", "create", "pods")
    assert (allowed.returncode, allowed.stdout.strip()) == (0, "yes")
    ssar = [r for r in local_cluster.requests if r.path.endswith("/selfsubjectaccessreviews")]
    assert ssar and ssar[0].content_type == "application/vnd.kubernetes.protobuf"
