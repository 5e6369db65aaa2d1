"""LocalCluster(control_plane="real"): the real kube-apiserver, etcd, kube-controller-manager and
kube-scheduler (built once, cached by version) with our node running the pods as local processes. Same
interface as the double; certificates, keys, kubeconfigs, etcd's data and the logs live in the work folder."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import yaml

from localkube.cluster import LocalCluster
from localkube.controlplane import build, pki, processes
from localkube.controlplane.api import Api, client_ssl, path
from localkube.controlplane.mirror import MirrorStore
from localkube.controlplane.node import Node, kubelet_app, serve_kubelet, server_ssl, stop_kubelet_server
from localkube.faults import Faults
from localkube.kubelet import NODE_NAME
from localkube.resources import Obj
from localkube.runtime import ContainerRuntime
from localkube.server import RecordedRequest
from localkube.store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")
START_TIMEOUT = 60.0
HTTP_METHODS = {"get": "GET", "list": "GET", "watch": "GET", "create": "POST", "update": "PUT", "patch": "PATCH"}

NODE_ROLE = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRoleBinding",
    "metadata": {"name": "localkube:node"},
    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "localkube:node"},
    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": f"system:node:{NODE_NAME}"}],
}
NODE_CLUSTER_ROLE = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRole",
    "metadata": {"name": "localkube:node"},
    # the Node authorizer lets a kubelet get the Secrets and ConfigMaps of its own pods one by one; our node
    # lists and watches them all instead, which only this role allows
    "rules": [
        {
            "apiGroups": [""],
            "resources": ["secrets", "configmaps", "persistentvolumeclaims"],
            "verbs": ["get", "list", "watch"],
        }
    ],
}


class RealCluster(LocalCluster):
    def __init__(self, workdir: str, *, control_plane: str = "real", **kwargs: Any) -> None:
        super().__init__(workdir, control_plane=control_plane, **kwargs)
        self.pki_dir = os.path.join(self.workdir, "pki")
        self.control_plane_dir = os.path.join(self.workdir, "control-plane")
        self.processes: list[processes.Process] = []
        self._mirror: MirrorStore | None = None
        self._api: Api | None = None
        self._admin: Api | None = None

    @property
    def faults(self) -> Faults:
        raise AttributeError(
            "faults are injected into the double's API server; a real kube-apiserver cannot host them "
            "(use control_plane='double' for fault-injection tests)"
        )

    @faults.setter
    def faults(self, value: Faults) -> None:
        pass  # the base class assigns one; the real control plane has none

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> RealCluster:
        started = time.monotonic()
        for d in (self.workdir, self.cache_dir, self.state_dir, self.pvc_root, self.control_plane_dir):
            os.makedirs(d, exist_ok=True)
        runtime = ContainerRuntime(self.state_dir)
        runtime.check_support()
        binaries = build.ensure_binaries()  # BuildError if Go is missing: never a quiet fallback
        self.pki = pki.generate(self.pki_dir, NODE_NAME)
        ports = processes.Ports(apiserver=self.port or processes.free_port())
        self.port = ports.apiserver
        self.url = f"https://127.0.0.1:{self.port}"
        kubeconfigs = {}
        for stem in ("controller-manager", "scheduler"):
            kubeconfigs[stem] = os.path.join(self.control_plane_dir, f"{stem}.kubeconfig")
            _write_yaml(kubeconfigs[stem], processes.kubeconfig(self.url, self.pki, stem))
        self.processes = processes.control_plane(binaries, self.pki, ports, self.control_plane_dir, kubeconfigs)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "HOME": self.control_plane_dir}
        try:
            self.processes[0].start(env)  # etcd
            self.processes[1].start(env)  # kube-apiserver
            self._wait_ready(started + START_TIMEOUT)
            for p in self.processes[2:]:
                p.start(env)
            self._thread = _thread(self, runtime)
            self._thread.start()
            while not self._ready.wait(0.2):
                self._check_processes()
                if time.monotonic() > started + START_TIMEOUT:
                    raise RuntimeError(f"our node did not come up within {START_TIMEOUT:.0f}s")
            if self._error is not None:
                raise RuntimeError(f"our node did not come up: {self._error}") from self._error
        except BaseException:
            self.stop()
            raise
        _write_yaml(self.kubeconfig_path, processes.kubeconfig(self.url, self.pki, "admin"))
        log.info("real control plane ready in %.1fs at %s", time.monotonic() - started, self.url)
        return self

    def _wait_ready(self, deadline: float) -> None:
        context = client_ssl(self.pki.ca, self.pki.cert("admin"), self.pki.key("admin"))
        last = ""
        while time.monotonic() < deadline:
            self._check_processes()
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", context=context, timeout=5) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ssl.SSLError, ConnectionError, TimeoutError) as e:
                last = str(e)
            time.sleep(0.2)
        raise RuntimeError(
            f"kube-apiserver was not ready within {START_TIMEOUT:.0f}s ({last}):\n{self.processes[1].log_tail()}"
        )

    def _check_processes(self) -> None:
        for p in self.processes:
            if p.popen is not None and p.exited() is not None:
                raise RuntimeError(f"{p.name} exited with {p.exited()} (log: {p.log_path}):\n{p.log_tail()}")

    def stop(self) -> None:
        super().stop()  # our node: every pod process killed, the loop closed
        for p in reversed(self.processes):
            p.stop()

    async def _serve(self, runtime: ContainerRuntime) -> None:
        self._stopping = asyncio.Event()
        api = Api(self.url, client_ssl(self.pki.ca, self.pki.cert("node"), self.pki.key("node")), "localkube-node")
        admin = Api(self.url, client_ssl(self.pki.ca, self.pki.cert("admin"), self.pki.key("admin")), "localkube")
        self._api, self._admin = api, admin
        mirror = MirrorStore(api, NODE_NAME)
        self._mirror = mirror
        kubelet = self._kubelet(mirror, Faults(), runtime, schedules=False)
        tasks: list[asyncio.Task[Any]] = []
        runner = None
        try:
            await _bootstrap_rbac(admin)
            runner, kubelet_port = await serve_kubelet(
                kubelet_app(mirror, kubelet), server_ssl(self.pki.ca, self.pki.cert("kubelet"), self.pki.key("kubelet"))
            )
            node = Node(api, NODE_NAME, self.capacity, f"v{build.pinned_versions()['kubernetes'].lstrip('v')}")
            await node.register(kubelet_port)
            tasks.append(kubelet.spawn(mirror.run(), "mirror"))
            tasks.append(kubelet.spawn(node.heartbeat(), "node heartbeat"))
            await mirror.synced.wait()
            await _wait_default_service_account(admin)
            await _wait_schedulable(admin)
            self._ready.set()
            await self._stopping.wait()
        finally:
            await kubelet.shutdown()
            for t in tasks:
                t.cancel()
            if runner is not None:
                await stop_kubelet_server(runner)
            await api.close()
            await admin.close()
            # TLS transports finish closing on the loop's next turns; closing the loop first leaks their sockets
            await asyncio.sleep(0.25)

    def identity_kubeconfig(self, user: str, kubeconfig_path: str, groups: tuple[str, ...] = ()) -> str:
        """A kubeconfig for a client certificate of `user` (in `groups`): an identity RBAC alone authorises."""
        pki.issue_client(self.pki, f"user-{user}", user, groups)
        _write_yaml(kubeconfig_path, processes.kubeconfig(self.url, self.pki, f"user-{user}"))
        return kubeconfig_path

    # -- conveniences for tests ----------------------------------------------------------------------
    def call(self, fn: Callable[[Store], T]) -> T:
        raise NotImplementedError("the real control plane has no in-memory store: use get/objects/create or kubectl")

    def _admin_call(self, method: str, url_path: str, body: Obj | None = None) -> Any:
        async def run() -> Any:
            assert self._admin is not None
            return await self._admin.request(method, url_path, body)

        return self._run_in_loop(run())

    def get(self, resource: str, name: str, namespace: str = "default") -> Obj | None:
        async def run() -> Obj | None:
            assert self._admin is not None
            return await self._admin.find(path(resource, namespace, name))

        return self._run_in_loop(run())

    def objects(self, resource: str, namespace: str | None = "default") -> list[Obj]:
        items: list[Obj] = self._admin_call("GET", path(resource, namespace or ""))["items"]
        return items

    def create(self, resource: str, obj: Obj, namespace: str = "default") -> Obj:
        created: Obj = self._admin_call("POST", path(resource, namespace), obj)
        return created

    @property
    def requests(self) -> list[RecordedRequest]:
        """What kubectl sent, from the apiserver's audit log (no Content-Type or Accept in it)."""
        return audit_requests(os.path.join(self.control_plane_dir, "audit.log"))

    def leftovers(self) -> list[str]:
        found = super().leftovers()
        found += [f"process {p.popen.pid}: {p.name}" for p in self.processes if p.popen and p.exited() is None]
        return found


def audit_requests(log_path: str) -> list[RecordedRequest]:
    seen: set[str] = set()
    out: list[RecordedRequest] = []
    try:
        with open(log_path) as f:
            lines = f.readlines()
    except FileNotFoundError:
        return []
    for line in lines:
        entry = json.loads(line)
        if entry.get("auditID") in seen:
            continue
        seen.add(entry.get("auditID"))
        uri = str(entry.get("requestURI", ""))
        url_path, _, query = uri.partition("?")
        method = HTTP_METHODS.get(entry.get("verb", ""), "DELETE" if "delete" in entry.get("verb", "") else "GET")
        stamp = entry.get("requestReceivedTimestamp", "")
        when = time.mktime(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")) if stamp else 0.0
        out.append(RecordedRequest(method, url_path, query, "", "", str(entry.get("userAgent", "")), when))
    return out


async def _bootstrap_rbac(admin: Api) -> None:
    for resource, obj in (("clusterroles", NODE_CLUSTER_ROLE), ("clusterrolebindings", NODE_ROLE)):
        await admin.request("POST", f"/apis/rbac.authorization.k8s.io/v1/{resource}", obj)


async def _wait_default_service_account(admin: Api) -> None:
    """Pods are refused until the controller-manager has made the namespace's `default` ServiceAccount."""
    while await admin.find(path("serviceaccounts", "default", "default")) is None:
        await asyncio.sleep(0.1)


async def _wait_schedulable(admin: Api) -> None:
    """The TaintNodesByCondition admission plugin gives every new Node `node.kubernetes.io/not-ready`; the
    controller-manager's node lifecycle controller lifts it once it has seen the node Ready (a few seconds)."""
    while True:
        node = await admin.find(path("nodes", "", NODE_NAME))
        taints = ((node or {}).get("spec") or {}).get("taints") or []
        if node is not None and not taints:
            return
        await asyncio.sleep(0.2)


def _thread(cluster: RealCluster, runtime: ContainerRuntime) -> threading.Thread:
    return threading.Thread(target=cluster._thread_main, args=(runtime,), name="localkube-node", daemon=True)


def _write_yaml(file: str, data: Mapping[str, Any]) -> None:
    fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(dict(data), f, sort_keys=False)
