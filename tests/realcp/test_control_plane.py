"""What only the real control plane proves, through kubectl 1.37: the apiserver's own health checks and full API,
our node Ready with a Lease, a pod run by our kubelet with logs/exec/cp through the apiserver, Pod Security
Admission, the garbage collector and the scheduler's own messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from localkube.testing import wait_until

from tests.realcp.conftest import Kubectl
from tests.support.kubectl_cli import run_kubectl

pytestmark = pytest.mark.real_control_plane

POD = """
apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: busybox:1.36
    command: [sh, -c, 'echo started {name}; exec sleep 600']
{extra}
"""


def pod(name: str, namespace: str = "default", extra: str = "") -> str:
    return POD.format(name=name, namespace=namespace, extra=extra)


def phase(k: Kubectl, name: str, namespace: str = "default") -> str:
    return k("get", "pod", name, "-n", namespace, "-o", "jsonpath={.status.phase}").stdout


def test_readyz_lists_etcd_and_the_rbac_post_start_hooks(k: Kubectl) -> None:
    ready = k("get", "--raw", "/readyz?verbose")
    assert ready.returncode == 0, ready.stderr
    lines = ready.stdout.splitlines()
    for check in ("[+]etcd ok", "[+]etcd-readiness ok", "[+]poststarthook/rbac/bootstrap-roles ok"):
        assert check in lines, ready.stdout
    assert lines[-1] == "readyz check passed"


def test_api_resources_lists_the_whole_api(k: Kubectl) -> None:
    listed = k("api-resources", "-o", "name")
    assert listed.returncode == 0, listed.stderr
    names = set(listed.stdout.split())
    for resource in (
        "pods",
        "deployments.apps",
        "jobs.batch",
        "leases.coordination.k8s.io",
        "roles.rbac.authorization.k8s.io",
        "customresourcedefinitions.apiextensions.k8s.io",
        "validatingadmissionpolicies.admissionregistration.k8s.io",
    ):
        assert resource in names, sorted(names)
    assert len(names) > 50


def test_our_node_is_ready_and_renews_its_lease(k: Kubectl) -> None:
    node = json.loads(k("get", "node", "localkube", "-o", "json").stdout)
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True", ready
    assert node["status"]["declaredFeatures"] == ["ExtendWebSocketsToKubelet"]
    assert "node.kubernetes.io/not-ready" not in json.dumps(node["spec"].get("taints") or [])
    lease = json.loads(k("get", "lease", "localkube", "-n", "kube-node-lease", "-o", "json").stdout)
    first = lease["spec"]["renewTime"]
    wait_until(
        lambda: (
            k("get", "lease", "localkube", "-n", "kube-node-lease", "-o", "jsonpath={.spec.renewTime}").stdout != first
        ),
        timeout=30,
    )


def test_a_pod_runs_and_logs_exec_and_cp_go_through_the_apiserver(k: Kubectl, tmp_path: Path) -> None:
    applied = k("apply", "-f", "-", stdin=pod("worker"))
    assert applied.returncode == 0, applied.stderr
    wait_until(lambda: phase(k, "worker") == "Running")
    assert wait_until(lambda: k("logs", "worker").stdout) == "started worker\n"

    echoed = k("exec", "-i", "worker", "--", "sh", "-c", "cat; echo to-stderr >&2; exit 3", stdin="through stdin\n")
    assert (echoed.returncode, echoed.stdout) == (3, "through stdin\n"), echoed.stderr
    assert "to-stderr" in echoed.stderr

    (tmp_path / "in.txt").write_text("copied in\n")
    into = k("cp", str(tmp_path / "in.txt"), "default/worker:/tmp/in.txt")
    assert into.returncode == 0, into.stderr
    assert k("exec", "worker", "--", "cat", "/tmp/in.txt").stdout == "copied in\n"
    back = k("cp", "default/worker:/tmp/in.txt", str(tmp_path / "back.txt"))
    assert back.returncode == 0, back.stderr
    assert (tmp_path / "back.txt").read_text() == "copied in\n"

    token = k("exec", "worker", "--", "cat", "/var/run/secrets/kubernetes.io/serviceaccount/namespace")
    assert token.stdout == "default"  # the apiserver's kube-api-access volume, projected by our node

    events = json.loads(k("get", "events", "--field-selector", "involvedObject.name=worker", "-o", "json").stdout)
    reasons = {(e["reason"], e["source"].get("component") or e.get("reportingComponent")) for e in events["items"]}
    assert {("Scheduled", "default-scheduler"), ("Started", "kubelet")} <= reasons, reasons

    deleted = k("delete", "pod", "worker", "--grace-period=1", "--wait=true", "--timeout=60s")
    assert deleted.returncode == 0, deleted.stderr
    assert k("get", "pod", "worker", "--ignore-not-found", "-o", "name").stdout == ""


RESTRICTED = """
  securityContext:
    runAsNonRoot: true
    runAsUser: 1000
    seccompProfile: {type: RuntimeDefault}
"""
COMPLIANT_CONTAINER = """
    securityContext:
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL]}"""


def test_pod_security_admission_refuses_a_pod_the_restricted_level_forbids(k: Kubectl) -> None:
    assert k("create", "namespace", "strict").returncode == 0
    labelled = k("label", "namespace", "strict", "pod-security.kubernetes.io/enforce=restricted")
    assert labelled.returncode == 0, labelled.stderr

    refused = k("apply", "-f", "-", stdin=pod("loose", "strict"))
    assert refused.returncode == 1
    assert 'violates PodSecurity "restricted:latest"' in refused.stderr, refused.stderr
    assert "allowPrivilegeEscalation != false" in refused.stderr
    assert "runAsNonRoot != true" in refused.stderr

    manifest = pod("tight", "strict", RESTRICTED).replace(
        "command: [sh, -c, 'echo started tight; exec sleep 600']",
        "command: [sh, -c, 'echo started tight; exec sleep 600']" + COMPLIANT_CONTAINER,
    )
    admitted = k("apply", "-f", "-", stdin=manifest)
    assert admitted.returncode == 0, admitted.stderr
    wait_until(lambda: phase(k, "tight", "strict") == "Running")
    gone = k("delete", "namespace", "strict", "--wait=true", "--timeout=120s", timeout=150)
    assert gone.returncode == 0, gone.stderr


def test_the_garbage_collector_removes_what_a_deleted_owner_owned(k: Kubectl) -> None:
    assert k("apply", "-f", "-", stdin=pod("owner")).returncode == 0
    uid = k("get", "pod", "owner", "-o", "jsonpath={.metadata.uid}").stdout
    owned = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "owned-by-pod",
            "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "owner", "uid": uid}],
        },
        "stringData": {"token": "x"},
    }
    created = k("create", "-f", "-", stdin=json.dumps(owned))
    assert created.returncode == 0, created.stderr
    assert k("delete", "pod", "owner", "--grace-period=1", "--wait=true").returncode == 0
    wait_until(lambda: k("get", "secret", "owned-by-pod", "--ignore-not-found", "-o", "name").stdout == "", timeout=60)


def test_the_scheduler_reports_insufficient_cpu(k: Kubectl) -> None:
    greedy = pod("greedy", extra="    resources: {requests: {cpu: '64'}}")
    applied = k("apply", "-f", "-", stdin=greedy)
    assert applied.returncode == 0, applied.stderr

    def scheduling_failure() -> str:
        events = k(
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=greedy,reason=FailedScheduling",
            "-o",
            "jsonpath={.items[*].message}",
        )
        return events.stdout

    message = wait_until(scheduling_failure, timeout=60)
    assert "0/1 nodes are available: 1 Insufficient cpu." in message, message
    status = json.loads(k("get", "pod", "greedy", "-o", "json").stdout)["status"]
    assert status["phase"] == "Pending"
    condition = next(c for c in status["conditions"] if c["type"] == "PodScheduled")
    assert (condition["status"], condition["reason"]) == ("False", "Unschedulable")
    assert k("delete", "pod", "greedy", "--wait=true").returncode == 0


def test_the_apiserver_says_its_version_even_to_the_kubectl_on_path(real_cluster: Any, kubectl_path: str) -> None:
    # kubectl before 1.36 cannot parse a version without -X link flags ("v0.0.0-master+$Format:%H$")
    got = run_kubectl(kubectl_path, real_cluster, "version", "-o", "json")
    assert got.returncode == 0, got.stderr
    server = json.loads(got.stdout)["serverVersion"]
    assert (server["gitVersion"], server["major"], server["minor"]) == ("v1.37.2", "1", "37"), server
