"""The node's view of the real apiserver, shaped as the double's Store so the kubelet runs unchanged: pods bound
to our node, Secrets, ConfigMaps and PVCs are listed and watched into memory (re-listed on 410 Gone); the
kubelet's writes (pod status, final pod deletion, Events) go back to the apiserver in order, one at a time."""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from localkube.controlplane.api import Api, path
from localkube.projected import TOKENS
from localkube.resources import ApiError, Obj, not_found
from localkube.store import Event, Store

log = logging.getLogger(__name__)
#: how long a TokenRequest the Node authorizer refuses is asked again (its graph lags the pod's binding)
TOKEN_RETRY_SECONDS = 10.0
TOKEN_RETRY_INTERVAL = 0.1


def merge_patch(old: Any, new: Any) -> Any:
    """The RFC 7386 merge patch that turns `old` into `new` (keys gone from new become null)."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return copy.deepcopy(new)
    out: dict[str, Any] = {k: None for k in old if k not in new}
    for k, v in new.items():
        if k not in old:
            out[k] = copy.deepcopy(v)
        elif old[k] != v:
            out[k] = merge_patch(old[k], v)
    return out


class MirrorStore(Store):
    def __init__(self, api: Api, node_name: str) -> None:
        super().__init__()
        self.api = api
        self.node_name = node_name
        self.synced = asyncio.Event()
        self._writes: asyncio.Queue[tuple[str, Callable[[], Awaitable[Any]]]] = asyncio.Queue()
        self._sent_status: dict[str, Obj] = {}  # pod uid -> the status the apiserver has from us

    def __post_init__(self) -> None:
        """No namespaces of our own: the apiserver has them."""

    def watched(self) -> list[tuple[str, dict[str, str]]]:
        return [
            ("secrets", {}),
            ("configmaps", {}),
            ("persistentvolumeclaims", {}),
            ("pods", {"fieldSelector": f"spec.nodeName={self.node_name}"}),
        ]

    # -- reading the apiserver -----------------------------------------------------------------------
    async def run(self) -> None:
        """List every watched resource once (then `synced` is set), then watch them all, and write."""
        versions = [(r, p, await self._relist(r, p)) for r, p in self.watched()]
        self.synced.set()
        await asyncio.gather(self._writer(), *(self._watch(r, p, rv) for r, p, rv in versions))

    async def _relist(self, resource: str, params: dict[str, str]) -> str:
        listing = await self.api.get(path(resource), **params)
        seen = set()
        for item in listing.get("items") or []:
            seen.add(self._key(resource, item))
            await self._apply(resource, "MODIFIED", item)
        for key in [k for k in self.objects if k[0] == resource and k not in seen]:
            await self._apply(resource, "DELETED", self.objects[key])
        return str(listing["metadata"]["resourceVersion"])

    async def _watch(self, resource: str, params: dict[str, str], rv: str) -> None:
        while True:
            try:
                if not rv:
                    rv = await self._relist(resource, params)
                query = {**params, "resourceVersion": rv, "allowWatchBookmarks": "true", "timeoutSeconds": "300"}
                async for ev in self.api.watch(path(resource), query):
                    obj = ev.get("object") or {}
                    if ev.get("type") == "ERROR":
                        log.info("watch %s: %s; listing again", resource, obj.get("message"))
                        rv = ""
                        break
                    rv = str(obj.get("metadata", {}).get("resourceVersion") or rv)
                    if ev.get("type") != "BOOKMARK":
                        await self._apply(resource, str(ev["type"]), obj)
            except (aiohttp.ClientError, ApiError, TimeoutError, ValueError) as e:
                log.warning("watch %s failed (%s); listing again", resource, e)
                rv = ""
                await asyncio.sleep(1)

    @staticmethod
    def _key(resource: str, obj: Obj) -> tuple[str, str, str]:
        meta = obj["metadata"]
        return resource, str(meta.get("namespace", "")), str(meta["name"])

    async def _apply(self, resource: str, type_: str, obj: Obj) -> None:
        key = self._key(resource, obj)
        old = self.objects.get(key)
        if type_ == "DELETED":
            if old is None:
                return
            del self.objects[key]
            self._sent_status.pop(old["metadata"]["uid"], None)
        else:
            if old is not None and old["metadata"]["uid"] != obj["metadata"]["uid"]:
                await self._apply(resource, "DELETED", old)
                old = None
            if resource == "pods" and old is None:
                await self._fetch_tokens(obj)
                self._sent_status[obj["metadata"]["uid"]] = copy.deepcopy(obj.get("status") or {})
            self.objects[key] = obj
            type_ = "ADDED" if old is None else "MODIFIED"
        self._emit(Event(int(obj["metadata"].get("resourceVersion") or 0), type_, resource, key[1], obj, old))

    async def _fetch_tokens(self, pod: Obj) -> None:
        """Bound service-account tokens for the pod's projected volumes (what the kubelet's token manager does)."""
        meta = pod["metadata"]
        for vol in pod["spec"].get("volumes") or []:
            for source in (vol.get("projected") or {}).get("sources") or []:
                tok = source.get("serviceAccountToken")
                if not tok:
                    continue
                request = {
                    "apiVersion": "authentication.k8s.io/v1",
                    "kind": "TokenRequest",
                    "spec": {
                        "audiences": [tok["audience"]] if tok.get("audience") else [],
                        "expirationSeconds": int(tok.get("expirationSeconds", 3607)),
                        "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": meta["name"], "uid": meta["uid"]},
                    },
                }
                sa = pod["spec"].get("serviceAccountName") or "default"
                try:
                    answer = await self._token(path("serviceaccounts", meta["namespace"], sa, "token"), request)
                except ApiError as e:
                    log.warning("no token for pod %s/%s: %s", meta["namespace"], meta["name"], e.message)
                    continue
                key = (TOKENS, meta["namespace"], f"{meta['uid']}/{tok['path']}")
                self.objects[key] = {"metadata": {"name": key[2]}, "token": answer["status"]["token"]}

    async def _token(self, url_path: str, request: Obj) -> Any:
        """One TokenRequest, asked again while the Node authorizer refuses it: its graph learns of the pod's
        binding from a watch of its own, so a node that saw the bound pod first may ask a moment too early
        ("node requested token bound to a pod scheduled on a different node"); the kubelet's volume manager
        retries the mount the same way."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TOKEN_RETRY_SECONDS
        while True:
            try:
                return await self.api.request("POST", url_path, request)
            except ApiError as e:
                if e.code != 403 or loop.time() >= deadline:
                    raise
            await asyncio.sleep(TOKEN_RETRY_INTERVAL)

    # -- the kubelet's writes ------------------------------------------------------------------------
    def _send(self, what: str, call: Callable[[], Awaitable[Any]]) -> None:
        self._writes.put_nowait((what, call))

    async def _writer(self) -> None:
        while True:
            what, call = await self._writes.get()
            try:
                await call()
            except ApiError as e:
                if e.code not in (404, 409):
                    log.warning("%s: %s %s", what, e.code, e.message)
            except (aiohttp.ClientError, TimeoutError) as e:
                log.warning("%s: %s", what, e)

    def update_status(self, pod: Obj) -> Obj:
        meta = pod["metadata"]
        key = ("pods", meta["namespace"], meta["name"])
        old = self.objects.get(key)
        if old is None or old["metadata"]["uid"] != meta["uid"]:
            raise not_found("pods", meta["name"])
        new = copy.deepcopy(old)
        new["status"] = copy.deepcopy(pod["status"])
        self.objects[key] = new
        uid = meta["uid"]
        sent = self._sent_status.get(uid, {})
        if sent == new["status"]:
            return copy.deepcopy(new)
        patch = {"status": merge_patch(sent, new["status"])}
        self._sent_status[uid] = copy.deepcopy(new["status"])
        target = path("pods", meta["namespace"], meta["name"], "status")
        self._send(
            f"status of pod {meta['name']}",
            lambda: self.api.request("PATCH", target, patch, content_type="application/merge-patch+json"),
        )
        return copy.deepcopy(new)

    def remove(self, resource: str, namespace: str, name: str) -> Obj:
        """The kubelet's final delete once the containers are gone: grace 0, for this uid only."""
        obj = self.objects.get((resource, namespace, name))
        if obj is None:
            raise not_found(resource, name)
        options = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0}
        options["preconditions"] = {"uid": obj["metadata"]["uid"]}
        target = path(resource, namespace, name)
        self._send(f"delete {resource} {name}", lambda: self.api.request("DELETE", target, options))
        return copy.deepcopy(obj)

    def create(self, resource: str, namespace: str, obj: Obj) -> Obj:
        if resource != "events":
            raise ApiError(405, f"the node does not create {resource}", "MethodNotAllowed")
        event = {**copy.deepcopy(obj), "apiVersion": "v1", "kind": "Event"}
        self.objects[("events", namespace, event["metadata"]["name"])] = event
        self._send("post an event", lambda: self.api.request("POST", path("events", namespace), event))
        return copy.deepcopy(event)

    def replace(self, resource: str, namespace: str, name: str, obj: Obj, *, status_only: bool = False) -> Obj:
        if resource != "events":
            raise ApiError(405, f"the node does not replace {resource}", "MethodNotAllowed")
        event = copy.deepcopy(obj)
        self.objects[("events", namespace, name)] = event
        patch = {"count": event.get("count"), "lastTimestamp": event.get("lastTimestamp")}
        target = path("events", namespace, name)
        self._send(
            "count an event",
            lambda: self.api.request("PATCH", target, patch, content_type="application/merge-patch+json"),
        )
        return copy.deepcopy(event)

    def finish_namespaces(self) -> None:
        """The real namespace controller (kube-controller-manager) does this."""
