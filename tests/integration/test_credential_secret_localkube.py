"""The credential Secret's life, with the real kubectl on the API double: it exists until the job
container has started (the token is then in the process's environment), and not a moment of the job's
run after the launcher has seen that."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from nvflare.apis.job_launcher_spec import JobReturnCode

from kubectl_launcher.domain.names import credential_secret_name
from localkube import LocalCluster
from tests.integration.test_launcher_pods import SITE, Site, module_source

pytestmark = pytest.mark.integration


@pytest.fixture
def cluster(local_cluster_factory: Callable[..., LocalCluster]) -> LocalCluster:
    made: LocalCluster = local_cluster_factory(capacity={"cpu": "2", "memory": "8Gi", "ephemeral-storage": "100Gi"})
    return made


def test_the_credential_secret_is_gone_while_the_job_still_runs(
    cluster: LocalCluster,
    kubectl_path: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    run_kubectl: Callable[..., Any],
) -> None:
    caplog.set_level("INFO")
    site = Site(tmp_path / SITE, cluster, module_source(0, sleep=300), kubectl_path)
    handle = site.launch()
    try:
        deadline = time.monotonic() + 60
        while site.objects()[1] is not None and time.monotonic() < deadline:
            assert handle.poll() == JobReturnCode.UNKNOWN  # each look may retire the Secret
            time.sleep(0.2)
        pod, secret = site.objects()
        assert secret is None
        assert pod is not None and pod["status"]["phase"] == "Running"
        main = next(c for c in pod["status"]["containerStatuses"] if c["name"] == handle.container_name)
        assert "running" in main["state"]
        # The job process got its token from the environment the Secret had filled.
        done = run_kubectl(
            cluster, "exec", site.pod, "-c", handle.container_name, "--",
            "cat", f"/var/tmp/nvflare/workspace/{site.job_id}/ran.json",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["token_ok"] is True
        assert handle.poll() == JobReturnCode.UNKNOWN
        assert "deleted its credential Secret" in caplog.text
    finally:
        handle.terminate()


@pytest.mark.double_only
def test_a_credential_secret_that_cannot_be_deleted_is_logged_and_the_job_goes_on(
    cluster: LocalCluster, kubectl_path: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    site = Site(tmp_path / SITE, cluster, module_source(0, sleep=3), kubectl_path)
    secret_path = f"/api/v1/namespaces/default/secrets/{credential_secret_name(site.pod)}"
    cluster.faults.api_errors(403, times=1, paths=(secret_path,), verbs=("delete",))
    # At once: the 3 s job would otherwise end before the retire's delay, and its clean-up would meet the 403.
    handle = site.launch(site.launcher(credential_retire_delay=0))
    handle.wait()
    assert handle.poll() == JobReturnCode.SUCCESS
    assert "failed to delete credential Secret" in caplog.text
    assert site.ran()["token_ok"] is True
