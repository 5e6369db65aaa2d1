"""The API server's storage (etcd + registry): objects keyed by (resource, namespace, name), one global
integer resourceVersion, an append-only event log that watches replay from, graceful pod deletion and the
garbage collector's cascading delete of dependents (ownerReferences)."""

from __future__ import annotations

import asyncio
import copy
import datetime
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from localkube import admission
from localkube.resources import RESOURCES, ApiError, Obj, already_exists, conflict, not_found

Key = tuple[str, str, str]
Listener = Callable[["Event"], None]


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def later(seconds: int) -> str:
    t = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Event:
    rv: int
    type: str  # ADDED | MODIFIED | DELETED
    resource: str
    namespace: str
    obj: Obj
    old: Obj | None = None


@dataclass
class Store:
    history: int = 5000
    objects: dict[Key, Obj] = field(default_factory=dict)
    log: list[Event] = field(default_factory=list)
    rv: int = 1000
    #: oldest resourceVersion a watch may still start from (older ones get 410 Expired)
    compacted_rv: int = 1000
    listeners: list[Listener] = field(default_factory=list)
    watchers: set[asyncio.Queue[Event | None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.create("namespaces", "", {"metadata": {"name": ns}})

    # -- reads ---------------------------------------------------------------------------------------
    def get(self, resource: str, namespace: str, name: str) -> Obj:
        obj = self.objects.get((resource, namespace, name))
        if obj is None:
            raise not_found(resource, name)
        return copy.deepcopy(obj)

    def find(self, resource: str, namespace: str, name: str) -> Obj | None:
        obj = self.objects.get((resource, namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def items(self, resource: str, namespace: str | None = None) -> Iterator[Obj]:
        for (res, ns, _), obj in list(self.objects.items()):
            if res == resource and (namespace is None or ns == namespace):
                yield obj

    def select(self, resource: str, namespace: str | None, match: Callable[[Obj], bool]) -> tuple[list[Obj], int]:
        found = [copy.deepcopy(o) for o in self.items(resource, namespace) if match(o)]
        found.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return found, self.rv

    # -- writes --------------------------------------------------------------------------------------
    def create(self, resource: str, namespace: str, obj: Obj) -> Obj:
        info = RESOURCES[resource]
        obj = admission.require_kind(copy.deepcopy(obj), info.kind)
        meta = obj.setdefault("metadata", {})
        if info.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise ApiError(
                    400,
                    "the namespace of the provided object does not match the namespace sent on the request",
                    "BadRequest",
                )
            ns_obj = self.objects.get(("namespaces", "", namespace))
            if ns_obj is None:
                raise not_found("namespaces", namespace)
            if ns_obj["metadata"].get("deletionTimestamp"):
                raise ApiError(
                    403,
                    f'{resource} "{meta.get("name", "")}" is forbidden: unable to create new content in namespace '
                    f"{namespace} because it is being terminated",
                    "Forbidden",
                )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        admission.validate(resource, info.kind, obj)
        key = (resource, namespace if info.namespaced else "", meta["name"])
        if key in self.objects:
            raise already_exists(resource, meta["name"])
        obj["kind"] = info.kind
        obj["apiVersion"] = "v1"
        for transient in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields"):
            meta.pop(transient, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now()
        if resource in ("pods", "namespaces"):
            meta["generation"] = 1
        admission.default(resource, obj)
        return self._write(key, obj, "ADDED", None)

    def replace(self, resource: str, namespace: str, name: str, obj: Obj, *, status_only: bool = False) -> Obj:
        """PUT semantics: optimistic concurrency on metadata.resourceVersion, immutable system fields."""
        info = RESOURCES[resource]
        key = (resource, namespace if info.namespaced else "", name)
        old = self.objects.get(key)
        if old is None:
            raise not_found(resource, name)
        new = admission.require_kind(copy.deepcopy(obj), info.kind)
        meta = new.setdefault("metadata", {})
        if meta.get("name") and meta["name"] != name:
            raise ApiError(400, "the name of the object does not match the name on the URL", "BadRequest")
        given_rv = meta.get("resourceVersion")
        if given_rv and str(given_rv) != old["metadata"]["resourceVersion"]:
            raise conflict(resource, name)
        if status_only:
            merged = copy.deepcopy(old)
            merged["status"] = new.get("status", {})
            new = merged
        else:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            for system in (
                "uid",
                "creationTimestamp",
                "namespace",
                "name",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ):
                if system in old["metadata"]:
                    meta[system] = old["metadata"][system]
                else:
                    meta.pop(system, None)
            if resource == "secrets" and "stringData" in new:
                admission.default("secrets", new)
            admission.validate(resource, info.kind, new)
            if resource == "pods":
                admission.check_pod_update(old, new)
            if resource in ("secrets", "configmaps"):
                admission.check_immutable_secret(old, new, info.kind)
            if resource in ("pods", "namespaces") and old.get("spec") != new.get("spec"):
                meta["generation"] = int(old["metadata"].get("generation", 1)) + 1
        new["kind"], new["apiVersion"] = info.kind, "v1"
        if _same(old, new):
            return copy.deepcopy(old)
        return self._write(key, new, "MODIFIED", old)

    def update_status(self, pod: Obj) -> Obj:
        """The kubelet's own writes: whatever it sends becomes the stored object."""
        meta = pod["metadata"]
        key = ("pods", meta["namespace"], meta["name"])
        old = self.objects.get(key)
        if old is None or old["metadata"]["uid"] != meta["uid"]:
            raise not_found("pods", meta["name"])
        new = copy.deepcopy(old)
        new["status"] = copy.deepcopy(pod["status"])
        if "nodeName" in pod.get("spec", {}):
            new["spec"]["nodeName"] = pod["spec"]["nodeName"]
        if _same(old, new):
            return copy.deepcopy(old)
        return self._write(key, new, "MODIFIED", old)

    def delete(self, resource: str, namespace: str, name: str, grace: int | None = None, uid: str | None = None) -> Obj:
        """DELETE: pods bound to the node and still running get a deletionTimestamp and are removed once the
        kubelet has killed them; everything else is removed at once."""
        info = RESOURCES[resource]
        key = (resource, namespace if info.namespaced else "", name)
        old = self.objects.get(key)
        if old is None:
            raise not_found(resource, name)
        if uid and old["metadata"]["uid"] != uid:
            raise ApiError(
                409,
                f"Precondition failed: UID in precondition: {uid}, UID in object meta: {old['metadata']['uid']}",
                "Conflict",
            )
        if resource == "pods":
            if grace is None:
                grace = int(old["spec"].get("terminationGracePeriodSeconds", 30))
            bound = bool(old["spec"].get("nodeName"))
            finished = old.get("status", {}).get("phase") in ("Succeeded", "Failed")
            if grace > 0 and bound and not finished:
                if old["metadata"].get("deletionTimestamp"):
                    return copy.deepcopy(old)
                new = copy.deepcopy(old)
                new["metadata"]["deletionTimestamp"] = later(grace)
                new["metadata"]["deletionGracePeriodSeconds"] = grace
                return self._write(key, new, "MODIFIED", old)
        if resource == "namespaces":
            return self._delete_namespace(name)
        return self.remove(resource, namespace, name)

    def remove(self, resource: str, namespace: str, name: str) -> Obj:
        """Final removal (DELETED event), then the garbage collector's background cascade."""
        info = RESOURCES[resource]
        key = (resource, namespace if info.namespaced else "", name)
        old = self.objects.pop(key, None)
        if old is None:
            raise not_found(resource, name)
        self.rv += 1
        gone = copy.deepcopy(old)
        gone["metadata"]["resourceVersion"] = str(self.rv)
        self._emit(Event(self.rv, "DELETED", resource, key[1], gone, old))
        self._collect_dependents(old["metadata"]["uid"])
        return copy.deepcopy(gone)

    def _collect_dependents(self, owner_uid: str) -> None:
        for (res, ns, name), obj in list(self.objects.items()):
            refs = obj["metadata"].get("ownerReferences") or []
            if any(r.get("uid") == owner_uid for r in refs) and (res, ns, name) in self.objects:
                self.delete(res, ns, name)

    def _delete_namespace(self, name: str) -> Obj:
        old = self.objects[("namespaces", "", name)]
        new = copy.deepcopy(old)
        new["metadata"]["deletionTimestamp"] = now()
        new["status"] = {"phase": "Terminating"}
        result = self._write(("namespaces", "", name), new, "MODIFIED", old)
        for res, ns, obj_name in [k for k in self.objects if k[1] == name]:
            if (res, ns, obj_name) in self.objects:
                self.delete(res, ns, obj_name)
        self.finish_namespaces()
        return result

    def finish_namespaces(self) -> None:
        """The namespace controller: a terminating namespace goes away once it is empty."""
        for key, obj in list(self.objects.items()):
            if key[0] == "namespaces" and obj["metadata"].get("deletionTimestamp"):
                if not any(k[1] == key[2] for k in self.objects):
                    self.remove("namespaces", "", key[2])

    def _write(self, key: Key, obj: Obj, kind: str, old: Obj | None) -> Obj:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.objects[key] = obj
        self._emit(Event(self.rv, kind, key[0], key[1], copy.deepcopy(obj), copy.deepcopy(old) if old else None))
        return copy.deepcopy(obj)

    def _emit(self, event: Event) -> None:
        self.log.append(event)
        if len(self.log) > self.history:
            drop = len(self.log) - self.history
            self.compacted_rv = self.log[drop - 1].rv
            del self.log[:drop]
        for q in list(self.watchers):
            q.put_nowait(event)
        for listener in list(self.listeners):
            listener(event)

    # -- watch support -------------------------------------------------------------------------------
    def events_after(self, rv: int) -> list[Event]:
        if rv < self.compacted_rv:
            raise ApiError(410, f"too old resource version: {rv} ({self.compacted_rv + 1})", "Expired")
        return [e for e in self.log if e.rv > rv]

    def compact(self) -> None:
        """Forgets the event history, as etcd compaction does (watches from older versions get 410)."""
        self.log.clear()
        self.compacted_rv = self.rv


def _same(a: Obj, b: Obj) -> bool:
    def strip(o: Obj) -> Obj:
        c = copy.deepcopy(o)
        c["metadata"].pop("resourceVersion", None)
        c["metadata"].pop("managedFields", None)
        return c

    return strip(a) == strip(b)
