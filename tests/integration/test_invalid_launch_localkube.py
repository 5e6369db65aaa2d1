"""Bad launch input, with the real kubectl on the API double: the launcher refuses it before anything is
created (no pod, no Secret, no write request), naming the field; and the double itself refuses what a
real API server refuses (`kubectl apply` of the same values), so that tests see what a cluster shows."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kubectl_launcher.domain.validate import InvalidLaunch
from localkube import LocalCluster
from tests.integration.test_launcher_pods import IMAGE, SITE, Site, module_source

pytestmark = pytest.mark.integration

BAD_INPUT: list[tuple[dict[str, Any], str]] = [
    ({"cpu": "-1"}, "['cpu'] = '-1' is negative"),
    ({"memory": "lots"}, "['memory'] = 'lots' is not a Kubernetes quantity"),
    ({"ephemeral_storage": "1Zi"}, "['ephemeral_storage'] = '1Zi' is not a Kubernetes quantity"),
    ({"num_of_gpus": "two"}, "['num_of_gpus'] = 'two' is not a GPU count"),
    ({"num_of_gpus": -1}, "= -1 is not a GPU count"),
    ({"image": "nvflare/job 2.9"}, "is not a container image reference"),
    ({"image": "nvflare/job:2.9\n"}, "is not a container image reference"),
]


@pytest.fixture
def cluster(local_cluster_factory: Callable[..., LocalCluster]) -> LocalCluster:
    made: LocalCluster = local_cluster_factory(capacity={"cpu": "2", "memory": "8Gi", "ephemeral-storage": "100Gi"})
    return made


def writes(cluster: LocalCluster) -> list[str]:
    return [f"{r.method} {r.path}" for r in cluster.requests if r.method not in ("GET", "HEAD")]


@pytest.mark.double_only
def test_bad_launch_input_is_refused_before_anything_is_created(
    cluster: LocalCluster, kubectl_path: str, tmp_path: Path
) -> None:
    site = Site(tmp_path / SITE, cluster, module_source(0), kubectl_path)
    launcher = site.launcher()
    for k8s, words in BAD_INPUT:
        with pytest.raises(InvalidLaunch) as raised:
            site.launch(launcher, **k8s)
        assert words in str(raised.value), k8s
    with pytest.raises(InvalidLaunch, match="the launcher's security_context argument = 'root'"):
        site.launch(site.launcher(security_context="root"))
    job_id = site.job_id
    site.job_id = "j" * 300  # a job id whose pod name is no RFC 1123 label
    with pytest.raises(InvalidLaunch):
        site.launch(launcher)
    site.job_id = job_id
    assert cluster.objects("pods") == [] and cluster.objects("secrets") == []
    assert writes(cluster) == []


def pod(name: str, resources: dict[str, Any] | None = None) -> str:
    container: dict[str, Any] = {"name": "c", "image": IMAGE, "command": ["true"]}
    if resources:
        container["resources"] = resources
    return json.dumps(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": [container]}}
    )


def response_status(stderr: str) -> dict[str, Any]:
    """The Status kubectl -v=9 logged as the response body (quoted on its line, or on the next line)."""
    lines = stderr.splitlines()
    for i, line in enumerate(lines):
        if '"Response Body"' in line and "Status" in line + lines[min(i + 1, len(lines) - 1)]:
            text = line.split("body=", 1)[1]
            found: dict[str, Any] = json.loads(json.loads(text) if text.startswith('"') else lines[i + 1])
            return found
    raise AssertionError(f"no Status in kubectl's log: {stderr[-2000:]}")


@pytest.mark.double_only
@pytest.mark.parametrize("server_side", [False, True])
def test_the_double_refuses_invalid_quantities_and_names_as_a_real_api_server(
    cluster: LocalCluster, run_kubectl: Callable[..., Any], server_side: bool
) -> None:
    # What kube-apiserver 1.32 answers to the same manifests (seen on the real control plane tier).
    mode = ["--server-side"] if server_side else []
    cases = [
        (
            pod("p1", {"limits": {"cpu": "-1"}}),
            'The Pod "p1" is invalid: \n'
            '* spec.containers[0].resources.limits[cpu]: Invalid value: "-1": must be greater than or equal to 0\n'
            '* spec.containers[0].resources.requests[cpu]: Invalid value: "-1": must be greater than or equal to 0',
        ),
        (
            pod("p2", {"limits": {"nvidia.com/gpu": "0.5"}}),
            '* spec.containers[0].resources.limits[nvidia.com/gpu]: Invalid value: "500m": must be an integer',
        ),
        (
            pod("p3", {"limits": {"cpu": "1"}, "requests": {"cpu": "2"}}),
            'The Pod "p3" is invalid: spec.containers[0].resources.requests: Invalid value: "2": '
            "must be less than or equal to cpu limit of 1",
        ),
        (
            pod("p4", {"requests": {"memory": "lots"}}),
            'Pod in version "v1" cannot be handled as a Pod: quantities must match the regular expression '
            "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
        ),
        (pod("p5", {"limits": {"ephemeral-storage": "1Zi"}}), "quantities must match the regular expression"),
        (
            pod("Bad_Name"),
            'The Pod "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain',
        ),
    ]
    for manifest, words in cases:
        done = run_kubectl(cluster, "apply", *mode, "--validate=false", "-f", "-", stdin=manifest)
        assert done.returncode == 1, (manifest, done.stdout)
        assert words in done.stderr, done.stderr
    # The Status itself: 422 Invalid, a cause per value with the field's path.
    done = run_kubectl(
        cluster, "create", "--validate=false", "-f", "-", "-v=9", stdin=pod("p6", {"limits": {"cpu": "-1"}})
    )
    status = response_status(done.stderr)
    assert (status["code"], status["reason"]) == (422, "Invalid")
    assert [c["field"] for c in status["details"]["causes"]] == [
        "spec.containers[0].resources.limits[cpu]",
        "spec.containers[0].resources.requests[cpu]",
    ]
    assert cluster.objects("pods") == []
    # Valid quantities in every form still pass.
    ok = pod("fine", {"limits": {"cpu": "500m", "memory": "1.5Gi", "nvidia.com/gpu": "0"}, "requests": {"cpu": "0.1"}})
    done = run_kubectl(cluster, "apply", *mode, "--validate=false", "-f", "-", stdin=ok)
    assert done.returncode == 0, done.stderr
