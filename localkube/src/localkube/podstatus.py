"""Pod status as the kubelet's status manager writes it for restartPolicy Never: container states
(waiting/running/terminated), ready/started flags, the PodScheduled/PodReadyToStartContainers/Initialized/
ContainersReady/Ready conditions and the phase (Pending → Running → Succeeded | Failed; Unknown when the
node controller loses the node)."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

from localkube.resources import Obj
from localkube.store import now


class PodStatus:
    def __init__(self, pod: Obj) -> None:
        spec = pod["spec"]
        self.images = {c["name"]: c.get("image", "") for c in (spec.get("initContainers") or []) + spec["containers"]}
        self.init_names = [c["name"] for c in spec.get("initContainers") or []]
        self.names = [c["name"] for c in spec["containers"]]
        self.status: Obj = copy.deepcopy(pod.get("status") or {"phase": "Pending"})
        self.uid = pod["metadata"]["uid"]

    def render(self) -> Obj:
        return copy.deepcopy(self.status)

    def condition(self, type_: str, status: str, reason: str | None = None, message: str | None = None) -> None:
        conditions: list[Obj] = self.status.setdefault("conditions", [])
        found = next((c for c in conditions if c["type"] == type_), None)
        entry: Obj = {"type": type_, "status": status, "lastProbeTime": None}
        entry["lastTransitionTime"] = found["lastTransitionTime"] if found and found["status"] == status else now()
        if reason:
            entry["reason"] = reason
        if message:
            entry["message"] = message
        if found:
            conditions[conditions.index(found)] = entry
        else:
            order = ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
            conditions.append(entry)
            conditions.sort(key=lambda c: order.index(c["type"]) if c["type"] in order else 99)

    def scheduled(self) -> None:
        self.condition("PodScheduled", "True")

    def _entry(self, name: str, init: bool) -> Obj:
        key = "initContainerStatuses" if init else "containerStatuses"
        statuses: list[Obj] = self.status.setdefault(key, [])
        found = next((s for s in statuses if s["name"] == name), None)
        if found is None:
            image = self.images[name]
            found = {
                "name": name,
                "image": image,
                "imageID": "",
                "lastState": {},
                "ready": False,
                "restartCount": 0,
                "started": False,
                "state": {"waiting": {"reason": "PodInitializing" if init or self.init_names else "ContainerCreating"}},
            }
            statuses.append(found)
            order = self.init_names if init else self.names
            statuses.sort(key=lambda s: order.index(s["name"]))
        return found

    def started_on_node(self) -> None:
        self.status.update(
            hostIP="127.0.0.1",
            hostIPs=[{"ip": "127.0.0.1"}],
            podIP="127.0.0.1",
            podIPs=[{"ip": "127.0.0.1"}],
            startTime=now(),
        )
        self.condition("PodReadyToStartContainers", "False")
        if self.init_names:
            self.condition(
                "Initialized",
                "False",
                "ContainersNotInitialized",
                f"containers with incomplete status: [{' '.join(self.init_names)}]",
            )
        else:
            self.condition("Initialized", "True")
        self._readiness()
        for n in self.init_names:
            self._entry(n, True)
        for n in self.names:
            self._entry(n, False)

    def initialized(self) -> None:
        self.condition("Initialized", "True")
        for n in self.names:
            entry = self._entry(n, False)
            if "waiting" in entry["state"]:
                entry["state"] = {"waiting": {"reason": "ContainerCreating"}}

    def waiting(self, name: str, init: bool, reason: str, message: str | None = None) -> None:
        state: Obj = {"reason": reason}
        if message:
            state["message"] = message
        self._entry(name, init)["state"] = {"waiting": state}

    def running(self, name: str, init: bool) -> None:
        entry = self._entry(name, init)
        digest = hashlib.sha256(f"{self.uid}/{name}".encode()).hexdigest()
        entry["containerID"] = f"containerd://{digest}"
        entry["imageID"] = f"{entry['image']}@sha256:{hashlib.sha256(entry['image'].encode()).hexdigest()}"
        entry["state"] = {"running": {"startedAt": now()}}
        entry["started"] = True
        entry["ready"] = not init
        if not init:
            self.status["phase"] = "Running"
        self._readiness()

    def terminated(self, name: str, init: bool, code: int, reason: str, message: str | None = None) -> None:
        entry = self._entry(name, init)
        started = (entry["state"].get("running") or {}).get("startedAt")
        term: Obj = {"exitCode": code, "reason": reason, "startedAt": started, "finishedAt": now()}
        if message:
            term["message"] = message
        if "containerID" in entry:
            term["containerID"] = entry["containerID"]
        entry["state"] = {"terminated": term}
        entry["started"] = False
        entry["ready"] = init and code == 0
        self._readiness()

    def exit_code(self, name: str) -> int | None:
        for key in ("initContainerStatuses", "containerStatuses"):
            for s in self.status.get(key) or []:
                if s["name"] == name and "terminated" in s["state"]:
                    code: Any = s["state"]["terminated"]["exitCode"]
                    return int(code)
        return None

    def _readiness(self) -> None:
        entries = [self._entry(n, False) for n in self.names]
        unready = [e["name"] for e in entries if not e["ready"]]
        if unready:
            msg = f"containers with unready status: [{' '.join(unready)}]"
            self.condition("ContainersReady", "False", "ContainersNotReady", msg)
            self.condition("Ready", "False", "ContainersNotReady", msg)
        else:
            self.condition("ContainersReady", "True")
            self.condition("Ready", "True")

    def finish(self, init_failed: bool) -> None:
        codes = [self.exit_code(n) for n in self.names]
        ok = not init_failed and all(c == 0 for c in codes)
        self.status["phase"] = "Succeeded" if ok else "Failed"
        self.condition("PodReadyToStartContainers", "False")
        if init_failed:
            pending = [n for n in self.init_names if self.exit_code(n) != 0]
            self.condition(
                "Initialized",
                "False",
                "ContainersNotInitialized",
                f"containers with incomplete status: [{' '.join(pending)}]",
            )
        self.condition("ContainersReady", "False", "PodCompleted")
        self.condition("Ready", "False", "PodCompleted")

    def lost(self, message: str) -> None:
        self.status["phase"] = "Unknown"
        self.status["reason"] = "NodeLost"
        self.status["message"] = message
        self.condition("Ready", "False", "NodeLost", message)
