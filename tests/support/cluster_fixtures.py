"""Fixtures of the tiers that run the real kubectl against the local API double (the `localkube` package):
the kubectl under test, clusters, and the check that no cluster leaves anything behind.

`--control-plane double|real|both` (localkube's pytest plugin, default double) chooses what `local_cluster`
is: the double, the real kube-apiserver with etcd, scheduler and controller-manager, or each test on both.

The integration, localkube and e2e tiers import them in their conftest.py; the unit tier does not, so it
runs with the launcher alone."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from localkube.testing import (
    DEFAULT_VERSION,
    ENV_KUBECTL,
    find_kubectl,
    leftovers_of_every_cluster,
    minor_from_name,
    running_cluster,
)

from tests.support import kubectl_cli

__all__ = [
    "_no_local_cluster_leftovers",
    "gates",
    "kubectl_path",
    "kubectl_version",
    "local_cluster",
    "local_cluster_factory",
    "run_kubectl",
]

RunKubectl = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture(scope="session", autouse=True)
def _no_local_cluster_leftovers() -> Iterator[None]:
    """After the whole session: no pod process, mount or pod directory of any local cluster is left."""
    yield
    left = leftovers_of_every_cluster()
    assert not left, f"local clusters left things behind: {left}"


@pytest.fixture(scope="session")
def kubectl_path() -> str:
    path = find_kubectl()
    if path is None:
        pytest.fail(f"no kubectl: set {ENV_KUBECTL}, or install kubectl (1.29 or newer) on PATH")
    return path


@pytest.fixture(scope="session")
def kubectl_version(kubectl_path: str) -> str:
    """The minor version ("1.32") of the kubectl under test; clusters report the same one."""
    named = minor_from_name(kubectl_path)
    if named:
        return named
    out = subprocess.run(
        [kubectl_path, "version", "--client", "-o", "json"], capture_output=True, text=True, timeout=60, check=False
    )
    try:
        client = json.loads(out.stdout)["clientVersion"]
        return f"{client['major']}.{client['minor'].rstrip('+')}"
    except (ValueError, KeyError):
        return DEFAULT_VERSION


@pytest.fixture
def local_cluster_factory(tmp_path: Any, kubectl_version: str, control_plane: str) -> Iterator[Callable[..., Any]]:
    """make(**LocalCluster kwargs) -> a started cluster on this run's control plane; all are stopped (and checked
    clean) afterwards."""
    with contextlib.ExitStack() as stack:
        count = 0

        def make(**kwargs: Any) -> Any:
            nonlocal count
            kwargs.setdefault("version", kubectl_version)
            kwargs.setdefault("control_plane", control_plane)
            count += 1
            return stack.enter_context(running_cluster(str(tmp_path / f"cluster{count}"), **kwargs))

        yield make


@pytest.fixture
def local_cluster(local_cluster_factory: Callable[..., Any]) -> Any:
    """A started LocalCluster (its own kubeconfig and kubectl cache), stopped afterwards with a check that
    no pod process, mount or pod directory is left."""
    return local_cluster_factory()


@pytest.fixture
def gates() -> Iterator[Path]:
    """A folder for the gate files a test's pods wait on: a pod runs until the test says so, however slow the
    control plane (the local node runs a pod as a process of this machine)."""
    # Outside /tmp: a pod has a private /tmp, and sees the host's other folders as they are.
    folder = Path(tempfile.mkdtemp(prefix="kl-gates-", dir="/var/tmp"))
    os.chmod(folder, 0o777)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def run_kubectl(kubectl_path: str) -> RunKubectl:
    """run_kubectl(cluster, *args, stdin=None, kubectl=None, env=None, timeout=60) -> CompletedProcess[str]."""

    def run(
        cluster: Any,
        *args: str,
        stdin: str | None = None,
        kubectl: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        return kubectl_cli.run_kubectl(kubectl or kubectl_path, cluster, *args, stdin=stdin, env=env, timeout=timeout)

    return run
