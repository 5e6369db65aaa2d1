"""`status`, `logs`, `terminate` and the kubectl plugin through the real kubectl on the double, with the
pods of one job at two sites (created with the labels and annotations every launch gives its pods)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from localkube.testing import kubectl_env, wait_until

from kubectl_launcher import cli
from kubectl_launcher.domain.manifest import build_secret_manifest
from kubectl_launcher.domain.names import credential_secret_name, job_pod_name, managed_labels, uuid4_to_rfc1123
from kubectl_launcher.domain.plan import NVFLARE_JOB_ID_ANNOTATION, SITE_ANNOTATION
from localkube import LocalCluster

pytestmark = pytest.mark.integration

SITES = ("site-1", "site-2")


def job_pod(job_id: str, site: str, *, exit_code: int = 0) -> dict[str, Any]:
    script = f"print('hello from {site}'); raise SystemExit({exit_code})"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": job_pod_name(uuid4_to_rfc1123(job_id), site),
            "labels": managed_labels(site, job_id),
            "annotations": {NVFLARE_JOB_ID_ANNOTATION: job_id, SITE_ANNOTATION: site},
        },
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {"name": "job", "image": "localhost/test/python:3.11", "command": [sys.executable, "-c", script]}
            ],
        },
    }


@pytest.fixture
def job(local_cluster: LocalCluster) -> str:
    """One job's pods at two sites, both ended, and site-2's credential Secret."""
    job_id = str(uuid.uuid4())
    for site in SITES:
        local_cluster.create("pods", job_pod(job_id, site))
    names = [job_pod_name(uuid4_to_rfc1123(job_id), s) for s in SITES]
    secret = build_secret_manifest(
        credential_secret_name(names[1]), "default", {"K": b"v"}, managed_labels("site-2", job_id)
    )
    local_cluster.create("secrets", secret)
    for name in names:
        wait_until(
            lambda name=name: ((local_cluster.get("pods", name) or {}).get("status") or {}).get("phase") == "Succeeded"
        )
    return job_id


def base(cluster: LocalCluster, kubectl: str, tmp_path: Path) -> list[str]:
    return ["--kubeconfig", cluster.kubeconfig_path, "--kubectl", kubectl, "--journal", str(tmp_path / "j")]


def test_status_json_lists_both_sites_job_pods_with_their_state(
    local_cluster: LocalCluster, job: str, kubectl_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["status", *base(local_cluster, kubectl_path, tmp_path), "-o", "json"]) == 0
    items = json.loads(capsys.readouterr().out)["items"]
    assert sorted((i["job_id"], i["site"], i["phase"], i["state"]) for i in items) == [
        (job, "site-1", "Succeeded", "SUCCEEDED"),
        (job, "site-2", "Succeeded", "SUCCEEDED"),
    ]
    assert cli.main(["status", *base(local_cluster, kubectl_path, tmp_path), "--site", "site-2", "-o", "json"]) == 0
    assert [i["site"] for i in json.loads(capsys.readouterr().out)["items"]] == ["site-2"]


def test_logs_shows_the_jobs_output_prefixed_by_site_and_container(
    local_cluster: LocalCluster, job: str, kubectl_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["logs", job, *base(local_cluster, kubectl_path, tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sorted(lines) == ["site-1/job hello from site-1", "site-2/job hello from site-2"]
    assert cli.main(["logs", str(uuid.uuid4()), *base(local_cluster, kubectl_path, tmp_path)]) == 1


def test_terminate_deletes_the_jobs_pods_and_its_secret_but_nothing_else(
    local_cluster: LocalCluster, job: str, kubectl_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = str(uuid.uuid4())
    local_cluster.create("pods", job_pod(other, "site-1"))
    assert cli.main(["terminate", job, *base(local_cluster, kubectl_path, tmp_path)]) == 0
    printed = capsys.readouterr().out.splitlines()
    names = [job_pod_name(uuid4_to_rfc1123(job), s) for s in SITES]
    assert sorted(printed) == sorted(
        [f"pod/{n} deleted" for n in names] + [f"secret/{credential_secret_name(names[1])} deleted"]
    )
    wait_until(lambda: all(local_cluster.get("pods", n) is None for n in names))
    assert local_cluster.get("pods", job_pod_name(uuid4_to_rfc1123(other), "site-1")) is not None
    assert cli.main(["terminate", job, *base(local_cluster, kubectl_path, tmp_path)]) == 1


def test_kubectl_nvflare_status_runs_as_a_kubectl_plugin(
    local_cluster: LocalCluster, job: str, kubectl_path: str, tmp_path: Path
) -> None:
    plugin_dir = Path(sys.executable).parent
    assert (plugin_dir / "kubectl-nvflare").exists(), "pip install -e . puts kubectl-nvflare beside python"
    env = kubectl_env(
        local_cluster, {"PATH": f"{plugin_dir}{os.pathsep}{Path(kubectl_path).parent}{os.pathsep}/usr/bin:/bin"}
    )
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    run = subprocess.run(
        [kubectl_path, "nvflare", "status", "--kubeconfig", local_cluster.kubeconfig_path, "-o", "json"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert sorted(i["site"] for i in json.loads(run.stdout)["items"]) == list(SITES)
    assert (tmp_path / "state" / "kubectl-launcher" / "cli.jsonl").exists()
    usage = subprocess.run(
        [kubectl_path, "nvflare", "status", "--help"], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert usage.stdout.startswith("usage: kubectl nvflare status")


def test_cleanup_shows_its_plan_then_removes_ended_jobs_pods_and_orphan_secrets_and_nothing_else(
    local_cluster: LocalCluster,
    job: str,
    kubectl_path: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    running = str(uuid.uuid4())
    alive = job_pod(running, "site-1")
    alive["spec"]["containers"][0]["command"] = ["sleep", "3600"]
    local_cluster.create("pods", alive)
    orphan = credential_secret_name(job_pod_name(uuid4_to_rfc1123(str(uuid.uuid4())), "site-1"))
    local_cluster.create(
        "secrets", build_secret_manifest(orphan, "default", {"K": b"v"}, managed_labels("site-1", "x"))
    )
    local_cluster.create("secrets", build_secret_manifest("someone-elses", "default", {"K": b"v"}, {"app": "other"}))
    names = [job_pod_name(uuid4_to_rfc1123(job), s) for s in SITES]
    planned = sorted([f"pod {n}" for n in names] + [f"secret {orphan}", f"secret {credential_secret_name(names[1])}"])
    args = ["cleanup", "--older-than", "0s", *base(local_cluster, kubectl_path, tmp_path)]

    assert cli.main([*args, "--dry-run"]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert sorted(" ".join(line.split()[:2]) for line in shown[1:]) == planned  # below the header row
    assert all(local_cluster.get("pods", n) is not None for n in names)  # a dry run deletes nothing

    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # no answer at the prompt: nothing is deleted
    assert cli.main(args) == 0
    assert local_cluster.get("secrets", orphan) is not None

    assert cli.main([*args, "--yes"]) == 0
    wait_until(lambda: all(local_cluster.get("pods", n) is None for n in names))
    assert local_cluster.get("secrets", orphan) is None
    assert local_cluster.get("pods", job_pod_name(uuid4_to_rfc1123(running), "site-1")) is not None  # still running
    assert local_cluster.get("secrets", "someone-elses") is not None  # not ours: never touched
