"""Discovery as kube-apiserver serves it: /version, legacy /api, /apis and group-version resource lists, and
the OpenAPI v3 documents kubectl ≥1.29 reads to decide that the server validates fields itself."""

from __future__ import annotations

import hashlib
import json

from localkube.resources import RESOURCES, Obj

AUTHZ_GROUP = "authorization.k8s.io"
_SUBRESOURCES: list[Obj] = [
    {"name": "pods/status", "kind": "Pod", "verbs": ["get", "patch", "update"]},
    {"name": "pods/log", "kind": "Pod", "verbs": ["get"]},
    {"name": "pods/exec", "kind": "PodExecOptions", "verbs": ["create", "get"]},
    {"name": "namespaces/status", "kind": "Namespace", "verbs": ["get", "patch", "update"]},
]


def version(v: str) -> Obj:
    major, minor = v.split(".")[:2]
    patch = v.split(".")[2] if v.count(".") >= 2 else "0"
    git = f"v{major}.{minor}.{patch}"
    return {
        "major": major,
        "minor": minor,
        "emulationMajor": major,
        "emulationMinor": minor,
        "gitVersion": git,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.23.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def api_versions() -> Obj:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    }


def api_groups() -> Obj:
    gv = {"groupVersion": f"{AUTHZ_GROUP}/v1", "version": "v1"}
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [{"name": AUTHZ_GROUP, "versions": [gv], "preferredVersion": gv}],
    }


def core_resources() -> Obj:
    resources: list[Obj] = []
    for r in RESOURCES.values():
        entry: Obj = {
            "name": r.name,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": list(r.verbs),
        }
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.name == "pods":
            entry["categories"] = ["all"]
        resources.append(entry)
    for sub in _SUBRESOURCES:
        namespaced = RESOURCES[sub["name"].split("/")[0]].namespaced
        resources.append({"singularName": "", "namespaced": namespaced, **sub})
    return {"kind": "APIResourceList", "groupVersion": "v1", "resources": resources}


def authz_resources() -> Obj:
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{AUTHZ_GROUP}/v1",
        "resources": [
            {
                "name": "selfsubjectaccessreviews",
                "singularName": "selfsubjectaccessreview",
                "namespaced": False,
                "kind": "SelfSubjectAccessReview",
                "verbs": ["create"],
            }
        ],
    }


def openapi_v3_api_v1(v: str) -> Obj:
    # One PATCH operation per kind that carries the fieldValidation parameter: enough for kubectl to hand
    # field validation to the server instead of downloading schemas (see the spike notes).
    paths: Obj = {}
    for r in RESOURCES.values():
        prefix = "/api/v1/namespaces/{namespace}" if r.namespaced else "/api/v1"
        paths[f"{prefix}/{r.name}/{{name}}"] = {
            "patch": {
                "x-kubernetes-group-version-kind": {"group": "", "version": "v1", "kind": r.kind},
                "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}],
                "responses": {},
            }
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": f"v{v}.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }


def openapi_v3_api_v1_bytes(v: str) -> tuple[bytes, str]:
    """The document as served, and its hash: as kube-openapi's handler3, the upper-case hex SHA-512 of the
    served bytes, which the discovery's URL carries and the document's ETag repeats."""
    body = json.dumps(openapi_v3_api_v1(v), sort_keys=True).encode()
    return body, hashlib.sha512(body).hexdigest().upper()


def openapi_v3_root(v: str) -> Obj:
    digest = openapi_v3_api_v1_bytes(v)[1]
    return {"paths": {"api/v1": {"serverRelativeURL": f"/openapi/v3/api/v1?hash={digest}"}}}
