"""A small async client for the real kube-apiserver, used by our node: JSON in and out, a `metav1.Status`
turned into ApiError, and watches read line by line. TLS with a client certificate, 127.0.0.1 only."""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

import aiohttp

from localkube.resources import ApiError, Obj

CLUSTER_SCOPED = {"nodes", "namespaces", "persistentvolumes"}
GROUPS = {"leases": "/apis/coordination.k8s.io/v1", "clusterrolebindings": "/apis/rbac.authorization.k8s.io/v1"}


def client_ssl(ca: str, cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    ctx.load_cert_chain(cert, key)
    return ctx


def path(resource: str, namespace: str = "", name: str = "", sub: str = "") -> str:
    base = GROUPS.get(resource, "/api/v1")
    parts = [base]
    if namespace and resource not in CLUSTER_SCOPED and resource != "clusterrolebindings":
        parts.append(f"namespaces/{quote(namespace)}")
    parts.append(resource)
    if name:
        parts.append(quote(name, safe=""))
    if sub:
        parts.append(sub)
    return "/".join(p.strip("/") if i else p.rstrip("/") for i, p in enumerate(parts))


class Api:
    def __init__(self, server: str, ssl_context: ssl.SSLContext, user_agent: str) -> None:
        self.server = server.rstrip("/")
        self.ssl_context = ssl_context
        self.user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self.ssl_context, limit=20),
                headers={"User-Agent": self.user_agent, "Accept": "application/json"},
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        url_path: str,
        body: Obj | None = None,
        *,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": content_type} if data is not None else {}
        timeout = aiohttp.ClientTimeout(total=60)
        async with self.session.request(
            method, self.server + url_path, data=data, params=params, headers=headers, timeout=timeout
        ) as resp:
            text = await resp.text()
            if resp.status >= 400:
                raise _error(resp.status, text)
            return json.loads(text) if text else None

    async def get(self, url_path: str, **params: str) -> Any:
        return await self.request("GET", url_path, params=params or None)

    async def find(self, url_path: str) -> Obj | None:
        try:
            found: Obj = await self.get(url_path)
        except ApiError as e:
            if e.code == 404:
                return None
            raise
        return found

    async def watch(self, url_path: str, params: Mapping[str, str]) -> AsyncIterator[Obj]:
        """Watch events as they come; ends when the server closes the stream."""
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        query = {**params, "watch": "1"}
        async with self.session.get(self.server + url_path, params=query, timeout=timeout) as resp:
            if resp.status >= 400:
                raise _error(resp.status, await resp.text())
            async for line in resp.content:
                if line.strip():
                    yield json.loads(line)


def _error(code: int, text: str) -> ApiError:
    try:
        status = json.loads(text)
    except ValueError:
        return ApiError(code, text.strip()[:500])
    if not isinstance(status, dict):
        return ApiError(code, text.strip()[:500])
    return ApiError(code, str(status.get("message", "")), str(status.get("reason", "")), status.get("details"))
