"""The seam with the real kubectl against the local API double: stdin into `exec -i`, and long-running streams."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from localkube.testing import wait_until

from kubectl_launcher import errors
from kubectl_launcher.kubectl import Kubectl
from kubectl_launcher.kubectl.journal import Journal
from tests.support.journals import recorded_commands

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
    entries = recorded_commands(str(tmp_path / "journal"))
    fed = [e.stdin for e in entries if e.stdin is not None]
    assert [note["sha256"] for note in fed] == [digest, digest]
    assert fed[1]["rebuild_argv"] == ["cat", str(source)]
    kubectl.run(("delete", "pod", pod, "--wait=false"))


# --- streams -------------------------------------------------------------------------------------


def kubectl_processes(marker: str) -> list[int]:
    """Live processes whose command line contains `marker`."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in cmdline and state != "Z":
            found.append(int(pid))
    return found


def watch_args(label: str) -> tuple[str, ...]:
    return ("get", "pods", "--selector", f"test={label}", "--watch", "--output-watch-events", "--output", "json")


def test_a_watch_sees_a_pod_go_through_its_phases_and_stop_leaves_no_kubectl(kubectl: Kubectl, tmp_path: Path) -> None:
    marker = "test=seam-phases"
    phases: list[str] = []
    with kubectl.stream(watch_args("seam-phases")) as stream:
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "phases", "labels": {"test": "seam-phases"}},
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": "seam:test", "command": ["sh", "-c", "sleep 1; exit 3"]}],
            },
        }
        (tmp_path / "phases.json").write_text(json.dumps(pod))
        kubectl.run(("apply", "-f", str(tmp_path / "phases.json")))
        for event in stream.documents():
            phase_now = event["object"]["status"].get("phase", "")
            if not phases or phases[-1] != phase_now:
                phases.append(phase_now)
            if phase_now == "Failed":
                break
        assert kubectl_processes(marker), "the watch should be running until stop()"
    assert phases[0] == "Pending" and phases[-2:] == ["Running", "Failed"]
    assert stream.stopped and stream.error is None
    assert kubectl_processes(marker) == []
    streamed = [e for e in recorded_commands(str(tmp_path / "journal")) if e.data.get("stream")]
    assert [e.data["stream"] for e in streamed] == ["stopped"]
    assert streamed[0].argv[-len(watch_args("x")) :] == list(watch_args("seam-phases"))
    kubectl.run(("delete", "pod", "phases", "--wait=false"))


@pytest.mark.double_only
def test_a_watch_the_server_cuts_ends_with_exit_code_0(local_cluster: Any, kubectl: Kubectl) -> None:
    ended: list[Any] = []
    stream = kubectl.stream(watch_args("seam-cut"), request_timeout=0, on_exit=ended.append)
    try:
        wait_until(lambda: kubectl_processes("test=seam-cut"), timeout=30)
        assert stream.read(timeout=1.0) == []  # no pods: nothing to say, still running
        assert not stream.ended
        # kubectl lists first and watches moments later: cut only a watch the double holds
        wait_until(
            lambda: any("watch=true" in r.query and "seam-cut" in r.query for r in local_cluster.requests), timeout=30
        )
        local_cluster.faults.cut_watches()
        result = stream.wait(30)
    finally:
        stream.stop()
    assert result is not None and result.returncode == 0
    assert not stream.stopped and stream.error is None and stream.ended
    assert ended == [result]


def test_logs_follow_streams_a_pods_output_until_it_exits(kubectl: Kubectl, tmp_path: Path) -> None:
    apply_pod(kubectl, tmp_path, "talker", "for i in 1 2 3; do echo line $i; sleep 0.3; done")
    wait_until(lambda: phase(kubectl, "talker") in ("Running", "Succeeded"), timeout=60)
    with kubectl.stream(("logs", "--follow", "talker"), request_timeout=0) as stream:
        lines = list(stream)
    assert lines == ["line 1", "line 2", "line 3"]
    assert stream.returncode == 0 and not stream.stopped
    kubectl.run(("delete", "pod", "talker", "--wait=false"))


@pytest.mark.double_only
def test_a_forbidden_watch_ends_with_a_typed_error(local_cluster: Any, kubectl: Kubectl) -> None:
    local_cluster.faults.api_errors(403, verbs=("watch",))
    with kubectl.stream(watch_args("seam-denied")) as stream:
        assert list(stream) == []  # the list before the watch finds no pod; the watch is refused
        result = stream.wait(30)
    assert result is not None and result.returncode == 1 and not stream.stopped
    assert isinstance(stream.error, errors.KubectlForbidden), stream.stderr
