"""Projected volumes as the kubelet writes them: service-account tokens (fetched by the node beforehand and kept
in the store under `serviceaccounttokens`, "<pod uid>/<path>"), ConfigMap and Secret keys, and downward-API
fields — the `kube-api-access-*` volume the real apiserver adds to every pod is one of these."""

from __future__ import annotations

import base64
import re

from localkube.resources import Obj
from localkube.store import Store

TOKENS = "serviceaccounttokens"


class ProjectionError(Exception):
    """A source cannot be projected yet (FailedMount)."""


def go_quote(value: str) -> str:
    """``value`` as Go's ``%q`` (strconv.Quote) prints it: what the kubelet writes for a label or annotation."""
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif not ch.isprintable():
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def field_text(pod: Obj, path: str) -> str:
    """One downward-API field as the kubelet renders it into a file (all labels or annotations: fieldpath.FormatMap,
    sorted ``key="value"`` lines, the last without a newline)."""
    meta = pod["metadata"]
    m = re.fullmatch(r"metadata\.(labels|annotations)(?:\['(.+)'\])?", path)
    if m and m.group(2):
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    if m:
        return "\n".join(f"{k}={go_quote(str(v))}" for k, v in sorted((meta.get(m.group(1)) or {}).items()))
    return str(
        {"metadata.name": meta["name"], "metadata.namespace": meta["namespace"], "metadata.uid": meta["uid"]}.get(
            path, ""
        )
    )


def _keys(store: Store, kind: str, ns: str, src: Obj) -> dict[str, bytes]:
    resource = "secrets" if kind == "secret" else "configmaps"
    obj = store.find(resource, ns, str(src.get("name")))
    if obj is None:
        if src.get("optional"):
            return {}
        raise ProjectionError(f'{kind.replace("map", "Map")} "{src.get("name")}" not found')
    if kind == "secret":
        data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    else:
        data = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
        data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    items = src.get("items")
    if not items:
        return data
    out = {}
    for item in items:
        if item["key"] not in data:
            if src.get("optional"):
                continue
            raise ProjectionError(f"{kind} references non-existent key: {item['key']}")
        out[item["path"]] = data[item["key"]]
    return out


def project(store: Store, pod: Obj, volume: Obj) -> dict[str, bytes]:
    """Relative path -> content for one projected volume."""
    ns = pod["metadata"]["namespace"]
    files: dict[str, bytes] = {}
    for source in volume.get("sources") or []:
        if "serviceAccountToken" in source:
            rel = source["serviceAccountToken"]["path"]
            token = store.find(TOKENS, ns, f"{pod['metadata']['uid']}/{rel}")
            if token is None:
                raise ProjectionError("failed to fetch token: the local cluster has no service-account tokens")
            files[rel] = str(token["token"]).encode()
        elif "configMap" in source or "secret" in source:
            kind = "configMap" if "configMap" in source else "secret"
            files.update(_keys(store, kind.lower(), ns, source[kind]))
        elif "downwardAPI" in source:
            for item in source["downwardAPI"].get("items") or []:
                if "fieldRef" in item:
                    files[item["path"]] = field_text(pod, item["fieldRef"]["fieldPath"]).encode()
                else:
                    files[item["path"]] = b"0"  # resourceFieldRef: no limits here
    return files
