"""The few protobuf bodies kubectl's typed clients send (`kubectl create secret|configmap|namespace`), decoded
by hand from the Kubernetes wire format (runtime.Unknown envelope, k8s.io/api/core/v1 field numbers) into
the JSON form the rest of the double uses. Anything else in protobuf gets 415, as an unknown media type."""

from __future__ import annotations

import base64
from typing import Any

from localkube.resources import ApiError, Obj

MAGIC = b"k8s\x00"
PROTOBUF = "application/vnd.kubernetes.protobuf"


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


def fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) for every field in order; varints as int, length-delimited as bytes."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            out.append((number, value))
        elif wire == 2:
            size, pos = _varint(buf, pos)
            out.append((number, buf[pos : pos + size]))
            pos += size
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    return out


def _str(v: int | bytes) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _bytes(v: int | bytes) -> bytes:
    return v if isinstance(v, bytes) else b""


def _map(entries: list[bytes]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for entry in entries:
        kv = dict(fields(entry))
        out[_str(kv.get(1, b""))] = _bytes(kv.get(2, b""))
    return out


def _meta(buf: bytes) -> Obj:
    meta: Obj = {}
    labels: list[bytes] = []
    annotations: list[bytes] = []
    owners: list[Obj] = []
    finalizers: list[str] = []
    for number, value in fields(buf):
        if number in (1, 2, 3):
            meta[{1: "name", 2: "generateName", 3: "namespace"}[number]] = _str(value)
        elif number == 11:
            labels.append(_bytes(value))
        elif number == 12:
            annotations.append(_bytes(value))
        elif number == 13:
            ref = dict(fields(_bytes(value)))
            owner: Obj = {
                "apiVersion": _str(ref.get(5, b"")),
                "kind": _str(ref.get(1, b"")),
                "name": _str(ref.get(3, b"")),
                "uid": _str(ref.get(4, b"")),
            }
            if 6 in ref:
                owner["controller"] = bool(ref[6])
            if 7 in ref:
                owner["blockOwnerDeletion"] = bool(ref[7])
            owners.append(owner)
        elif number == 14:
            finalizers.append(_str(value))
    if labels:
        meta["labels"] = {k: v.decode() for k, v in _map(labels).items()}
    if annotations:
        meta["annotations"] = {k: v.decode() for k, v in _map(annotations).items()}
    if owners:
        meta["ownerReferences"] = owners
    if finalizers:
        meta["finalizers"] = finalizers
    return meta


def decode(body: bytes) -> Obj:
    """A Secret, ConfigMap or Namespace from kubectl's protobuf body; ApiError 415 for anything else."""
    try:
        if not body.startswith(MAGIC):
            raise ValueError("no k8s protobuf magic")
        envelope = dict(fields(body[len(MAGIC) :]))
        type_meta = dict(fields(_bytes(envelope.get(1, b""))))
        api_version, kind = _str(type_meta.get(1, b"")), _str(type_meta.get(2, b""))
        raw = fields(_bytes(envelope.get(2, b"")))
        obj: Obj = {"apiVersion": api_version or "v1", "kind": kind}
        grouped: dict[int, list[bytes]] = {}
        scalars: dict[int, Any] = {}
        for number, value in raw:
            if isinstance(value, bytes):
                grouped.setdefault(number, []).append(value)
            scalars[number] = value
        obj["metadata"] = _meta(grouped.get(1, [b""])[0])
        if kind == "Secret":
            if 2 in grouped:
                obj["data"] = {k: base64.b64encode(v).decode() for k, v in _map(grouped[2]).items()}
            if 3 in scalars:
                obj["type"] = _str(scalars[3])
            if 4 in grouped:
                obj["stringData"] = {k: v.decode() for k, v in _map(grouped[4]).items()}
            if 5 in scalars:
                obj["immutable"] = bool(scalars[5])
        elif kind == "ConfigMap":
            if 2 in grouped:
                obj["data"] = {k: v.decode() for k, v in _map(grouped[2]).items()}
            if 3 in grouped:
                obj["binaryData"] = {k: base64.b64encode(v).decode() for k, v in _map(grouped[3]).items()}
            if 4 in scalars:
                obj["immutable"] = bool(scalars[4])
        elif kind == "Namespace":
            obj["spec"] = {}
        else:
            raise ApiError(
                415,
                f"the local cluster does not decode protobuf {kind or 'objects'}; send JSON",
                "UnsupportedMediaType",
            )
        return obj
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, f"the body of the request was in an unknown format: {e}", "BadRequest") from e
