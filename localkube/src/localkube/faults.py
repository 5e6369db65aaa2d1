"""Fault injection: what a real cluster does when things go wrong — unpullable images, an unschedulable
node, slow scheduling and container start, a lost node, API errors (500/503/429 with Retry-After, any
Status code) for a time window or a number of requests, a refused listener, watch streams cut, and an
authorizer that says no. Callable from Python (any thread) and over HTTP (POST /_localkube/faults)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from localkube.resources import ApiError, bad_request

_MESSAGES = {
    429: "Too many requests, please try again later.",
    500: "Internal error occurred: injected fault",
    503: "the server is currently unable to handle the request",
    504: "Timeout: request did not complete within requested timeout - context deadline exceeded",
    403: "forbidden: injected fault",
}


@dataclass
class ApiFault:
    code: int
    until: float | None
    remaining: int | None
    paths: tuple[str, ...]
    verbs: tuple[str, ...]
    retry_after: int | None
    message: str

    def applies(self, method: str, path: str, verb: str, now: float) -> bool:
        if self.until is not None and now >= self.until:
            return False
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.paths and not any(path.startswith(p) for p in self.paths):
            return False
        return not self.verbs or method.upper() in self.verbs or verb.upper() in self.verbs


def k8s_verb(method: str, path: str, query: Mapping[str, str]) -> str:
    segs = [s for s in path.split("/") if s]
    collection = len(segs) % 2 == 1 if segs[:2] == ["api", "v1"] else False
    if method == "GET":
        if query.get("watch") in ("true", "1"):
            return "watch"
        return "list" if collection else "get"
    return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method, method.lower())


@dataclass
class Faults:
    unpullable_images: set[str] = field(default_factory=set)
    #: images whose name contains this text never pull (so a test needs no set-up to get ImagePullBackOff)
    unpullable_marker: str = "unpullable"
    unschedulable: bool = False
    schedule_delay: float = 0.0
    start_delay: float = 0.0
    denied: list[tuple[str | None, str | None]] = field(default_factory=list)
    access_policy: Callable[[Mapping[str, str]], bool] | None = None
    _api: list[ApiFault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # set by LocalCluster: run a coroutine on the server's loop; the server-side actions
    _run: Callable[[Coroutine[Any, Any, Any]], Any] | None = None
    _node_lost: Callable[[str | None, str | None], Coroutine[Any, Any, list[str]]] | None = None
    _refuse: Callable[[float], Coroutine[Any, Any, None]] | None = None
    _cut: Callable[[], None] | None = None

    # -- images, scheduling, timing -----------------------------------------------------------------
    def image_unpullable(self, image: str) -> bool:
        return image in self.unpullable_images or bool(self.unpullable_marker and self.unpullable_marker in image)

    def make_unpullable(self, image: str) -> None:
        self.unpullable_images.add(image)

    # -- API errors ----------------------------------------------------------------------------------
    def api_errors(
        self,
        code: int = 500,
        seconds: float | None = None,
        *,
        times: int | None = None,
        paths: Sequence[str] = (),
        verbs: Sequence[str] = (),
        retry_after: int | None = None,
        message: str | None = None,
    ) -> None:
        """Answer matching API requests with a Status of `code` for `seconds` and/or the next `times`
        requests (neither: until clear()). verbs: HTTP methods or Kubernetes verbs (get, list, watch ...)."""
        if retry_after is None and code == 429:
            retry_after = 1
        fault = ApiFault(
            code,
            time.monotonic() + seconds if seconds is not None else None,
            times,
            tuple(paths),
            tuple(v.upper() for v in verbs),
            retry_after,
            message or _MESSAGES.get(code, "injected fault"),
        )
        with self._lock:
            self._api = [*self._api, fault]

    def api_error_for(
        self, method: str, path: str, query: Mapping[str, str] | None = None
    ) -> tuple[ApiError, dict[str, str]] | None:
        verb = k8s_verb(method, path, query or {})
        now = time.monotonic()
        with self._lock:
            for fault in self._api:
                if fault.applies(method, path, verb, now):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
                    return ApiError(fault.code, fault.message), headers
        return None

    # -- authorization -------------------------------------------------------------------------------
    def deny(self, verb: str | None = None, resource: str | None = None) -> None:
        """SelfSubjectAccessReviews for this verb/resource (None: any) answer allowed=false. A subresource is
        written as RBAC writes it, ``pods/exec``; plain ``pods`` denies the resource, not its subresources."""
        self.denied.append((verb, resource))

    def access_allowed(self, attrs: Mapping[str, str]) -> bool:
        if self.access_policy is not None and not self.access_policy(attrs):
            return False
        asked = attrs.get("resource", "") + (f"/{attrs['subresource']}" if attrs.get("subresource") else "")
        for verb, resource in self.denied:
            if (verb is None or attrs.get("verb") == verb) and (resource is None or asked == resource):
                return False
        return True

    # -- actions on the running server ---------------------------------------------------------------
    def node_lost(self, pod: str | None = None, namespace: str | None = None) -> list[str]:
        """Marks running pods (all, or the named one) phase Unknown / reason NodeLost; returns their names."""
        assert self._run is not None and self._node_lost is not None, "the cluster is not running"
        result: list[str] = self._run(self._node_lost(pod, namespace))
        return result

    def refuse_connections(self, seconds: float) -> None:
        """Closes the listener (clients get 'connection refused'), reopening the same port after `seconds`."""
        assert self._run is not None and self._refuse is not None, "the cluster is not running"
        self._run(self._refuse(seconds))

    def cut_watches(self) -> None:
        """Ends every open watch stream now (kubectl get --watch exits 0, as on a real cluster)."""
        assert self._cut is not None, "the cluster is not running"
        self._cut()

    def clear(self) -> None:
        with self._lock:
            self._api = []
        self.unpullable_images.clear()
        self.unschedulable = False
        self.schedule_delay = self.start_delay = 0.0
        self.denied.clear()
        self.access_policy = None

    def describe(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "unpullableImages": sorted(self.unpullable_images),
            "unpullableMarker": self.unpullable_marker,
            "unschedulable": self.unschedulable,
            "scheduleDelay": self.schedule_delay,
            "startDelay": self.start_delay,
            "denied": [{"verb": v, "resource": r} for v, r in self.denied],
            "apiErrors": [
                {
                    "code": f.code,
                    "secondsLeft": None if f.until is None else max(0.0, f.until - now),
                    "remaining": f.remaining,
                    "paths": list(f.paths),
                    "verbs": list(f.verbs),
                }
                for f in self._api
                if (f.until is None or f.until > now) and (f.remaining is None or f.remaining > 0)
            ],
        }

    async def apply(self, body: Mapping[str, Any]) -> Any:
        """The HTTP form: {"action": "...", ...arguments of the Python method of the same name}."""
        action = body.get("action")
        args = {k: v for k, v in body.items() if k != "action"}
        try:
            if action == "api_errors":
                self.api_errors(**args)
            elif action == "make_unpullable":
                self.make_unpullable(str(args["image"]))
            elif action == "set":
                for key in ("unschedulable", "schedule_delay", "start_delay", "unpullable_marker"):
                    if key in args:
                        setattr(self, key, args[key])
            elif action == "deny":
                self.deny(args.get("verb"), args.get("resource"))
            elif action == "node_lost":
                assert self._node_lost is not None
                return await self._node_lost(args.get("pod"), args.get("namespace"))
            elif action == "refuse_connections":
                assert self._refuse is not None
                refuse = self._refuse
                seconds = float(args["seconds"])
                # after this response has gone out
                asyncio.get_running_loop().call_later(0.2, lambda: asyncio.ensure_future(refuse(seconds)))
            elif action == "cut_watches":
                self.cut_watches()
            elif action == "clear":
                self.clear()
            else:
                raise bad_request(f"unknown fault action {action!r}")
        except (TypeError, KeyError, ValueError) as e:
            raise bad_request(f"bad arguments for {action!r}: {e}") from e
        return None
