"""What a kubelet does that the lease relies on, through the real kubectl: a downwardAPI volume shows the pod's
annotations as kubelet files (FormatMap, the ..data symlink) and follows `kubectl annotate`; an exec liveness
probe that keeps failing kills the container (Unhealthy and Killing events) and, restartPolicy Never, the pod
ends Failed. A passing probe never kills."""

from __future__ import annotations

import json
from typing import Any

import pytest
from localkube.projected import field_text
from localkube.testing import wait_until

from localkube import downward

pytestmark = pytest.mark.integration

DOWNWARD_POD = """
apiVersion: v1
kind: Pod
metadata: {name: dw, annotations: {b: "two words", a: 'say "hi"'}, labels: {app: x}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: busybox
    command: [sleep, "600"]
    volumeMounts: [{name: meta, mountPath: /meta}]
  volumes:
  - name: meta
    downwardAPI:
      items:
      - {path: annotations, fieldRef: {fieldPath: metadata.annotations}}
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
      - {path: name, fieldRef: {fieldPath: metadata.name}}
      - {path: one/a, fieldRef: {fieldPath: "metadata.annotations['a']"}}
"""

PROBE_POD = """
apiVersion: v1
kind: Pod
metadata: {name: NAME}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 2
  containers:
  - name: job
    image: busybox
    command: [sh, -c, "trap 'exit 143' TERM; sleep 3600 & wait"]
    livenessProbe:
      exec: {command: [sh, -c, 'if [ -e /tmp/sick ]; then echo sick since now; exit 1; fi']}
      initialDelaySeconds: 1
      periodSeconds: 1
      failureThreshold: 2
"""


def _pod(cluster: Any, run_kubectl: Any, name: str) -> dict[str, Any]:
    return json.loads(run_kubectl(cluster, "get", "pod", name, "-o", "json").stdout)


def _events(cluster: Any, run_kubectl: Any, name: str) -> list[dict[str, Any]]:
    out = run_kubectl(cluster, "get", "events", "--field-selector", f"involvedObject.name={name}", "-o", "json")
    return json.loads(out.stdout)["items"]


def test_annotations_render_as_the_kubelets_formatmap() -> None:
    pod = {"metadata": {"name": "p", "namespace": "n", "uid": "u", "annotations": {"b": "x\ny", "a": 'q"\\'}}}
    assert field_text(pod, "metadata.annotations") == 'a="q\\"\\\\"\nb="x\\ny"'  # sorted, quoted, no last newline
    assert field_text(pod, "metadata.annotations['b']") == "x\ny"


def test_a_volume_update_swaps_the_data_link_and_drops_the_old_folder(tmp_path: Any) -> None:
    target = str(tmp_path / "vol")
    assert downward.write(target, {"annotations": b"a=1"})
    first = (tmp_path / "vol" / "..data").readlink()
    assert not downward.write(target, {"annotations": b"a=1"})  # unchanged: nothing written
    assert downward.write(target, {"annotations": b"a=2"})
    second = (tmp_path / "vol" / "..data").readlink()
    assert second != first and not (tmp_path / "vol" / first).exists()
    assert (tmp_path / "vol" / "annotations").readlink().as_posix() == "..data/annotations"
    assert (tmp_path / "vol" / "annotations").read_bytes() == b"a=2"


def test_downward_api_volume_shows_the_annotations_and_follows_annotate(local_cluster: Any, run_kubectl: Any) -> None:
    assert run_kubectl(local_cluster, "create", "-f", "-", stdin=DOWNWARD_POD).returncode == 0
    wait_until(lambda: _pod(local_cluster, run_kubectl, "dw")["status"].get("phase") == "Running")

    def read(path: str) -> str:
        return run_kubectl(local_cluster, "exec", "dw", "--", "cat", f"/meta/{path}").stdout

    assert read("annotations") == 'a="say \\"hi\\""\nb="two words"'
    assert read("labels") == 'app="x"'
    assert (read("name"), read("one/a")) == ("dw", 'say "hi"')
    assert run_kubectl(local_cluster, "exec", "dw", "--", "readlink", "/meta/annotations").stdout.strip() == (
        "..data/annotations"
    )
    out = run_kubectl(local_cluster, "annotate", "pods", "dw", "kubectl-launcher/lease=7", "--overwrite")
    assert out.returncode == 0, out.stderr
    lines = wait_until(lambda: "kubectl-launcher" in read("annotations") and read("annotations").split("\n"))
    assert lines == ['a="say \\"hi\\""', 'b="two words"', 'kubectl-launcher/lease="7"']
    run_kubectl(local_cluster, "annotate", "pods", "dw", "kubectl-launcher/lease=8", "--overwrite")
    wait_until(lambda: read("annotations").endswith('kubectl-launcher/lease="8"'))
    assert read("one/a") == 'say "hi"'


def test_a_failing_liveness_probe_kills_the_container_and_the_pod_ends_failed(
    local_cluster: Any, run_kubectl: Any
) -> None:
    for name in ("sick", "well"):
        assert run_kubectl(local_cluster, "apply", "-f", "-", stdin=PROBE_POD.replace("NAME", name)).returncode == 0
    for name in ("sick", "well"):
        wait_until(lambda n=name: _pod(local_cluster, run_kubectl, n)["status"].get("phase") == "Running")
    assert run_kubectl(local_cluster, "exec", "sick", "--", "touch", "/tmp/sick").returncode == 0

    pod = wait_until(
        lambda: (p := _pod(local_cluster, run_kubectl, "sick"))["status"].get("phase") == "Failed" and p, timeout=60
    )
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (143, "Error")  # TERM, caught: no KILL needed
    events = {(e["reason"], e["message"]) for e in _events(local_cluster, run_kubectl, "sick")}
    assert ("Unhealthy", "Liveness probe failed: sick since now\n") in events
    assert ("Killing", "Container job failed liveness probe") in events
    unhealthy = [e for e in _events(local_cluster, run_kubectl, "sick") if e["reason"] == "Unhealthy"]
    assert unhealthy[0]["type"] == "Warning" and unhealthy[0]["count"] >= 2  # failureThreshold 2
    assert unhealthy[0]["involvedObject"]["fieldPath"] == "spec.containers{job}"

    well = _pod(local_cluster, run_kubectl, "well")
    assert well["status"]["phase"] == "Running"
    assert not [e for e in _events(local_cluster, run_kubectl, "well") if e["reason"] in ("Unhealthy", "Killing")]


def test_a_probe_that_outlives_its_timeout_fails(local_cluster: Any, run_kubectl: Any) -> None:
    slow = PROBE_POD.replace("NAME", "slow").replace(
        "[sh, -c, 'if [ -e /tmp/sick ]; then echo sick since now; exit 1; fi']", "[sleep, '5']"
    )
    slow = slow.replace("failureThreshold: 2", "failureThreshold: 1\n      timeoutSeconds: 1")
    assert run_kubectl(local_cluster, "apply", "-f", "-", stdin=slow).returncode == 0
    wait_until(lambda: _pod(local_cluster, run_kubectl, "slow")["status"].get("phase") == "Failed", timeout=60)
    messages = [e["message"] for e in _events(local_cluster, run_kubectl, "slow") if e["reason"] == "Unhealthy"]
    assert messages == ["Liveness probe failed: command 'sleep 5' timed out"]
