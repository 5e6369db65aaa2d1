"""The API server's streaming endpoints: watch (one JSON event per line, replay from a resourceVersion,
410 Expired for compacted history), pods/log (tailLines, follow) and pods/exec over WebSocket
(v5.channel.k8s.io / v4: channel 0 stdin, 1 stdout, 2 stderr, 3 status, 255 close-stdin); SPDY is
refused with the 400 a server without SPDY gives."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from localkube.resources import RESOURCES, ApiError, Obj, bad_request
from localkube.store import Event, Store

if TYPE_CHECKING:
    from localkube.kubelet import Kubelet
    from localkube.podrecords import ContainerRecord

log = logging.getLogger(__name__)
_CHUNK = 32 * 1024


def _translate(ev: Event, resource: str, namespace: str | None, match: Callable[[Obj], bool]) -> tuple[str, Obj] | None:
    """What a filtered watch reports: objects entering the selection are ADDED, leaving it DELETED."""
    if ev.resource != resource or (namespace is not None and ev.namespace != namespace):
        return None
    now = match(ev.obj)
    before = ev.old is not None and match(ev.old)
    if ev.type == "ADDED":
        return ("ADDED", ev.obj) if now else None
    if ev.type == "DELETED":
        return ("DELETED", ev.obj) if (before or now) else None
    if now and before:
        return ("MODIFIED", ev.obj)
    if now:
        return ("ADDED", ev.obj)
    if before:
        return ("DELETED", ev.obj)
    return None


async def watch(
    request: web.Request, store: Store, resource: str, namespace: str | None, match: Callable[[Obj], bool]
) -> web.StreamResponse:
    rv_param = request.query.get("resourceVersion", "")
    timeout = float(request.query.get("timeoutSeconds", "0") or 0) or None
    streaming = _streaming_list(request)
    queue: asyncio.Queue[Event | None] = asyncio.Queue()
    store.watchers.add(queue)  # before reading history: nothing can fall between the two
    try:
        initial: list[tuple[str, Obj]] = []
        error: ApiError | None = None
        if streaming:
            # the streaming list (kubectl 1.35+'s reflectors): the current state as ADDED events, then a BOOKMARK
            # saying the initial events are over, at the store's current resourceVersion ("not older than" any RV)
            initial = [("ADDED", o) for o in store.select(resource, namespace, match)[0]]
            if request.query.get("allowWatchBookmarks") in ("true", "1"):
                initial.append(("BOOKMARK", _initial_events_end(resource, store.rv)))
        elif streaming is False and rv_param in ("", "0"):
            pass  # sendInitialEvents=false: from now on only
        elif rv_param in ("", "0"):
            initial = [("ADDED", o) for o in store.select(resource, namespace, match)[0]]
        else:
            try:
                history = store.events_after(int(rv_param))
            except ValueError as e:
                raise bad_request(f"invalid resource version: {rv_param}") from e
            except ApiError as e:
                error = e
                history = []
            initial = [t for t in (_translate(e, resource, namespace, match) for e in history) if t]
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        if error is not None:
            await resp.write((json.dumps({"type": "ERROR", "object": error.status()}) + "\n").encode())
            return resp
        try:
            await _follow(resp, queue, initial, resource, namespace, match, timeout)
        except ConnectionResetError:
            pass  # the client went away, as kubectl does when it is done
        return resp
    finally:
        store.watchers.discard(queue)


def _streaming_list(request: web.Request) -> bool | None:
    """sendInitialEvents as kube-apiserver reads it: None when absent; it requires resourceVersionMatch=NotOlderThan."""
    value = request.query.get("sendInitialEvents")
    if value is None:
        return None
    if request.query.get("resourceVersionMatch") != "NotOlderThan":
        message = "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"
        raise ApiError(
            422,
            f'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: {message}',
            "Invalid",
            {
                "group": "meta.k8s.io",
                "kind": "ListOptions",
                "causes": [
                    {
                        "reason": "FieldValueForbidden",
                        "message": f"Forbidden: {message}",
                        "field": "resourceVersionMatch",
                    }
                ],
            },
        )
    return value in ("true", "1")


def _initial_events_end(resource: str, rv: int) -> Obj:
    return {
        "kind": RESOURCES[resource].kind,
        "apiVersion": "v1",
        "metadata": {"resourceVersion": str(rv), "annotations": {"k8s.io/initial-events-end": "true"}},
    }


async def _follow(
    resp: web.StreamResponse,
    queue: asyncio.Queue[Event | None],
    initial: list[tuple[str, Obj]],
    resource: str,
    namespace: str | None,
    match: Callable[[Obj], bool],
    timeout: float | None,
) -> None:
    for kind, obj in initial:
        await resp.write((json.dumps({"type": kind, "object": obj}) + "\n").encode())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout if timeout else None
    while True:
        remaining = None if deadline is None else deadline - loop.time()
        if remaining is not None and remaining <= 0:
            break
        try:
            ev = await asyncio.wait_for(queue.get(), remaining)
        except TimeoutError:
            break
        if ev is None:  # cut by a fault or by shutdown
            break
        t = _translate(ev, resource, namespace, match)
        if t:
            await resp.write((json.dumps({"type": t[0], "object": t[1]}) + "\n").encode())


def _pick_container(pod: Obj, requested: str | None) -> str:
    spec = pod["spec"]
    names = [str(c["name"]) for c in spec.get("containers") or []]
    init = [str(c["name"]) for c in spec.get("initContainers") or []]
    name = pod["metadata"]["name"]
    if requested:
        if requested not in names and requested not in init:
            raise bad_request(f"container {requested} is not valid for pod {name}")
        return requested
    if len(names) == 1:
        return names[0]
    msg = f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]"
    if init:
        msg += f" or one of the init containers: [{' '.join(init)}]"
    raise bad_request(msg)


def _waiting_reason(pod: Obj, container: str) -> str:
    status = pod.get("status", {})
    for cs in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
        if cs.get("name") == container:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") == "ImagePullBackOff" or waiting.get("reason") == "ErrImagePull":
                return "trying and failing to pull image"
            if waiting.get("reason"):
                return str(waiting["reason"])
    return "ContainerCreating"


async def pod_log(
    request: web.Request, store: Store, kubelet: Kubelet, ns: str, name: str, container: str | None = None
) -> web.StreamResponse:
    """`container` comes in the path on the kubelet's API (/containerLogs/NS/POD/CONTAINER), else in the query."""
    pod = store.get("pods", ns, name)
    container = _pick_container(pod, container or request.query.get("container"))
    if request.query.get("previous") in ("true", "1"):
        raise bad_request(f'previous terminated container "{container}" in pod "{name}" not found')
    rec = kubelet.record(pod["metadata"]["uid"], container)
    if rec is None or not rec.started or not os.path.exists(rec.log_path):
        raise bad_request(
            f'container "{container}" in pod "{name}" is waiting to start: {_waiting_reason(pod, container)}'
        )
    with open(rec.log_path, "rb") as f:
        data = f.read()
    offset = len(data)
    if "tailLines" in request.query:
        n = int(request.query["tailLines"])
        lines = data.splitlines(keepends=True)
        data = b"".join(lines[-n:]) if n > 0 else b""
    limit = int(request.query.get("limitBytes", "0") or 0)
    if limit:
        data = data[:limit]
    if request.query.get("follow") not in ("true", "1"):
        return web.Response(body=data, content_type="text/plain")
    resp = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    with contextlib.suppress(ConnectionResetError):  # kubectl logs -f ended by the user
        await _follow_log(resp, rec, offset, data, kubelet)
    return resp


async def _follow_log(
    resp: web.StreamResponse, rec: ContainerRecord, offset: int, data: bytes, kubelet: Kubelet
) -> None:
    await resp.write(data)
    while True:
        finished = rec.done.is_set()
        with open(rec.log_path, "rb") as f:
            f.seek(offset)
            more = f.read()
        if more:
            offset += len(more)
            await resp.write(more)
        elif finished or kubelet.closed:
            break
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(rec.done.wait(), 0.2)


async def _both(a: Coroutine[Any, Any, None], b: Coroutine[Any, Any, None]) -> None:
    await asyncio.gather(a, b)


def _exec_status(code: int | None, message: str = "") -> bytes:
    if code == 0:
        body: Obj = {"metadata": {}, "status": "Success"}
    elif code is None:
        body = {
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": "InternalError",
            "details": {"causes": [{"message": message}]},
            "code": 500,
        }
    else:
        body = {
            "metadata": {},
            "status": "Failure",
            "message": f"command terminated with non-zero exit code: exit status {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
        }
    return b"\x03" + json.dumps(body).encode()


async def pod_exec(
    request: web.Request, store: Store, kubelet: Kubelet, ns: str, name: str, container: str | None = None
) -> web.StreamResponse:
    """The kubelet's API (/exec/NS/POD/CONTAINER, reached through the apiserver's WebSocket proxy) names the
    container in the path and stdin as `input`; the apiserver's pods/exec uses the query's container and stdin."""
    upgrade = request.headers.get("Upgrade", "").lower()
    if upgrade != "websocket":
        raise bad_request("Upgrade request required")
    want_stdin = request.query.get("stdin" if container is None else "input") in ("true", "1")
    ws = web.WebSocketResponse(protocols=("v5.channel.k8s.io", "v4.channel.k8s.io"), autoping=True)
    # Errors go over the status channel after the upgrade: an HTTP error before it would make kubectl fall
    # back to SPDY and report "Upgrade request required" instead of the real problem.
    await ws.prepare(request)
    v5 = ws.ws_protocol == "v5.channel.k8s.io"
    try:
        pod = store.get("pods", ns, name)
        container = _pick_container(pod, container or request.query.get("container"))
        argv = request.query.getall("command", [])
        if not argv:
            raise bad_request("you must specify at least 1 command")
        proc = await kubelet.exec(pod["metadata"]["uid"], container, argv)
    except ApiError as e:
        await ws.send_bytes(_exec_status(None, e.message))
        await ws.close()
        return ws
    except Exception as e:  # the runtime could not start the command (runc's exec error)
        code = getattr(e, "exit_code", None)
        if not isinstance(code, int):
            raise
        await ws.send_bytes(b"\x01" + (str(e).rstrip("\n") + "\n").encode())
        await ws.send_bytes(_exec_status(code))
        await ws.close()
        return ws

    async def pump(stream: asyncio.StreamReader | None, channel: int) -> None:
        if stream is None:
            return
        while chunk := await stream.read(_CHUNK):
            await ws.send_bytes(bytes([channel]) + chunk)

    async def feed() -> None:
        async for msg in ws:
            if msg.type != WSMsgType.BINARY or not msg.data:
                continue
            channel, payload = msg.data[0], msg.data[1:]
            if proc.stdin is None or proc.stdin.is_closing():
                continue
            try:
                if channel == 0 and want_stdin:
                    proc.stdin.write(payload)
                    await proc.stdin.drain()
                elif channel == 255 and v5:
                    proc.stdin.close()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the command stopped reading; what it already printed still counts

    if not want_stdin and proc.stdin is not None:
        proc.stdin.close()
    feeder = asyncio.ensure_future(feed())
    outputs = asyncio.ensure_future(_both(pump(proc.stdout, 1), pump(proc.stderr, 2)))
    try:
        done, _ = await asyncio.wait({feeder, outputs}, return_when=asyncio.FIRST_COMPLETED)
        if outputs not in done:
            # the client went away before the command finished: stop the command
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await outputs
        code = await proc.wait()
        code = 128 - code if code < 0 else code  # killed by a signal: 128+signal, as the runtime reports it
        if not ws.closed:
            await ws.send_bytes(_exec_status(code))
            await ws.close()
    except (ConnectionResetError, BrokenPipeError) as e:
        log.debug("exec stream broke: %s", e)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
    finally:
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await feeder
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.close()
    return ws
