"""kubectl argv builders (pure): the sub-command and its flags, never the global flags.

`Kubectl.run` adds ``--kubeconfig``, ``--context``, ``--namespace`` and ``--request-timeout``.

Two decisions live here:

* Deleting a pod. Upstream asks the API for ``gracePeriodSeconds=0``. kubectl sends 1 for
  ``--grace-period=0`` unless ``--force`` is given, and ``--force --grace-period=0`` removes the object
  without waiting for the kubelet to stop the container (it may keep running on a partitioned node).
  We write ``--grace-period=1`` by default, so the argv says what is sent: SIGTERM, SIGKILL a second
  later, the object gone once the kubelet confirms. ``force=True`` gives upstream's immediate removal.
* Validation. kubectl 1.27/1.28 validate client-side from the server's protobuf OpenAPI v2, newer ones
  ask the server; an API server without that document (our API double, some proxies) fails every
  create/apply with "turn validation off with --validate=false". ``validate=False`` adds that flag;
  the launcher exposes it as ``kubectl_validate``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

Argv = tuple[str, ...]


def _validate_flag(validate: bool) -> Argv:
    return () if validate else ("--validate=false",)


def apply_file(path: str, *, validate: bool = True) -> Argv:
    """Client-side apply of a manifest file (never for Secrets: it copies data into an annotation)."""
    return ("apply", "--filename", path, "--output", "json", *_validate_flag(validate))


#: The field manager of every server-side apply: the owner the API server records for our fields.
FIELD_MANAGER = "kubectl-launcher"

#: One line per object, "<Kind>\t<metadata as JSON>": names, labels, uids, never a Secret's data.
METADATA_LINES = 'jsonpath={range .items[*]}{.kind}{"\\t"}{.metadata}{"\\n"}{end}'


def apply_server_side(*paths: str, validate: bool = True, force_conflicts: bool = False) -> Argv:
    """Server-side apply of ``paths`` in order ("-" is stdin), printed as ``METADATA_LINES``.

    Server-side: the API server keeps no copy of the object in an annotation (client-side apply
    writes ``last-applied-configuration`` with a Secret's data in it), and records ``FIELD_MANAGER``
    as the owner of our fields, so a field someone else manages is a conflict, not an overwrite.
    With two objects or more kubectl prints one List, which ``METADATA_LINES`` walks.
    ``force_conflicts``: take over fields another manager holds (e.g. ``kubectl create`` of an earlier
    version), for objects the caller has already checked are its own.
    """
    files = tuple(a for path in paths for a in ("--filename", path))
    return (
        "apply",
        "--server-side",
        f"--field-manager={FIELD_MANAGER}",
        *files,
        "--output",
        METADATA_LINES,
        *(("--force-conflicts",) if force_conflicts else ()),
        *_validate_flag(validate),
    )


def get_metadata_of(*objects: str) -> Argv:
    """The metadata of several objects ("pod/x", "secret/y") in one read, as ``METADATA_LINES``; an object
    that does not exist is left out. Safe for Secrets: only metadata is printed."""
    return ("get", *objects, "--ignore-not-found", "--output", METADATA_LINES)


def create_from_stdin(*, validate: bool = True, output: str = "json") -> Argv:
    """Create the object(s) read from stdin; AlreadyExists when present."""
    return ("create", "--filename", "-", "--output", output, *_validate_flag(validate))


def replace_from_stdin(*, validate: bool = True, output: str = "json") -> Argv:
    """Replace the object read from stdin (PUT); NotFound when absent."""
    return ("replace", "--filename", "-", "--output", output, *_validate_flag(validate))


def create_secret_from_stdin(*, validate: bool = True) -> Argv:
    """Create a Secret read from stdin. ``--output name``: the created Secret (data included) never
    comes back on stdout, where a log or an error message could pick it up."""
    return create_from_stdin(validate=validate, output="name")


def replace_secret_from_stdin(*, validate: bool = True) -> Argv:
    """Replace a Secret read from stdin; see create_secret_from_stdin for the output."""
    return replace_from_stdin(validate=validate, output="name")


def secret_generic_dry_run(name: str, files: Mapping[str, str]) -> Argv:
    """The offline command that prints a Secret holding ``files`` (key -> path) as JSON.

    Journals show it in place of a Secret's stdin: replaying it rebuilds the same data from the files.
    """
    return (
        "create",
        "secret",
        "generic",
        name,
        *(f"--from-file={key}={path}" for key, path in files.items()),
        "--dry-run=client",
        "--output",
        "json",
    )


def get_pod(name: str) -> Argv:
    """The pod as JSON; empty stdout (rc 0) when it does not exist."""
    return ("get", "pod", name, "--ignore-not-found", "--output", "json")


def get_metadata(kind: str, name: str) -> Argv:
    """Only an object's metadata (labels, uid, owners) as JSON; empty when absent. Safe for Secrets."""
    return ("get", kind, name, "--ignore-not-found", "--output", "jsonpath={.metadata}")


def get_pod_events(pod_name: str) -> Argv:
    """The events about one pod, as a JSON List."""
    return ("get", "events", "--field-selector", f"involvedObject.name={pod_name}", "--output", "json")


def delete(kind: str, name: str, *, grace_period: int | None = None, force: bool = False) -> Argv:
    """Delete one object; rc 0 when it is already gone; returns once the deletion is accepted."""
    argv: Argv = ("delete", kind, name, "--ignore-not-found", "--wait=false")
    if force:
        return (*argv, "--force", f"--grace-period={0 if grace_period is None else grace_period}")
    if grace_period is not None:
        if grace_period == 0:
            raise ValueError("kubectl sends --grace-period=0 as 1 without --force; pass 1, or force=True")
        argv += (f"--grace-period={grace_period}",)
    return argv


def delete_pod(name: str, *, grace_period: int = 1, force: bool = False) -> Argv:
    """Delete a job pod (see the module docstring for the grace period)."""
    return delete("pod", name, grace_period=None if force else grace_period, force=force)


def delete_secret(name: str) -> Argv:
    """Delete a Secret."""
    return delete("secret", name)


def merge_patch(kind: str, name: str, patch: Mapping[str, Any]) -> Argv:
    """Merge-patch one object (e.g. manifest.owner_patch: its only ownerReference, which GC follows)."""
    body = json.dumps(patch, separators=(",", ":"), sort_keys=True)
    return ("patch", kind, name, "--type", "merge", "--patch", body, "--output", "name")


def annotate_selected(kind: str, selector: str, annotation: str, value: str) -> Argv:
    """Set one annotation on every object of ``kind`` that ``selector`` matches, in one command (kubectl
    lists them, then patches each); ``--overwrite``: the value replaces the last one."""
    return ("annotate", kind, "--selector", selector, f"{annotation}={value}", "--overwrite", "--output", "name")
