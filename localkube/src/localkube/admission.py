"""What the API server's registry strategies do to an object on write: defaulting (pods, Secrets) and the
validation errors a real server gives for the mistakes a launcher can make (names, containers, images,
resource quantities (quantities.py), pod spec immutability)."""

from __future__ import annotations

import base64
import copy
import re
from typing import Any

from localkube import quantities
from localkube.resources import ApiError, Obj, bad_request, invalid

_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
    "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
_POD_MUTABLE_HINT = (
    "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,"
    "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),"
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
)
Cause = tuple[str, str, str]


def _check_name(kind: str, name: Any, dns_label: bool) -> list[Cause]:
    if not name:
        return [("metadata.name", "FieldValueRequired", "Required value: name or generateName is required")]
    if not isinstance(name, str):
        return [("metadata.name", "FieldValueInvalid", f'Invalid value: "{name}": must be a string')]
    pattern, msg, limit = (_LABEL, LABEL_MSG, 63) if dns_label else (_SUBDOMAIN, SUBDOMAIN_MSG, 253)
    if len(name) > limit:
        return [
            ("metadata.name", "FieldValueInvalid", f'Invalid value: "{name}": must be no more than {limit} characters')
        ]
    if not pattern.fullmatch(name):
        return [("metadata.name", "FieldValueInvalid", f'Invalid value: "{name}": {msg}')]
    return []


def _check_containers(spec: Obj, field: str, required: bool) -> list[Cause]:
    containers = spec.get(field)
    causes: list[Cause] = []
    if not containers:
        if required:
            causes.append((f"spec.{field}", "FieldValueRequired", "Required value"))
        return causes
    seen: set[str] = set()
    for i, c in enumerate(containers):
        path = f"spec.{field}[{i}]"
        name = c.get("name")
        if not name:
            causes.append((f"{path}.name", "FieldValueRequired", "Required value"))
        elif not _LABEL.fullmatch(str(name)):
            causes.append((f"{path}.name", "FieldValueInvalid", f'Invalid value: "{name}": {LABEL_MSG}'))
        elif name in seen:
            causes.append((f"{path}.name", "FieldValueDuplicate", f'Duplicate value: "{name}"'))
        seen.add(str(name))
        if not c.get("image"):
            causes.append((f"{path}.image", "FieldValueRequired", "Required value"))
    return causes


def validate(resource: str, kind: str, obj: Obj) -> None:
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    causes = _check_name(kind, name, dns_label=resource == "namespaces")
    if resource == "pods":
        spec = obj.get("spec") or {}
        causes += _check_containers(spec, "containers", required=True)
        causes += _check_containers(spec, "initContainers", required=False)
        causes += quantities.check_pod_resources(kind, spec)
        volumes = {v.get("name") for v in spec.get("volumes") or []}
        for field in ("initContainers", "containers"):
            for i, c in enumerate(spec.get(field) or []):
                for j, m in enumerate(c.get("volumeMounts") or []):
                    if m.get("name") not in volumes:
                        causes.append(
                            (
                                f"spec.{field}[{i}].volumeMounts[{j}].name",
                                "FieldValueNotFound",
                                f'Not found: "{m.get("name")}"',
                            )
                        )
    if causes:
        raise invalid(kind, str(name or ""), causes)


def default(resource: str, obj: Obj) -> None:
    """Fills what the real API server fills on create."""
    if resource == "secrets":
        string_data = obj.pop("stringData", None) or {}
        data = obj.setdefault("data", {}) if string_data or "data" in obj else None
        for key, value in string_data.items():
            assert data is not None
            data[key] = base64.b64encode(str(value).encode()).decode()
        obj.setdefault("type", "Opaque")
        for key, value in (obj.get("data") or {}).items():
            try:
                base64.b64decode(value, validate=True)
            except (ValueError, TypeError) as e:
                raise bad_request(f"illegal base64 data in Secret key {key!r}") from e
    elif resource == "namespaces":
        obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        obj["status"] = {"phase": "Active"}
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
    elif resource == "persistentvolumeclaims":
        obj.setdefault("status", {"phase": "Bound"})
    elif resource == "pods":
        _default_pod(obj)


def _default_pod(pod: Obj) -> None:
    spec = pod.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("priority", 0)
    spec.setdefault(
        "tolerations",
        [
            {"key": f"node.kubernetes.io/{t}", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            for t in ("not-ready", "unreachable")
        ],
    )
    for field in ("initContainers", "containers"):
        for c in spec.get(field) or []:
            image = str(c.get("image", ""))
            tag = image.rsplit("/", 1)[-1]
            latest = "@" not in image and (":" not in tag or tag.endswith(":latest"))
            c.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            c.setdefault("resources", {})
            for port in c.get("ports") or []:
                port.setdefault("protocol", "TCP")
    for v in spec.get("volumes") or []:
        if "secret" in v:
            v["secret"].setdefault("defaultMode", 0o644)
        if "configMap" in v:
            v["configMap"].setdefault("defaultMode", 0o644)
    pod["status"] = {"phase": "Pending", "qosClass": _qos(spec)}


def _qos(spec: Obj) -> str:
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    requests = [c.get("resources", {}).get("requests") or {} for c in containers]
    limits = [c.get("resources", {}).get("limits") or {} for c in containers]
    if not any(requests) and not any(limits):
        return "BestEffort"
    guaranteed = all(
        lim.get(r) is not None and (req.get(r) is None or req.get(r) == lim.get(r))
        for req, lim in zip(requests, limits, strict=True)
        for r in ("cpu", "memory")
    )
    return "Guaranteed" if guaranteed else "Burstable"


def check_pod_update(old: Obj, new: Obj) -> None:
    """Pods are nearly immutable: the spec may change only images, activeDeadlineSeconds and tolerations."""

    def masked(spec: Obj) -> Obj:
        s = copy.deepcopy(spec)
        for field in ("containers", "initContainers"):
            for c in s.get(field) or []:
                c.pop("image", None)
        for key in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
            s.pop(key, None)
        return s

    if masked(old.get("spec") or {}) != masked(new.get("spec") or {}):
        name = old["metadata"]["name"]
        raise invalid("Pod", name, [("spec", "FieldValueForbidden", "Forbidden: " + _POD_MUTABLE_HINT)])


def check_immutable_secret(old: Obj, new: Obj, kind: str) -> None:
    if old.get("immutable") and (old.get("data") != new.get("data") or old.get("binaryData") != new.get("binaryData")):
        name = old["metadata"]["name"]
        raise invalid(
            kind, name, [("data", "FieldValueForbidden", "Forbidden: field is immutable when `immutable` is set")]
        )


def require_kind(obj: Any, kind: str) -> Obj:
    if not isinstance(obj, dict):
        raise bad_request("the body of the request was in an unknown format")
    got = obj.get("kind")
    if got and got != kind:
        raise ApiError(400, f"the kind of the object ({got}) does not match the resource kind ({kind})", "BadRequest")
    return obj
