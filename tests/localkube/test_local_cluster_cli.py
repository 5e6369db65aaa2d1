"""`kubectl-launcher local-cluster` in the foreground: ready line, usable kubeconfig, and SIGTERM stops it and
every pod process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

import pytest
from localkube.cli import parse_capacity
from localkube.testing import wait_until

pytestmark = pytest.mark.integration


def test_capacity_flag_parses_quantities() -> None:
    assert parse_capacity("cpu=2,memory=8Gi,nvidia.com/gpu=0") == {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "0"}
    with pytest.raises(Exception, match="cpu=2"):
        parse_capacity("cpu")


def test_local_cluster_command_serves_until_sigterm(tmp_path: Any, kubectl_path: str) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    state = tmp_path / "state"
    out_dir = tmp_path / "out"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kubectl_launcher.cli",
            "local-cluster",
            "--kubeconfig",
            str(kubeconfig),
            "--state-dir",
            str(state),
            "--capacity",
            "cpu=4",
            "--workdir",
            "/tmp",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        assert first.startswith("local cluster ready at http://127.0.0.1:"), first + (
            server.stderr.read() if server.stderr else ""
        )
        assert f"export KUBECONFIG={kubeconfig}" in server.stdout.readline()
        env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "KUBECONFIG": str(kubeconfig), "KUBERC": "off"}
        k = [kubectl_path, "--cache-dir", str(tmp_path / "cache")]
        pod = f"""
apiVersion: v1
kind: Pod
metadata: {{name: writer}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: busybox:1.36
    command: [sh, -c, 'pwd > /out/cwd; echo $$$$ > /out/pid; exec sleep 600']
    volumeMounts: [{{name: out, mountPath: /out}}]
  volumes: [{{name: out, hostPath: {{path: {out_dir}}}}}]
"""
        applied = subprocess.run(
            [*k, "apply", "-f", "-"], input=pod, env=env, capture_output=True, text=True, check=False
        )
        assert applied.returncode == 0, applied.stderr
        pid = int(wait_until(lambda: (out_dir / "pid").exists() and (out_dir / "pid").read_text().strip()))
        assert (out_dir / "cwd").read_text() == "/tmp\n"
        os.kill(pid, 0)  # the pod's process is alive
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=60)
    assert server.returncode == 0, err
    assert "left behind" not in err
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not (state / "state" / "pods").exists()
    with open("/proc/self/mountinfo") as f:
        assert str(tmp_path) not in f.read()
