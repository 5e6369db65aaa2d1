"""SelfSubjectAccessReview as the authorizer answers it. kubectl posts the review as protobuf; the few
fields a policy needs (verb, resource, namespace ...) are read from the wire format by hand."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from localkube.protobuf import MAGIC, fields

AccessPolicy = Callable[[Mapping[str, str]], bool]

_RESOURCE_FIELDS = {1: "namespace", 2: "verb", 3: "group", 4: "version", 5: "resource", 6: "subresource", 7: "name"}


def _fields(buf: bytes) -> dict[int, bytes]:
    """Length-delimited fields of one protobuf message (the last one wins)."""
    return {n: v for n, v in fields(buf) if isinstance(v, bytes)}


def attributes(body: bytes, content_type: str) -> dict[str, str]:
    """The review's resourceAttributes (or nonResourceAttributes as path/verb); {} when unreadable."""
    try:
        if "json" in content_type:
            doc: Any = json.loads(body.decode())
            spec = doc.get("spec", {})
            attrs = spec.get("resourceAttributes") or spec.get("nonResourceAttributes") or {}
            return {str(k): str(v) for k, v in attrs.items() if isinstance(v, str)}
        if body.startswith(MAGIC):
            body = _fields(body[len(MAGIC) :]).get(2, b"")  # runtime.Unknown.raw
        spec = _fields(_fields(body).get(2, b""))  # SelfSubjectAccessReview.spec
        if 1 in spec:
            raw = _fields(spec[1])
            return {_RESOURCE_FIELDS[n]: v.decode() for n, v in raw.items() if n in _RESOURCE_FIELDS}
        if 2 in spec:
            raw = _fields(spec[2])
            return {{1: "path", 2: "verb"}[n]: v.decode() for n, v in raw.items() if n in (1, 2)}
    except (ValueError, UnicodeDecodeError, AttributeError):
        pass
    return {}


def review(body: bytes, content_type: str, policy: AccessPolicy) -> dict[str, Any]:
    attrs = attributes(body, content_type)
    allowed = policy(attrs)
    status: dict[str, Any] = {"allowed": allowed}
    spec_key = "nonResourceAttributes" if "path" in attrs else "resourceAttributes"
    return {
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": {spec_key: attrs},
        "status": status,
    }
