"""The site's one lease with the real kubectl on the API double: ten job pods of a site kept alive past their bound
by one annotate per interval (counted in the site journal), a pod of the site that nobody follows left alone; a
launcher killed with SIGKILL while its job runs: the keeper gives up, the liveness probe stops the job
(`sleep 3600`), and the pod ends Failed with an event that says why."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from localkube.testing import wait_until

from kubectl_launcher.domain.names import JOB_LABEL, MANAGED_BY, MANAGED_BY_LABEL, SITE_LABEL
from kubectl_launcher.kubectl import Kubectl
from kubectl_launcher.kubectl.journal import Journal
from kubectl_launcher.kubectl.purpose import LEASE
from kubectl_launcher.kubectl.replay import JournalEntry, read_journal
from kubectl_launcher.objects.pod_watch import site_selector
from kubectl_launcher.transfer import pod_side
from kubectl_launcher.transfer.pod_side import TransferSettings
from kubectl_launcher.transfer.site_lease import SiteLease
from kubectl_launcher.transfer.workspace import WorkspaceTransfer

pytestmark = pytest.mark.integration

WMP = "/var/tmp/nvflare/workspace"
SITE = "site-lease"
SHORT = {"keep_timeout": 10, "delivery_timeout": 10, "lease_interval": 2, "retry_delay": 0, "progress_interval": 2}


def _labels(job: str) -> dict[str, str]:
    return {MANAGED_BY_LABEL: MANAGED_BY, SITE_LABEL: SITE, JOB_LABEL: job}


def _pod(name: str, job: str, command: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": _labels(job)},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 5,
            "containers": [
                {
                    "name": "main",
                    "image": "nvflare-job:test",
                    "command": command,
                    "volumeMounts": [{"name": "workspace-job", "mountPath": WMP}],
                }
            ],
            "volumes": [{"name": "workspace-job", "emptyDir": {}}],
        },
    }


def _site(tmp_path: Path, jobs: list[str]) -> Path:
    ws = tmp_path / "site"
    (ws / "local").mkdir(parents=True)
    (ws / "local/resources.json").write_text("{}")
    for job in jobs:
        (ws / job).mkdir()
        (ws / job / "meta.json").write_text("{}")
    return ws


def _get(kubectl: Kubectl, *args: str) -> dict[str, Any]:
    found = kubectl.get_json(("get", *args, "--output", "json"))
    assert found is not None
    return found


def _state(pod: dict[str, Any], key: str, name: str) -> dict[str, Any]:
    return pod_side.container_state(pod, key, name)


@pytest.mark.timeout(600)
def test_ten_pods_of_a_site_are_kept_alive_by_one_annotate_per_interval(
    local_cluster: Any, kubectl_path: str, tmp_path: Path
) -> None:
    jobs = [f"job-{i}" for i in range(10)]
    site_journal = Journal(str(tmp_path / "site-journal"))
    kubectl = Kubectl(
        kubeconfig=local_cluster.kubeconfig_path,
        kubectl=kubectl_path,
        cache_dir=local_cluster.cache_dir,
        retries=0,
        journal=site_journal,
    )
    ws = _site(tmp_path, jobs)
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    transfers = []
    for job in jobs:
        transfer = WorkspaceTransfer(str(ws), job, WMP, TransferSettings(**SHORT))
        manifest = _pod(f"pod-{job}", job, ["sleep", "3600"])
        transfer.decorate(manifest, "main")
        (manifests / f"{job}.json").write_text(json.dumps(manifest))
        transfers.append((transfer, manifest))
    orphan = _pod("pod-orphan", "job-orphan", ["sleep", "3600"])  # of the site, followed by nobody
    (manifests / "orphan.json").write_text(json.dumps(orphan))
    kubectl.run(("apply", "-f", str(manifests)))
    for job, (transfer, manifest) in zip(jobs, transfers, strict=True):
        # the first look, before the pod started: it joins the site's lease, starts no step
        transfer.advance(kubectl.for_job(Journal(str(tmp_path / job))), manifest)
    site = SiteLease.for_site(kubectl, site_selector(_labels("x")) or "")
    assert site.jobs() == jobs

    def init_running_for(seconds: float) -> bool:
        pods = _get(kubectl, "pods", "-l", f"{SITE_LABEL}={SITE}")["items"]
        inits = [
            _state(p, "initContainerStatuses", pod_side.INIT_CONTAINER)
            for p in pods
            if p["metadata"]["name"] != "pod-orphan"
        ]
        assert not any("terminated" in s for s in inits), inits  # none gave up: their lease is alive
        return len(inits) == 10 and site.renewals >= seconds / SHORT["lease_interval"]

    # twice the init containers' bound (10 s without word): without the site's lease they would all have failed
    wait_until(lambda: init_running_for(2 * SHORT["delivery_timeout"]), timeout=300, interval=1)
    for transfer, _ in transfers:
        transfer.close()
    assert not site.running

    entries = [e for e in read_journal(site_journal.jsonl_path) if isinstance(e, JournalEntry)]
    leases = [e for e in entries if e.data.get("purpose") == LEASE]
    assert len(leases) == site.renewals  # one kubectl per renewal, for all ten pods
    selector = f"{site.selector},{JOB_LABEL} in ({','.join(jobs)})"
    assert all(selector in e.argv for e in leases)
    assert not any("exec" in e.argv for e in entries)  # no exec per pod: nothing was delivered, nothing renewed so
    assert not any((tmp_path / job).exists() for job in jobs)  # the jobs' journals got nothing: the site's lease
    pod = _get(kubectl, "pod", "pod-job-3")
    word = pod["metadata"]["annotations"][pod_side.LEASE_ANNOTATION]
    shown = kubectl.run(("exec", "pod-job-3", "-c", pod_side.INIT_CONTAINER, "--", "cat", pod_side.LEASE_FILE))
    assert pod_side.lease_word(shown.stdout) == f'"{word}"'  # the init container reads the last word
    assert pod_side.LEASE_ANNOTATION not in (_get(kubectl, "pod", "pod-orphan")["metadata"].get("annotations") or {})


CHILD = r"""
import json, sys, time
from kubectl_launcher.kubectl import Kubectl
from kubectl_launcher.transfer.pod_side import TransferSettings, container_state
from kubectl_launcher.transfer.workspace import WorkspaceTransfer
kubeconfig, binary, cache, ws, job, manifest_path, settings = sys.argv[1:8]
kubectl = Kubectl(kubeconfig=kubeconfig, kubectl=binary, cache_dir=cache, retries=0)
transfer = WorkspaceTransfer(ws, job, "/var/tmp/nvflare/workspace", TransferSettings(**json.loads(settings)))
manifest = json.load(open(manifest_path))
transfer.decorate(manifest, "main")
json.dump(manifest, open(manifest_path, "w"))
kubectl.run(("apply", "-f", manifest_path))
said = False
while True:
    pod = kubectl.get_json(("get", "pod", manifest["metadata"]["name"], "--output", "json"))
    transfer.advance(kubectl, pod)
    if not said and transfer.delivered and "running" in container_state(pod, "containerStatuses", "main"):
        print("running", flush=True)
        said = True
    time.sleep(0.5)
"""


@pytest.mark.timeout(600)
def test_a_launcher_killed_while_its_job_runs_leaves_a_pod_that_ends_failed_by_itself(
    local_cluster: Any, kubectl_path: str, tmp_path: Path
) -> None:
    job = "job-orphaned"
    ws = _site(tmp_path, [job])
    manifest = tmp_path / "pod.json"
    manifest.write_text(json.dumps(_pod("pod-orphaned", job, ["sleep", "3600"])))
    argv = [sys.executable, "-c", CHILD, local_cluster.kubeconfig_path, kubectl_path, local_cluster.cache_dir]
    argv += [str(ws), job, str(manifest), json.dumps(SHORT)]
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "running", "the launcher never saw its job running"
        child.send_signal(signal.SIGKILL)  # the launcher dies: nobody renews the lease, nobody collects
        child.wait(timeout=60)
        died = time.monotonic()
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
        if child.stdout is not None:
            child.stdout.close()
    kubectl = Kubectl(
        kubeconfig=local_cluster.kubeconfig_path, kubectl=kubectl_path, cache_dir=local_cluster.cache_dir, retries=0
    )
    probe = pod_side.lapse_probe(TransferSettings(**SHORT))
    # the keeper's bound, then failureThreshold probe periods, then the grace: a bound on the wait, not a target
    bound = SHORT["keep_timeout"] + probe["periodSeconds"] * (probe["failureThreshold"] + 1) + 5 + 60
    pod = wait_until(
        lambda: (p := _get(kubectl, "pod", "pod-orphaned"))["status"].get("phase") == "Failed" and p,
        timeout=bound,
        interval=1,
    )
    print(f"figure: the orphaned pod ended {time.monotonic() - died:.1f}s after its launcher was killed")
    main = _state(pod, "containerStatuses", "main")["terminated"]
    keeper = _state(pod, "containerStatuses", pod_side.KEEPER_CONTAINER)["terminated"]
    assert main["exitCode"] in (137, 143) and keeper["exitCode"] == 0
    events = _get(kubectl, "events", "--field-selector", "involvedObject.name=pod-orphaned")["items"]
    said = {(e["reason"], e["message"]) for e in events}
    why = f"Liveness probe failed: no word from the launcher for {SHORT['keep_timeout']}s: its lease lapsed\n"
    assert ("Unhealthy", why) in said
    assert ("Killing", "Container main failed liveness probe") in said
