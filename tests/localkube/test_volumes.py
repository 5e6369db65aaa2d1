"""Volumes as a kubelet mounts them, seen from inside the pod: PVC folders by claim name (a missing claim keeps
the pod unschedulable), hostPath, hidden host folders and the image WORKDIR."""

from __future__ import annotations

import json
from typing import Any

import pytest
from localkube.testing import wait_until

pytestmark = pytest.mark.integration

POD = """
apiVersion: v1
kind: Pod
metadata: {name: vols}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: python:3.11
    command: [sleep, "600"]
    volumeMounts: [{name: data, mountPath: /data}, {name: host, mountPath: /host, readOnly: true}]
  volumes:
  - {name: data, persistentVolumeClaim: {claimName: shared}}
  - {name: host, hostPath: {path: HOSTDIR, type: Directory}}
"""


def test_pvc_hostpath_hidden_paths_and_workdir(local_cluster_factory: Any, run_kubectl: Any, tmp_path: Any) -> None:
    hidden = tmp_path / "site-workspace"
    hidden.mkdir()
    (hidden / "private.txt").write_text("must not be visible")
    hostdir = tmp_path / "hostdir"
    hostdir.mkdir()
    (hostdir / "in.txt").write_text("from host\n")
    pvc_root = tmp_path / "pvcs"
    cluster = local_cluster_factory(hidden_paths=[str(hidden)], image_workdir="/srv", pvc_root=str(pvc_root))
    assert run_kubectl(cluster, "apply", "-f", "-", stdin=POD.replace("HOSTDIR", str(hostdir))).returncode == 0

    def scheduled_condition() -> dict[str, Any] | None:
        pod = json.loads(run_kubectl(cluster, "get", "pod", "vols", "-o", "json").stdout)
        return next((c for c in pod["status"].get("conditions") or [] if c["type"] == "PodScheduled"), None)

    cond = wait_until(scheduled_condition)
    assert cond["status"] == "False"
    assert cond["message"].startswith('0/1 nodes are available: persistentvolumeclaim "shared" not found.')

    pvc = (
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: shared}\n"
        "spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n"
    )
    assert run_kubectl(cluster, "apply", "-f", "-", stdin=pvc).returncode == 0
    wait_until(lambda: run_kubectl(cluster, "get", "pod", "vols", "-o", "jsonpath={.status.phase}").stdout == "Running")

    script = (
        f"pwd; echo written > /data/out.txt; cat /host/in.txt; ls -A {hidden}; touch /host/x 2>/dev/null || echo ro"
    )
    out = run_kubectl(cluster, "exec", "vols", "--", "sh", "-c", script)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "/srv\nfrom host\nro\n"
    assert (pvc_root / "shared" / "out.txt").read_text() == "written\n"
