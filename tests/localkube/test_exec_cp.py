"""exec and cp through the real kubectl over WebSocket (≥1.30; 1.29 with KUBECTL_REMOTE_COMMAND_WEBSOCKETS=true),
volumes, init containers, env from Secrets, and delete killing the pod's processes."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import pytest
from localkube.testing import kubectl_env, running_cluster, versioned_kubectls, wait_until

from tests.support.kubectl_cli import run_kubectl

pytestmark = pytest.mark.integration
VERSIONS = versioned_kubectls()
EXEC_VERSIONS = [v for v in ("1.29", "1.30", "1.33") if v in VERSIONS]

SLEEPER = """
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {token: s3cr3t, extra: more}
---
apiVersion: v1
kind: Pod
metadata: {name: sleeper}
spec:
  restartPolicy: Never
  initContainers:
  - name: prepare
    image: busybox:1.36
    command: [sh, -c, 'echo prepared > /work/init.txt']
    volumeMounts: [{name: work, mountPath: /work}]
  containers:
  - name: main
    image: python:3.11
    command: [sh, -c, 'echo "token=$TOKEN"; exec sleep 600']
    workingDir: /work
    env: [{name: TOKEN, valueFrom: {secretKeyRef: {name: creds, key: token}}}]
    volumeMounts:
    - {name: work, mountPath: /work}
    - {name: creds, mountPath: /etc/creds, readOnly: true}
  volumes:
  - {name: work, emptyDir: {}}
  - name: creds
    secret: {secretName: creds, items: [{key: token, path: sub/token.txt}]}
"""


@pytest.mark.parametrize("version", EXEC_VERSIONS)
def test_exec_and_cp_into_a_sleeping_pod(version: str, tmp_path: Any) -> None:
    kubectl = VERSIONS[version]
    with running_cluster(str(tmp_path / "cluster"), version=version) as cluster:

        def k(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
            return run_kubectl(kubectl, cluster, *args, stdin=stdin)

        assert k("apply", "-f", "-", stdin=SLEEPER).returncode == 0
        wait_until(lambda: k("get", "pod", "sleeper", "-o", "jsonpath={.status.phase}").stdout == "Running")
        assert k("logs", "sleeper").stdout == "token=s3cr3t\n"

        probe = k(
            "exec",
            "sleeper",
            "-c",
            "main",
            "--",
            "sh",
            "-c",
            "pwd; cat /work/init.txt /etc/creds/sub/token.txt; echo; ls -A /tmp; echo oops >&2; exit 3",
        )
        assert probe.returncode == 3
        # /tmp is the pod's own: empty, but for the image's folders when the cluster's Python lives in /tmp.
        image_in_tmp = sorted({p.split("/")[2] for p in cluster.image_paths if p.startswith("/tmp/")})
        assert probe.stdout.splitlines() == ["/work", "prepared", "s3cr3t", *image_in_tmp]
        assert probe.stderr.splitlines()[-2:] == ["oops", "command terminated with exit code 3"]
        assert k("exec", "sleeper", "-c", "main", "--", "true").returncode == 0
        assert k("exec", "-i", "sleeper", "-c", "main", "--", "cat", stdin="via stdin\n").stdout == "via stdin\n"
        readonly = k("exec", "sleeper", "-c", "main", "--", "sh", "-c", "echo x > /etc/creds/new")
        assert readonly.returncode != 0

        local = tmp_path / "local"
        (local / "tree" / "sub").mkdir(parents=True)
        (local / "tree" / "sub" / "f.txt").write_text("nested")
        (local / "one.txt").write_text("single")
        assert k("cp", "-c", "main", str(local / "one.txt"), "sleeper:/work/one.txt").returncode == 0
        up = k("cp", "-c", "main", str(local / "tree"), "sleeper:/work/tree")
        assert up.returncode == 0, up.stderr
        found = k("exec", "sleeper", "-c", "main", "--", "find", "/work", "-type", "f")
        assert sorted(found.stdout.split()) == ["/work/init.txt", "/work/one.txt", "/work/tree/sub/f.txt"]
        down = k("cp", "-c", "main", "sleeper:/work/tree", str(tmp_path / "back"))
        assert down.returncode == 0, down.stderr
        assert (tmp_path / "back" / "sub" / "f.txt").read_text() == "nested"
        assert k("cp", "-c", "main", "sleeper:/work/one.txt", str(tmp_path / "one.back")).returncode == 0
        assert (tmp_path / "one.back").read_text() == "single"

        finished_init = k("exec", "sleeper", "-c", "prepare", "--", "true")
        assert finished_init.returncode == 1 and "CONTAINER_EXITED" in finished_init.stderr
        killed = k("exec", "sleeper", "-c", "main", "--", "sh", "-c", "kill -9 $$")
        assert (killed.returncode, killed.stderr.strip()) == (137, "command terminated with exit code 137")
        nope = k("exec", "sleeper", "-c", "nope", "--", "true")
        assert (nope.returncode, nope.stderr.strip()) == (1, "error: container nope is not valid for pod sleeper")
        missing = k("exec", "sleeper", "-c", "main", "--", "no-such-binary")
        assert missing.returncode == 126
        assert 'exec: "no-such-binary": executable file not found' in missing.stdout + missing.stderr

        assert [p for p in cluster.leftovers() if p.startswith("process")], "the sleeping pod runs as a process"
        deleted = k("delete", "pod", "sleeper", "--grace-period=1")
        assert deleted.returncode == 0, deleted.stderr
        wait_until(lambda: not cluster.leftovers(), timeout=10)  # deleting the pod kills its processes
        events = json.loads(k("get", "events", "--field-selector", "involvedObject.name=sleeper", "-o", "json").stdout)
        assert "Killing" in {e["reason"] for e in events["items"]}


def test_exec_into_a_running_init_container(local_cluster: Any, run_kubectl: Any) -> None:
    pod = """
apiVersion: v1
kind: Pod
metadata: {name: initwait}
spec:
  restartPolicy: Never
  initContainers:
  - {name: wait, image: busybox:1.36, command: [sh, -c, 'while [ ! -f /work/go ]; do sleep 0.1; done'],
     volumeMounts: [{name: work, mountPath: /work}]}
  containers:
  - {name: main, image: busybox:1.36, command: [cat, /work/go], volumeMounts: [{name: work, mountPath: /work}]}
  volumes: [{name: work, emptyDir: {}}]
"""
    assert run_kubectl(local_cluster, "apply", "-f", "-", stdin=pod).returncode == 0

    def init_running() -> bool:
        got = json.loads(run_kubectl(local_cluster, "get", "pod", "initwait", "-o", "json").stdout)
        statuses = got["status"].get("initContainerStatuses") or [{}]
        return "running" in statuses[0].get("state", {})

    wait_until(init_running)
    pending = json.loads(run_kubectl(local_cluster, "get", "pod", "initwait", "-o", "json").stdout)
    assert pending["status"]["phase"] == "Pending"
    assert pending["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "PodInitializing"
    go = run_kubectl(local_cluster, "exec", "initwait", "-c", "wait", "--", "sh", "-c", "echo released > /work/go")
    assert go.returncode == 0, go.stderr
    wait_until(
        lambda: (
            run_kubectl(local_cluster, "get", "pod", "initwait", "-o", "jsonpath={.status.phase}").stdout == "Succeeded"
        )
    )
    assert run_kubectl(local_cluster, "logs", "initwait", "-c", "main").stdout == "released\n"


def test_spdy_only_kubectl_gets_upgrade_request_required(tmp_path: Any) -> None:
    assert "1.28" in VERSIONS, "kubectl.1.28 (an SPDY-only client) is part of the test matrix"
    with running_cluster(str(tmp_path), version="1.28") as cluster:
        k = [VERSIONS["1.28"], "--cache-dir", cluster.cache_dir]
        env = kubectl_env(cluster)
        pod = json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "c", "image": "x:1", "command": ["sleep", "60"]}]},
            }
        )
        assert (
            subprocess.run(
                [*k, "apply", "--validate=false", "-f", "-"],
                input=pod,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            ).returncode
            == 0
        )
        wait_until(
            lambda: (
                subprocess.run(
                    [*k, "get", "pod", "p", "-o", "jsonpath={.status.phase}"],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=False,
                ).stdout
                == "Running"
            )
        )
        out = subprocess.run([*k, "exec", "p", "--", "true"], env=env, capture_output=True, text=True, check=False)
        assert out.returncode == 1
        assert out.stderr.strip().endswith("Error from server (BadRequest): Upgrade request required")
        assert os.path.isdir(cluster.state_dir)
