"""The RBAC Role the README asks a cluster admin for, read from README.md itself (so a test that uses it breaks
when the README changes), and the set-up that binds it, alone, to a client-certificate identity on the real
control plane: what the realcp and e2e tiers launch as."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import yaml

from tests.support.kubectl_cli import run_kubectl

ROOT = Path(__file__).parents[2]
README = ROOT / "README.md"


def yaml_role(doc: Path) -> dict[str, Any]:
    """The first ```yaml block of `doc` that is a Role."""
    for block in re.findall(r"```yaml\n(.*?)```", doc.read_text(), re.S):
        found = yaml.safe_load(block)
        if isinstance(found, dict) and found.get("kind") == "Role":
            return found
    raise AssertionError(f"no Role in a yaml block of {doc}")


def readme_role() -> dict[str, Any]:
    return yaml_role(README)


def role_list(user: str, namespace: str, rules: list[dict[str, Any]], name: str | None = None) -> dict[str, Any]:
    """A List of the README's Role (with `rules`, in `namespace`) and a RoleBinding of it to User `user` only."""
    role = copy.deepcopy(readme_role())
    role_name = name or user
    role["metadata"] = {"name": role_name, "namespace": namespace}
    role["rules"] = rules
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": role_name, "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role_name},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }
    return {"apiVersion": "v1", "kind": "List", "items": [role, binding]}


def readme_identity(kubectl: str, cluster: Any, user: str, kubeconfig: str) -> tuple[str, str]:
    """The README's Role as written, in its own namespace (created here), bound to a client certificate of
    `user`: (that identity's kubeconfig, the namespace). Admin does the set-up; nothing else runs as admin."""
    role = readme_role()
    namespace = role["metadata"]["namespace"]
    if run_kubectl(kubectl, cluster, "get", "namespace", namespace).returncode != 0:
        created = run_kubectl(kubectl, cluster, "create", "namespace", namespace)
        assert created.returncode == 0, created.stderr
    items = role_list(user, namespace, role["rules"], name=role["metadata"]["name"])
    applied = run_kubectl(kubectl, cluster, "apply", "-f", "-", stdin=json.dumps(items))
    assert applied.returncode == 0, applied.stderr
    return cluster.identity_kubeconfig(user, kubeconfig), namespace
