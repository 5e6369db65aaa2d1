"""`status`: the job pods of a site (or of every site in the namespace), their state and why they wait."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from kubectl_launcher.cli import output
from kubectl_launcher.cli.options import (
    EXIT_OK,
    EXIT_USAGE,
    add_cluster_options,
    fail,
    make_kubectl,
)
from kubectl_launcher.domain.job_rows import JobRow, events_by_pod, job_row, selector
from kubectl_launcher.errors import ConfigError, KubectlError, ProtocolError
from kubectl_launcher.kubectl import Kubectl
from kubectl_launcher.kubectl.purpose import EVENTS, READ, WATCH

HEADERS = ("job", "site", "pod", "phase", "state", "age", "reason")
WIDE = ("node", "verdict")


def pods_argv(sel: str, all_namespaces: bool) -> list[str]:
    return ["get", "pods", "--selector", sel, "--output", "json", *(["--all-namespaces"] if all_namespaces else [])]


def events_argv(all_namespaces: bool) -> list[str]:
    argv = ["get", "events", "--field-selector", "involvedObject.kind=Pod", "--output", "json"]
    return [*argv, "--all-namespaces"] if all_namespaces else argv


def watch_argv(sel: str, all_namespaces: bool) -> list[str]:
    argv = ["get", "pods", "--selector", sel, "--watch", "--output-watch-events", "--output", "json"]
    return [*argv, "--all-namespaces"] if all_namespaces else argv


def rows_of(
    pods: Sequence[Mapping[str, Any]], events: Mapping[tuple[str, str], list[dict[str, Any]]], now: float
) -> list[JobRow]:
    rows = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        rows.append(job_row(pod, events.get(key, []), now))
    return sorted(rows, key=lambda r: (r.namespace, r.job_id, r.site, r.pod))


def row_cells(row: JobRow, now: datetime, *, wide: bool, namespaces: bool) -> list[str]:
    cells = [row.job_id, row.site, row.pod, row.phase, row.state, output.age(row.created, now), row.reason or "-"]
    if wide:
        cells += [row.node or "-", row.verdict or "-"]
    return [row.namespace, *cells] if namespaces else cells


def render_table(rows: Sequence[JobRow], now: datetime, *, wide: bool, namespaces: bool, bold: bool) -> str:
    headers = [*HEADERS, *(WIDE if wide else ())]
    if namespaces:
        headers = ["namespace", *headers]
    return output.table(headers, [row_cells(r, now, wide=wide, namespaces=namespaces) for r in rows], bold=bold)


def row_data(row: JobRow, now: datetime) -> dict[str, str]:
    return {**row.as_dict(), "age": output.age(row.created, now)}


def read_rows(kubectl: Kubectl, sel: str, all_namespaces: bool) -> list[JobRow]:
    """One `get pods`, and one `get events` only when a pod is pending."""
    listing = kubectl.get_json(pods_argv(sel, all_namespaces), expect_kind="List", purpose=READ) or {}
    pods = listing.get("items") or []
    events: dict[tuple[str, str], list[dict[str, Any]]] = {}
    if any((p.get("status") or {}).get("phase") in ("Pending", "Unknown", None) for p in pods):
        events = events_by_pod(kubectl.get_json(events_argv(all_namespaces), purpose=EVENTS))
    return rows_of(pods, events, time.time())


def _print_rows(ns: argparse.Namespace, rows: Sequence[JobRow], kubectl: Kubectl) -> None:
    now = datetime.now(UTC)
    if ns.output == "json":
        sys.stdout.write(output.to_json({"namespace": None if ns.all_namespaces else kubectl.namespace,
                                         "items": [row_data(r, now) for r in rows]}))  # fmt: skip
        return
    if not rows:
        where = "any namespace" if ns.all_namespaces else f"namespace {kubectl.namespace}"
        print(f"No job pods{f' of site {ns.site}' if ns.site else ''} in {where}.", file=sys.stderr)
        return
    bold = output.is_tty(sys.stdout)
    sys.stdout.write(render_table(rows, now, wide=ns.output == "wide", namespaces=ns.all_namespaces, bold=bold))


def _follow(ns: argparse.Namespace, kubectl: Kubectl, sel: str) -> int:
    """Print a row for each change, kubectl get -w style; a watch the server closes is started again."""
    wide, namespaces = ns.output == "wide", ns.all_namespaces
    while True:
        with kubectl.stream(watch_argv(sel, namespaces), request_timeout=0, purpose=WATCH) as stream:
            for event in stream.documents():
                pod = event.get("object") or {}
                if pod.get("kind") != "Pod":
                    continue
                row = job_row(pod, [], time.time())
                now = datetime.now(UTC)
                if ns.output == "json":
                    print(output.to_json({"type": event.get("type"), **row_data(row, now)}).replace("\n", " ").strip())
                else:
                    cells = row_cells(row, now, wide=wide, namespaces=namespaces)
                    print("   ".join([str(event.get("type", "")), *cells]), flush=True)
            result = stream.wait()
            if stream.error is not None:
                raise stream.error
            if result is None or result.returncode != 0:
                return EXIT_OK


def _cmd_status(ns: argparse.Namespace) -> int:
    try:
        kubectl = make_kubectl(ns)
        sel = selector(site=ns.site)
        rows = read_rows(kubectl, sel, ns.all_namespaces)
        _print_rows(ns, rows, kubectl)
        if ns.watch:
            return _follow(ns, kubectl, sel)
    except (ConfigError, KubectlError, ProtocolError) as exc:
        return fail(str(exc), EXIT_USAGE)
    return EXIT_OK


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "status",
        help="the job pods of a site: job, phase, state, age, why pending",
        description="List the job pods kubectl-launcher created (found by their labels, whatever launcher "
        "version made them): job id, site, pod, phase, JobState, age, and why a pending pod waits. One "
        "`kubectl get pods` (and one `get events` when a pod is pending).",
        epilog="exit codes: 0 listed (also when there are none); 2 usage error or the cluster cannot be reached",
    )
    parser.add_argument("--site", help="only this NVFlare site's pods")
    parser.add_argument("-w", "--watch", action="store_true", help="then print each change as it happens")
    parser.add_argument("-o", "--output", choices=("wide", "json"), help="wide: node and verdict too; json: data")
    add_cluster_options(parser, all_namespaces=True)
    parser.set_defaults(func=_cmd_status)
