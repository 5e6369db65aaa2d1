"""K8sJobHandle with the real kubectl against the local API double: outcomes, startup failures, outages."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

import pytest
from localkube.cluster import LocalCluster

from kubectl_launcher.domain.pod_status import JobState
from kubectl_launcher.handle import K8sJobHandle
from kubectl_launcher.kubectl import Kubectl

pytestmark = pytest.mark.integration

CONTAINER = "job"


@pytest.fixture
def cluster(local_cluster: LocalCluster) -> LocalCluster:
    return local_cluster


@pytest.fixture
def kubectl(local_cluster: LocalCluster, kubectl_path: str) -> Kubectl:
    return Kubectl(
        kubeconfig=local_cluster.kubeconfig_path,
        cache_dir=local_cluster.cache_dir,
        namespace="default",
        kubectl=kubectl_path,
    )


def start_pod(
    kubectl: Kubectl,
    name: str,
    script: str,
    *,
    image: str = "local/python:3.11",
    resources: dict[str, Any] | None = None,
    **handle_args: Any,
) -> K8sJobHandle:
    """Build the pod as the launcher would (through the handle), run `script` in it, create it, return the handle."""
    job_config: dict[str, Any] = {"name": name, "image": image, "container_name": CONTAINER, "command": "unused"}
    if resources:
        job_config["resources"] = resources
    handle = K8sJobHandle(name, kubectl, job_config, python_path=sys.executable, **handle_args)
    manifest = handle.get_manifest()
    manifest["spec"]["containers"][0]["args"] = ["-c", script]
    manifest["spec"]["containers"][0]["imagePullPolicy"] = "IfNotPresent"
    kubectl.run(("create", "--filename", "-", "--output", "name", "--validate=false"), stdin=json.dumps(manifest))
    return handle


def exits(code: int, after: float = 1.0) -> str:
    return f"import sys, time; time.sleep({after}); sys.exit({code})"


def pod_exists(kubectl: Kubectl, name: str) -> bool:
    return kubectl.get_json(("get", "pod", name, "--ignore-not-found", "--output", "json")) is not None


def eventually_gone(kubectl: Kubectl, kind: str, name: str) -> bool:
    # Deletion is asynchronous (grace period): look for a while, never assert on how long it took.
    for _ in range(60):
        if kubectl.get_json(("get", kind, name, "--ignore-not-found", "--output", "json")) is None:
            return True
        time.sleep(0.5)
    return False


@pytest.mark.parametrize(("code", "expected"), [(0, 0), (1, 9), (101, 101), (103, 103)])
def test_the_job_exit_code_becomes_nvflares_return_code(kubectl: Kubectl, code: int, expected: int) -> None:
    handle = start_pod(kubectl, f"exit-{code}", exits(code))
    handle.wait()
    assert handle.poll() == expected
    assert handle.terminal_state is (JobState.SUCCEEDED if code == 0 else JobState.TERMINATED)
    assert pod_exists(kubectl, f"exit-{code}")  # a completed pod is left for the logs, as upstream


def test_an_unpullable_image_fails_fast_with_exception(kubectl: Kubectl, caplog: pytest.LogCaptureFixture) -> None:
    handle = start_pod(kubectl, "no-image", exits(0), image="registry.example/unpullable:1", pending_timeout=None)
    with caplog.at_level(logging.WARNING):
        assert handle.enter_states([JobState.RUNNING]) is False
    assert handle.poll() == 101
    assert "pod startup failure: ErrImagePull" in caplog.text or "pod startup failure: ImagePullBackOff" in caplog.text
    assert eventually_gone(kubectl, "pod", "no-image")


@pytest.mark.double_only
def test_an_unschedulable_pod_fails(cluster: LocalCluster, kubectl: Kubectl, caplog: pytest.LogCaptureFixture) -> None:
    cluster.faults.unschedulable = True
    handle = start_pod(kubectl, "unschedulable", exits(0), pending_timeout=None)
    with caplog.at_level(logging.WARNING):
        assert handle.enter_states([JobState.RUNNING]) is False
    assert handle.poll() == 101
    assert "pod startup failure: Unschedulable" in caplog.text
    assert eventually_gone(kubectl, "pod", "unschedulable")


def test_insufficient_cpu_fails_after_pending_timeout(kubectl: Kubectl, caplog: pytest.LogCaptureFixture) -> None:
    big = {"requests": {"cpu": "64"}, "limits": {"cpu": "64"}}
    handle = start_pod(kubectl, "too-big", exits(0), resources=big, pending_timeout=3)
    polls = 0
    with caplog.at_level(logging.WARNING):
        while handle.poll() == 127:
            polls += 1
            time.sleep(0.5)
    assert polls >= 2  # it waited for resources before giving up
    assert handle.poll() == 101
    assert "timed out waiting for CPU/memory/GPU resources" in caplog.text
    assert "Insufficient cpu" in caplog.text
    assert eventually_gone(kubectl, "pod", "too-big")


def test_terminate_removes_the_pod_and_the_credential_secret(kubectl: Kubectl) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "nvflare-cred-long-job"},
        "type": "Opaque",
        "stringData": {"NVFLARE_JOB_AUTH_TOKEN": "not-a-real-token"},
    }
    kubectl.run(("create", "--filename", "-", "--output", "name", "--validate=false"), stdin=json.dumps(secret))
    handle = start_pod(kubectl, "long-job", exits(0, after=600), credential_secret_name="nvflare-cred-long-job")
    assert handle.enter_states([JobState.RUNNING]) is True
    handle.terminate()
    assert handle.poll() == 9
    assert eventually_gone(kubectl, "pod", "long-job")
    assert eventually_gone(kubectl, "secret", "nvflare-cred-long-job")
    handle.terminate()  # again: nothing left to do, nothing raised


def test_a_vanished_pod_is_reported_terminated(kubectl: Kubectl) -> None:
    handle = start_pod(kubectl, "vanishes", exits(0, after=600))
    assert handle.enter_states([JobState.RUNNING]) is True
    kubectl.run(("delete", "pod", "vanishes", "--grace-period=1", "--wait=true"))
    handle.wait()
    assert handle.poll() == 9
    assert handle.terminal_state is JobState.TERMINATED


@pytest.mark.double_only
def test_a_20_second_api_outage_does_not_change_the_outcome(
    cluster: LocalCluster, kubectl: Kubectl, caplog: pytest.LogCaptureFixture
) -> None:
    handle = start_pod(kubectl, "outage", exits(101, after=5))
    assert handle.enter_states([JobState.RUNNING]) is True
    cluster.faults.api_errors(503, seconds=20)  # 503 for 20 s, the first 10 of them connection refused
    cluster.faults.refuse_connections(10)

    def outage_on() -> bool:
        return any(fault["secondsLeft"] for fault in cluster.faults.describe()["apiErrors"])

    polls_during = 0
    with caplog.at_level(logging.INFO):
        while True:
            code = handle.poll()
            if not outage_on():  # this poll may have reached the server again
                break
            assert code == 127
            assert handle.terminal_state is None, "a transient failure ended the job"
            polls_during += 1
            time.sleep(1)
        # The job ended during the outage; the first look afterwards says how.
        assert handle.poll() == 101
    assert polls_during >= 2
    assert "cannot read job outage pod outage" in caplog.text
    assert "can be read again after" in caplog.text
