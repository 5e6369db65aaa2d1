"""Pod Security admission with an actual launch, judged by kube-apiserver's own PodSecurity plugin: in a
namespace that enforces `restricted`, a launch with restricted security contexts is admitted (our init and
keeper containers included) and its job runs to success; a launch that cannot be admitted ends at once with
the apiserver's message and leaves nothing behind."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from nvflare.apis.job_launcher_spec import JobReturnCode

from kubectl_launcher.domain.names import (
    JOB_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    credential_secret_name,
    site_name_to_rfc1123,
)
from kubectl_launcher.domain.pod_security import transfer_container_context
from kubectl_launcher.transfer.pod_side import INIT_CONTAINER, KEEPER_CONTAINER
from tests.integration.test_launcher_pods import SITE, Site, module_source
from tests.realcp.conftest import Kubectl

pytestmark = pytest.mark.real_control_plane

RESTRICTED_POD = {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}}
RESTRICTED_CONTAINER = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
#: a long pending timeout: a refused launch must end on the apiserver's answer, not on a timer
PENDING_TIMEOUT = 600


def restricted_namespace(k: Kubectl, name: str) -> None:
    """As an admin would: the namespace, labelled to enforce restricted (set-up only)."""
    assert k("create", "namespace", name).returncode == 0
    labelled = k("label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted")
    assert labelled.returncode == 0, labelled.stderr


def ours_in(k: Kubectl, kind: str, namespace: str) -> list[dict[str, Any]]:
    got = k("get", kind, "-n", namespace, "--selector", f"{MANAGED_BY_LABEL}={MANAGED_BY}", "-o", "json")
    assert got.returncode == 0, got.stderr
    items: list[dict[str, Any]] = json.loads(got.stdout)["items"]
    return items


def test_a_restricted_launch_is_admitted_and_its_job_runs(
    real_cluster: Any, k: Kubectl, kubectl_137: str, tmp_path: Path
) -> None:
    restricted_namespace(k, "psa-admitted")
    site = Site(tmp_path / "site-1", real_cluster, module_source(0), kubectl_137)
    launcher = site.launcher(
        namespace="psa-admitted",
        security_context=RESTRICTED_POD,
        container_security_context=RESTRICTED_CONTAINER,
        pending_timeout=PENDING_TIMEOUT,
    )
    handle = launcher.launch_job(site.meta(), site.ctx())
    pod = json.loads(k("get", "pod", site.pod, "-n", "psa-admitted", "-o", "json").stdout)
    handle.wait()
    assert handle.poll() == JobReturnCode.SUCCESS
    assert site.ran()["token_ok"] is True  # the job module ran in the pod, with its workspace delivered
    spec = pod["spec"]
    contexts = {c["name"]: c.get("securityContext") for c in spec["initContainers"] + spec["containers"]}
    assert contexts.pop(INIT_CONTAINER) == contexts.pop(KEEPER_CONTAINER) == transfer_container_context(None)
    assert list(contexts.values()) == [RESTRICTED_CONTAINER]  # the job container
    assert spec["securityContext"] == RESTRICTED_POD


def test_a_launch_restricted_cannot_admit_fails_at_once_with_the_apiservers_message_and_leaves_nothing(
    real_cluster: Any, k: Kubectl, kubectl_137: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    restricted_namespace(k, "psa-refused")
    site = Site(tmp_path / "site-1", real_cluster, module_source(0), kubectl_137)
    # the pod's context alone: the job container still allows privilege escalation and keeps its capabilities
    launcher = site.launcher(namespace="psa-refused", security_context=RESTRICTED_POD, pending_timeout=PENDING_TIMEOUT)
    with caplog.at_level(logging.ERROR):
        handle = launcher.launch_job(site.meta(), site.ctx())
    assert handle.poll() == JobReturnCode.EXCEPTION
    said = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    assert 'violates PodSecurity "restricted:latest"' in said, said
    assert "allowPrivilegeEscalation != false" in said and "unrestricted capabilities" in said, said
    assert INIT_CONTAINER not in said.split("violates PodSecurity", 1)[1]  # only the job container is named
    assert ours_in(k, "pods", "psa-refused") == []
    # the launch's own credential Secret is deleted again; the site's startup-kit Secret is the site's, shared
    # by its launches (launch.Launch), and carries no job label
    left = ours_in(k, "secrets", "psa-refused")
    assert [s["metadata"]["name"] for s in left if JOB_LABEL in s["metadata"]["labels"]] == []
    assert [s["metadata"]["name"] for s in left] == [f"nvflare-startup-{site_name_to_rfc1123(SITE)}"]
    assert k("get", "secret", credential_secret_name(site.pod), "-n", "psa-refused").returncode == 1
