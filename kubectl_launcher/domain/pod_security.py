"""Pod Security admission, as the API server applies it to a namespace's pods (pure).

`violations(pod, level)` lists what in a pod the Pod Security Standards level ('privileged',
'baseline', 'restricted') forbids, each naming the container and the field, so `doctor` can tell
whether the launcher's pods (the init container and the keeper included) would be admitted. It covers
the checks a job pod can run into; it is not the whole admission plugin.

`transfer_container_context(main)` is the container securityContext of our own init and keeper
containers: they only wait, and run tar for the delivery and the collection, so they need no
privilege at all and meet 'restricted' whatever the namespace enforces.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "ENFORCE_LABEL",
    "IDENTITY_FIELDS",
    "LEVELS",
    "WARN_LABEL",
    "namespace_levels",
    "transfer_container_context",
    "violations",
]

ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
WARN_LABEL = "pod-security.kubernetes.io/warn"
AUDIT_LABEL = "pod-security.kubernetes.io/audit"
LEVELS = ("privileged", "baseline", "restricted")

_BASELINE_CAPS = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
    "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}  # fmt: skip
_RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret",
}  # fmt: skip
#: what our containers take from the job's main container: the same user owns the files of the workspace
#: whichever container wrote them (the init container receives them, the job writes results among them)
IDENTITY_FIELDS = ("runAsUser", "runAsGroup", "runAsNonRoot")


def transfer_container_context(main: Mapping[str, Any] | None) -> dict[str, Any]:
    """The init and keeper containers' securityContext: the main container's user, and no privilege.

    Never privileged, whatever the main container asks for: no privilege escalation, every capability
    dropped, the runtime's default seccomp profile (what 'restricted' asks of each container). The user is
    the main container's (else the pod's, by inheritance): forcing runAsNonRoot here would make the
    kubelet refuse a root image that the job container itself runs with.
    """
    own = main or {}
    context: dict[str, Any] = {key: own[key] for key in IDENTITY_FIELDS if key in own}
    context.update(
        allowPrivilegeEscalation=False,
        capabilities={"drop": ["ALL"]},
        seccompProfile={"type": "RuntimeDefault"},
    )
    return context


def namespace_levels(labels: Mapping[str, str] | None) -> dict[str, str]:
    """{'enforce': level, 'warn': ..., 'audit': ...} from a namespace's labels; unset means privileged."""
    labels = labels or {}
    return {
        mode: labels.get(f"pod-security.kubernetes.io/{mode}", "privileged") for mode in ("enforce", "warn", "audit")
    }


def _containers(spec: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    out = []
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for container in spec.get(key) or []:
            out.append((str(container.get("name", "?")), container))
    return out


def _effective(container: Mapping[str, Any], pod_sc: Mapping[str, Any], key: str) -> Any:
    sc = container.get("securityContext") or {}
    return sc[key] if key in sc else pod_sc.get(key)


def _baseline(spec: Mapping[str, Any]) -> list[str]:
    found = [f"spec.{key}=true" for key in ("hostNetwork", "hostPID", "hostIPC") if spec.get(key)]
    for volume in spec.get("volumes") or []:
        if "hostPath" in volume:
            found.append(f"volume {volume.get('name')!r} is a hostPath")
    for name, container in _containers(spec):
        sc = container.get("securityContext") or {}
        if sc.get("privileged"):
            found.append(f"container {name!r}: securityContext.privileged=true")
        added = set((sc.get("capabilities") or {}).get("add") or []) - _BASELINE_CAPS
        if added:
            found.append(f"container {name!r}: capabilities.add {sorted(added)}")
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                found.append(f"container {name!r}: hostPort {port['hostPort']}")
        if (sc.get("seccompProfile") or {}).get("type") == "Unconfined":
            found.append(f"container {name!r}: seccompProfile Unconfined")
    return found


def _restricted(spec: Mapping[str, Any]) -> list[str]:
    pod_sc = spec.get("securityContext") or {}
    found = []
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if kinds and not kinds & _RESTRICTED_VOLUMES:
            found.append(f"volume {volume.get('name')!r} of type {sorted(kinds)[0]} is not allowed")
    for name, container in _containers(spec):
        sc = container.get("securityContext") or {}
        if sc.get("allowPrivilegeEscalation") is not False:
            found.append(f"container {name!r}: securityContext.allowPrivilegeEscalation must be false")
        drop = (sc.get("capabilities") or {}).get("drop") or []
        if "ALL" not in drop:
            found.append(f"container {name!r}: securityContext.capabilities.drop must include ALL")
        added = set((sc.get("capabilities") or {}).get("add") or []) - {"NET_BIND_SERVICE"}
        if added:
            found.append(f"container {name!r}: capabilities.add may only hold NET_BIND_SERVICE")
        if _effective(container, pod_sc, "runAsNonRoot") is not True:
            found.append(f"container {name!r}: runAsNonRoot must be true (pod or container securityContext)")
        if _effective(container, pod_sc, "runAsUser") == 0:
            found.append(f"container {name!r}: runAsUser must not be 0")
        seccomp = (_effective(container, pod_sc, "seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"container {name!r}: seccompProfile.type must be RuntimeDefault or Localhost")
    return found


def violations(pod: Mapping[str, Any], level: str) -> list[str]:
    """What the pod does that `level` forbids ([] when it would be admitted). Unknown levels: ValueError."""
    if level not in LEVELS:
        raise ValueError(f"unknown Pod Security level {level!r} (one of {', '.join(LEVELS)})")
    spec: Sequence[Any] | Mapping[str, Any] = pod.get("spec") or {}
    assert isinstance(spec, Mapping)
    if level == "privileged":
        return []
    found = _baseline(spec)
    if level == "restricted":
        found += _restricted(spec)
    return found
