"""`kubectl-launcher local-cluster --control-plane real` in the foreground: the ready line, a kubeconfig kubectl 1.37
uses, a Ready node, and SIGTERM stops the control plane and every pod process (nothing left running or mounted)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from localkube.testing import wait_until

pytestmark = pytest.mark.real_control_plane


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_local_cluster_command_runs_the_real_control_plane_until_sigterm(tmp_path: Path, kubectl_137: str) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    state = tmp_path / "state"
    argv = [sys.executable, "-m", "kubectl_launcher.cli", "local-cluster", "--control-plane", "real"]
    server = subprocess.Popen(
        [*argv, "--kubeconfig", str(kubeconfig), "--state-dir", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "KUBECONFIG": str(kubeconfig), "KUBERC": "off"}
    k = [kubectl_137, "--cache-dir", str(tmp_path / "cache")]
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        assert first.startswith("local cluster ready at https://127.0.0.1:"), first + (
            server.stderr.read() if server.stderr else ""
        )
        assert "the real control plane: kube-apiserver v1.37.2, etcd v3.7.0" in first
        nodes = subprocess.run([*k, "get", "nodes", "-o", "json"], env=env, capture_output=True, text=True, check=False)
        assert nodes.returncode == 0, nodes.stderr
        (node,) = json.loads(nodes.stdout)["items"]
        assert {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"] == "True"
        run = [
            *k,
            "run",
            "sleeper",
            "--image=busybox",
            "--restart=Never",
            "--",
            "sh",
            "-c",
            "echo $$$$ > /tmp/pid; exec sleep 600",
        ]
        assert subprocess.run(run, env=env, capture_output=True, check=False).returncode == 0

        def pid() -> str:
            got = subprocess.run(
                [*k, "exec", "sleeper", "--", "cat", "/tmp/pid"], env=env, capture_output=True, text=True, check=False
            )
            return got.stdout.strip()

        # `$$$$`: the apiserver's $(VAR) expansion keeps `$$` as `$`; pods share the host's pid namespace
        pod_pid = int(wait_until(pid, timeout=60))
        assert _alive(pod_pid)
        components = [int(p) for p in os.listdir("/proc") if p.isdigit() and _is_ours(int(p), state)]
        assert len(components) >= 4, components  # etcd, kube-apiserver, kube-controller-manager, kube-scheduler
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=120)
    assert server.returncode == 0, err
    assert "left behind" not in err
    assert not _alive(pod_pid)
    assert not [p for p in components if _alive(p)]
    with open("/proc/self/mountinfo") as f:
        assert str(tmp_path) not in f.read()


def _is_ours(pid: int, state: Path) -> bool:
    try:
        return str(state) in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
