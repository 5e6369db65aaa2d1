"""The permissions the launcher needs in its namespace, as data: the README's Role, rule by rule (pure).

`doctor` asks `kubectl auth can-i VERB RESOURCE` for each; a missing one is reported with the Role line
that grants it. A test holds this data against the Role printed in README.md.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ROLE_NAME", "RULES", "Permission", "Rule", "permissions", "role_manifest_yaml"]

ROLE_NAME = "nvflare-kubectl-launcher"


@dataclass(frozen=True)
class Rule:
    resource: str
    verbs: tuple[str, ...]
    why: str

    @property
    def line(self) -> str:
        """The rule as the README's Role writes it (one flow-style YAML line)."""
        return f'- {{apiGroups: [""], resources: [{self.resource}], verbs: [{", ".join(self.verbs)}]}}'


@dataclass(frozen=True)
class Permission:
    verb: str
    resource: str
    rule: Rule


RULES: tuple[Rule, ...] = (
    Rule("pods", ("create", "get", "list", "watch", "patch", "delete"), "the job pod: apply, read, watch, delete"),
    Rule("pods/exec", ("get", "create"), "workspace in, results out"),
    Rule("pods/log", ("get",), "the job's log"),
    Rule("secrets", ("create", "get", "update", "patch", "delete"), "the startup kit and the job's credentials"),
    Rule("events", ("get", "list", "watch"), "why a pod is pending"),
)


def permissions(rules: tuple[Rule, ...] = RULES) -> list[Permission]:
    """Every (verb, resource) pair of the Role, in the Role's order."""
    return [Permission(verb, rule.resource, rule) for rule in rules for verb in rule.verbs]


def role_manifest_yaml(namespace: str, rules: tuple[Rule, ...] = RULES) -> str:
    """The whole Role, as the README shows it, for a namespace."""
    head = (
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\n"
        f"metadata: {{name: {ROLE_NAME}, namespace: {namespace}}}\nrules:\n"
    )
    return head + "".join(f"  {rule.line}\n" for rule in rules)
