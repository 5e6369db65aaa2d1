"""NVFlare's job arguments and job meta as pod fields (pure): args, parent paths moved in, volumes, resources."""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from kubectl_launcher.domain.names import site_name_to_rfc1123, study_dataset_volume_name

#: JobProcessArgs names (nvflare.apis.job_launcher_spec) whose values are paths in the parent's workspace:
#: workspace (-m), startup dir (-w), server app root (-r).
PATH_ARG_NAMES = ("workspace", "startup_dir", "app_root")


def module_args(job_args: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """``{flag: value}`` for the named entries of JOB_PROCESS_ARGS, in the order of ``names``."""
    result: dict[str, Any] = {}
    for name in names:
        entry = job_args.get(name)
        if entry is None:
            continue
        flag, value = entry
        result[flag] = value
    return result


def path_in_pod(path: str, workspace_root: str, mount_path: str) -> str | None:
    """Where the parent's ``path`` appears in the pod, or None when it is outside the workspace."""
    root = os.path.abspath(workspace_root)
    target = os.path.abspath(path)
    if os.path.commonpath([root, target]) != root:
        return None
    rel = os.path.relpath(target, root)
    if rel == os.curdir:
        return mount_path
    return posixpath.join(mount_path, *rel.split(os.sep))


def translate_paths(
    args: Mapping[str, Any], path_flags: Iterable[str], workspace_root: str, mount_path: str
) -> dict[str, Any]:
    """A copy of module args whose path-carrying flags point into the pod's workspace mount.

    Upstream passes the parent's paths through unchanged, which only works when the parent's
    workspace is itself at ``workspace_mount_path``; translating lets a parent live anywhere.
    A path outside the workspace is left as it is (the pod cannot see it either way).
    """
    flags = set(path_flags)
    result = dict(args)
    for flag, value in args.items():
        if flag in flags and isinstance(value, str) and value:
            moved = path_in_pod(value, workspace_root, mount_path)
            if moved is not None:
                result[flag] = moved
    return result


def path_flags(job_args: Mapping[str, Any]) -> set[str]:
    """The flags (``-m``, ``-w``, ``-r``) that carry parent paths in this JOB_PROCESS_ARGS."""
    flags: set[str] = set()
    for name in PATH_ARG_NAMES:
        entry = job_args.get(name)
        if entry:
            flags.add(entry[0])
    return flags


def pod_volumes(
    mount_path: str,
    ephemeral_storage: str,
    startup_secret: str,
    data_mounts: Sequence[Any],
    secret_mounts: Sequence[Any] = (),
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, volumeMounts) as upstream: the workspace emptyDir, the startup kit read-only under it,
    each study dataset's PVC (nvflare's StudyDatasetMount) and each study Secret (SecretMount)."""
    volumes: list[dict[str, Any]] = [
        {"name": "workspace-job", "emptyDir": {"sizeLimit": ephemeral_storage}},
        {"name": "startup-kit", "secret": {"secretName": startup_secret}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "workspace-job", "mountPath": mount_path},
        {"name": "startup-kit", "mountPath": posixpath.join(mount_path, "startup"), "readOnly": True},
    ]
    for data in data_mounts:
        name = study_dataset_volume_name(data.study, data.dataset)
        volumes.append({"name": name, "persistentVolumeClaim": {"claimName": data.source}})
        mounts.append({"name": name, "mountPath": data.mount_path, "readOnly": data.read_only})
    for secret in secret_mounts:
        name = site_name_to_rfc1123(f"secret-{secret.study}-{secret.name}", max_length=63)
        source: dict[str, Any] = {"secretName": secret.source}
        if secret.items:
            source["items"] = [{"key": key, "path": path} for key, path in secret.items]
        volumes.append({"name": name, "secret": source})
        mounts.append({"name": name, "mountPath": secret.mount_path, "readOnly": True})
    return volumes, mounts


def pod_resources(
    k8s_spec: Mapping[str, Any], portable: Mapping[str, Any], ephemeral_storage: str, gpus: Any
) -> dict[str, dict[str, Any]]:
    """Requests and limits as upstream: ephemeral storage always; cpu/memory from the k8s spec (a request
    follows its limit unless given), overridden by 2.9's portable num_of_cpus/memory; GPUs when asked."""
    requests: dict[str, Any] = {"ephemeral-storage": ephemeral_storage}
    limits: dict[str, Any] = {"ephemeral-storage": ephemeral_storage}
    for key in ("cpu", "memory"):
        limit = k8s_spec.get(key)
        # Admission policies (AKS deployment safeguards) want explicit requests, hence the mirroring.
        request = k8s_spec.get(f"{key}_request", limit)
        if limit:
            limits[key] = limit
        if request:
            requests[key] = request
    if "num_of_cpus" in portable:
        limits["cpu"] = requests["cpu"] = str(portable["num_of_cpus"])
    if "memory" in portable:
        limits["memory"] = requests["memory"] = portable["memory"]
    if gpus:
        limits["nvidia.com/gpu"] = requests["nvidia.com/gpu"] = gpus
    return {"requests": requests, "limits": limits}
