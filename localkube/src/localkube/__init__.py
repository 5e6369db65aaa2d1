"""A local Kubernetes API double: an API server and a kubelet that runs pods as local processes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localkube.cluster import LocalCluster
    from localkube.faults import Faults

__all__ = ["Faults", "LocalCluster"]


def __getattr__(name: str) -> Any:
    # Lazy, so that importing the package does not pull in aiohttp until a cluster is wanted.
    if name == "LocalCluster":
        from localkube.cluster import LocalCluster

        return LocalCluster
    if name == "Faults":
        from localkube.faults import Faults

        return Faults
    raise AttributeError(name)
