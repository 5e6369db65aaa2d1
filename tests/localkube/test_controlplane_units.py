"""Pure pieces of the real control plane's node: the status patch it sends, the audit log read back as requests,
and the Node status it posts."""

from __future__ import annotations

import json
from pathlib import Path

from localkube.controlplane.cluster import audit_requests
from localkube.controlplane.mirror import merge_patch
from localkube.controlplane.node import node_status


def test_status_patch_nulls_what_the_new_status_dropped() -> None:
    old = {"phase": "Pending", "containerStatuses": [{"state": {"waiting": {}}}], "reason": "x"}
    new = {"phase": "Running", "containerStatuses": [{"state": {"running": {}}}]}
    assert merge_patch(old, new) == {"phase": "Running", "containerStatuses": new["containerStatuses"], "reason": None}
    nested = merge_patch({"a": {"b": 1, "c": 2}}, {"a": {"b": 1}})
    assert nested == {"a": {"c": None}}


def test_audit_log_becomes_recorded_requests(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    entries = [
        {
            "auditID": "1",
            "stage": "ResponseStarted",
            "verb": "watch",
            "requestURI": "/api/v1/pods?watch=1",
            "userAgent": "kubectl/v1.37.1",
            "requestReceivedTimestamp": "2026-12-01T21:00:00.000000Z",
        },
        {"auditID": "1", "stage": "ResponseComplete", "verb": "watch", "requestURI": "/api/v1/pods?watch=1"},
        {
            "auditID": "2",
            "stage": "ResponseComplete",
            "verb": "patch",
            "requestURI": "/api/v1/namespaces/d/secrets/s",
            "userAgent": "kubectl/v1.37.1",
            "requestReceivedTimestamp": "2026-12-01T21:00:01.000000Z",
        },
        {"auditID": "3", "stage": "ResponseComplete", "verb": "deletecollection", "requestURI": "/api/v1/pods"},
    ]
    log.write_text("".join(json.dumps(e) + "\n" for e in entries))
    got = [(r.method, r.path, r.query) for r in audit_requests(str(log))]
    assert got == [
        ("GET", "/api/v1/pods", "watch=1"),
        ("PATCH", "/api/v1/namespaces/d/secrets/s", ""),
        ("DELETE", "/api/v1/pods", ""),
    ]
    assert audit_requests(str(tmp_path / "missing.log")) == []


def test_node_status_declares_websockets_to_the_kubelet_and_is_ready() -> None:
    status = node_status({"cpu": "2", "pods": "110"}, 10250, "v1.37.2", "localkube")
    assert status["declaredFeatures"] == ["ExtendWebSocketsToKubelet"]
    assert status["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10250}}
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {"MemoryPressure": "False", "DiskPressure": "False", "PIDPressure": "False", "Ready": "True"}
