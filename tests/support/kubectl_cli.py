"""The real kubectl run against one local cluster, as a test drives it by hand."""

from __future__ import annotations

import subprocess
from typing import Any

from localkube.testing import kubectl_env


def run_kubectl(
    kubectl: str,
    cluster: Any,
    *args: str,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """`kubectl --cache-dir <the cluster's> ARGS` in the cluster's environment (plus `env`); never raises on rc."""
    return subprocess.run(
        [kubectl, "--cache-dir", cluster.cache_dir, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=kubectl_env(cluster, env),
        timeout=timeout,
        check=False,
    )
