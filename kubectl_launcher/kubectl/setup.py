"""Preflight of a Kubectl: the binary, its version, the kubeconfig and the context, named with their fix."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Sequence
from typing import Protocol

from kubectl_launcher import errors
from kubectl_launcher.kubectl import purpose
from kubectl_launcher.kubectl.runner import MIN_KUBECTL_VERSION, CommandResult
from kubectl_launcher.kubectl.stderr import clean_excerpt


class Kubectl(Protocol):
    """What the checks need of a Kubectl (client.py), named here so that setup does not import the client."""

    kubectl: str
    kubeconfig: str | None
    context: str | None

    def env(self) -> dict[str, str]: ...

    def describe(self, argv: Sequence[str]) -> str: ...

    def run(self, args: Sequence[str], *, check: bool = ..., purpose: str = ...) -> CommandResult: ...


def check_setup(kubectl: Kubectl) -> None:
    """Raise ConfigError naming the problem and the fix, before a bad set-up looks like an outage:
    kubectl missing or too old, kubeconfig missing or unreadable, unknown context."""
    binary = kubectl.kubectl if os.sep in kubectl.kubectl else shutil.which(kubectl.kubectl, path=kubectl.env()["PATH"])
    if binary is None or not os.path.isfile(binary) or not os.access(binary, os.X_OK):
        raise errors.ConfigError(
            f"kubectl binary {kubectl.kubectl!r} not found or not executable; install kubectl "
            f"{MIN_KUBECTL_VERSION[0]}.{MIN_KUBECTL_VERSION[1]}+ on PATH or pass kubectl=<path>"
        )
    _check_kubeconfig(kubectl)
    _check_version(kubectl)
    _check_context(kubectl)


def _check_kubeconfig(kubectl: Kubectl) -> None:
    if kubectl.kubeconfig is not None:
        paths = [kubectl.kubeconfig]
        origin = "kubeconfig"
    elif os.environ.get("KUBECONFIG"):
        paths = [p for p in os.environ["KUBECONFIG"].split(os.pathsep) if p]
        origin = "KUBECONFIG"
    else:
        default = os.path.join(os.environ.get("HOME", "/"), ".kube", "config")
        if os.path.exists(default) or os.environ.get("KUBERNETES_SERVICE_HOST"):
            paths = [default] if os.path.exists(default) else []
            origin = "default kubeconfig"
        else:
            raise errors.ConfigError(
                "no Kubernetes configuration at all: no kubeconfig given, KUBECONFIG unset, no "
                f"{default} and not running in a cluster; pass kubeconfig=<path> (kubectl would "
                "otherwise try localhost:8080 and report 'connection refused')"
            )
    for path in paths:
        if not os.path.isfile(path):
            raise errors.ConfigError(f"{origin} file {path!r} does not exist; fix the path")
        if not os.access(path, os.R_OK):
            raise errors.ConfigError(f"{origin} file {path!r} is not readable by this user; fix its permissions")


def _check_version(kubectl: Kubectl) -> None:
    result = kubectl.run(["version", "--client", "--output", "json"], check=False, purpose=purpose.SETUP)
    if result.returncode != 0:
        raise errors.ConfigError(
            f"`{kubectl.describe(result.argv)}` failed ({clean_excerpt(result.stderr, 300)}); is this a kubectl binary?"
        )
    version = parse_client_version(result.stdout)
    if version is None:
        raise errors.ConfigError(f"cannot read the kubectl client version from `{kubectl.describe(result.argv)}`")
    if version < MIN_KUBECTL_VERSION:
        need = f"{MIN_KUBECTL_VERSION[0]}.{MIN_KUBECTL_VERSION[1]}"
        raise errors.ConfigError(
            f"kubectl {kubectl.kubectl!r} is version {version[0]}.{version[1]}; kubectl-launcher needs {need} "
            "or newer (WebSocket exec/cp); install a newer kubectl"
        )


def _check_context(kubectl: Kubectl) -> None:
    if kubectl.context is None:
        if kubectl.kubeconfig is None and not os.environ.get("KUBECONFIG"):
            return  # may be in-cluster; kubectl decides
        result = kubectl.run(["config", "current-context"], check=False, purpose=purpose.SETUP)
        if result.returncode != 0:
            raise errors.ConfigError(
                "the kubeconfig has no current context and none was given; pass context=<name> "
                f"({clean_excerpt(result.stderr, 300)})"
            )
        return
    result = kubectl.run(["config", "get-contexts", "--output", "name"], check=False, purpose=purpose.SETUP)
    if result.returncode != 0:
        raise errors.ConfigError(f"cannot list the kubeconfig's contexts: {clean_excerpt(result.stderr, 300)}")
    names = result.stdout.split()
    if kubectl.context not in names:
        raise errors.ConfigError(
            f"context {kubectl.context!r} is not in the kubeconfig (it has: {', '.join(names) or 'none'}); "
            "fix the context name"
        )


_GIT_VERSION = re.compile(r"v?(\d+)\.(\d+)")


def parse_client_version(stdout: str) -> tuple[int, int] | None:
    """(major, minor) from `kubectl version --client -o json`; minor may read '32+'."""
    try:
        info = json.loads(stdout).get("clientVersion", {})
    except (ValueError, AttributeError):
        return None
    try:
        return int(str(info["major"]).rstrip("+")), int(str(info["minor"]).rstrip("+"))
    except (KeyError, ValueError, TypeError):
        m = _GIT_VERSION.match(str(info.get("gitVersion", "")) if isinstance(info, dict) else "")
        return (int(m.group(1)), int(m.group(2))) if m else None


__all__ = ["MIN_KUBECTL_VERSION", "check_setup", "parse_client_version"]
