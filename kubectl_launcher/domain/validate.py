"""Checks of a launch's inputs before anything is created (pure): each error names the field (its path in
meta.json, or the launcher's argument), the value, and what a valid one looks like.

A Kubernetes API server refuses the same values with ``422 Invalid`` — but only after the launch has
written its Secrets, and an unschedulable bad quantity can leave ``launch_job()`` waiting for ever.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# apimachinery's resource.Quantity: a signed decimal number, then a binary-SI (Ki..Ei), decimal-SI
# (n u m k M G T P E) or decimal-exponent (e3, E-2) suffix, or none.
_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?\Z"
)
# A container image reference as the container runtime parses it: [host[:port]/]path[:tag][@digest],
# path components lower case.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]+)?/)"
_IMAGE = re.compile(
    rf"^{_HOST}?{_COMPONENT}(?:/{_COMPONENT})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?\Z"
)
_IMAGE_MAX = 4096
#: The fields of a PodSecurityContext (Kubernetes 1.33); `security_context` becomes the pod's.
POD_SECURITY_CONTEXT_FIELDS = frozenset(
    {
        "appArmorProfile",
        "fsGroup",
        "fsGroupChangePolicy",
        "runAsGroup",
        "runAsNonRoot",
        "runAsUser",
        "seLinuxChangePolicy",
        "seLinuxOptions",
        "seccompProfile",
        "supplementalGroups",
        "supplementalGroupsPolicy",
        "sysctls",
        "windowsOptions",
    }
)
#: The fields of a container's SecurityContext (Kubernetes 1.33); `container_security_context` becomes the
#: job container's (restricted Pod Security asks some of them of every container, not of the pod).
CONTAINER_SECURITY_CONTEXT_FIELDS = frozenset(
    {
        "allowPrivilegeEscalation",
        "appArmorProfile",
        "capabilities",
        "privileged",
        "procMount",
        "readOnlyRootFilesystem",
        "runAsGroup",
        "runAsNonRoot",
        "runAsUser",
        "seLinuxOptions",
        "seccompProfile",
        "windowsOptions",
    }
)
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")


class InvalidLaunch(RuntimeError):
    """A launch input Kubernetes would refuse; raised by the plan before anything is created."""


def quantity(value: object, where: str) -> str:
    """`value` as a non-negative Kubernetes quantity string ("500m", "2", "8Gi", "1e3")."""
    text = str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not (match := _QUANTITY.match(text.strip())) or text != text.strip():
        raise InvalidLaunch(
            f"{where} = {value!r} is not a Kubernetes quantity; write a number with an optional unit, "
            "e.g. 2, 500m, 8Gi, 512Mi (binary units Ki..Ei, decimal k M G T P E)"
        )
    if match.group("number").startswith("-") or float(match.group("number")) < 0:
        raise InvalidLaunch(f"{where} = {value!r} is negative; a resource amount is 0 or more")
    return text


def gpu_count(value: object, where: str) -> int:
    """A GPU count: a whole number, 0 or more (an int, or a string of digits)."""
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise InvalidLaunch(f"{where} = {value!r} is not a GPU count; write a whole number, 0 or more (e.g. 1)")


def image(value: object, where: str) -> str:
    """A container image reference: [registry[:port]/]name[:tag][@sha256:digest], no spaces."""
    if not isinstance(value, str) or len(value) > _IMAGE_MAX or not _IMAGE.match(value):
        raise InvalidLaunch(
            f"{where} = {value!r} is not a container image reference; write [registry[:port]/]name[:tag]"
            "[@sha256:digest] with a lower-case name and no spaces, e.g. nvflare/nvflare:2.9.0"
        )
    return value


def security_context(value: object, where: str) -> Mapping[str, Any] | None:
    """None, or a mapping of PodSecurityContext fields (runAsUser, runAsNonRoot, fsGroup, seccompProfile, ...)."""
    return _context(value, where, "pod", POD_SECURITY_CONTEXT_FIELDS, '{"runAsNonRoot": true, "runAsUser": 1000}')


def container_security_context(value: object, where: str) -> Mapping[str, Any] | None:
    """None, or a mapping of a container's SecurityContext fields (allowPrivilegeEscalation, capabilities, ...)."""
    example = '{"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}'
    return _context(value, where, "container", CONTAINER_SECURITY_CONTEXT_FIELDS, example)


def _context(value: object, where: str, kind: str, known: frozenset[str], example: str) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidLaunch(
            f"{where} = {value!r} is not a {kind} security context; write a mapping of its fields, e.g. {example}"
        )
    unknown = sorted(str(k) for k in value if k not in known)
    if unknown:
        raise InvalidLaunch(
            f"{where} has fields a {kind} security context does not know: {', '.join(unknown)}; "
            f"known: {', '.join(sorted(known))}"
        )
    return value


def pod_name(name: str, job_id: object) -> str:
    """The job's pod name must be an RFC 1123 label: the job id it came from is named when it is not."""
    if not _LABEL.match(name):
        raise InvalidLaunch(
            f"job id {job_id!r} gives the pod name {name!r}, which is not a valid Kubernetes name "
            "(1-63 lower-case letters, digits and '-', beginning and ending with a letter or digit); "
            "NVFlare's own job ids (UUIDs) always give a valid one"
        )
    return name


def path_length(path: str, where: str, limit: int = 4095, name_limit: int = 255) -> str:
    """A path the pod or the site will use must fit the operating system's limits: the whole path, and each
    folder's name (a 300-character job id is a folder name no filesystem takes)."""
    if len(path.encode()) > limit:
        raise InvalidLaunch(f"{where} is {len(path.encode())} bytes long; paths must stay under {limit} bytes")
    longest = max(path.split("/"), key=lambda part: len(part.encode()))
    if len(longest.encode()) > name_limit:
        raise InvalidLaunch(
            f"{where} has a folder name of {len(longest.encode())} bytes ({longest[:40]}...); "
            f"a name must stay under {name_limit} bytes (a shorter job id)"
        )
    return path
