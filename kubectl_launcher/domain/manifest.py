"""The job pod and the Secrets as plain dicts (pure), and their JSON text."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any

#: The main container's name when job_config names none (upstream's default).
DEFAULT_CONTAINER_NAME = "nvflare_job"


def normalize_image_pull_secrets(image_pull_secrets: object) -> list[str]:
    """The list of Secret names, or ValueError with upstream's texts."""
    if image_pull_secrets is None:
        return []
    if not isinstance(image_pull_secrets, list):
        raise ValueError("image_pull_secrets must be a list of Kubernetes Secret names")
    for name in image_pull_secrets:
        if not isinstance(name, str) or not name.strip():
            raise ValueError("image_pull_secrets entries must be non-empty strings")
    return list(image_pull_secrets)


def _module_args_as_list(module_args: Mapping[str, Any] | None) -> list[str]:
    flat: list[str] = []
    for flag, value in (module_args or {}).items():
        # None marks an argument the job process does not get at all.
        if value is None:
            continue
        flat += [flag, str(value)]
    return flat


def _env_list(env: Mapping[str, Any], secret_env: Sequence[Mapping[str, str]]) -> list[dict[str, Any]]:
    # Upstream drops only values whose text is empty; None becomes the text "None" there too.
    items: list[dict[str, Any]] = [{"name": k, "value": str(v)} for k, v in env.items() if str(v)]
    items += [
        {"name": ref["name"], "valueFrom": {"secretKeyRef": {"name": ref["source"], "key": ref["key"]}}}
        for ref in secret_env
    ]
    return items


def build_pod_manifest(job_config: Mapping[str, Any], *, python_path: str) -> dict[str, Any]:
    """The job pod, field for field as upstream's K8sJobHandle builds it from the same job_config.

    Extra keys add fields upstream never writes: ``labels`` and ``annotations`` (pod metadata),
    ``working_dir`` (the main container's workingDir) and ``container_security_context`` (its
    securityContext; upstream's ``security_context`` is the pod's).
    """
    command = job_config.get("command")
    if not command:
        raise ValueError("job_config must contain a non-empty 'command' key")
    set_list = job_config.get("set_list")
    args = ["-u", "-m", command, *_module_args_as_list(job_config.get("module_args"))]
    if set_list:
        args += ["--set", *set_list]

    metadata: dict[str, Any] = {"name": job_config.get("name")}
    spec: dict[str, Any] = {
        "containers": [],
        "volumes": list(job_config.get("volume_list", [])),
        "restartPolicy": "Never",
    }
    pull_secrets = normalize_image_pull_secrets(job_config.get("image_pull_secrets"))
    if pull_secrets:
        spec["imagePullSecrets"] = [{"name": name} for name in pull_secrets]
    if job_config.get("security_context"):
        spec["securityContext"] = job_config["security_context"]

    image = job_config.get("image")
    if not image:
        raise ValueError("job_config must contain a non-empty 'image' key")
    container: dict[str, Any] = {
        "image": image,
        "name": job_config.get("container_name", DEFAULT_CONTAINER_NAME),
        "command": [python_path],
        "args": args,
        "volumeMounts": list(job_config.get("volume_mount_list", [])),
        "imagePullPolicy": "Always",
    }
    if job_config.get("resources"):
        container["resources"] = job_config["resources"]
    env = _env_list(job_config.get("env", {}), job_config.get("secret_env", []))
    if env:
        container["env"] = env
    if job_config.get("working_dir"):
        container["workingDir"] = job_config["working_dir"]
    if job_config.get("container_security_context"):
        container["securityContext"] = dict(job_config["container_security_context"])
    spec["containers"].append(container)

    if job_config.get("labels"):
        metadata["labels"] = dict(job_config["labels"])
    if job_config.get("annotations"):
        metadata["annotations"] = dict(job_config["annotations"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def owner_reference(pod: Mapping[str, Any]) -> dict[str, str]:
    """An ownerReference to a pod as the API server returned it (uid included)."""
    meta = pod.get("metadata") or {}
    name, uid = meta.get("name"), meta.get("uid")
    if not name or not uid:
        raise ValueError("an owner pod needs metadata.name and metadata.uid (use the object the server returned)")
    return {"apiVersion": "v1", "kind": "Pod", "name": str(name), "uid": str(uid)}


def owner_patch(owner: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch that makes ``owner`` the only owner of an object."""
    return {"metadata": {"ownerReferences": [dict(owner)]}}


def build_secret_manifest(
    name: str,
    namespace: str,
    data: Mapping[str, bytes],
    labels: Mapping[str, str],
    owner: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An Opaque Secret with base64 ``data`` (bytes in, so binary keys survive unchanged)."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        metadata["labels"] = dict(labels)
    if owner is not None:
        metadata["ownerReferences"] = [dict(owner)]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": "Opaque",
        "data": {key: base64.b64encode(value).decode("ascii") for key, value in data.items()},
    }


def to_json(obj: Mapping[str, Any]) -> str:
    """Manifest text: JSON is valid YAML and no value can turn into a YAML 1.1 boolean (`y`, `off`)."""
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"
