"""kubectl-launcher: NVFlare jobs as Kubernetes pods, driven by the kubectl binary."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from kubectl_launcher.domain.names import (
    job_pod_name,
    site_name_to_rfc1123,
    study_dataset_volume_name,
    uuid4_to_rfc1123,
)
from kubectl_launcher.domain.pod_status import JobState, PodPhase

if TYPE_CHECKING:
    from kubectl_launcher.handle import K8sJobHandle
    from kubectl_launcher.kubectl import Kubectl
    from kubectl_launcher.launcher import ClientK8sJobLauncher, K8sJobLauncher, ServerK8sJobLauncher

# Loaded on first use, so that importing a pure module (kubectl_launcher.domain.names, ...) does not start
# with the package importing sh and NVFlare's runtime.
_LAZY = {
    "K8sJobHandle": "handle",
    "Kubectl": "kubectl",
    "ClientK8sJobLauncher": "launcher",
    "K8sJobLauncher": "launcher",
    "ServerK8sJobLauncher": "launcher",
}

__all__ = [
    "ClientK8sJobLauncher",
    "JobState",
    "K8sJobHandle",
    "K8sJobLauncher",
    "Kubectl",
    "PodPhase",
    "ServerK8sJobLauncher",
    "job_pod_name",
    "site_name_to_rfc1123",
    "study_dataset_volume_name",
    "uuid4_to_rfc1123",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
