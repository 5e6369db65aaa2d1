"""Restricted Pod Security from the launcher's side (pure): our init and keeper containers are hardened
whatever the job asks for, the job container gets its own securityContext only from
`container_security_context`, bad values are refused naming the field, and doctor names the argument to set."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from kubectl_launcher.cli import checks
from kubectl_launcher.domain import validate
from kubectl_launcher.domain.manifest import build_pod_manifest
from kubectl_launcher.domain.pod_security import transfer_container_context, violations
from kubectl_launcher.domain.validate import InvalidLaunch
from kubectl_launcher.transfer.pod_side import INIT_CONTAINER, KEEPER_CONTAINER, TransferSettings, decorate_pod
from tests.unit.test_launcher import POD, FakeCluster, job_meta, make_ctx, make_launcher, site  # noqa: F401

WMP = "/var/tmp/nvflare/workspace"
RESTRICTED_POD = {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}}
RESTRICTED_CONTAINER = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def job_config(**extra: Any) -> dict[str, Any]:
    return {
        "name": "p",
        "image": "registry.example/nvflare-job:2.9",
        "command": "nvflare.private.fed.app.client.worker_process",
        "container_name": "main",
        "volume_list": [{"name": "ws", "emptyDir": {}}],
        "volume_mount_list": [{"name": "ws", "mountPath": WMP}],
        **extra,
    }


def decorated(config: dict[str, Any]) -> dict[str, Any]:
    pod = build_pod_manifest(config, python_path="/usr/bin/python3")
    decorate_pod(pod, "main", WMP, TransferSettings())
    return pod


def ours(pod: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod["spec"]
    return [c for c in spec["initContainers"] + spec["containers"] if c["name"] in (INIT_CONTAINER, KEEPER_CONTAINER)]


def test_our_containers_drop_every_privilege_the_job_container_asks_for() -> None:
    main = {"privileged": True, "capabilities": {"add": ["SYS_ADMIN"]}, "runAsUser": 0, "readOnlyRootFilesystem": True}
    assert transfer_container_context(main) == {
        "runAsUser": 0,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def test_our_containers_run_as_the_job_containers_user() -> None:
    main = {"runAsUser": 1000, "runAsGroup": 100, "runAsNonRoot": True, "allowPrivilegeEscalation": True}
    context = transfer_container_context(main)
    assert {k: context[k] for k in ("runAsUser", "runAsGroup", "runAsNonRoot")} == {
        "runAsUser": 1000,
        "runAsGroup": 100,
        "runAsNonRoot": True,
    }
    assert context["allowPrivilegeEscalation"] is False
    assert transfer_container_context(None)["capabilities"] == {"drop": ["ALL"]}


def test_decorated_pod_hardens_init_and_keeper_even_without_any_security_context() -> None:
    pod = decorated(job_config())
    assert [c["securityContext"] for c in ours(pod)] == [transfer_container_context(None)] * 2
    assert "securityContext" not in pod["spec"]["containers"][0]  # upstream's job container, unchanged


def test_with_both_contexts_the_whole_decorated_pod_meets_restricted() -> None:
    pod = decorated(job_config(security_context=RESTRICTED_POD, container_security_context=RESTRICTED_CONTAINER))
    assert violations(pod, "restricted") == []
    assert pod["spec"]["containers"][0]["securityContext"] == RESTRICTED_CONTAINER


def test_with_the_pod_context_only_the_job_container_alone_is_refused_by_restricted() -> None:
    found = violations(decorated(job_config(security_context=RESTRICTED_POD)), "restricted")
    assert found == [
        "container 'main': securityContext.allowPrivilegeEscalation must be false",
        "container 'main': securityContext.capabilities.drop must include ALL",
    ]


def test_the_container_context_is_copied_not_shared() -> None:
    config = job_config(container_security_context=copy.deepcopy(RESTRICTED_CONTAINER))
    pod = build_pod_manifest(config, python_path="/usr/bin/python3")
    pod["spec"]["containers"][0]["securityContext"]["privileged"] = True
    assert "privileged" not in config["container_security_context"]


@pytest.mark.parametrize(
    "value, words",
    [
        ("root", "= 'root' is not a container security context"),
        ({"fsGroup": 1000}, "has fields a container security context does not know: fsGroup"),
    ],
)
def test_a_bad_container_security_context_names_the_argument(value: object, words: str) -> None:
    with pytest.raises(InvalidLaunch, match=words):
        validate.container_security_context(value, "the launcher's container_security_context argument")
    assert validate.container_security_context(RESTRICTED_CONTAINER, "x") == RESTRICTED_CONTAINER


def test_a_bad_container_security_context_is_refused_before_any_kubectl_command(site: Path) -> None:  # noqa: F811
    cluster = FakeCluster()
    launcher = make_launcher(cluster, site, container_security_context={"fsGroup": 1})
    with pytest.raises(InvalidLaunch, match="the launcher's container_security_context argument has fields"):
        launcher.launch_job(job_meta(), make_ctx(site))
    assert cluster.calls == []


def test_the_launcher_puts_the_container_context_on_the_job_container_only(site: Path) -> None:  # noqa: F811
    cluster = FakeCluster()
    launcher = make_launcher(
        cluster, site, security_context=RESTRICTED_POD, container_security_context=RESTRICTED_CONTAINER
    )
    launcher.launch_job(job_meta(), make_ctx(site))
    pod = cluster.pods[POD]
    assert pod["spec"]["securityContext"] == RESTRICTED_POD
    assert pod["spec"]["containers"][0]["securityContext"] == RESTRICTED_CONTAINER
    assert violations(pod, "restricted") == []


def test_doctor_names_container_security_context_for_the_job_containers_own_fields() -> None:
    pod = decorated(job_config(security_context=RESTRICTED_POD))
    check = checks.pod_security_check({"pod-security.kubernetes.io/enforce": "restricted"}, pod, "nvflare")
    assert check.severity == checks.ERROR
    assert '"container_security_context": {"allowPrivilegeEscalation": false' in check.fix
    assert '"security_context"' not in check.fix  # the pod's is fine already


def test_doctor_names_security_context_for_the_user_and_seccomp() -> None:
    pod = decorated(job_config(container_security_context=RESTRICTED_CONTAINER))
    check = checks.pod_security_check({"pod-security.kubernetes.io/enforce": "restricted"}, pod, "nvflare")
    assert check.severity == checks.ERROR
    assert '"security_context": {"runAsNonRoot": true' in check.fix
    assert "container_security_context" not in check.fix
