"""The e2e job on the real control plane: the README's Role, as written, bound alone to a client-certificate
identity in its own namespace (admin only for that set-up), what that identity may do, and who did what in
that namespace according to kube-apiserver's audit log."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubectl_launcher_demo.target import JobTarget

from tests.realcp.readme_role import readme_identity as bind_readme_identity
from tests.support.kubectl_cli import run_kubectl

USER = "nvflare-site-launcher"
#: what `kubectl auth can-i` answers the identity in the README's namespace (and outside it)
QUESTIONS = {
    "create pods": ("create", "pods"),
    "create pods/exec": ("create", "pods", "--subresource=exec"),
    "delete secrets": ("delete", "secrets"),
    "list secrets": ("list", "secrets"),  # not granted: the launcher reads its Secrets by name
    "create deployments.apps": ("create", "deployments.apps"),
    "create pods in default": ("create", "pods", "--namespace=default"),
    "get namespaces": ("get", "namespaces"),
}
EXPECTED_CAN_I = {
    "create pods": "yes",
    "create pods/exec": "yes",
    "delete secrets": "yes",
    "list secrets": "no",
    "create deployments.apps": "no",
    "create pods in default": "no",
    "get namespaces": "no",
}


@dataclass(frozen=True)
class Identity:
    user: str
    kubeconfig: str
    namespace: str
    can_i: dict[str, str]


def readme_identity(target: JobTarget, kubectl: str, root: Path) -> Identity:
    """Bind the README's Role to USER in the README's namespace, make it the target's namespace; ask what the
    identity may do. The target's own kubeconfig stays admin's (the test watches with it)."""
    cluster = target.cluster
    kubeconfig, namespace = bind_readme_identity(kubectl, cluster, USER, str(root / f"{USER}.kubeconfig"))
    target.namespace = namespace
    can_i = {}
    for question, args in QUESTIONS.items():
        scoped = args if any(a.startswith("--namespace") for a in args) else (*args, f"--namespace={namespace}")
        asked = run_kubectl(kubectl, cluster, "auth", "can-i", *scoped, env={"KUBECONFIG": kubeconfig})
        can_i[question] = asked.stdout.strip() or asked.stderr.strip()
    return Identity(USER, kubeconfig, namespace, can_i)


def writers(cluster: Any, namespace: str) -> dict[str, set[str]]:
    """{resource[/subresource]: users} who created, changed, deleted or exec'd into pods and Secrets in
    `namespace`, from the apiserver's audit log (the test's own reads as admin are gets and lists, not counted
    unless they are a `get` of pods/exec, which is exec itself)."""
    found: dict[str, set[str]] = defaultdict(set)
    with open(os.path.join(cluster.control_plane_dir, "audit.log")) as log:
        for line in log:
            entry = json.loads(line)
            ref = entry.get("objectRef") or {}
            if ref.get("namespace") != namespace or ref.get("resource") not in ("pods", "secrets"):
                continue
            resource = "/".join(filter(None, (ref.get("resource"), ref.get("subresource"))))
            verb = entry.get("verb", "")
            if verb in ("create", "update", "patch", "delete") or resource == "pods/exec":
                found[resource].add(str((entry.get("user") or {}).get("username")))
    return dict(found)
