"""The real control plane's tier: kube-apiserver, etcd, kube-scheduler and kube-controller-manager (built with
Go on first use, cached per user) with our node, driven by the real kubectl 1.37. Every test module here is
marked `real_control_plane`: `--control-plane real` (or both) runs them; the default run deselects and names them."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from localkube.kubectls import pypi_kubectl
from localkube.testing import running_cluster

from tests.support.cluster_fixtures import *  # noqa: F403
from tests.support.kubectl_cli import run_kubectl

Kubectl = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture(scope="session")
def kubectl_137() -> str:
    return pypi_kubectl("1.37")


@pytest.fixture(scope="module")
def real_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One real control plane for a module's tests (each test uses its own namespace or names)."""
    with running_cluster(str(tmp_path_factory.mktemp("realcp")), control_plane="real") as cluster:
        yield cluster


@pytest.fixture
def k(real_cluster: Any, kubectl_137: str) -> Kubectl:
    """k(*args, stdin=None, timeout=60): kubectl 1.37 against the module's real control plane."""

    def run(*args: str, stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return run_kubectl(kubectl_137, real_cluster, *args, stdin=stdin, timeout=timeout)

    return run
