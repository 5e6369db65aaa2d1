"""The scheduler's binding loop and the kubelet's pod worker for one node, restartPolicy Never: schedule,
pull (or ErrImagePull/ImagePullBackOff), set up volumes, run init containers in order then the containers,
report container states, conditions and phase exactly as a kubelet does, emit its events, and kill the
processes on delete with the grace period (Killing events). Exec liveness probes: probes.py; downwardAPI
volumes rewritten when the pod's metadata changes: downward.py."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import logging
import os
import shutil
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from localkube import downward, podspec, probes
from localkube.events import EventRecorder
from localkube.podrecords import ContainerRecord, PodGone, PodRecord, log_task_errors
from localkube.podstatus import PodStatus
from localkube.resources import ApiError, Obj
from localkube.runtime import ContainerRuntime
from localkube.scheduler import parse_quantity, unschedulable_message
from localkube.store import Event, Store

if TYPE_CHECKING:
    from localkube.faults import Faults

log = logging.getLogger(__name__)
NODE_NAME = "localkube"
RETRY = 1.0


class Kubelet:
    def __init__(
        self,
        store: Store,
        faults: Faults,
        runtime: ContainerRuntime,
        root_dir: str,
        *,
        capacity: Mapping[str, str],
        image_workdir: str,
        pvc_root: str,
        hidden_paths: tuple[str, ...],
        cluster_id: str,
        image_paths: tuple[str, ...] = (),
        schedules: bool = True,
    ) -> None:
        # schedules=False: a real kube-scheduler binds the pods, and the store only holds the ones bound to us.
        self.schedules = schedules
        self.store = store
        self.faults = faults
        self.runtime = runtime
        self.root_dir = root_dir
        self.capacity = {k: parse_quantity(v) for k, v in capacity.items()}
        self.image_workdir = image_workdir
        self.pvc_root = pvc_root
        self.hidden_paths = hidden_paths
        self.cluster_id = cluster_id
        self.image_paths = image_paths
        self.events = EventRecorder(store, NODE_NAME)
        self.pods: dict[str, PodRecord] = {}
        self.wake = asyncio.Event()
        self.closed = False
        self.tasks: set[asyncio.Task[Any]] = set()
        store.listeners.append(self._on_event)

    # -- API server hooks ------------------------------------------------------------------------------
    def record(self, uid: str, container: str) -> ContainerRecord | None:
        rec = self.pods.get(uid)
        return rec.containers.get(container) if rec else None

    async def exec(self, uid: str, container: str, argv: list[str]) -> asyncio.subprocess.Process:
        c = self.record(uid, container)
        if c is None or c.spec is None or c.running is None or c.done.is_set():
            state = "CONTAINER_EXITED" if c is not None and c.done.is_set() else "CONTAINER_CREATED"
            raise ApiError(
                500,
                "Internal error occurred: error executing command in container: failed to exec in "
                f"container: container is in {state} state",
                "InternalError",
            )
        return await self.runtime.exec(c.spec, argv)

    def spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        task.add_done_callback(log_task_errors)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def _on_event(self, ev: Event) -> None:
        if self.closed:
            return
        if ev.resource != "pods":
            if ev.resource in ("secrets", "configmaps", "persistentvolumeclaims"):
                self.poke()
            return
        meta = ev.obj["metadata"]
        uid = meta["uid"]
        if ev.type == "ADDED":
            pod_dir = os.path.join(self.root_dir, "pods", uid)
            rec = PodRecord(uid, meta["namespace"], meta["name"], pod_dir, PodStatus(ev.obj))
            self.pods[uid] = rec
            rec.task = self.spawn(self._run(rec), f"pod {meta['name']}")
        elif ev.type == "MODIFIED" and meta.get("deletionTimestamp"):
            doomed = self.pods.get(uid)
            if doomed is not None and not doomed.deleting:
                doomed.deleting = True
                self.spawn(
                    self._terminate(doomed, int(meta.get("deletionGracePeriodSeconds", 30))), f"kill {meta['name']}"
                )
        elif ev.type == "MODIFIED" and uid in self.pods and not self.pods[uid].deleting:
            with contextlib.suppress(OSError):  # labels/annotations changed: the kubelet's sync rewrites them
                downward.refresh(self.pods[uid].pod_dir, ev.obj)
        elif ev.type == "DELETED":
            gone = self.pods.get(uid)
            if gone is not None:
                gone.deleting = True
                self.spawn(self._forget(gone), f"forget {meta['name']}")
            self.poke()

    def poke(self) -> None:
        self.wake.set()
        self.wake = asyncio.Event()

    async def _sleep_or_wake(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), seconds)

    # -- the pod worker -------------------------------------------------------------------------------
    def _pod(self, rec: PodRecord) -> Obj:
        pod = self.store.find("pods", rec.namespace, rec.name)
        if pod is None or pod["metadata"]["uid"] != rec.uid or rec.lost:
            raise PodGone()
        return pod

    def _write(self, rec: PodRecord, pod: Obj) -> Obj:
        if rec.lost or self.closed:
            raise PodGone()
        pod = copy.deepcopy(pod)
        pod["status"] = rec.status.render()
        try:
            return self.store.update_status(pod)
        except ApiError as e:
            raise PodGone() from e

    async def _run(self, rec: PodRecord) -> None:
        try:
            await self._schedule(rec)
            await self._start_pod(rec)
        except PodGone:
            return

    async def _schedule(self, rec: PodRecord) -> None:
        if not self.schedules:
            rec.bound = True
            return
        if self.faults.schedule_delay:
            await asyncio.sleep(self.faults.schedule_delay)
        last = None
        while True:
            pod = self._pod(rec)
            bound = [
                self.store.find("pods", r.namespace, r.name) for r in self.pods.values() if r.bound and not r.finished
            ]
            msg = unschedulable_message(
                pod,
                self.capacity,
                [p for p in bound if p is not None],
                cordoned=self.faults.unschedulable,
                missing_claims=podspec.missing_claims(self.store, pod, self.pvc_root),
            )
            if msg is None:
                break
            if msg != last:
                rec.status.condition("PodScheduled", "False", "Unschedulable", msg)
                self._write(rec, pod)
                self.events.record(pod, "Warning", "FailedScheduling", msg, "default-scheduler")
                last = msg
            await self._sleep_or_wake(RETRY * 5)
        rec.bound = True
        pod["spec"]["nodeName"] = NODE_NAME
        rec.status.scheduled()
        pod = self._write(rec, pod)
        self.events.record(
            pod,
            "Normal",
            "Scheduled",
            f"Successfully assigned {rec.namespace}/{rec.name} to {NODE_NAME}",
            "default-scheduler",
        )

    async def _start_pod(self, rec: PodRecord) -> None:
        pod = self._pod(rec)
        spec = pod["spec"]
        os.makedirs(os.path.join(rec.pod_dir, "logs"), exist_ok=True)
        for c in (spec.get("initContainers") or []) + spec["containers"]:
            rec.containers[c["name"]] = ContainerRecord(
                c["name"], os.path.join(rec.pod_dir, "logs", c["name"] + ".log")
            )
        rec.status.started_on_node()
        pod = self._write(rec, pod)
        ctx = podspec.PodContext(
            pod, rec.pod_dir, self.pvc_root, self.image_workdir, self.hidden_paths, self.cluster_id, self.image_paths
        )
        last = None
        while True:
            try:
                volumes = podspec.prepare_volumes(self.store, ctx)
                break
            except podspec.MountError as e:
                if str(e) != last:
                    self.events.record(pod, "Warning", "FailedMount", str(e))
                    last = str(e)
            await self._sleep_or_wake(RETRY)
            pod = self._pod(rec)
        rec.status.condition("PodReadyToStartContainers", "True")
        pod = self._write(rec, pod)
        for c in spec.get("initContainers") or []:
            code = await self._run_container(rec, ctx, c, True, volumes)
            if code != 0:
                rec.status.finish(init_failed=True)
                rec.finished = True
                self._write(rec, self._pod(rec))
                self.poke()
                return
        rec.status.initialized()
        self._write(rec, self._pod(rec))
        for c in spec["containers"]:
            await self._run_container(rec, ctx, c, False, volumes)
        await asyncio.gather(*(rec.containers[c["name"]].done.wait() for c in spec["containers"]))
        rec.status.finish(init_failed=False)
        rec.finished = True
        self._write(rec, self._pod(rec))
        self.poke()

    async def _run_container(
        self, rec: PodRecord, ctx: podspec.PodContext, c: Obj, init: bool, volumes: Mapping[str, tuple[str, bool]]
    ) -> int | None:
        """Pulls, creates and starts one container; init containers are awaited (returns the exit code)."""
        name, image = c["name"], c["image"]
        path = f"spec.{'initContainers' if init else 'containers'}{{{name}}}"
        pod = self._pod(rec)
        if self.faults.image_unpullable(image):
            self.events.record(pod, "Normal", "Pulling", f'Pulling image "{image}"', field_path=path)
        while self.faults.image_unpullable(image):
            why = (
                f'failed to pull and unpack image "{image}": failed to resolve reference "{image}": {image}: not found'
            )
            self.events.record(pod, "Warning", "Failed", f'Failed to pull image "{image}": {why}', field_path=path)
            self.events.record(pod, "Warning", "Failed", "Error: ErrImagePull", field_path=path)
            rec.status.waiting(name, init, "ErrImagePull", f"rpc error: code = NotFound desc = {why}")
            pod = self._write(rec, pod)
            await self._sleep_or_wake(RETRY)
            self.events.record(pod, "Normal", "BackOff", f'Back-off pulling image "{image}"', field_path=path)
            self.events.record(pod, "Warning", "Failed", "Error: ImagePullBackOff", field_path=path)
            rec.status.waiting(name, init, "ImagePullBackOff", f'Back-off pulling image "{image}"')
            pod = self._write(rec, pod)
            await self._sleep_or_wake(RETRY * 5)
            pod = self._pod(rec)
        if c.get("imagePullPolicy") == "Always":
            self.events.record(pod, "Normal", "Pulling", f'Pulling image "{image}"', field_path=path)
            self.events.record(
                pod,
                "Normal",
                "Pulled",
                f'Successfully pulled image "{image}" in 0s (0s including waiting). Image size: 0 bytes.',
                field_path=path,
            )
        else:
            self.events.record(
                pod, "Normal", "Pulled", f'Container image "{image}" already present on machine', field_path=path
            )
        last = None
        while True:
            try:
                spec = podspec.container_spec(self.store, dataclasses.replace(ctx, pod=pod), c, volumes)
                break
            except podspec.ContainerConfigError as e:
                if str(e) != last:
                    self.events.record(pod, "Warning", "Failed", f"Error: {e}", field_path=path)
                    rec.status.waiting(name, init, "CreateContainerConfigError", str(e))
                    pod = self._write(rec, pod)
                    last = str(e)
            except podspec.CreateError as e:
                self.events.record(pod, "Warning", "Failed", f"Error: {e}", field_path=path)
                rec.status.waiting(name, init, "CreateContainerError", str(e))
                pod = self._write(rec, pod)
                await self._sleep_or_wake(3600)
                continue
            await self._sleep_or_wake(RETRY)
            pod = self._pod(rec)
        if self.faults.start_delay:
            await asyncio.sleep(self.faults.start_delay)
            pod = self._pod(rec)
        record = rec.containers[name]
        record.spec = spec
        self.events.record(pod, "Normal", "Created", f"Created container: {name}", field_path=path)
        try:
            record.running = await self.runtime.start(spec, record.log_path)
        except Exception as e:
            self.events.record(pod, "Warning", "Failed", f"Error: {e}", field_path=path)
            code = getattr(e, "exit_code", 128)
            rec.status.terminated(name, init, code if isinstance(code, int) else 128, "StartError", str(e))
            record.done.set()
            self._write(rec, pod)
            return rec.status.exit_code(name)
        record.started = True
        if rec.deleting or rec.lost:
            await record.running.kill(0)
        self.events.record(pod, "Normal", "Started", f"Started container {name}", field_path=path)
        rec.status.running(name, init)
        self._write(rec, pod)
        waiter = self.spawn(self._wait_container(rec, record, init), f"wait {rec.name}/{name}")
        if not init and c.get("livenessProbe"):
            self.spawn(probes.liveness(self.runtime, self.events, pod, c, record, path), f"probe {rec.name}/{name}")
        if init:
            await asyncio.shield(waiter)
            return rec.status.exit_code(name)
        return None

    async def _wait_container(self, rec: PodRecord, record: ContainerRecord, init: bool) -> None:
        assert record.running is not None
        try:
            code = await record.running.wait()
            rec.status.terminated(record.name, init, code, "Completed" if code == 0 else "Error")
            with contextlib.suppress(PodGone):
                self._write(rec, self._pod(rec))
        finally:
            record.done.set()

    # -- deletion and node loss ----------------------------------------------------------------------
    async def _kill_all(self, rec: PodRecord, grace: float, events: bool) -> None:
        running = [c for c in rec.containers.values() if c.running is not None and not c.done.is_set()]
        if events:
            pod = self.store.find("pods", rec.namespace, rec.name)
            for c in running:
                if pod is not None:
                    self.events.record(pod, "Normal", "Killing", f"Stopping container {c.name}")
        await asyncio.gather(*(c.running.kill(grace) for c in running if c.running is not None))
        await asyncio.gather(*(c.done.wait() for c in running))

    async def _terminate(self, rec: PodRecord, grace: int) -> None:
        if rec.lost:
            await asyncio.sleep(grace)
        else:
            await self._kill_all(rec, grace, events=True)
            if rec.task is not None:
                rec.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await rec.task
        with contextlib.suppress(ApiError):
            pod = self.store.find("pods", rec.namespace, rec.name)
            if pod is not None and pod["metadata"]["uid"] == rec.uid:
                self.store.remove("pods", rec.namespace, rec.name)
        self.store.finish_namespaces()

    async def _forget(self, rec: PodRecord) -> None:
        if rec.task is not None:
            rec.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await rec.task
        await self._kill_all(rec, 2.0, events=False)
        self.pods.pop(rec.uid, None)
        await asyncio.to_thread(shutil.rmtree, rec.pod_dir, True)
        self.store.finish_namespaces()

    async def node_lost(self, name: str | None = None, namespace: str | None = None) -> list[str]:
        """The node controller's view of a node that stopped reporting: phase Unknown, reason NodeLost."""
        hit = []
        for rec in list(self.pods.values()):
            if not rec.bound or rec.finished or rec.lost or (name and rec.name != name):
                continue
            if namespace and rec.namespace != namespace:
                continue
            rec.lost = True
            pod = self.store.find("pods", rec.namespace, rec.name)
            if pod is None:
                continue
            rec.status.lost(f"Node {NODE_NAME} which was running pod {rec.name} is unresponsive")
            pod["status"] = rec.status.render()
            self.store.update_status(pod)
            hit.append(rec.name)
            await self._kill_all(rec, 0, events=False)
        return hit

    async def shutdown(self) -> None:
        self.closed = True
        for rec in list(self.pods.values()):
            if rec.task is not None:
                rec.task.cancel()
        await asyncio.gather(*(self._kill_all(rec, 1.0, events=False) for rec in list(self.pods.values())))
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for rec in list(self.pods.values()):
            shutil.rmtree(rec.pod_dir, ignore_errors=True)
        self.pods.clear()
