"""Pure decisions of a take-over: which pods an earlier launcher of this site left, and what to do with each.

A new launcher lists its site's pods (our labels, Contract 4) and gives them here with the names of the
pods its live handles follow. A pod is an orphan when it is ours, of this site, names its NVFlare job
(the annotation every launch writes), is not being deleted and no live handle follows it. An orphan
that has ended is collected (its results into the job's workspace) and removed; one still pending or
running is followed to its end, or terminated when the site says so (the launcher's
``running_orphans``). Airflow's ``try_adopt_task_instances`` is the model: adopt what the dead
scheduler's executor left, rather than run it twice or leak it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from kubectl_launcher.domain.names import LAUNCHER_DIR, MANAGED_BY, MANAGED_BY_LABEL, SITE_LABEL, managed_labels
from kubectl_launcher.domain.plan import NVFLARE_JOB_ID_ANNOTATION

__all__ = ["FOLLOW", "RUNNING_ORPHAN_CHOICES", "TERMINATE", "Adoption", "Orphan", "find_orphans", "main_container"]

#: What a site may choose for an orphan still running (the launcher's ``running_orphans``).
FOLLOW, TERMINATE = "follow", "terminate"
RUNNING_ORPHAN_CHOICES = (FOLLOW, TERMINATE)
_ENDED_PHASES = ("Succeeded", "Failed")


class Adoption(Enum):
    COLLECT = "collect"  # ended: collect what it left, then delete the pod and the job's Secret
    FOLLOW = "follow"  # pending or running: follow it to its end like a launch's handle, then as COLLECT
    TERMINATE = "terminate"  # pending or running, and the site said so: delete the pod and the job's Secret


@dataclass(frozen=True)
class Orphan:
    """A pod of this site that nobody follows, and what the take-over does with it."""

    pod_name: str
    job_id: str  # NVFlare's job id (the folder in the site workspace)
    phase: str
    adoption: Adoption
    main_container: str
    image: str

    def describe(self) -> str:
        return f"pod {self.pod_name} of job {self.job_id} ({self.phase or 'no phase yet'})"


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def main_container(pod: Mapping[str, Any], helpers: Collection[str]) -> Mapping[str, Any] | None:
    """The job's container: the first of the pod's containers that is not one of `helpers` (the keeper)."""
    for container in _mapping(pod.get("spec")).get("containers") or []:
        if isinstance(container, Mapping) and container.get("name") not in helpers:
            return container
    return None


def _job_id(metadata: Mapping[str, Any]) -> str | None:
    job_id = _mapping(metadata.get("annotations")).get(NVFLARE_JOB_ID_ANNOTATION)
    if not isinstance(job_id, str) or not job_id or "/" in job_id or job_id in (".", "..", LAUNCHER_DIR):
        return None  # it could not name the job's folder in the workspace: not a pod a launch made
    return job_id


def find_orphans(
    pods: Iterable[Mapping[str, Any]],
    *,
    site_name: str,
    followed: Collection[str],
    running_orphans: str = FOLLOW,
    helpers: Collection[str] = (),
) -> list[Orphan]:
    """The orphans among `pods` (a listing of the site's selector), in the listing's order."""
    if running_orphans not in RUNNING_ORPHAN_CHOICES:
        raise ValueError(f"running_orphans must be one of {RUNNING_ORPHAN_CHOICES}, got {running_orphans!r}")
    site_label = managed_labels(site_name, "any")[SITE_LABEL]
    found = []
    for pod in pods:
        metadata = _mapping(pod.get("metadata"))
        labels = _mapping(metadata.get("labels"))
        name = metadata.get("name")
        job_id = _job_id(metadata)
        if labels.get(MANAGED_BY_LABEL) != MANAGED_BY or labels.get(SITE_LABEL) != site_label:
            continue
        if not isinstance(name, str) or not name or name in followed or job_id is None:
            continue
        if metadata.get("deletionTimestamp"):
            continue  # on its way out: its kubelet and garbage collection finish it
        main = main_container(pod, helpers)
        if main is None:
            continue
        phase = str(_mapping(pod.get("status")).get("phase") or "")
        if phase in _ENDED_PHASES:
            adoption = Adoption.COLLECT
        else:
            adoption = Adoption.TERMINATE if running_orphans == TERMINATE else Adoption.FOLLOW
        found.append(Orphan(name, job_id, phase, adoption, str(main.get("name")), str(main.get("image") or "")))
    return found
