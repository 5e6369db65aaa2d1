"""The workspace transfer with the real kubectl against the local API double (pods are local processes)."""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from nvflare.apis.job_launcher_spec import JobReturnCode

from kubectl_launcher.errors import TransferError, UnsafeArchiveError
from kubectl_launcher.handle import K8sJobHandle
from kubectl_launcher.kubectl import Kubectl
from kubectl_launcher.kubectl.journal import Journal
from kubectl_launcher.kubectl.runner import Runner
from kubectl_launcher.transfer import pod_side
from kubectl_launcher.transfer.pod_side import TransferSettings
from kubectl_launcher.transfer.workspace import WorkspaceTransfer
from tests.support.trees import snapshot as _tree

pytestmark = pytest.mark.integration

WMP = "/var/tmp/nvflare/workspace"
JOB = "9d2c7a51-4b3e-4f0a-8c6d-1e2f3a4b5c6d"
POD = "transfer-test"
#: longer than any step here takes on a loaded machine (a bound, never waited out when all is well)
STEP_DONE_WITHIN = 600.0
SHORT = {"keep_timeout": 10, "delivery_timeout": 10, "lease_interval": 2, "retry_delay": 0, "progress_interval": 2}


def _site(tmp_path: Path) -> Path:
    ws = tmp_path / "site"
    (ws / "local").mkdir(parents=True)
    (ws / "local/resources.json").write_text('{"format_version": 2, "components": []}')
    (ws / "local/study_data.yaml").write_text("stays on the site")
    (ws / JOB / "app_site-1/config").mkdir(parents=True)
    (ws / JOB / "app_site-1/config/config_fed_client.json").write_text('{"format_version": 2}')
    (ws / JOB / "meta.json").write_text('{"name": "transfer"}')
    (ws / JOB / "kubectl-launcher").mkdir()
    (ws / JOB / "kubectl-launcher/manifest.json").write_text("the launcher's own")
    return ws


def _pod(script: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": POD},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "main",
                    "image": "nvflare-job:test",
                    "command": ["sh", "-c", script, "job", WMP, JOB],
                    "volumeMounts": [{"name": "workspace-job", "mountPath": WMP}],
                }
            ],
            "volumes": [{"name": "workspace-job", "emptyDir": {}}],
        },
    }


class Run:
    """One pod created from a manifest decorated by the transfer, and a loop that plays the handle."""

    def __init__(
        self,
        cluster: Any,
        kubectl_path: str,
        tmp_path: Path,
        ws: Path,
        script: str,
        *,
        journal: Journal | None = None,
        runner: Runner | None = None,
        tweak: Callable[[dict[str, Any]], None] | None = None,
        **settings: Any,
    ):
        # runner: the real one unless a test wraps it (still the real kubectl); tweak: the decorated pod
        self.kubectl = Kubectl(
            kubeconfig=cluster.kubeconfig_path,
            kubectl=kubectl_path,
            cache_dir=cluster.cache_dir,
            retries=0,
            journal=journal,
            runner=runner,
        )
        # each look waits for the step it starts: these tests play the handle one look at a time
        self.transfer = WorkspaceTransfer(
            str(ws), JOB, WMP, TransferSettings(**{**SHORT, **settings}), advance_wait=STEP_DONE_WITHIN
        )
        manifest = _pod(script)
        self.transfer.decorate(manifest, "main")
        if tweak is not None:
            tweak(manifest)
        path = tmp_path / "pod.json"
        path.write_text(json.dumps(manifest))
        self.kubectl.run(("apply", "-f", str(path)))

    def pod(self) -> dict[str, Any]:
        found = self.kubectl.get_json(("get", "pod", POD, "--output", "json"))
        assert found is not None
        return found

    def until(
        self, done: Callable[[dict[str, Any]], bool], *, advance: bool = True, limit: float = 240
    ) -> dict[str, Any]:
        deadline = time.monotonic() + limit
        while True:
            pod = self.pod()
            if done(pod):
                return pod
            if advance:
                self.transfer.advance(self.kubectl, pod)
            assert time.monotonic() < deadline, f"pod never got there: {json.dumps(pod.get('status'))[:2000]}"
            time.sleep(0.5)


def _ended(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    status = pod.get("status") or {}
    for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        if cs["name"] == name:
            return dict(cs.get("state") or {})
    return {}


# The job: checks that its local/ config and app arrived (and what must not arrive did not), then moves
# its input to results/ and writes a few results of its own. Exit code 3 must come back as the job's.
JOB_SCRIPT = r"""
set -e
ws=$1 job=$2
test -f "$ws/local/resources.json" || exit 10
test -f "$ws/$job/app_site-1/config/config_fed_client.json" || exit 11
test ! -e "$ws/local/study_data.yaml" || exit 12
test ! -e "$ws/$job/kubectl-launcher" || exit 13
mkdir -p "$ws/$job/results/empty result dir"
cat "$ws/local/resources.json" > "$ws/$job/results/seen resources.json"
mv "$ws/$job/input" "$ws/$job/results/input"
printf 'done ✓\n' > "$ws/$job/results/résumé.txt"
exit 3
"""


@pytest.mark.timeout(900)
def test_a_job_gets_its_workspace_and_its_results_come_back_byte_identical(
    local_cluster: Any, kubectl_path: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ws = _site(tmp_path)
    inp = ws / JOB / "input"
    (inp / "dïr with spaces/ünïcödé ñame.txt").parent.mkdir(parents=True)
    (inp / "dïr with spaces/ünïcödé ñame.txt").write_text("grüße\n", encoding="utf-8")
    (inp / "empty folder/empty inside").mkdir(parents=True)
    with open(inp / "big 200MB.bin", "wb") as f:
        for _ in range(200):
            f.write(os.urandom(1_000_000))
    small = inp / "many"
    small.mkdir()
    for i in range(10_000):
        (small / f"f{i:05d}.txt").write_bytes(f"small file {i}\n".encode() * (i % 7))
    original = _tree(inp)

    caplog.set_level(logging.INFO, logger="kubectl_launcher.transfer")
    # generous bounds: this test is about byte identity, and a loaded machine copies 200 MB slowly
    run = Run(local_cluster, kubectl_path, tmp_path, ws, JOB_SCRIPT, delivery_timeout=900, keep_timeout=900)
    pod = run.until(_ended, limit=900)

    assert run.transfer.delivered and run.transfer.collected and run.transfer.finished
    assert _container(pod, "main")["terminated"]["exitCode"] == 3  # the job's own code survives
    assert _container(pod, pod_side.KEEPER_CONTAINER)["terminated"]["exitCode"] == 0
    results = ws / JOB / "results"
    assert _tree(results / "input") == original
    assert (results / "résumé.txt").read_text(encoding="utf-8") == "done ✓\n"
    assert (results / "seen resources.json").read_text() == '{"format_version": 2, "components": []}'
    assert (results / "empty result dir").is_dir() and not any((results / "empty result dir").iterdir())
    assert (ws / JOB / "kubectl-launcher/manifest.json").read_text() == "the launcher's own"
    assert sorted(os.listdir(ws / JOB / "kubectl-launcher")) == ["manifest.json"]
    assert any("delivered the workspace" in r.getMessage() for r in caplog.records)
    assert any("collected the results" in r.getMessage() for r in caplog.records)


HOSTILE_SCRIPT = r"""
ws=$1 job=$2
mkdir -p "$ws/$job/results/d"
echo fine > "$ws/$job/results/fine.txt"
ln -s /etc/passwd "$ws/$job/results/passwd"
"""


def test_results_holding_a_symlink_to_etc_passwd_are_refused_and_the_pod_is_kept(
    local_cluster: Any, kubectl_path: str, tmp_path: Path
) -> None:
    ws = _site(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("untouched")
    before_outside = _tree(tmp_path / "outside")
    before_ws = {k: v for k, v in _tree(ws).items() if not k.startswith(JOB)}
    before_job = _tree(ws / JOB)
    run = Run(local_cluster, kubectl_path, tmp_path, ws, HOSTILE_SCRIPT)
    with pytest.raises(TransferError) as err:
        run.until(lambda pod: False)
    assert isinstance(err.value.__cause__, UnsafeArchiveError)
    assert "passwd" in str(err.value)
    after_job = _tree(ws / JOB)
    assert after_job.pop("kubectl-launcher/recover-results.sh")
    assert after_job == before_job
    assert {k: v for k, v in _tree(ws).items() if not k.startswith(JOB)} == before_ws
    assert _tree(tmp_path / "outside") == before_outside
    pod = run.pod()
    assert "running" in _container(pod, pod_side.KEEPER_CONTAINER)  # kept for a human to look at


@pytest.mark.double_only
def test_a_collection_that_fails_keeps_the_pod_and_the_printed_command_recovers_the_results(
    local_cluster: Any, kubectl_path: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ws = _site(tmp_path)
    script = 'mkdir -p "$1/$2/results" && echo "precious ✓" > "$1/$2/results/model.txt"'
    run = Run(local_cluster, kubectl_path, tmp_path, ws, script, attempts=2, keep_timeout=60)
    run.until(lambda pod: "terminated" in _container(pod, "main"))
    local_cluster.faults.api_errors(500, paths=[f"/api/v1/namespaces/default/pods/{POD}/exec"])
    with pytest.raises(TransferError) as err:
        run.transfer.advance(run.kubectl, run.pod())
    local_cluster.faults.clear()
    command = run.transfer.recovery_command
    assert command is not None and command in str(err.value)
    assert any(command in r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    assert command in (ws / JOB / "kubectl-launcher/recover-results.sh").read_text()
    assert not (ws / JOB / "results").exists()
    assert "running" in _container(run.pod(), pod_side.KEEPER_CONTAINER)

    argv = shlex.split(command)
    assert argv[0] == kubectl_path
    env = {**os.environ, "KUBECACHEDIR": local_cluster.cache_dir, "KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "true"}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert (Path(f"{ws}/{JOB}-results") / "results/model.txt").read_text() == "precious ✓\n"


def test_a_launcher_that_stops_leaves_a_pod_that_ends_by_itself(
    local_cluster: Any, kubectl_path: str, tmp_path: Path
) -> None:
    ws = _site(tmp_path)
    run = Run(local_cluster, kubectl_path, tmp_path, ws, "sleep 1")
    run.until(lambda pod: run.transfer.delivered)
    # the launcher is gone: nobody calls advance any more, so no lease, no collection, no release
    pod = run.until(_ended, advance=False, limit=120)
    keeper = _container(pod, pod_side.KEEPER_CONTAINER)["terminated"]
    assert keeper["exitCode"] == 0
    assert _container(pod, "main")["terminated"]["exitCode"] == 0
    assert "no word from the launcher" in run.kubectl.run(
        ("logs", POD, "--container", pod_side.KEEPER_CONTAINER)
    ).stdout + str(keeper.get("message", ""))


def test_a_pod_whose_workspace_never_comes_fails_by_itself(
    local_cluster: Any, kubectl_path: str, tmp_path: Path
) -> None:
    ws = _site(tmp_path)
    run = Run(local_cluster, kubectl_path, tmp_path, ws, "exit 0")
    pod = run.until(_ended, advance=False, limit=120)
    init = _container(pod, pod_side.INIT_CONTAINER)["terminated"]
    assert init["exitCode"] == 1
    assert "main" in json.dumps(pod["status"]) and "terminated" not in _container(pod, "main")
    with pytest.raises(TransferError, match="ended with exit code 1 before the workspace was delivered"):
        run.transfer.advance(run.kubectl, pod)


def test_through_the_handle_the_job_return_code_is_the_main_containers_and_results_are_in_place(
    local_cluster: Any, kubectl_path: str, tmp_path: Path
) -> None:
    ws = _site(tmp_path)
    kubectl = Kubectl(kubeconfig=local_cluster.kubeconfig_path, kubectl=kubectl_path, cache_dir=local_cluster.cache_dir)
    t = WorkspaceTransfer(str(ws), JOB, WMP, TransferSettings(**SHORT))
    job_config: dict[str, Any] = {
        "name": POD,
        "image": "local/python:3.11",
        "container_name": "job",
        "command": "unused",
        "volume_list": [{"name": "workspace-job", "emptyDir": {}}],
        "volume_mount_list": [{"name": "workspace-job", "mountPath": WMP}],
    }
    handle = K8sJobHandle(POD, kubectl, job_config, python_path=sys.executable, workspace_transfer=t, poll_interval=0.5)
    manifest = handle.get_manifest()
    script = (
        "import os, pathlib, sys; ws, job = sys.argv[1:3]; "
        "cfg = pathlib.Path(ws, job, 'app_site-1/config/config_fed_client.json').read_text(); "
        "out = pathlib.Path(ws, job, 'results'); out.mkdir(); (out / 'cfg copy.json').write_text(cfg); "
        "sys.exit(0)"
    )
    manifest["spec"]["containers"][0]["args"] = ["-c", script, WMP, JOB]
    kubectl.run(("create", "--filename", "-", "--validate=false"), stdin=json.dumps(manifest))
    handle.wait()
    assert handle.poll() == JobReturnCode.SUCCESS
    assert t.collected
    assert (ws / JOB / "results/cfg copy.json").read_text() == '{"format_version": 2}'
