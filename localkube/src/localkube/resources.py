"""The served resource table and the API server's Status errors (apimachinery's `errors.New*` texts)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]


@dataclass(frozen=True)
class Resource:
    name: str
    kind: str
    namespaced: bool
    singular: str
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
    field_labels: tuple[str, ...] = ()


RESOURCES: dict[str, Resource] = {
    r.name: r
    for r in (
        Resource("namespaces", "Namespace", False, "namespace", ("ns",), field_labels=("status.phase",)),
        Resource(
            "nodes",
            "Node",
            False,
            "node",
            ("no",),
            verbs=("get", "list", "watch"),
            field_labels=("spec.unschedulable",),
        ),
        Resource(
            "pods",
            "Pod",
            True,
            "pod",
            ("po",),
            field_labels=(
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.podIPs",
                "status.nominatedNodeName",
            ),
        ),
        Resource("secrets", "Secret", True, "secret", field_labels=("type",)),
        Resource("configmaps", "ConfigMap", True, "configmap", ("cm",)),
        Resource(
            "events",
            "Event",
            True,
            "event",
            ("ev",),
            field_labels=(
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "source",
                "type",
            ),
        ),
        Resource("persistentvolumeclaims", "PersistentVolumeClaim", True, "persistentvolumeclaim", ("pvc",)),
    )
}

KIND_TO_RESOURCE = {r.kind: r for r in RESOURCES.values()}

REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "AlreadyExists",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class ApiError(Exception):
    """An error the API server answers with a `metav1.Status` body."""

    def __init__(self, code: int, message: str, reason: str | None = None, details: Obj | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason if reason is not None else REASONS.get(code, "")
        self.details = details

    def status(self) -> Obj:
        return status_body(self.code, self.message, self.reason, self.details)


def status_body(code: int, message: str, reason: str = "", details: Obj | None = None) -> Obj:
    body: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message}
    if reason:
        body["reason"] = reason
    if details is not None:
        body["details"] = details
    body["code"] = code
    return body


def not_found(resource: str, name: str) -> ApiError:
    return ApiError(404, f'{resource} "{name}" not found', "NotFound", {"name": name, "kind": resource})


def already_exists(resource: str, name: str) -> ApiError:
    return ApiError(409, f'{resource} "{name}" already exists', "AlreadyExists", {"name": name, "kind": resource})


def conflict(resource: str, name: str) -> ApiError:
    return ApiError(
        409,
        f'Operation cannot be fulfilled on {resource} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        "Conflict",
        {"name": name, "kind": resource},
    )


def invalid(kind: str, name: str, causes: list[tuple[str, str, str]]) -> ApiError:
    """causes: (field, cause reason such as FieldValueRequired, message such as 'Required value')."""
    text = ", ".join(f"{field}: {msg}" for field, _, msg in causes)
    if len(causes) > 1:
        text = "[" + text + "]"
    return ApiError(
        422,
        f'{kind} "{name}" is invalid: {text}',
        "Invalid",
        {
            "name": name,
            "kind": kind,
            "causes": [{"reason": reason, "message": msg, "field": field} for field, reason, msg in causes],
        },
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, message, "BadRequest")
