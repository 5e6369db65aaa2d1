"""kube-scheduler's fit check for one node: resource requests (cpu, memory, extended resources such as
nvidia.com/gpu) against the node's allocatable minus what bound pods request, PVCs that must exist, and the
FailedScheduling message format ("0/1 nodes are available: 1 Insufficient cpu. preemption: ...")."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from localkube.resources import Obj

_SUFFIX = {
    "": 1.0,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
    "Pi": 2.0**50,
    "Ei": 2.0**60,
}
_QUANTITY = re.compile(r"([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?")
# A real node reports ephemeral-storage (its kubelet's disk) in .status.capacity, and NVFlare's upstream
# launcher requests 1Gi of it for every job pod: without a default here, every job pod would be Unschedulable.
DEFAULT_CAPACITY = {"cpu": "2", "memory": "8Gi", "ephemeral-storage": "20Gi", "nvidia.com/gpu": "0", "pods": "110"}


def parse_quantity(text: str | int | float) -> float:
    if isinstance(text, int | float):
        return float(text)
    m = _QUANTITY.fullmatch(text.strip())
    if not m:
        raise ValueError(
            f"quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {text!r}"
        )
    return float(m.group(1)) * _SUFFIX[m.group(2) or ""]


def pod_requests(pod: Obj) -> dict[str, float]:
    """Effective requests: the larger of the containers' sum and any single init container (limits stand in
    for missing requests, as API defaulting does)."""

    def of(c: Obj) -> dict[str, float]:
        res = c.get("resources") or {}
        merged = {**(res.get("limits") or {}), **(res.get("requests") or {})}
        return {k: parse_quantity(v) for k, v in merged.items()}

    spec = pod.get("spec") or {}
    total: dict[str, float] = {}
    for c in spec.get("containers") or []:
        for k, v in of(c).items():
            total[k] = total.get(k, 0.0) + v
    for c in spec.get("initContainers") or []:
        for k, v in of(c).items():
            total[k] = max(total.get(k, 0.0), v)
    total["pods"] = 1.0
    return total


def unschedulable_message(
    pod: Obj,
    capacity: Mapping[str, float],
    bound: Iterable[Obj],
    *,
    cordoned: bool = False,
    missing_claims: Iterable[str] = (),
) -> str | None:
    """None when the pod fits; otherwise the scheduler's message for the one-node cluster."""
    missing = sorted(missing_claims)
    if missing:
        return f'0/1 nodes are available: persistentvolumeclaim "{missing[0]}" not found. ' + _not_helpful()
    if cordoned:
        return "0/1 nodes are available: 1 node(s) were unschedulable. " + _not_helpful()
    used: dict[str, float] = {}
    for other in bound:
        for k, v in pod_requests(other).items():
            used[k] = used.get(k, 0.0) + v
    short: list[str] = []
    never_fits = False
    for name, amount in pod_requests(pod).items():
        if amount <= 0:
            continue
        cap = capacity.get(name, 0.0)
        if amount > cap - used.get(name, 0.0) + 1e-9:
            short.append("Too many pods" if name == "pods" else f"Insufficient {name}")
            never_fits = never_fits or amount > cap + 1e-9
    if not short:
        return None
    reasons = ", ".join(f"1 {s}" for s in sorted(short))
    tail = (
        _not_helpful()
        if never_fits
        else "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
    )
    return f"0/1 nodes are available: {reasons}. {tail}"


def _not_helpful() -> str:
    return "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
