"""The site-wide pod watch's cache as pure state: fed with lists and watch events, read by pod name.

An informer in the manner of client-go's reflector, without its I/O (objects/pod_watch.py runs
kubectl and feeds this): a list replaces the cache and reconciles it (pods missing from a fresh list
are gone), watch events update it, and every read says found / gone / unavailable. Three rules keep
a reader from ever being told "gone" falsely:

* a pod is gone only once a DELETED event said so, or a list that *began after* the reader
  subscribed did not hold it (a pod created just before subscribing is in any such list);
* while the watch cannot be re-established, reads are unavailable (with the error and whether the
  server refused us), carrying the last pod seen, until a list succeeds again;
* a pod never seen yet reads as unavailable ("not seen yet"), not as gone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from kubectl_launcher.domain.job_tracker import PodRead, PodReadStatus  # the handle's own value: no conversion
from kubectl_launcher.domain.pod_status import Pod

__all__ = [
    "NOT_LISTED",
    "PodCache",
    "PodRead",
    "PodReadStatus",
    "WatchEvent",
    "parse_watch_event",
    "reconnect_delay",
]

NOT_LISTED = "the site's pod watch has not listed the pods yet"
_NOT_SEEN = "the site's pod watch has not seen pod {name} yet"
_POD_EVENTS = ("ADDED", "MODIFIED", "DELETED")


@dataclass(frozen=True)
class WatchEvent:
    """One line of a watch: a pod added, modified or deleted, a bookmark, or an error."""

    type: str  # ADDED | MODIFIED | DELETED | BOOKMARK | ERROR
    name: str = ""
    resource_version: str = ""
    pod: Pod | None = None
    expired: bool = False  # ERROR 410 Gone/Expired: the resourceVersion is too old, list again
    message: str = ""  # an ERROR's Status message


def parse_watch_event(document: Mapping[str, Any]) -> WatchEvent:
    """A watch event as the API server sends it ({"type": ..., "object": ...}); ValueError if it is not one."""
    kind = document.get("type")
    obj = document.get("object")
    if not isinstance(kind, str) or not isinstance(obj, dict):
        raise ValueError(f"not a watch event: keys {sorted(document)}")
    found = obj.get("metadata")
    meta: Mapping[str, Any] = found if isinstance(found, dict) else {}
    rv = str(meta.get("resourceVersion") or "")
    if kind == "ERROR":
        code, reason = obj.get("code"), str(obj.get("reason") or "")
        message = str(obj.get("message") or reason or "watch error")
        expired = code == 410 or reason in ("Expired", "Gone") or "too old resource version" in message
        return WatchEvent("ERROR", expired=expired, message=f"{message} (code {code})")
    if kind == "BOOKMARK":
        return WatchEvent("BOOKMARK", resource_version=rv)
    if kind not in _POD_EVENTS or obj.get("kind") not in (None, "Pod"):
        raise ValueError(f"not a pod watch event: type {kind!r}, kind {obj.get('kind')!r}")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"a {kind} event without a pod name")
    return WatchEvent(kind, name, rv, cast(Pod, obj))


def reconnect_delay(failures: int, jitter: float, *, first: float = 0.5, cap: float = 30.0) -> float:
    """Seconds to wait after `failures` failures in a row (1, 2, ...): capped exponential, with "equal
    jitter" (`jitter` in [0, 1) gives a delay in [half, all] of the step), so that many sites do not
    come back in step. 0 failures: no wait."""
    if failures <= 0:
        return 0.0
    step = min(cap, first * 2.0 ** (failures - 1))
    return step / 2 + step / 2 * min(max(jitter, 0.0), 1.0)


def _rv(pod: Pod) -> str:
    return str((pod.get("metadata") or {}).get("resourceVersion") or "")


def _name(pod: Mapping[str, Any]) -> str:
    meta = pod.get("metadata")
    return str(meta.get("name") or "") if isinstance(meta, dict) else ""


@dataclass
class _Interest:
    count: int
    since_list: int  # lists begun before the first subscription: only a later one may prove it absent
    since: float  # when (the caller's clock) it was first subscribed


@dataclass
class PodCache:
    """The pods of one site as last listed and watched; not thread-safe (the watch holds a lock)."""

    pods: dict[str, Pod] = field(default_factory=dict)
    resource_version: str = ""  # the last one seen: the next watch starts from it
    available: bool = False
    error: str = NOT_LISTED
    permanent: bool = False
    lists_begun: int = 0
    _gone: set[str] = field(default_factory=set)  # tombstones, kept only while someone is subscribed
    _interest: dict[str, _Interest] = field(default_factory=dict)

    # -- subscribers --

    def subscribe(self, name: str, now: float) -> None:
        interest = self._interest.get(name)
        if interest is None:
            self._interest[name] = _Interest(1, self.lists_begun, now)
        else:
            interest.count += 1

    def unsubscribe(self, name: str) -> bool:
        """Drop one subscription; True when nobody is subscribed to anything any more."""
        interest = self._interest.get(name)
        if interest is not None:
            interest.count -= 1
            if interest.count <= 0:
                del self._interest[name]
                self._gone.discard(name)
        return not self._interest

    @property
    def subscribed(self) -> frozenset[str]:
        return frozenset(self._interest)

    def unconfirmed(self, now: float, after: float) -> bool:
        """Some subscribed pod has not been seen for `after` seconds and no list began since it was
        subscribed: a list would tell whether it exists (it was deleted before we looked, or never made)."""
        if not self.available:
            return False
        return any(
            name not in self.pods
            and name not in self._gone
            and interest.since_list >= self.lists_begun
            and now - interest.since >= after
            for name, interest in self._interest.items()
        )

    # -- reading --

    def read(self, name: str) -> PodRead:
        pod = self.pods.get(name)
        if name in self._gone:
            return PodRead(PodReadStatus.GONE)
        if not self.available:
            return PodRead(PodReadStatus.UNAVAILABLE, pod, self.error, self.permanent)
        if pod is not None:
            return PodRead(PodReadStatus.FOUND, pod)
        return PodRead(PodReadStatus.UNAVAILABLE, None, _NOT_SEEN.format(name=name))

    # -- feeding --

    def begin_list(self) -> int:
        """A list is about to be sent; pass the token to finish_list."""
        self.lists_begun += 1
        return self.lists_begun

    def finish_list(self, token: int, items: Iterable[Mapping[str, Any]], resource_version: str) -> set[str]:
        """Replace the cache by a fresh list and reconcile; the subscribed names whose read changed."""
        before = {name: self.read(name) for name in self._interest}
        listed = {name: cast(Pod, item) for item in items if (name := _name(item))}
        for name in set(self.pods) - set(listed):
            if name in self._interest:
                self._gone.add(name)
        for name in listed:
            self._gone.discard(name)
        for name, interest in self._interest.items():
            if name not in listed and interest.since_list < token:
                self._gone.add(name)  # subscribed before this list began, and not in it
        self.pods = listed
        self.resource_version = resource_version
        self.available, self.error, self.permanent = True, "", False
        return self._changed(before)

    def apply(self, event: WatchEvent) -> set[str]:
        """One watch event; the subscribed names whose read changed."""
        if event.resource_version:
            self.resource_version = event.resource_version
        if event.type not in _POD_EVENTS or event.pod is None:
            return set()
        name = event.name
        if event.type == "DELETED":
            self.pods.pop(name, None)
            if name in self._interest and name not in self._gone:
                self._gone.add(name)
                return {name}
            return set()
        old = self.pods.get(name)
        self.pods[name] = event.pod
        was_gone = name in self._gone
        self._gone.discard(name)
        changed = was_gone or old is None or _rv(old) != _rv(event.pod) or old != event.pod
        return {name} if changed and name in self._interest else set()

    def mark_unavailable(self, error: str, permanent: bool) -> set[str]:
        """The watch cannot be re-established; the subscribed names whose read changed."""
        before = {name: self.read(name) for name in self._interest}
        self.available, self.error, self.permanent = False, error, permanent
        return self._changed(before)

    def _changed(self, before: Mapping[str, PodRead]) -> set[str]:
        return {name for name, read in before.items() if self.read(name) != read} | {
            name for name in self._interest if name not in before
        }
