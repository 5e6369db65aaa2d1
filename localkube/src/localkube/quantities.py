"""The API server's checks of a pod's resource quantities on create and update, worded as kube-apiserver 1.3x
words them (seen on the real control plane tier, tests/realcp):

* a value that is no quantity at all (``"lots"``, ``"1Zi"``, ``"two"``) fails while the body is decoded,
  before any validation: ``400 BadRequest``, ``Pod in version "v1" cannot be handled as a Pod: quantities
  must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'``;
* a quantity that parses but is not allowed is a ``422 Invalid`` cause per value, its field written
  ``spec.containers[0].resources.limits[cpu]``: negative (``must be greater than or equal to 0``), an
  extended resource such as ``nvidia.com/gpu`` that is not whole (``must be an integer``), a request
  above its limit (field ``...resources.requests``, ``must be less than or equal to cpu limit of 1``).

Like the real server, a limit without a request counts as the request too (API defaulting copies it
before validation), so a bad limit gives a cause for ``limits[...]`` and one for ``requests[...]``.
Values are quoted in the server's canonical form for the common cases (``0.5`` → ``500m``).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from localkube.resources import ApiError, Obj

__all__ = ["QUANTITY_FORMAT", "check_pod_resources", "parse"]

QUANTITY_FORMAT = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
_NUMBER = re.compile(r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(.*)")
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_EXPONENT = re.compile(r"[eE]([+-]?[0-9]+)")
Cause = tuple[str, str, str]


def parse(text: object) -> Decimal | None:
    """The quantity's value, or None when `text` is no Kubernetes quantity (resource.ParseQuantity)."""
    if isinstance(text, bool):
        return None
    if isinstance(text, int | float):
        return Decimal(str(text))
    if not isinstance(text, str):
        return None
    m = _NUMBER.fullmatch(text.strip())
    if not m:
        return None
    try:
        number = Decimal(m.group(1))
    except InvalidOperation:
        return None
    suffix = m.group(2)
    if suffix in _BINARY:
        return number * (Decimal(1024) ** _BINARY[suffix])
    if suffix in _DECIMAL:
        return number.scaleb(_DECIMAL[suffix])
    exponent = _EXPONENT.fullmatch(suffix)
    if exponent:
        return number.scaleb(int(exponent.group(1)))
    return None


def _canonical(text: object, value: Decimal) -> str:
    """How the server quotes a value: plain numbers as integers or milli-units; the rest as given."""
    if isinstance(text, str) and text.strip() and text.strip()[-1].isdigit() and "e" not in text.lower():
        if value == value.to_integral_value():
            return str(int(value))
        milli = value.scaleb(3)
        if milli == milli.to_integral_value():
            return f"{int(milli)}m"
    return str(text).strip()


def _integer_resource(name: str) -> bool:
    # Extended resources (a domain outside kubernetes.io) and hugepages are counted in whole units.
    return name.startswith("hugepages-") or ("/" in name and not name.split("/")[0].endswith("kubernetes.io"))


def check_pod_resources(kind: str, spec: Obj) -> list[Cause]:
    """The causes for the pod's containers' resources; raises the decoding error (400) for a value that is no
    quantity."""
    causes: list[Cause] = []
    for field in ("initContainers", "containers"):
        for i, container in enumerate(spec.get(field) or []):
            resources = container.get("resources") or {}
            limits = dict(resources.get("limits") or {})
            requests = {**limits, **(resources.get("requests") or {})}  # defaulting: limits stand in
            parsed: dict[str, dict[str, tuple[Decimal, str]]] = {}
            for which, values in (("limits", limits), ("requests", requests)):
                parsed[which] = {}
                for name in sorted(values):
                    value = parse(values[name])
                    if value is None:
                        raise ApiError(400, f'{kind} in version "v1" cannot be handled as a {kind}: {QUANTITY_FORMAT}')
                    shown = _canonical(values[name], value)
                    parsed[which][name] = (value, shown)
                    path = f"spec.{field}[{i}].resources.{which}[{name}]"
                    if value < 0:
                        causes.append(
                            (path, "FieldValueInvalid", f'Invalid value: "{shown}": must be greater than or equal to 0')
                        )
                    elif _integer_resource(name) and value != value.to_integral_value():
                        causes.append((path, "FieldValueInvalid", f'Invalid value: "{shown}": must be an integer'))
            for name, (request, shown) in parsed["requests"].items():
                limit = parsed["limits"].get(name)
                if limit is not None and request > limit[0] >= 0 and request >= 0:
                    causes.append(
                        (
                            f"spec.{field}[{i}].resources.requests",
                            "FieldValueInvalid",
                            f'Invalid value: "{shown}": must be less than or equal to {name} limit of {limit[1]}',
                        )
                    )
    return causes
