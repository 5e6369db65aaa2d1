"""Our node as the real control plane sees it: the Node object (Ready, capacity, InternalIP 127.0.0.1, the
kubelet's port, and the declared feature ExtendWebSocketsToKubelet so that 1.36+ apiservers proxy exec's
WebSocket straight to us), its Lease heartbeat in kube-node-lease, and the kubelet API over TLS on loopback
(/healthz, /containerLogs, /exec) that `kubectl logs`, `exec` and `cp` reach through the apiserver."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from localkube import streams
from localkube.controlplane.api import Api, path
from localkube.resources import ApiError

if TYPE_CHECKING:
    from localkube.kubelet import Kubelet
    from localkube.store import Store

log = logging.getLogger(__name__)
LEASE_SECONDS = 40
RENEW_EVERY = 10.0
STATUS_EVERY = 60.0
#: read by kube-apiserver's ExecREST/AttachREST/PortForwardREST (pkg/registry/core/pod/rest/subresources.go)
DECLARED_FEATURES = ["ExtendWebSocketsToKubelet"]


def micro_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _stamp() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_status(capacity: Mapping[str, str], port: int, version: str, name: str) -> dict[str, Any]:
    stamp = _stamp()

    def condition(type_: str, status: str, reason: str, message: str) -> dict[str, str]:
        return {
            "type": type_,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": stamp,
            "lastTransitionTime": stamp,
        }

    return {
        "capacity": dict(capacity),
        "allocatable": dict(capacity),
        "conditions": [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ],
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "nodeInfo": {
            "machineID": "localkube",
            "systemUUID": "localkube",
            "bootID": "localkube",
            "kernelVersion": "",
            "osImage": "localkube (pods are local processes)",
            "containerRuntimeVersion": "localkube://0.1.0",
            "kubeletVersion": version,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
        "declaredFeatures": DECLARED_FEATURES,
    }


class Node:
    def __init__(self, api: Api, name: str, capacity: Mapping[str, str], version: str) -> None:
        self.api = api
        self.name = name
        self.capacity = {"pods": "110", **capacity}
        self.version = version

    async def register(self, kubelet_port: int) -> None:
        labels = {"kubernetes.io/hostname": self.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": self.name, "labels": labels}, "spec": {}}
        node["status"] = node_status(self.capacity, kubelet_port, self.version, self.name)
        created = await self.api.request("POST", path("nodes"), node)
        self.uid = created["metadata"]["uid"]
        self.kubelet_port = kubelet_port
        await self.post_status()
        await self.renew_lease()

    async def post_status(self) -> None:
        patch = {"status": node_status(self.capacity, self.kubelet_port, self.version, self.name)}
        await self.api.request("PATCH", path("nodes", "", self.name, "status"), patch, content_type=MERGE)

    async def renew_lease(self) -> None:
        target = path("leases", "kube-node-lease", self.name)
        spec = {"holderIdentity": self.name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": micro_now()}
        try:
            await self.api.request("PATCH", target, {"spec": spec}, content_type=MERGE)
        except ApiError as e:
            if e.code != 404:
                raise
            owner = {"apiVersion": "v1", "kind": "Node", "name": self.name, "uid": self.uid}
            lease = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": "kube-node-lease", "ownerReferences": [owner]},
                "spec": spec,
            }
            await self.api.request("POST", path("leases", "kube-node-lease"), lease)

    async def heartbeat(self) -> None:
        """Renews the Lease every 10 s and re-posts the status every minute, as the kubelet does."""
        loop = asyncio.get_running_loop()
        last_status = loop.time()
        while True:
            await asyncio.sleep(RENEW_EVERY)
            try:
                await self.renew_lease()
                if loop.time() - last_status >= STATUS_EVERY:
                    await self.post_status()
                    last_status = loop.time()
            except (ApiError, aiohttp.ClientError, TimeoutError) as e:
                log.warning("node heartbeat failed: %s", e)


MERGE = "application/merge-patch+json"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def kubelet_app(store: Store, kubelet: Kubelet) -> web.Application:
    """The kubelet's API: only the apiserver (its kubelet-client certificate, signed by our CA) gets in."""

    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as e:
            return web.Response(status=e.code, text=e.message, content_type="text/plain")

    async def healthz(request: web.Request) -> web.StreamResponse:
        return web.Response(text="ok", content_type="text/plain")

    async def logs(request: web.Request) -> web.StreamResponse:
        m = request.match_info
        return await streams.pod_log(request, store, kubelet, m["ns"], m["pod"], m["container"])

    async def exec_(request: web.Request) -> web.StreamResponse:
        m = request.match_info
        return await streams.pod_exec(request, store, kubelet, m["ns"], m["pod"], m["container"])

    app = web.Application(middlewares=[errors])
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/containerLogs/{ns}/{pod}/{container}", logs)
    app.router.add_route("*", "/exec/{ns}/{pod}/{container}", exec_)
    return app


def server_ssl(ca: str, cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca)
    ctx.load_cert_chain(cert, key)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


async def serve_kubelet(app: web.Application, ssl_context: ssl.SSLContext) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, shutdown_timeout=2.0, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = int(runner.addresses[0][1])
    return runner, port


async def stop_kubelet_server(runner: web.AppRunner) -> None:
    with contextlib.suppress(Exception):
        await runner.cleanup()
