"""`terminate JOB_ID` (end a job's pods and per-job Secrets) and `cleanup` (what ended jobs and dead
launchers left). Only objects carrying our managed-by label are ever listed, so only those are deleted.

Results are not collected here: `terminate` ends the pods as they are (collecting a job's results
before ending it belongs to the take-over, a later issue).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubectl_launcher.cli import output
from kubectl_launcher.cli.options import (
    EXIT_OK,
    EXIT_PROBLEM,
    EXIT_USAGE,
    add_cluster_options,
    fail,
    make_kubectl,
    parse_duration,
)
from kubectl_launcher.domain.job_rows import selector
from kubectl_launcher.domain.names import JOB_LABEL, MANAGED_BY, MANAGED_BY_LABEL, SITE_LABEL
from kubectl_launcher.errors import ConfigError, KubectlError, ProtocolError
from kubectl_launcher.kubectl import Kubectl, commands
from kubectl_launcher.kubectl.purpose import DELETE, READ, SECRET

#: Only names, labels and times of Secrets: their data never reaches this process.
SECRET_FIELDS = (
    'jsonpath={range .items[*]}{.metadata.name}{"\\t"}{.metadata.labels}{"\\t"}'
    '{.metadata.creationTimestamp}{"\\n"}{end}'
)
DEFAULT_OLDER_THAN = 3600.0
NO_RESULTS = "results are not collected (taking a job over, results first, is a later issue)"


@dataclass(frozen=True)
class SecretMeta:
    name: str
    labels: Mapping[str, str]
    created: str


@dataclass(frozen=True)
class Action:
    kind: str  # pod / secret
    name: str
    why: str


def parse_secret_lines(text: str) -> list[SecretMeta]:
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        name, _, rest = line.partition("\t")
        labels_text, _, created = rest.partition("\t")
        try:
            labels = json.loads(labels_text) if labels_text.strip() else {}
        except ValueError:
            labels = {}
        out.append(SecretMeta(name.strip(), labels if isinstance(labels, dict) else {}, created.strip()))
    return out


def ours(labels: Mapping[str, Any]) -> bool:
    return labels.get(MANAGED_BY_LABEL) == MANAGED_BY


def _meta(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    return pod.get("metadata") or {}


def pod_ended_at(pod: Mapping[str, Any]) -> str | None:
    """When an ended pod's last container finished (its creation time when no container says)."""
    status = pod.get("status") or {}
    finished = [
        str(((cs.get("state") or {}).get("terminated") or {}).get("finishedAt") or "")
        for cs in status.get("containerStatuses") or []
    ]
    finished = [f for f in finished if f]
    return max(finished) if finished else _meta(pod).get("creationTimestamp")


def _job_key(labels: Mapping[str, Any]) -> tuple[str, str]:
    return str(labels.get(JOB_LABEL, "")), str(labels.get(SITE_LABEL, ""))


def cleanup_plan(
    pods: Sequence[Mapping[str, Any]], secrets: Sequence[SecretMeta], now: datetime, older_than: float
) -> list[Action]:
    """Pods of jobs that ended more than `older_than` seconds ago, and per-job Secrets (created more than
    `older_than` ago: a launch creates its Secret just before its pod) whose pod is gone or going.
    Never anything without our managed-by label, never the site's startup-kit Secret (no job label)."""
    actions: list[Action] = []
    remaining: set[tuple[str, str]] = set()
    for pod in pods:
        labels = _meta(pod).get("labels") or {}
        if not ours(labels):
            continue
        phase = (pod.get("status") or {}).get("phase")
        age = output.elapsed(pod_ended_at(pod), now)
        if phase in ("Succeeded", "Failed") and age is not None and age >= older_than:
            actions.append(
                Action("pod", str(_meta(pod).get("name")), f"{phase}, ended {output.age(pod_ended_at(pod), now)} ago")
            )
        else:
            remaining.add(_job_key(labels))
    for secret in secrets:
        if not ours(secret.labels) or JOB_LABEL not in secret.labels or _job_key(secret.labels) in remaining:
            continue
        age = output.elapsed(secret.created, now)
        if age is not None and age >= older_than:
            actions.append(Action("secret", secret.name, "its job's pod is gone"))
    return actions


def list_pods(kubectl: Kubectl, sel: str) -> list[dict[str, Any]]:
    listing = kubectl.get_json(["get", "pods", "--selector", sel, "--output", "json"], purpose=READ) or {}
    return list(listing.get("items") or [])


def list_secrets(kubectl: Kubectl, sel: str) -> list[SecretMeta]:
    result = kubectl.run(
        ["get", "secrets", "--selector", sel, "--output", SECRET_FIELDS], idempotent=True, purpose=SECRET
    )
    return parse_secret_lines(result.stdout)


def delete(kubectl: Kubectl, actions: Sequence[Action]) -> None:
    for action in actions:
        argv = commands.delete_pod(action.name) if action.kind == "pod" else commands.delete_secret(action.name)
        kubectl.run(argv, idempotent=True, purpose=DELETE)
        print(f"{action.kind}/{action.name} deleted")


def _cmd_terminate(ns: argparse.Namespace) -> int:
    try:
        kubectl = make_kubectl(ns)
        sel = selector(site=ns.site, job_id=ns.job_id)
        pods = [p for p in list_pods(kubectl, sel) if ours(_meta(p).get("labels") or {})]
        secrets = [s for s in list_secrets(kubectl, sel) if ours(s.labels) and JOB_LABEL in s.labels]
        actions = [Action("pod", str(_meta(p).get("name")), "job pod") for p in pods]
        actions += [Action("secret", s.name, "the job's Secret") for s in secrets]
        if not actions:
            where = f" at site {ns.site}" if ns.site else ""
            return fail(f"no pods or Secrets of job {ns.job_id}{where} in namespace {kubectl.namespace}", EXIT_PROBLEM)
        delete(kubectl, actions)
        print(f"note: {NO_RESULTS}", file=sys.stderr)
    except (ConfigError, KubectlError, ProtocolError) as exc:
        return fail(str(exc), EXIT_USAGE)
    return EXIT_OK


def _confirm(prompt: str) -> bool:
    sys.stderr.write(prompt)
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def _cmd_cleanup(ns: argparse.Namespace) -> int:
    try:
        kubectl = make_kubectl(ns)
        sel = selector(site=ns.site)
        actions = cleanup_plan(list_pods(kubectl, sel), list_secrets(kubectl, sel), datetime.now(UTC), ns.older_than)
        if not actions:
            print(f"Nothing to clean up in namespace {kubectl.namespace}.", file=sys.stderr)
            return EXIT_OK
        rows = [[a.kind, a.name, a.why] for a in actions]
        sys.stdout.write(output.table(("kind", "name", "why"), rows, bold=output.is_tty(sys.stdout)))
        if ns.dry_run:
            print("(dry run: nothing deleted)", file=sys.stderr)
            return EXIT_OK
        if not ns.yes and not _confirm(f"Delete these {len(actions)} objects in namespace {kubectl.namespace}? [y/N] "):
            print("Nothing deleted.", file=sys.stderr)
            return EXIT_OK
        delete(kubectl, actions)
    except (ConfigError, KubectlError, ProtocolError) as exc:
        return fail(str(exc), EXIT_USAGE)
    return EXIT_OK


def add_terminate_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "terminate",
        help="delete a job's pods and per-job Secrets",
        description=f"Delete the pods and per-job Secrets of NVFlare job JOB_ID (by its labels) and print "
        f"each one deleted. Note: {NO_RESULTS}; the job's NVFlare parent sees the job end.",
        epilog="exit codes: 0 deleted; 1 the job has nothing here; 2 usage error or no cluster",
    )
    parser.add_argument("job_id", metavar="JOB_ID", help="the NVFlare job id")
    parser.add_argument("--site", help="only this NVFlare site's objects")
    add_cluster_options(parser)
    parser.set_defaults(func=_cmd_terminate)


def add_cleanup_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "cleanup",
        help="remove pods of ended jobs and per-job Secrets whose pod is gone",
        description="Remove what ended jobs and dead launchers left: pods of jobs that ended more than D ago, "
        "and per-job Secrets older than D whose pod no longer exists. Shows the plan and asks first "
        "(unless --yes). Never touches objects without the app.kubernetes.io/managed-by=kubectl-launcher "
        "label, nor the site's startup-kit Secret.",
        epilog="exit codes: 0 done (or nothing to do, or declined); 2 usage error or no cluster",
    )
    parser.add_argument("--site", help="only this NVFlare site's objects")
    parser.add_argument(
        "--older-than", type=parse_duration, default=DEFAULT_OLDER_THAN, metavar="D", help="default 1h (30m, 2h, 7d)"
    )
    parser.add_argument("--dry-run", action="store_true", help="only show what would be deleted")
    parser.add_argument("-y", "--yes", action="store_true", help="do not ask")
    add_cluster_options(parser)
    parser.set_defaults(func=_cmd_cleanup)
