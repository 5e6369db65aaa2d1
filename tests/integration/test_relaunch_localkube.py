"""A relaunch of a job id whose pod exists, with the real kubectl on the API double: it fails clearly and
changes nothing — not the pod, not its credential Secret, not the site's startup-kit Secret."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from nvflare.apis.job_launcher_spec import JobReturnCode

from kubectl_launcher import K8sJobHandle
from localkube import LocalCluster
from tests.integration.test_launcher_pods import SITE, Site, module_source

pytestmark = pytest.mark.integration


@pytest.fixture
def cluster(local_cluster_factory: Callable[..., LocalCluster]) -> LocalCluster:
    made: LocalCluster = local_cluster_factory(capacity={"cpu": "2", "memory": "8Gi", "ephemeral-storage": "100Gi"})
    return made


def identities(cluster: LocalCluster) -> dict[tuple[str, str], tuple[str, str]]:
    """(resource, name) -> (uid, resourceVersion) of every pod and Secret in the namespace; a pod's
    resourceVersion is left out: its kubelet's status updates move it, whoever launched it."""
    return {
        (resource, obj["metadata"]["name"]): (
            obj["metadata"]["uid"],
            "" if resource == "pods" else obj["metadata"]["resourceVersion"],
        )
        for resource in ("pods", "secrets")
        for obj in cluster.objects(resource)
    }


def writes_since(cluster: LocalCluster, count: int) -> list[str]:
    """Requests that change a pod or a Secret, after the first `count` requests (exec is the first
    launch's transfer, and reads change nothing)."""
    return [
        f"{r.method} {r.path}"
        for r in cluster.requests[count:]
        if r.method not in ("GET", "HEAD") and re.search(r"/(pods|secrets)(/|$)", r.path) and "/exec" not in r.path
    ]


def wait_for(predicate: Callable[[], Any], seconds: float = 60.0) -> Any:
    deadline = time.monotonic() + seconds
    while not (found := predicate()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def assert_refused_and_untouched(site: Site, before: dict[tuple[str, str], tuple[str, str]]) -> None:
    count = len(site.cluster.requests)
    second = site.launch()  # a fresh launcher, as after a restart of the parent
    assert second.poll() == JobReturnCode.EXCEPTION
    assert identities(site.cluster) == before
    # NVFlare may terminate a handle whose launch failed: that must not delete the other launch's pod.
    second.terminate()
    second.wait()
    assert identities(site.cluster) == before
    assert writes_since(site.cluster, count) == []


def test_a_relaunch_while_the_jobs_pod_runs_changes_nothing(
    cluster: LocalCluster, kubectl_path: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    site = Site(tmp_path / SITE, cluster, module_source(0, sleep=300), kubectl_path)
    first = site.launch()
    try:
        # The job container runs, so its credential Secret is retired (on a thread of its own, moments after
        # launch_job returned): the relaunch must not bring one back.
        assert wait_for(lambda: site.objects()[1] is None)
        pod = site.objects()[0]
        assert pod is not None and pod["status"]["phase"] == "Running"
        before = identities(cluster)
        assert_refused_and_untouched(site, before)
        assert "already exists" in caplog.text and "Remove it with: " in caplog.text
    finally:
        first.terminate()


@pytest.mark.double_only
def test_a_relaunch_while_the_jobs_pod_is_pending_changes_nothing(
    cluster: LocalCluster, kubectl_path: str, tmp_path: Path
) -> None:
    # The first launch waits for a pod that cannot be scheduled (it never starts): its credential Secret
    # is what the pod will read once it does.
    site = Site(tmp_path / SITE, cluster, module_source(0), kubectl_path)
    handles: list[K8sJobHandle] = []
    waiting = threading.Thread(target=lambda: handles.append(site.launch(cpu="64", pending_timeout=None)), daemon=True)
    waiting.start()
    try:
        assert wait_for(lambda: all(site.objects()) and site.objects()[1].get("metadata", {}).get("ownerReferences"))
        pod = site.objects()[0]
        assert pod["status"]["phase"] == "Pending"
        before = identities(cluster)
        assert_refused_and_untouched(site, before)
    finally:
        cluster.call(lambda store: store.delete("pods", "default", site.pod))
        waiting.join(60)
    assert handles and handles[0].poll() != JobReturnCode.SUCCESS
