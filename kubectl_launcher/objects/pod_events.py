"""The Warning events of every pod of a namespace, read at most once per interval and served by pod name.

A pending pod is classified from its events (domain/pod_status.py: FailedScheduling, pull and mount
failures, all of type Warning). Upstream reads them with one query per pod per second; here every
handle of a site asks this cache, and while any of them asks, one `kubectl get events` per interval
serves them all. Nobody asking: no query at all.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import cast

from kubectl_launcher.domain.pod_status import Event
from kubectl_launcher.errors import KubectlError, ProtocolError
from kubectl_launcher.kubectl import Kubectl
from kubectl_launcher.kubectl.purpose import EVENTS

__all__ = ["DEFAULT_EVENTS_INTERVAL", "EventsCache", "namespace_events_args"]

#: Seconds one read of the namespace's events is served for (upstream reads each pod's once a second).
DEFAULT_EVENTS_INTERVAL = 1.0


def namespace_events_args(namespace: str) -> tuple[str, ...]:
    """The Warning events about pods of one namespace, as a JSON List (the only events the pending
    classification reads)."""
    return (
        "get",
        "events",
        "--namespace",
        namespace,
        "--field-selector",
        "involvedObject.kind=Pod,type=Warning",
        "--output",
        "json",
    )


class EventsCache:
    """`events_for(pod)`: that pod's Warning events, from one namespace-wide read per `interval`.

    Callers arriving while a read is under way wait for it and share its answer; a failed read is
    remembered for the interval too (None for everyone), so an outage costs one query per interval,
    not one per pod.
    """

    def __init__(
        self,
        kubectl: Kubectl,
        namespace: str,
        *,
        interval: float = DEFAULT_EVENTS_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kubectl = kubectl
        self._namespace = namespace
        self._interval = interval
        self._clock = clock
        self._cond = threading.Condition()
        self._fetching = False
        self._read_at: float | None = None
        self._by_pod: dict[str, list[Event]] | None = None
        self.reads = 0  # how many queries were sent

    def events_for(self, pod_name: str) -> list[Event] | None:
        """The pod's Warning events, newest information at most `interval` old; None: could not be read."""
        with self._cond:
            while True:
                if self._read_at is not None and self._clock() - self._read_at < self._interval:
                    return None if self._by_pod is None else list(self._by_pod.get(pod_name, []))
                if not self._fetching:
                    self._fetching = True
                    break
                self._cond.wait()
        by_pod: dict[str, list[Event]] | None = None
        try:
            by_pod = self._read()
        finally:
            with self._cond:
                self._fetching = False
                self._by_pod = by_pod
                self._read_at = self._clock()
                self.reads += 1
                self._cond.notify_all()
        return None if by_pod is None else list(by_pod.get(pod_name, []))

    def _read(self) -> dict[str, list[Event]] | None:
        try:
            document = self._kubectl.get_json(namespace_events_args(self._namespace), purpose=EVENTS)
        except (KubectlError, ProtocolError):
            return None
        items = (document or {}).get("items")
        by_pod: dict[str, list[Event]] = {}
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, dict):
                continue
            involved = item.get("involvedObject")
            name = involved.get("name") if isinstance(involved, dict) else None
            if isinstance(name, str) and name:
                by_pod.setdefault(name, []).append(cast(Event, item))
        return by_pod
