"""Test support for the local cluster: finding the kubectl under test, starting clusters that match its
version, the environment kubectl runs in, and the check that a stopped cluster left nothing behind."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from localkube.cluster import LocalCluster

T = TypeVar("T")


def _versioned_bin_dir() -> str:
    # Google's Cloud SDK ships a `kubectl` dispatcher with kubectl.1.NN binaries beside it: find that folder
    # through the kubectl on PATH rather than assuming where the SDK is installed.
    on_path = shutil.which("kubectl")
    return os.path.dirname(os.path.realpath(on_path)) if on_path else "/usr/lib/google-cloud-sdk/bin"


SDK_BIN = _versioned_bin_dir()
DEFAULT_VERSION = "1.32"
ENV_KUBECTL = "KUBECTL_LAUNCHER_TEST_KUBECTL"
#: every cluster running_cluster() started in this process, for the end-of-session check
STARTED: list[LocalCluster] = []


def find_kubectl() -> str | None:
    """$KUBECTL_LAUNCHER_TEST_KUBECTL, else the SDK's kubectl.1.32, else `kubectl` on PATH."""
    explicit = os.environ.get(ENV_KUBECTL)
    if explicit:
        return shutil.which(explicit) or (explicit if os.access(explicit, os.X_OK) else None)
    pinned = os.path.join(SDK_BIN, f"kubectl.{DEFAULT_VERSION}")
    if os.access(pinned, os.X_OK):
        return pinned
    return shutil.which("kubectl")


def versioned_kubectls() -> dict[str, str]:
    """Every versioned binary present: {"1.27": path, ...}, oldest first."""
    found: dict[str, str] = {}
    if os.path.isdir(SDK_BIN):
        for name in os.listdir(SDK_BIN):
            m = re.fullmatch(r"kubectl\.(1\.\d+)", name)
            if m and os.access(os.path.join(SDK_BIN, name), os.X_OK):
                found[m.group(1)] = os.path.join(SDK_BIN, name)
    return dict(sorted(found.items(), key=lambda kv: int(kv[0].split(".")[1])))


def minor_from_name(path: str) -> str | None:
    m = re.search(r"kubectl\.(1\.\d+)$", path)
    return m.group(1) if m else None


def kubectl_env(cluster: LocalCluster, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a test's kubectl runs in: this cluster only, no user config, its own cache."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": cluster.workdir,
        "KUBECONFIG": cluster.kubeconfig_path,
        "KUBECACHEDIR": cluster.cache_dir,
        "KUBERC": "off",
        "LC_ALL": "C",
        "KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "true",
    }
    env.update(extra or {})
    return env


def leftovers_of_every_cluster() -> list[str]:
    """leftovers_after_stop() of every cluster running_cluster() started in this process."""
    return [item for cluster in STARTED for item in leftovers_after_stop(cluster)]


def leftovers_after_stop(cluster: LocalCluster) -> list[str]:
    """What a stopped cluster left behind: processes, mounts, pod directories (should be nothing)."""
    found = cluster.leftovers()
    pods = os.path.join(cluster.state_dir, "pods")
    if os.path.isdir(pods) and os.listdir(pods):
        found.append(f"pod directories: {os.listdir(pods)}")
    return found


@contextmanager
def running_cluster(workdir: str, version: str = DEFAULT_VERSION, **kwargs: Any) -> Iterator[LocalCluster]:
    """A started cluster, stopped afterwards; raises AssertionError if anything was left behind."""
    cluster = LocalCluster(workdir, version=version, **kwargs)
    STARTED.append(cluster)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
    left = leftovers_after_stop(cluster)
    assert not left, f"the local cluster left things behind: {left}"


def wait_until(predicate: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.1) -> T:
    """Polls until predicate() returns something truthy and returns it; AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value: {value!r})")
        time.sleep(interval)
