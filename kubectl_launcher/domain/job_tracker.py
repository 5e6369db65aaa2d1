"""Following one job pod (pure): what one look at the pod found, and what the job's state is after it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from kubectl_launcher.domain.pod_status import Pod

__all__ = ["PodRead", "PodReadStatus"]


class PodReadStatus(Enum):
    FOUND = "found"
    GONE = "gone"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class PodRead:
    """One look at the pod: found (with its JSON), gone, or unavailable (and why)."""

    status: PodReadStatus
    pod: Pod | None = None
    error: str = ""  # the typed error's message: kubectl's capped words and the command, no secrets
    permanent: bool = False  # the server refused (not: could not be reached)
    #: The typed error behind UNAVAILABLE, for a caller that must fail with it (the launch's own checks).
    exception: Exception | None = field(default=None, compare=False, repr=False)
