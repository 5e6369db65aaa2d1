"""`logs JOB_ID`: the logs of a job's pods across sites, each line prefixed `site/container` (stern style)."""

from __future__ import annotations

import argparse
import queue
import sys
import threading
from collections.abc import Mapping, Sequence
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
from kubectl_launcher.cli.status import watch_argv
from kubectl_launcher.domain.job_rows import job_row, selector
from kubectl_launcher.errors import ConfigError, KubectlError, ProtocolError
from kubectl_launcher.kubectl import Kubectl, KubectlStream
from kubectl_launcher.kubectl.purpose import LOGS, READ, WATCH

_ENDED = ("Succeeded", "Failed")


def containers_of(pod: Mapping[str, Any], only: str | None = None) -> list[str]:
    """The init containers then the containers, in the pod's order (or just `only`, when the pod has it)."""
    spec = pod.get("spec") or {}
    names = [str(c.get("name")) for key in ("initContainers", "containers") for c in spec.get(key) or []]
    return [n for n in names if n == only] if only else names


def started_containers(pod: Mapping[str, Any]) -> set[str]:
    """Containers that run or ran: their log exists."""
    status = pod.get("status") or {}
    out = set()
    for key in ("initContainerStatuses", "containerStatuses"):
        for cs in status.get(key) or []:
            state = cs.get("state") or {}
            if state.get("running") is not None or state.get("terminated") is not None:
                out.add(str(cs.get("name")))
    return out


def logs_argv(pod: str, container: str, *, since: float | None, follow: bool) -> list[str]:
    argv = ["logs", pod, "--container", container]
    if since is not None:
        argv.append(f"--since={int(since)}s")
    return [*argv, "--follow"] if follow else argv


def prefix(site: str, container: str, colour: bool) -> str:
    key = f"{site}/{container}"
    return output.paint(key, output.colour_for(key), colour) + " "


def _site(pod: Mapping[str, Any]) -> str:
    return job_row(pod, [], 0.0).site or "?"


def _print_logs(kubectl: Kubectl, pods: Sequence[Mapping[str, Any]], ns: argparse.Namespace, colour: bool) -> int:
    printed = 0
    for pod in pods:
        name = str((pod.get("metadata") or {}).get("name"))
        started = started_containers(pod)
        for container in containers_of(pod, ns.container):
            if container not in started:
                continue
            result = kubectl.run(logs_argv(name, container, since=ns.since, follow=False), check=False, purpose=LOGS)
            lead = prefix(_site(pod), container, colour)
            if result.returncode != 0:
                print(f"{lead}(no log: {output.first_line(result.stderr)})", file=sys.stderr)
                continue
            for line in result.stdout.splitlines():
                sys.stdout.write(f"{lead}{line}\n")
            printed += 1
    return printed


class _Follower:
    """Log streams of every started container of the job's pods, new pods included, merged into stdout."""

    def __init__(self, kubectl: Kubectl, ns: argparse.Namespace, colour: bool) -> None:
        self.kubectl, self.ns, self.colour = kubectl, ns, colour
        self.streams: dict[tuple[str, str], tuple[KubectlStream, str]] = {}
        self.phases: dict[str, str] = {}
        self.changes: queue.Queue[dict[str, Any] | None] = queue.Queue()

    def saw(self, pod: Mapping[str, Any]) -> None:
        name = str((pod.get("metadata") or {}).get("name"))
        self.phases[name] = str((pod.get("status") or {}).get("phase") or "")
        started = started_containers(pod)
        for container in containers_of(pod, self.ns.container):
            if container in started and (name, container) not in self.streams:
                argv = logs_argv(name, container, since=self.ns.since, follow=True)
                stream = self.kubectl.stream(argv, request_timeout=0, purpose=LOGS)
                self.streams[(name, container)] = (stream, prefix(_site(pod), container, self.colour))

    def _watch(self, sel: str) -> None:
        try:
            with self.kubectl.stream(watch_argv(sel, False), request_timeout=0, purpose=WATCH) as watch:
                for event in watch.documents():
                    self.changes.put(event.get("object") or {})
        finally:
            self.changes.put(None)

    def run(self, sel: str, pods: Sequence[Mapping[str, Any]]) -> None:
        """Until every pod seen has ended and its logs are read (Ctrl-C ends it earlier)."""
        for pod in pods:
            self.saw(pod)
        threading.Thread(target=self._watch, args=(sel,), name="logs-watch", daemon=True).start()
        watching = True
        try:
            while True:
                while True:
                    try:
                        change = self.changes.get_nowait()
                    except queue.Empty:
                        break
                    if change is None:
                        watching = False
                    elif change.get("kind") == "Pod":
                        self.saw(change)
                quiet = True
                for stream, lead in list(self.streams.values()):
                    lines = stream.read(timeout=0.05)
                    quiet = quiet and not lines
                    for line in lines:
                        sys.stdout.write(f"{lead}{line}\n")
                    sys.stdout.flush()
                done = all(s.ended for s, _ in self.streams.values())
                ended = bool(self.phases) and all(p in _ENDED for p in self.phases.values())
                if quiet and done and (ended or not watching):
                    return
                if not self.streams:
                    try:
                        change = self.changes.get(timeout=0.5)
                    except queue.Empty:
                        continue
                    self.changes.put(change)
        finally:
            for stream, _ in self.streams.values():
                stream.stop()


def _cmd_logs(ns: argparse.Namespace) -> int:
    try:
        kubectl = make_kubectl(ns)
        sel = selector(site=ns.site, job_id=ns.job_id)
        listing = kubectl.get_json(["get", "pods", "--selector", sel, "--output", "json"], purpose=READ) or {}
        pods = sorted(listing.get("items") or [], key=lambda p: str((p.get("metadata") or {}).get("name")))
        colour = output.is_tty(sys.stdout)
        if ns.follow:
            _Follower(kubectl, ns, colour).run(sel, pods)
            return EXIT_OK
        if not pods:
            where = f" at site {ns.site}" if ns.site else ""
            return fail(f"no pods of job {ns.job_id}{where} in namespace {kubectl.namespace}", EXIT_PROBLEM)
        _print_logs(kubectl, pods, ns, colour)
    except (ConfigError, KubectlError, ProtocolError) as exc:
        return fail(str(exc), EXIT_USAGE)
    return EXIT_OK


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "logs",
        help="the logs of a job's pods across sites, prefixed site/container",
        description="Print the logs of every pod of NVFlare job JOB_ID (found by its kubectl-launcher/job "
        "label), init container and keeper included, each line prefixed with site/container (coloured on "
        "a terminal). With -f, follow them, and the job's pods that start later, until every pod has ended.",
        epilog="exit codes: 0 printed; 1 the job has no pods here (without -f); 2 usage error or no cluster",
    )
    parser.add_argument("job_id", metavar="JOB_ID", help="the NVFlare job id")
    parser.add_argument("--site", help="only this NVFlare site's pod")
    parser.add_argument("-f", "--follow", action="store_true", help="follow the logs and new pods")
    parser.add_argument("--since", type=parse_duration, metavar="D", help="only lines newer than D (30s, 5m, 2h)")
    parser.add_argument("-c", "--container", metavar="C", help="only this container")
    add_cluster_options(parser)
    parser.set_defaults(func=_cmd_logs)
