"""The seam with the real kubectl against the local API double: stdin into `exec -i`, and long-running streams."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from kubectl_launcher.journal import Journal, read_entries
from kubectl_launcher.kubectl import Kubectl
from kubectl_launcher.localkube.testing import wait_until

pytestmark = pytest.mark.integration


def make_kubectl(cluster: Any, kubectl_path: str, tmp_path: Path) -> Kubectl:
    return Kubectl(
        kubeconfig=cluster.kubeconfig_path,
        kubectl=kubectl_path,
        cache_dir=cluster.cache_dir,
        retries=0,
        journal=Journal(str(tmp_path / "journal")),
    )


def apply_pod(kubectl: Kubectl, tmp_path: Path, name: str, script: str) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"test": "seam"}},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "seam:test", "command": ["sh", "-c", script]}],
        },
    }
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(pod))
    kubectl.run(("apply", "-f", str(path)))


def phase(kubectl: Kubectl, name: str) -> str:
    pod = kubectl.get_json(("get", "pod", name, "--output", "json"))
    return str(((pod or {}).get("status") or {}).get("phase", ""))


def running_pod(kubectl: Kubectl, tmp_path: Path, name: str = "sink") -> str:
    apply_pod(kubectl, tmp_path, name, "sleep 3600")
    wait_until(lambda: phase(kubectl, name) == "Running", timeout=60)
    return name


@pytest.fixture
def kubectl(local_cluster: Any, kubectl_path: str, tmp_path: Path) -> Kubectl:
    return make_kubectl(local_cluster, kubectl_path, tmp_path)


# --- stdin ---------------------------------------------------------------------------------------


def test_megabytes_of_stdin_reach_the_pod_byte_identical(kubectl: Kubectl, tmp_path: Path) -> None:
    pod = running_pod(kubectl, tmp_path)
    data = os.urandom(12 * 1024 * 1024 + 7)
    source = tmp_path / "payload.bin"
    source.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    sha256sum = ("exec", "-i", pod, "--", "sha256sum")
    for label, how in (("bytes", {"stdin": data}), ("stdin_path", {"stdin_path": str(source)})):
        started = time.monotonic()
        result = kubectl.run(sha256sum, timeout=300, **how)  # type: ignore[arg-type]
        seconds = time.monotonic() - started
        assert result.stdout.split() == [digest, "-"], label
        print(f"{label}: {len(data) / 2**20:.1f} MiB in {seconds:.2f}s")  # a figure, not an assertion
    entries = read_entries(str(tmp_path / "journal"))
    fed = [e.stdin for e in entries if e.stdin is not None]
    assert [note["sha256"] for note in fed] == [digest, digest]
    assert fed[1]["rebuild_argv"] == ["cat", str(source)]
    kubectl.run(("delete", "pod", pod, "--wait=false"))
