"""core/v1 Events as the kubelet's and scheduler's event recorders write them (repeats of the same event are
aggregated into one object with a count, as client-go's EventCorrelator does)."""

from __future__ import annotations

import secrets

from localkube.resources import ApiError, Obj
from localkube.store import Store, now


class EventRecorder:
    def __init__(self, store: Store, node_name: str) -> None:
        self.store = store
        self.node_name = node_name
        self._seen: dict[tuple[str, str, str, str, str], str] = {}

    def record(
        self, pod: Obj, type_: str, reason: str, message: str, component: str = "kubelet", field_path: str | None = None
    ) -> None:
        meta = pod["metadata"]
        ns = meta["namespace"]
        key = (meta["uid"], reason, message, component, field_path or "")
        stamp = now()
        existing = self._seen.get(key)
        if existing is not None:
            old = self.store.find("events", ns, existing)
            if old is not None:
                old["count"] = int(old.get("count", 1)) + 1
                old["lastTimestamp"] = stamp
                try:
                    self.store.replace("events", ns, existing, old)
                except ApiError:
                    pass
                return
        name = f"{meta['name']}.{secrets.token_hex(8)}"
        involved: Obj = {
            "kind": "Pod",
            "namespace": ns,
            "name": meta["name"],
            "uid": meta["uid"],
            "apiVersion": "v1",
            "resourceVersion": meta.get("resourceVersion", ""),
        }
        if field_path:
            involved["fieldPath"] = field_path
        source: Obj = {"component": component}
        if component == "kubelet":
            source["host"] = self.node_name
        event: Obj = {
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "source": source,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "type": type_,
            "eventTime": None,
            "reportingComponent": component,
            "reportingInstance": self.node_name if component == "kubelet" else "",
        }
        try:
            self.store.create("events", ns, event)
        except ApiError:
            return  # the namespace is going away
        self._seen[key] = name
