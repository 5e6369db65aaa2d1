"""domain/takeover.py: which of a site's pods are orphans, and what the take-over does with each."""

from __future__ import annotations

from typing import Any

import pytest

from kubectl_launcher.domain.names import managed_labels
from kubectl_launcher.domain.plan import NVFLARE_JOB_ID_ANNOTATION
from kubectl_launcher.domain.takeover import Adoption, find_orphans

JOB = "550e8400-e29b-41d4-a716-446655440000"
KEEPER = "kubectl-launcher-keeper"


def pod(name: str, phase: str, *, site: str = "site-1", job: str | None = JOB, **metadata: Any) -> dict[str, Any]:
    annotations = {NVFLARE_JOB_ID_ANNOTATION: job} if job is not None else {}
    return {
        "metadata": {"name": name, "labels": managed_labels(site, JOB), "annotations": annotations, **metadata},
        "spec": {"containers": [{"name": KEEPER, "image": "i"}, {"name": "container-x", "image": "img:1"}]},
        "status": {"phase": phase},
    }


@pytest.mark.parametrize(
    ("phase", "running_orphans", "adoption"),
    [
        ("Succeeded", "follow", Adoption.COLLECT),
        ("Failed", "terminate", Adoption.COLLECT),
        ("Running", "follow", Adoption.FOLLOW),
        ("Pending", "follow", Adoption.FOLLOW),
        ("Running", "terminate", Adoption.TERMINATE),
        ("", "follow", Adoption.FOLLOW),
    ],
)
def test_what_becomes_of_an_orphan_follows_its_phase_and_the_sites_choice(
    phase: str, running_orphans: str, adoption: Adoption
) -> None:
    [orphan] = find_orphans([pod("p", phase)], site_name="site-1", followed=(), running_orphans=running_orphans,
                            helpers=(KEEPER,))  # fmt: skip
    assert (orphan.adoption, orphan.job_id, orphan.main_container, orphan.image) == (
        adoption,
        JOB,
        "container-x",
        "img:1",
    )


def test_pods_a_live_handle_follows_or_of_another_site_or_being_deleted_are_no_orphans() -> None:
    pods = [
        pod("followed", "Running"),
        pod("other-site", "Running", site="site-2"),
        pod("leaving", "Running", deletionTimestamp="2026-01-01T00:00:00Z"),
        pod("no-job", "Succeeded", job=None),
        pod("bad-job", "Succeeded", job="../x"),
        pod("orphan", "Succeeded"),
    ]
    found = find_orphans(pods, site_name="site-1", followed={"followed"}, helpers=(KEEPER,))
    assert [o.pod_name for o in found] == ["orphan"]


def test_an_unknown_choice_for_running_orphans_is_refused() -> None:
    with pytest.raises(ValueError, match="running_orphans"):
        find_orphans([], site_name="s", followed=(), running_orphans="adopt")
