"""kube-apiserver's REST surface for the core v1 resources the launcher uses: discovery, OpenAPI, CRUD,
list/watch with selectors, PATCH in all four flavours, pods/log, pods/exec and SelfSubjectAccessReview;
every error a full `metav1.Status`. Requests are recorded so tests can assert what kubectl sent."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import yaml
from aiohttp import web

from localkube import discovery, patch, protobuf, streams, tables
from localkube.resources import RESOURCES, ApiError, Obj, bad_request
from localkube.selectors import object_matcher
from localkube.ssar import review
from localkube.store import Store

if TYPE_CHECKING:
    from localkube.faults import Faults
    from localkube.kubelet import Kubelet

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: str
    content_type: str
    accept: str
    user_agent: str
    time: float


@dataclass
class ApiContext:
    store: Store
    kubelet: Kubelet
    faults: Faults
    version: str
    requests: list[RecordedRequest] = field(default_factory=list)


def json_response(obj: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=json.dumps(obj).encode(), content_type="application/json")


def error_response(err: ApiError, headers: dict[str, str] | None = None) -> web.Response:
    resp = json_response(err.status(), err.code)
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def build_app(ctx: ApiContext) -> web.Application:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        ctx.requests.append(
            RecordedRequest(
                request.method,
                request.path,
                request.query_string,
                request.headers.get("Content-Type", ""),
                request.headers.get("Accept", ""),
                request.headers.get("User-Agent", ""),
                time.time(),
            )
        )
        if not request.path.startswith("/_localkube"):
            injected = ctx.faults.api_error_for(request.method, request.path, request.query)
            if injected is not None:
                err, headers = injected
                return error_response(err, headers)
        try:
            return await handler(request)
        except ApiError as e:
            return error_response(e)
        except web.HTTPException:
            raise
        except Exception as e:  # the real server answers 500 with a Status, never a traceback page
            log.exception("handler failed: %s %s", request.method, request.path)
            return error_response(ApiError(500, f"Internal error occurred: {e}", "InternalError"))

    app = web.Application(middlewares=[middleware], client_max_size=1024**3)
    app[CTX] = ctx
    r = app.router
    r.add_get("/version", _static(lambda: discovery.version(ctx.version)))
    r.add_get("/version/", _static(lambda: discovery.version(ctx.version)))
    r.add_get("/api", _static(lambda: discovery.api_versions()))
    r.add_get("/api/", _static(lambda: discovery.api_versions()))
    r.add_get("/apis", _static(lambda: discovery.api_groups()))
    r.add_get("/apis/", _static(lambda: discovery.api_groups()))
    r.add_get("/api/v1", _static(lambda: discovery.core_resources()))
    r.add_get("/api/v1/", _static(lambda: discovery.core_resources()))
    r.add_get(f"/apis/{discovery.AUTHZ_GROUP}/v1", _static(lambda: discovery.authz_resources()))
    r.add_post(f"/apis/{discovery.AUTHZ_GROUP}/v1/selfsubjectaccessreviews", _ssar)
    r.add_get("/openapi/v3", _static(lambda: discovery.openapi_v3_root(ctx.version)))
    r.add_get("/openapi/v3/api/v1", _openapi_v3_api_v1)
    r.add_route("*", "/_localkube/faults", _faults)
    r.add_get("/_localkube/requests", _static(lambda: [vars(x) for x in ctx.requests]))
    r.add_route("*", "/api/v1/{tail:.+}", _core)
    r.add_route("*", "/{tail:.*}", _not_found)
    return app


CTX = web.AppKey("localkube", ApiContext)


def _static(produce: Callable[[], Any]) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return json_response(produce())

    return handler


async def _openapi_v3_api_v1(request: web.Request) -> web.Response:
    """As kube-openapi's handler3: asked by the hash the discovery gave, the document may be cached for ever
    (kubectl's disk cache then keeps it: one request less per apply); asked by another hash, a 301 to the
    current one."""
    body, digest = discovery.openapi_v3_api_v1_bytes(request.app[CTX].version)
    headers = {"Etag": f'"{digest}"', "Vary": "Accept"}
    asked = request.query.get("hash", "")
    if asked and asked != digest:
        return web.Response(status=301, headers={**headers, "Location": f"/openapi/v3/api/v1?hash={digest}"})
    if asked:
        expires = datetime.now(UTC) + timedelta(days=365)
        headers["Cache-Control"] = "public, immutable"
        headers["Expires"] = expires.strftime("%a, %d %b %Y %H:%M:%S UTC")
    return web.Response(body=body, content_type="application/json", headers=headers)


async def _not_found(request: web.Request) -> web.Response:
    return error_response(ApiError(404, "the server could not find the requested resource", "NotFound", {}))


async def _ssar(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    body = await request.read()  # protobuf from kubectl: decoded by hand, never as JSON
    return json_response(review(body, request.headers.get("Content-Type", ""), ctx.faults.access_allowed), 201)


async def _faults(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    if request.method == "GET":
        return json_response(ctx.faults.describe())
    if request.method != "POST":
        raise ApiError(405, "use POST with a JSON body", "MethodNotAllowed")
    try:
        body = json.loads((await request.read()).decode() or "{}")
    except ValueError as e:
        raise bad_request(f"fault body is not JSON: {e}") from e
    if not isinstance(body, dict):
        raise bad_request("fault body must be a JSON object")
    await ctx.faults.apply(body)
    return json_response(ctx.faults.describe())


def _route(segs: list[str]) -> tuple[str, str, str | None, str | None]:
    """(resource, namespace, name, subresource) from the path segments after /api/v1/."""
    if len(segs) >= 3 and segs[0] == "namespaces" and segs[2] in RESOURCES and RESOURCES[segs[2]].namespaced:
        ns, res = segs[1], segs[2]
        rest = segs[3:]
    else:
        ns, res, rest = "", segs[0], segs[1:]
    if res not in RESOURCES or len(rest) > 2:
        raise ApiError(404, "the server could not find the requested resource", "NotFound", {})
    name = rest[0] if rest else None
    sub = rest[1] if len(rest) > 1 else None
    return res, ns, name, sub


async def _core(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CTX]
    segs = [s for s in request.match_info["tail"].split("/") if s]
    resource, ns, name, sub = _route(segs)
    info = RESOURCES[resource]
    method = request.method
    namespace: str | None = ns if info.namespaced and ns else (None if info.namespaced else "")
    dry_run = "dryRun" in request.query
    if name is None:
        match = object_matcher(resource, request.query.get("labelSelector"), request.query.get("fieldSelector"))
        if method == "GET":
            if request.query.get("watch") in ("true", "1"):
                return await streams.watch(request, ctx.store, resource, namespace, match)
            items, rv = ctx.store.select(resource, namespace, match)
            if tables.wants_table(request.headers.get("Accept", "")):
                return json_response(tables.table(resource, items, str(rv)))
            return json_response(
                {
                    "kind": f"{info.kind}List",
                    "apiVersion": "v1",
                    "metadata": {"resourceVersion": str(rv)},
                    "items": items,
                }
            )
        if method == "POST" and namespace is not None:
            obj = await _body(request)
            return json_response(ctx.store.create(resource, namespace, obj) if not dry_run else obj, 201)
        if method == "DELETE":
            items, _ = ctx.store.select(resource, namespace, match)
            opts = await _delete_options(request)
            deleted = [
                ctx.store.delete(resource, o["metadata"].get("namespace", ""), o["metadata"]["name"], opts[0])
                for o in items
            ]
            return json_response({"kind": f"{info.kind}List", "apiVersion": "v1", "metadata": {}, "items": deleted})
        raise ApiError(405, "the server does not allow this method on the requested resource", "MethodNotAllowed")
    ns = namespace or ""
    if sub is not None:
        if resource == "pods" and sub == "log" and method == "GET":
            return await streams.pod_log(request, ctx.store, ctx.kubelet, ns, name)
        if resource == "pods" and sub == "exec" and method in ("GET", "POST"):
            return await streams.pod_exec(request, ctx.store, ctx.kubelet, ns, name)
        if sub != "status" or resource not in ("pods", "namespaces"):
            raise ApiError(404, "the server could not find the requested resource", "NotFound", {})
    if method == "GET":
        obj = ctx.store.get(resource, ns, name)
        if sub is None and tables.wants_table(request.headers.get("Accept", "")):
            return json_response(tables.table(resource, [obj], obj["metadata"]["resourceVersion"]))
        return json_response(obj)
    if method == "PUT":
        obj = await _body(request)
        if dry_run:
            return json_response(obj)
        return json_response(ctx.store.replace(resource, ns, name, obj, status_only=sub == "status"))
    if method == "PATCH":
        return await _patch(request, ctx, resource, ns, name, sub == "status", dry_run)
    if method == "DELETE" and sub is None:
        grace, uid = await _delete_options(request)
        if dry_run:
            return json_response(ctx.store.get(resource, ns, name))
        return json_response(ctx.store.delete(resource, ns, name, grace, uid))
    raise ApiError(405, "the server does not allow this method on the requested resource", "MethodNotAllowed")


async def _body(request: web.Request) -> Obj:
    raw = await request.read()
    ctype = request.headers.get("Content-Type", "application/json").split(";")[0].strip()
    if ctype == protobuf.PROTOBUF:
        return protobuf.decode(raw)
    try:
        obj = patch.load_yaml(raw.decode()) if "yaml" in ctype else json.loads(raw.decode())
    except (ValueError, yaml.YAMLError) as e:
        raise bad_request(f"the body of the request was in an unknown format: {e}") from e
    if not isinstance(obj, dict):
        raise bad_request("the body of the request was in an unknown format")
    return obj


async def _delete_options(request: web.Request) -> tuple[int | None, str | None]:
    grace: int | None = None
    uid: str | None = None
    raw = await request.read()
    if raw.strip():
        try:
            opts = json.loads(raw.decode())
        except ValueError as e:
            raise bad_request(f"DeleteOptions is not JSON: {e}") from e
        if isinstance(opts, dict):
            if opts.get("gracePeriodSeconds") is not None:
                grace = int(opts["gracePeriodSeconds"])
            uid = (opts.get("preconditions") or {}).get("uid")
    if "gracePeriodSeconds" in request.query:
        grace = int(request.query["gracePeriodSeconds"])
    return grace, uid


async def _patch(
    request: web.Request, ctx: ApiContext, resource: str, ns: str, name: str, status: bool, dry_run: bool
) -> web.Response:
    ctype = request.headers.get("Content-Type", "").split(";")[0].strip()
    if ctype not in patch.PATCH_TYPES:
        raise ApiError(
            415,
            f'the server does not support the patch type "{ctype}"' if ctype else "the patch type is missing",
            "UnsupportedMediaType",
        )
    raw = await request.read()
    existing = ctx.store.find(resource, ns, name)
    if existing is None:
        if ctype != patch.APPLY:
            raise ApiError(404, f'{resource} "{name}" not found', "NotFound", {"name": name, "kind": resource})
        obj = patch.parse_body(ctype, raw)
        if not isinstance(obj, dict):
            raise bad_request("apply body must be an object")
        obj.setdefault("metadata", {}).setdefault("name", name)
        return json_response(obj if dry_run else ctx.store.create(resource, ns, obj), 201)
    merged = patch.apply_patch(ctype, existing, raw)
    if ctype == patch.APPLY:
        merged["metadata"].pop("resourceVersion", None)
    if dry_run:
        return json_response(merged)
    return json_response(ctx.store.replace(resource, ns, name, merged, status_only=status))
