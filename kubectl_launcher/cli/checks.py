"""doctor's findings (pure): each check's name, severity, what it found and the fix, from kubectl's answers."""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from kubectl_launcher.cli.output import SEVERITY_COLOUR, paint
from kubectl_launcher.domain.names import MANAGED_BY, MANAGED_BY_LABEL, SITE_LABEL
from kubectl_launcher.domain.pod_security import namespace_levels, violations
from kubectl_launcher.domain.rbac import ROLE_NAME, Rule

OK, WARN, ERROR = "ok", "warn", "error"
SEVERITIES = (OK, WARN, ERROR)


@dataclass(frozen=True)
class Check:
    name: str
    severity: str
    found: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def worst(checks: Sequence[Check]) -> str:
    return max((c.severity for c in checks), key=SEVERITIES.index, default=OK)


def server_version(stdout: str) -> tuple[int, int] | None:
    """(major, minor) of serverVersion in `kubectl version -o json`."""
    try:
        info = json.loads(stdout).get("serverVersion") or {}
        return int(str(info["major"]).rstrip("+")), int(str(info["minor"]).rstrip("+"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def skew_check(client: tuple[int, int], server: tuple[int, int] | None, url_hint: str = "") -> Check:
    shown = f"kubectl {client[0]}.{client[1]}"
    if server is None:
        return Check("version skew", WARN, f"{shown}; the server did not say its version{url_hint}")
    skew = abs(client[1] - server[1]) if client[0] == server[0] else 99
    found = f"{shown}, server {server[0]}.{server[1]}"
    if skew > 1:
        return Check(
            "version skew", WARN, f"{found}: more than kubectl's supported skew of one minor version",
            f"use a kubectl within one minor version of {server[0]}.{server[1]} "
            "(--kubectl PATH, or the launcher's 'kubectl' arg)",
        )  # fmt: skip
    return Check("version skew", OK, found)


def can_i_argv(verb: str, resource: str) -> list[str]:
    """`auth can-i` for a resource or a subresource: kubectl reads "pods/exec" as the pod named exec, so a
    subresource goes in --subresource."""
    base, _, sub = resource.partition("/")
    return ["auth", "can-i", verb, base, *(["--subresource", sub] if sub else [])]


def can_i_answer(returncode: int | None, stdout: str) -> bool | None:
    """`kubectl auth can-i`: yes (exit 0) / no (exit 1, 'no' on stdout) / None: it could not ask."""
    answer = stdout.strip().split("\n")[0].strip().lower() if stdout.strip() else ""
    if returncode == 0 and answer.startswith("yes"):
        return True
    if returncode == 1 and answer.startswith("no"):
        return False
    return None


def permission_check(rule: Rule, answers: Mapping[str, bool | None], namespace: str) -> Check:
    """One Role rule: the verbs it needs that `can-i` denied, with the Role line that grants them."""
    name = f"permission {rule.resource}"
    missing = [verb for verb in rule.verbs if answers.get(verb) is False]
    unknown = [verb for verb in rule.verbs if answers.get(verb) is None]
    if missing:
        have = [verb for verb in rule.verbs if answers.get(verb)]
        found = f"denied in namespace {namespace}: {', '.join(f'{v} {rule.resource}' for v in missing)}"
        if have:
            found += f" (allowed: {', '.join(have)})"
        fix = f"add to Role {ROLE_NAME} (README, 'Using it at a site'), needed for {rule.why}:  {rule.line}"
        return Check(name, ERROR, found, fix)
    if unknown:
        return Check(name, WARN, f"could not ask about: {', '.join(unknown)}", "see the journal for kubectl's answer")
    return Check(name, OK, f"{', '.join(rule.verbs)} allowed")


def namespace_check(namespace: str, found: Mapping[str, Any] | None, forbidden: bool) -> Check:
    if forbidden:
        return Check(
            "namespace", WARN, f"cannot read namespace {namespace} (a Role cannot grant that; not needed to launch)",
            "nothing to do for launching; ask an admin to run doctor to see its Pod Security labels",
        )  # fmt: skip
    if found is None:
        return Check(
            "namespace", ERROR, f"namespace {namespace} does not exist",
            f"kubectl create namespace {shlex.quote(namespace)}, or set the launcher's 'namespace' arg",
        )  # fmt: skip
    return Check("namespace", OK, f"namespace {namespace} exists")


#: a job container's field that only its container securityContext can set (the pod's has no such field)
_CONTAINER_ONLY = ("allowPrivilegeEscalation", "capabilities", "privileged")
RESTRICTED_CONTAINER_CONTEXT = (
    '"container_security_context": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}'
)
RESTRICTED_POD_CONTEXT = '"security_context": {"runAsNonRoot": true, "runAsUser": 1000, "seccompProfile": ' \
    '{"type": "RuntimeDefault"}}'  # fmt: skip


def security_fix(found: list[str]) -> str:
    """Which of the launcher's arguments (resources.json) meets what Pod Security found.

    Our init and keeper containers are hardened already; what is left is the job container's, set with
    `container_security_context` (its own fields), and the user, set with `security_context` (the pod's).
    """
    fixes = []
    if any(field in v for v in found for field in _CONTAINER_ONLY):
        fixes.append(f"set the launcher's {RESTRICTED_CONTAINER_CONTEXT}")
    if any("runAsNonRoot" in v or "runAsUser" in v or "seccompProfile" in v for v in found) or not fixes:
        fixes.append(f"set the launcher's {RESTRICTED_POD_CONTEXT} (a user the job image can run as)")
    return " and ".join(fixes)


def pod_security_check(ns_labels: Mapping[str, str] | None, pod: Mapping[str, Any], namespace: str) -> Check:
    levels = namespace_levels(ns_labels)
    enforce, warn = levels["enforce"], levels["warn"]
    try:
        refused = violations(pod, enforce)
        warned = violations(pod, warn)
    except ValueError as exc:
        return Check("pod security", WARN, str(exc))
    containers = ", ".join(
        str(c.get("name")) for k in ("initContainers", "containers") for c in (pod.get("spec") or {}).get(k) or []
    )
    if refused:
        return Check(
            "pod security", ERROR,
            f"namespace {namespace} enforces '{enforce}'; our pod ({containers}) would be refused: "
            + "; ".join(refused[:4]),
            f"{security_fix(refused)}, or label the namespace: kubectl label namespace {shlex.quote(namespace)} "
            "pod-security.kubernetes.io/enforce=baseline --overwrite",
        )  # fmt: skip
    if warned:
        return Check(
            "pod security", WARN, f"admitted under '{enforce}', but '{warn}' warns: {'; '.join(warned[:4])}",
            f"{security_fix(warned)} to meet the warn level",
        )  # fmt: skip
    return Check("pod security", OK, f"enforce '{enforce}': our pod ({containers}) would be admitted")


def startup_secret_check(name: str, site_label: str, metadata: Mapping[str, Any] | None) -> Check:
    check = "startup-kit Secret"
    if metadata is None:
        return Check(check, OK, f"Secret {name} absent: the first launch creates it")
    labels = metadata.get("labels") or {}
    if labels.get(MANAGED_BY_LABEL) == MANAGED_BY and labels.get(SITE_LABEL) == site_label:
        return Check(check, OK, f"Secret {name} is ours (this site's)")
    whose = "another kubectl-launcher site's" if labels.get(MANAGED_BY_LABEL) == MANAGED_BY else "someone else's"
    return Check(
        check, ERROR, f"Secret {name} exists and is {whose}: launches will refuse to replace it",
        f"remove it (kubectl delete secret {shlex.quote(name)}) if it is a leftover, or launch in another namespace",
    )  # fmt: skip


def pull_secret_check(name: str, exists: bool, namespace: str) -> Check:
    if exists:
        return Check(f"image pull secret {name}", OK, "exists")
    return Check(
        f"image pull secret {name}", ERROR,
        f"named in the launcher's image_pull_secrets but absent from namespace {namespace}",
        f"kubectl create secret docker-registry {shlex.quote(name)} --docker-server=... --docker-username=... "
        "--docker-password=...  (or remove it from image_pull_secrets)",
    )  # fmt: skip


def format_checks(checks: Sequence[Check], *, colour: bool) -> str:
    width = max((len(c.name) for c in checks), default=0)
    lines = []
    for c in checks:
        mark = paint(c.severity.upper().ljust(5), SEVERITY_COLOUR[c.severity], colour)
        lines.append(f"{mark}  {c.name.ljust(width)}  {c.found}")
        if c.fix and c.severity != OK:
            lines.append(f"       {' ' * width}  fix: {c.fix}")
    return "\n".join(lines) + "\n"
