"""The basics through every versioned kubectl present (1.27 … 1.33 on the machine, 1.36 and 1.37 from PyPI):
discovery, multi-document apply and re-apply, get with selectors, NotFound, delete, and `kubectl wait` /
`delete --wait` (1.35+ run them through a streaming list). 1.27/1.28 need --validate=false (they read only the
protobuf OpenAPI v2, which the double does not serve)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
from localkube.kubectls import PYPI_KUBECTLS, pypi_kubectl
from localkube.testing import running_cluster, versioned_kubectls, wait_until

from tests.support.kubectl_cli import run_kubectl

pytestmark = pytest.mark.integration

VERSIONS = {**versioned_kubectls(), **{minor: pypi_kubectl(minor) for minor in PYPI_KUBECTLS}}

MANIFEST = """
apiVersion: v1
kind: Secret
metadata:
  name: job1-credentials
  labels: {app: launcher, job: job1}
stringData:
  token: s3cr3t
---
apiVersion: v1
kind: Pod
metadata:
  name: job1
  labels: {app: launcher, job: job1}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: python:3.11
    command: [sleep, "600"]
"""


def test_every_versioned_kubectl_is_present() -> None:
    # The matrix below would silently shrink without this.
    assert VERSIONS, "no versioned kubectl binaries (kubectl.1.NN) found"


@pytest.mark.parametrize("version", list(VERSIONS))
def test_basics_through_kubectl(version: str, tmp_path: Any) -> None:
    kubectl = VERSIONS[version]
    old = int(version.split(".")[1]) < 29
    validate = ["--validate=false"] if old else []

    with running_cluster(str(tmp_path), version=version) as cluster:

        def k(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
            return run_kubectl(kubectl, cluster, *args, stdin=stdin)

        ver = k("version", "-o", "json")
        assert ver.returncode == 0, ver.stderr
        assert json.loads(ver.stdout)["serverVersion"]["minor"] == version.split(".")[1]
        assert "WARNING" not in ver.stderr

        first = k("apply", *validate, "-f", "-", "-o", "json", stdin=MANIFEST)
        assert first.returncode == 0, first.stderr
        applied = json.loads(first.stdout)
        assert applied["kind"] == "List"
        secret, pod = applied["items"]
        assert secret["data"] == {"token": "czNjcjN0"} and "stringData" not in secret
        assert pod["status"]["phase"] == "Pending" and pod["metadata"]["uid"]

        before = len(cluster.requests)
        again = k("apply", *validate, "-f", "-", "-o", "name", stdin=MANIFEST)
        assert again.returncode == 0, again.stderr
        # stringData is write-only, so kubectl re-sends it for the Secret (as on a real cluster); the pod is unchanged.
        repatched = [r.path for r in cluster.requests[before:] if r.method == "PATCH"]
        assert repatched == ["/api/v1/namespaces/default/secrets/job1-credentials"]
        assert (
            cluster.get("secrets", "job1-credentials")["metadata"]["resourceVersion"]
            == secret["metadata"]["resourceVersion"]
        )  # type: ignore[index]

        changed = k("apply", *validate, "-f", "-", "-o", "name", stdin=MANIFEST.replace("s3cr3t", "other"))
        assert changed.returncode == 0, changed.stderr
        patches = {r.content_type for r in cluster.requests if r.method == "PATCH"}
        assert patches == {"application/strategic-merge-patch+json"}
        assert cluster.get("secrets", "job1-credentials")["data"]["token"] == "b3RoZXI="  # type: ignore[index]

        listed = k("get", "pods", "-l", "app=launcher,job in (job1, job2),!missing", "-o", "json")
        assert listed.returncode == 0, listed.stderr
        assert [p["metadata"]["name"] for p in json.loads(listed.stdout)["items"]] == ["job1"]
        none = k("get", "pods", "-l", "job!=job1", "-o", "json")
        assert none.returncode == 0 and json.loads(none.stdout)["items"] == []

        running = wait_until(
            lambda: k("get", "pods", "--field-selector", "status.phase=Running", "-o", "name").stdout.strip()
        )
        assert running == "pod/job1"

        missing = k("get", "pod", "nope", "-o", "json")
        assert (missing.returncode, missing.stderr.strip()) == (
            1,
            'Error from server (NotFound): pods "nope" not found',
        )
        quiet = k("get", "pod", "nope", "--ignore-not-found", "-o", "json")
        assert (quiet.returncode, quiet.stdout) == (0, "")

        gone = k("delete", "pod", "job1", "--grace-period=1", "--wait=false")
        assert gone.returncode == 0, gone.stderr
        secret_gone = k("delete", "secret", "job1-credentials")
        assert secret_gone.returncode == 0, secret_gone.stderr
        wait_until(lambda: k("get", "pod", "job1", "--ignore-not-found", "-o", "name").stdout == "")


@pytest.mark.parametrize("version", list(VERSIONS))
def test_wait_and_delete_wait_through_kubectl(version: str, tmp_path: Any) -> None:
    kubectl = VERSIONS[version]
    validate = ["--validate=false"] if int(version.split(".")[1]) < 29 else []
    with running_cluster(str(tmp_path), version=version) as cluster:

        def k(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
            return run_kubectl(kubectl, cluster, *args, stdin=stdin, timeout=90)

        applied = k("apply", *validate, "-f", "-", stdin=MANIFEST)
        assert applied.returncode == 0, applied.stderr
        ready = k("wait", "--for=condition=Ready", "pod/job1", "--timeout=60s")
        assert (ready.returncode, ready.stdout.strip()) == (0, "pod/job1 condition met"), ready.stderr
        deleted = k("delete", "pod", "job1", "--grace-period=1", "--wait=true", "--timeout=60s")
        assert deleted.returncode == 0, deleted.stderr
        assert k("get", "pod", "job1", "--ignore-not-found", "-o", "name").stdout == ""
        gone = k("wait", "--for=delete", "secret/job1-credentials", "--timeout=1s")
        assert gone.returncode == 1 and "timed out" in gone.stderr, gone.stderr
