"""`kubectl-launcher doctor` through the real kubectl on the API double: healthy, a permission denied, a
missing namespace, an unreachable server."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Any

import pytest

from kubectl_launcher import cli
from localkube import LocalCluster

pytestmark = pytest.mark.integration


def doctor(
    capsys: pytest.CaptureFixture[str], kubectl: str, kubeconfig: str, tmp_path: Path, *extra: str
) -> tuple[int, dict[str, Any]]:
    code = cli.main(
        [
            "doctor",
            "--kubeconfig",
            kubeconfig,
            "--kubectl",
            kubectl,
            "--journal",
            str(tmp_path / "j"),
            "-o",
            "json",
            *extra,
        ]
    )
    return code, json.loads(capsys.readouterr().out)


def by_name(report: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {check["name"]: check for check in report["checks"]}


def test_doctor_exits_0_on_a_healthy_set_up(
    local_cluster: LocalCluster, kubectl_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = doctor(capsys, kubectl_path, local_cluster.kubeconfig_path, tmp_path, "--site", "site-1")
    assert code == 0, report
    checks = by_name(report)
    assert report["ok"] is True
    assert {"kubectl", "kubeconfig", "API server", "namespace", "permission pods/exec", "pod security"} <= set(checks)
    assert checks["startup-kit Secret"]["found"].endswith("absent: the first launch creates it")
    # Every command went to the CLI's own journal, tagged with its purpose.
    entries = [json.loads(line) for line in (tmp_path / "j" / "cli.jsonl").read_text().splitlines() if line.strip()]
    assert any("can-i" in e.get("argv", []) and e.get("purpose") == "setup" for e in entries)


@pytest.mark.double_only
def test_doctor_exits_1_naming_pods_exec_when_that_permission_is_denied(
    local_cluster: LocalCluster, kubectl_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    local_cluster.faults.deny("create", "pods/exec")
    code, report = doctor(capsys, kubectl_path, local_cluster.kubeconfig_path, tmp_path)
    assert code == 1
    errors = [c for c in report["checks"] if c["severity"] == "error"]
    assert [c["name"] for c in errors] == ["permission pods/exec"]
    assert "create pods/exec" in errors[0]["found"]
    assert "resources: [pods/exec], verbs: [get, create]" in errors[0]["fix"]
    assert by_name(report)["permission pods"]["severity"] == "ok"


def test_doctor_reports_a_missing_namespace_with_the_command_that_creates_it(
    local_cluster: LocalCluster, kubectl_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = doctor(capsys, kubectl_path, local_cluster.kubeconfig_path, tmp_path, "-n", "nvflare-missing")
    assert code == 1
    check = by_name(report)["namespace"]
    assert check["severity"] == "error"
    assert "nvflare-missing does not exist" in check["found"]
    assert check["fix"].startswith("kubectl create namespace nvflare-missing")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_doctor_reports_an_unreachable_server_and_stops_there(
    local_cluster: LocalCluster, kubectl_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = Path(local_cluster.kubeconfig_path).read_text()
    dead = tmp_path / "dead-kubeconfig"
    dead.write_text(re.sub(r"server: \S+", f"server: https://127.0.0.1:{_closed_port()}", text))
    code, report = doctor(capsys, kubectl_path, str(dead), tmp_path, "--request-timeout", "5")
    assert code == 1
    checks = by_name(report)
    assert checks["kubectl"]["severity"] == "ok"
    assert checks["API server"]["severity"] == "error"
    assert "not reachable" in checks["API server"]["found"]
    assert "permission pods" not in checks  # nothing more was asked of a server that is not there


def test_doctor_reads_the_site_settings_and_flags_a_missing_pull_secret(
    local_cluster: LocalCluster, kubectl_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "site-1"
    (site / "local").mkdir(parents=True)
    args = {
        "config_file_path": local_cluster.kubeconfig_path,
        "kubectl": kubectl_path,
        "image_pull_secrets": ["regcred"],
    }
    component = {"id": "k8s_launcher", "path": "kubectl_launcher.ClientK8sJobLauncher", "args": args}
    (site / "local" / "resources.json").write_text(json.dumps({"components": [component]}))
    code = cli.main(["doctor", "--site-workspace", str(site), "--journal", str(tmp_path / "j"), "-o", "json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    checks = by_name(report)
    assert checks["site settings"]["severity"] == "ok"
    assert checks["image pull secret regcred"]["severity"] == "error"
