"""The pod manifest equals upstream's for the same job_config; Secrets, owners and JSON text."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest
import yaml
from nvflare.app_opt.job_launcher.k8s_launcher import K8sJobHandle as UpstreamHandle

from kubectl_launcher.domain.manifest import (
    build_pod_manifest,
    build_secret_manifest,
    normalize_image_pull_secrets,
    owner_patch,
    owner_reference,
    to_json,
)

BASE: dict[str, Any] = {"name": "j1-site-1-f505dccd", "image": "registry.example.com/nvflare-job:2.9", "command": "m.x"}

VOLUMES = [
    {"name": "workspace-job", "emptyDir": {"sizeLimit": "8Gi"}},
    {"name": "startup-kit", "secret": {"secretName": "nvflare-startup-site-1-f505dccd"}},
    {"name": "data-s-d-11ef24c2", "persistentVolumeClaim": {"claimName": "pvc-a"}},
]
MOUNTS = [
    {"name": "workspace-job", "mountPath": "/var/tmp/nvflare/workspace"},
    {"name": "startup-kit", "mountPath": "/var/tmp/nvflare/workspace/startup", "readOnly": True},
    {"name": "data-s-d-11ef24c2", "mountPath": "/data/s/d", "readOnly": False},
]
RESOURCES = {
    "requests": {"ephemeral-storage": "8Gi", "cpu": "1", "memory": "8Gi", "nvidia.com/gpu": 1},
    "limits": {"ephemeral-storage": "8Gi", "cpu": "2", "memory": "8Gi", "nvidia.com/gpu": 1},
}
SECRET_ENV = [
    {"name": "NVFLARE_JOB_AUTH_TOKEN", "source": "nvflare-cred-p", "key": "NVFLARE_JOB_AUTH_TOKEN"},
    {"name": "DB_PASSWORD", "source": "study-db", "key": "password"},
]

JOB_CONFIGS: dict[str, dict[str, Any]] = {
    "minimal": BASE,
    "container name": {**BASE, "container_name": "container-j1"},
    "module args in order, None skipped, values as text": {
        **BASE,
        "module_args": {"-m": "/var/tmp/nvflare/workspace", "-w": None, "-n": "abc", "--port": 8002, "-x": 0},
    },
    "module args None": {**BASE, "module_args": None},
    "set list": {**BASE, "set_list": ["secure_train=true", "config_folder=config", "org=nvidia"]},
    "empty set list": {**BASE, "set_list": []},
    "volumes and mounts": {**BASE, "volume_list": VOLUMES, "volume_mount_list": MOUNTS},
    "resources": {**BASE, "resources": RESOURCES},
    "empty resources": {**BASE, "resources": {}},
    "env drops empty strings only": {**BASE, "env": {"PYTHONPATH": "/w/custom", "EMPTY": "", "ZERO": 0, "NONE": None}},
    "secret env": {**BASE, "secret_env": SECRET_ENV},
    "env and secret env": {**BASE, "env": {"A": "1"}, "secret_env": SECRET_ENV},
    "image pull secrets": {**BASE, "image_pull_secrets": ["regcred", "other"]},
    "empty image pull secrets": {**BASE, "image_pull_secrets": []},
    "security context": {**BASE, "security_context": {"runAsNonRoot": True, "runAsUser": 1000}},
    "empty security context": {**BASE, "security_context": {}},
    "everything": {
        **BASE,
        "container_name": "container-j1",
        "module_args": {"-m": "/ws", "-w": "/ws/startup", "-n": "j1", "-c": "site-1", "-s": "fed_client.json"},
        "set_list": ["a=b"],
        "volume_list": VOLUMES,
        "volume_mount_list": MOUNTS,
        "resources": RESOURCES,
        "env": {"PYTHONPATH": "/ws/j1/app_site-1/custom"},
        "secret_env": SECRET_ENV,
        "image_pull_secrets": ["regcred"],
        "security_context": {"runAsNonRoot": True},
    },
}


def upstream_manifest(job_config: dict[str, Any], python_path: str) -> dict[str, Any]:
    handle = UpstreamHandle("j1", None, copy.deepcopy(job_config), python_path=python_path)
    return handle.get_manifest()  # type: ignore[no-any-return]


@pytest.mark.parametrize("python_path", ["/usr/local/bin/python", "/opt/venv/bin/python3"])
@pytest.mark.parametrize("job_config", list(JOB_CONFIGS.values()), ids=list(JOB_CONFIGS))
def test_pod_equals_upstreams_for_the_same_job_config(job_config: dict[str, Any], python_path: str) -> None:
    ours = build_pod_manifest(copy.deepcopy(job_config), python_path=python_path)
    assert ours == upstream_manifest(job_config, python_path)
    # Same key order too, so a diff of the two JSON files is empty.
    assert json.dumps(ours) == json.dumps(upstream_manifest(job_config, python_path))


@pytest.mark.parametrize(
    ("job_config", "message"),
    [
        ({"name": "p", "image": "i"}, "job_config must contain a non-empty 'command' key"),
        ({"name": "p", "image": "i", "command": ""}, "job_config must contain a non-empty 'command' key"),
        ({"name": "p", "command": "m"}, "job_config must contain a non-empty 'image' key"),
        ({"name": "p", "command": "m", "image": ""}, "job_config must contain a non-empty 'image' key"),
        ({"name": "p", "image": None}, "job_config must contain a non-empty 'command' key"),
        ({**BASE, "image_pull_secrets": "regcred"}, "image_pull_secrets must be a list of Kubernetes Secret names"),
        ({**BASE, "image_pull_secrets": ["ok", " "]}, "image_pull_secrets entries must be non-empty strings"),
        ({**BASE, "image_pull_secrets": [3]}, "image_pull_secrets entries must be non-empty strings"),
    ],
)
def test_bad_job_config_raises_upstreams_value_error(job_config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as ours:
        build_pod_manifest(job_config, python_path="/p")
    with pytest.raises(ValueError) as theirs:
        upstream_manifest(job_config, "/p")
    assert str(ours.value) == str(theirs.value) == message


def test_extra_keys_add_labels_annotations_and_working_dir_without_changing_upstreams_fields() -> None:
    job_config = JOB_CONFIGS["everything"]
    extra = {
        **job_config,
        "labels": {"app.kubernetes.io/managed-by": "kubectl-launcher"},
        "annotations": {"kubectl-launcher/nvflare-job-id": "J1"},
        "working_dir": "/var/tmp/nvflare/workspace",
    }
    ours = build_pod_manifest(extra, python_path="/p")
    assert ours["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "kubectl-launcher"}
    assert ours["metadata"]["annotations"] == {"kubectl-launcher/nvflare-job-id": "J1"}
    assert ours["spec"]["containers"][0].pop("workingDir") == "/var/tmp/nvflare/workspace"
    del ours["metadata"]["labels"], ours["metadata"]["annotations"]
    assert ours == upstream_manifest(job_config, "/p")


def test_pod_manifest_does_not_share_lists_with_job_config() -> None:
    job_config = copy.deepcopy(JOB_CONFIGS["volumes and mounts"])
    pod = build_pod_manifest(job_config, python_path="/p")
    pod["spec"]["volumes"].append({"name": "x"})
    pod["spec"]["containers"][0]["volumeMounts"].append({"name": "x"})
    assert job_config["volume_list"] == VOLUMES
    assert job_config["volume_mount_list"] == MOUNTS


def test_normalize_image_pull_secrets_copies_the_list() -> None:
    names = ["a"]
    assert normalize_image_pull_secrets(names) == ["a"]
    assert normalize_image_pull_secrets(names) is not names
    assert normalize_image_pull_secrets(None) == []


def test_secret_manifest_is_opaque_with_base64_data_labels_and_owner() -> None:
    owner = {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u-1"}
    secret = build_secret_manifest(
        "nvflare-cred-p", "ns", {"k.key": b"\x00\xffkey", "T": b"tok"}, {"a": "b"}, owner=owner
    )
    assert secret == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "nvflare-cred-p", "namespace": "ns", "labels": {"a": "b"}, "ownerReferences": [owner]},
        "type": "Opaque",
        "data": {"k.key": base64.b64encode(b"\x00\xffkey").decode(), "T": "dG9r"},
    }


def test_secret_manifest_without_labels_or_owner_has_neither() -> None:
    secret = build_secret_manifest("s", "default", {}, {})
    assert secret["metadata"] == {"name": "s", "namespace": "default"}
    assert secret["data"] == {}


def test_owner_reference_comes_from_the_pod_the_server_returned() -> None:
    pod = {"kind": "Pod", "metadata": {"name": "p", "uid": "1234-abcd", "namespace": "ns"}}
    owner = owner_reference(pod)
    assert owner == {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "1234-abcd"}
    assert owner_patch(owner) == {"metadata": {"ownerReferences": [owner]}}


def test_owner_reference_refuses_a_pod_without_uid() -> None:
    with pytest.raises(ValueError, match="uid"):
        owner_reference({"metadata": {"name": "p"}})


@pytest.mark.parametrize("word", ["y", "n", "yes", "no", "on", "off", "Y", "NO", "True", "null", "0x10", "1e3"])
def test_json_text_reads_back_exactly_as_yaml(word: str) -> None:
    pod = build_pod_manifest(
        {**BASE, "name": word, "env": {word: word}, "set_list": [word], "labels": {"k": word}},
        python_path="/p",
    )
    text = to_json(pod)
    assert yaml.safe_load(text) == pod
    assert json.loads(text) == pod
