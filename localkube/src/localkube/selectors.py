"""Label selectors (the full set-based grammar of apimachinery's `labels.Parse`) and field selectors."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from localkube.resources import RESOURCES, bad_request

Predicate = Callable[[Mapping[str, Any]], bool]

_TOKEN = re.compile(r"\s*(!=|==|=|!|\(|\)|,|[^\s!=(),]+)")


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or not m.group(1):
            raise bad_request(f"unable to parse requirement: invalid label selector: {text!r}")
        out.append(m.group(1))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


LabelPredicate = Callable[[Mapping[str, str]], bool]


def _absent(key: str) -> LabelPredicate:
    return lambda labels: key not in labels


def _present(key: str) -> LabelPredicate:
    return lambda labels: key in labels


def _in(key: str, values: set[str], inside: bool) -> LabelPredicate:
    frozen = frozenset(values)
    if inside:
        return lambda labels: labels.get(key) in frozen
    return lambda labels: labels.get(key) not in frozen


def _field(key: str, value: str, equal: bool) -> Predicate:
    return lambda obj: (field_value(obj, key) == value) == equal


def parse_label_selector(text: str | None) -> Callable[[Mapping[str, str]], bool]:
    """Returns a predicate over an object's labels; empty or None selects everything."""
    if not text or not text.strip():
        return lambda labels: True
    toks = _tokens(text)
    reqs: list[LabelPredicate] = []
    i = 0

    def err() -> Exception:
        return bad_request(f"unable to parse requirement: invalid label selector: {text!r}")

    while i < len(toks):
        negate = False
        if toks[i] == "!":
            negate = True
            i += 1
        if i >= len(toks) or toks[i] in {"=", "==", "!=", "(", ")", ",", "!"}:
            raise err()
        key = toks[i]
        i += 1
        op = toks[i] if i < len(toks) else ","
        if negate:
            if op != ",":
                raise err()
            reqs.append(_absent(key))
        elif op == ",":
            reqs.append(_present(key))
        elif op in {"=", "==", "!="}:
            i += 1
            value = ""
            if i < len(toks) and toks[i] not in {",", "(", ")"}:
                value = toks[i]
                i += 1
            reqs.append(_in(key, {value}, op != "!="))
        elif op in {"in", "notin"}:
            i += 1
            if i >= len(toks) or toks[i] != "(":
                raise err()
            i += 1
            values: set[str] = set()
            while i < len(toks) and toks[i] != ")":
                if toks[i] != ",":
                    values.add(toks[i])
                i += 1
            if i >= len(toks):
                raise err()
            i += 1
            reqs.append(_in(key, values, op == "in"))
        else:
            raise err()
        if i < len(toks):
            if toks[i] != ",":
                raise err()
            i += 1
    return lambda labels: all(r(labels) for r in reqs)


def field_value(obj: Mapping[str, Any], path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, Mapping):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    if isinstance(cur, Mapping) and path == "source":
        return str(cur.get("component", ""))
    return str(cur)


def parse_field_selector(text: str | None, resource: str) -> Predicate:
    """Field selectors: `a.b=v`, `a.b==v`, `a.b!=v`, comma-separated; labels the real server does not index
    for the resource are refused as it refuses them."""
    if not text or not text.strip():
        return lambda obj: True
    info = RESOURCES.get(resource)
    allowed = {"metadata.name", "metadata.namespace", *(info.field_labels if info else ())}
    reqs: list[Predicate] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        m = re.fullmatch(r"([^=!]+?)\s*(==|=|!=)\s*(.*)", part)
        if not m:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        key, op, value = m.group(1), m.group(2), m.group(3)
        if key not in allowed:
            raise bad_request(f"field label not supported: {key}")
        reqs.append(_field(key, value, op != "!="))
    return lambda obj: all(r(obj) for r in reqs)


def object_matcher(resource: str, label_selector: str | None, field_selector: str | None) -> Predicate:
    labels = parse_label_selector(label_selector)
    fields = parse_field_selector(field_selector, resource)

    def match(obj: Mapping[str, Any]) -> bool:
        return labels(obj.get("metadata", {}).get("labels") or {}) and fields(obj)

    return match
