"""NVFlare job-process arguments for a pod (pure): picking them, and moving parent paths into the pod."""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable, Mapping
from typing import Any

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
