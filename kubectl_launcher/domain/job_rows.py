"""One row per job pod, for `status`: a pod's JSON (and its events) → job id, site, phase, state, reason (pure).

Jobs, sites and pods are found by the labels every launch puts on its objects (names.py); the NVFlare
job id and site name as the operator knows them come from the pod's annotations (plan.py), falling back
to the label values for pods a launcher without them created.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from kubectl_launcher.domain.names import JOB_LABEL, MANAGED_BY, MANAGED_BY_LABEL, SITE_LABEL, managed_labels
from kubectl_launcher.domain.plan import NVFLARE_JOB_ID_ANNOTATION, SITE_ANNOTATION
from kubectl_launcher.domain.pod_status import (
    PodPhase,
    classify_starting_pod,
    job_state_for_phase,
    pod_phase,
)

__all__ = [
    "JobRow",
    "events_by_pod",
    "job_label_value",
    "job_row",
    "selector",
    "site_label_value",
]


@dataclass(frozen=True)
class JobRow:
    job_id: str
    site: str
    namespace: str
    pod: str
    phase: str
    state: str
    created: str
    reason: str
    verdict: str  # the pending classification: wait / wait_for_resources / fail, "" when not pending
    node: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def job_label_value(job_id: str) -> str:
    """The `kubectl-launcher/job` label value of an NVFlare job id (what every launch of it carries)."""
    return managed_labels("any", job_id)[JOB_LABEL]


def site_label_value(site: str) -> str:
    """The `kubectl-launcher/site` label value of an NVFlare site name."""
    return managed_labels(site, "any")[SITE_LABEL]


def selector(*, site: str | None = None, job_id: str | None = None) -> str:
    """The label selector of our objects, narrowed to a site and/or a job."""
    parts = [f"{MANAGED_BY_LABEL}={MANAGED_BY}"]
    if site is not None:
        parts.append(f"{SITE_LABEL}={site_label_value(site)}")
    if job_id is not None:
        parts.append(f"{JOB_LABEL}={job_label_value(job_id)}")
    return ",".join(parts)


def events_by_pod(event_list: Mapping[str, Any] | None) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """A List of events → {(namespace, pod name): [events]} for pods."""
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for event in (event_list or {}).get("items") or []:
        involved = event.get("involvedObject") or {}
        if involved.get("kind", "Pod") != "Pod":
            continue
        key = (str(involved.get("namespace") or ""), str(involved.get("name") or ""))
        out.setdefault(key, []).append(event)
    return out


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def job_row(pod: Mapping[str, Any], events: Sequence[Mapping[str, Any]], now: float) -> JobRow:
    """The status row of one job pod; `events` matter only while it is Pending (classify_starting_pod)."""
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    phase = pod_phase(pod) or "Unknown"  # type: ignore[arg-type]
    reason, verdict = "", ""
    if phase in (PodPhase.PENDING.value, PodPhase.UNKNOWN.value):
        action, reason = classify_starting_pod(pod, list(events), now)  # type: ignore[arg-type]
        verdict = action.value
    elif phase == PodPhase.FAILED.value:
        status = pod.get("status") or {}
        reason = " ".join(x for x in (_str(status.get("reason")), _str(status.get("message"))) if x)
    return JobRow(
        job_id=_str(annotations.get(NVFLARE_JOB_ID_ANNOTATION)) or _str(labels.get(JOB_LABEL)),
        site=_str(annotations.get(SITE_ANNOTATION)) or _str(labels.get(SITE_LABEL)),
        namespace=_str(meta.get("namespace")),
        pod=_str(meta.get("name")),
        phase=phase,
        state=job_state_for_phase(phase).name,
        created=_str(meta.get("creationTimestamp")),
        reason=reason,
        verdict=verdict,
        node=_str((pod.get("spec") or {}).get("nodeName")),
    )
