"""Follows what the demo shows while a job runs: job pods and their phases, and the server's FedAvg rounds.

Display only. The pod watch is one long-lived ``kubectl get pods --watch`` (argv and environment built by
:class:`kubectl_launcher.kubectl.Kubectl`, so it uses the same kubeconfig and flags as the launcher); the
launcher itself never depends on it.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubectl_launcher.kubectl import Kubectl

MANAGED_BY = "app.kubernetes.io/managed-by=kubectl-launcher"
SITE_LABEL = "kubectl-launcher/site"
ROUND_RE = re.compile(r"Round (\d+) started")


@dataclass
class PodSighting:
    """One pod as the watch saw it change."""

    name: str
    site: str
    phase: str
    detail: str = ""


@dataclass
class PodHistory:
    """Every phase each job pod went through, in order (what the e2e test and the demo summary read)."""

    phases: dict[str, list[str]] = field(default_factory=dict)
    sites: dict[str, str] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)

    def add(self, sighting: PodSighting) -> bool:
        seen = self.phases.setdefault(sighting.name, [])
        self.sites[sighting.name] = sighting.site
        label = sighting.phase + (f" ({sighting.detail})" if sighting.detail else "")
        if seen and seen[-1] == label:
            return False
        seen.append(label)
        return True


def describe_pod(pod: dict[str, Any]) -> PodSighting:
    """Phase plus the most telling container reason (ImagePullBackOff, Completed, Error...)."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    labels = meta.get("labels") or {}
    phase = str(status.get("phase") or "Pending")
    detail = ""
    statuses = list(status.get("initContainerStatuses") or []) + list(status.get("containerStatuses") or [])
    for cs in statuses:
        state = cs.get("state") or {}
        waiting = state.get("waiting") or {}
        terminated = state.get("terminated") or {}
        if waiting.get("reason") and waiting.get("reason") not in ("PodInitializing", "ContainerCreating"):
            detail = f"{cs.get('name')}: {waiting['reason']}"
            break
        if terminated and terminated.get("exitCode", 0) != 0:
            detail = f"{cs.get('name')}: exit {terminated.get('exitCode')} {terminated.get('reason', '')}".strip()
            break
    if meta.get("deletionTimestamp"):
        detail = (detail + ", " if detail else "") + "terminating"
    return PodSighting(name=str(meta.get("name")), site=str(labels.get(SITE_LABEL, "?")), phase=phase, detail=detail)


class PodWatcher:
    """Runs ``kubectl get pods -l managed-by=kubectl-launcher --watch`` and reports each phase change."""

    def __init__(self, kubectl: Kubectl, on_change: Callable[[PodSighting, str], None]) -> None:
        self._kubectl = kubectl
        self._on_change = on_change
        self.history = PodHistory()
        self._proc: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None
        self.error = ""

    def argv(self) -> tuple[str, ...]:
        return self._kubectl.argv(
            ("get", "pods", "--selector", MANAGED_BY, "--watch", "--output-watch-events", "--output", "json")
        )

    def start(self) -> None:
        self._proc = subprocess.Popen(
            list(self.argv()),
            env=self._kubectl.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self._thread = threading.Thread(target=self._read, name="pod-watch", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        decoder = json.JSONDecoder()
        buffer = ""
        for line in self._proc.stdout:
            buffer += line
            while True:
                buffer = buffer.lstrip()
                if not buffer:
                    break
                try:
                    event, end = decoder.raw_decode(buffer)
                except json.JSONDecodeError:
                    break
                buffer = buffer[end:]
                self._event(event)
        if self._proc.stderr is not None and not self._proc.stderr.closed:
            try:
                self.error = self._proc.stderr.read()[-500:].strip()
            except ValueError:  # closed by stop() meanwhile
                pass

    def _event(self, event: dict[str, Any]) -> None:
        kind = str(event.get("type", "")).upper()
        pod = event.get("object") or {}
        if pod.get("kind") != "Pod":
            return
        sighting = describe_pod(pod)
        if kind == "DELETED":
            sighting = PodSighting(sighting.name, sighting.site, "Deleted")
            self.history.deleted.add(sighting.name)
        if self.history.add(sighting):
            self._on_change(sighting, kind)

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._proc is not None:
            for pipe in (self._proc.stdout, self._proc.stderr):
                if pipe is not None:
                    pipe.close()


class RoundTracker:
    """Reads FedAvg's "Round N started" lines from a growing log (a file, or text fetched from a pod)."""

    def __init__(self) -> None:
        self.rounds_seen: list[int] = []
        self._offset = 0

    def feed(self, text: str) -> list[int]:
        new = [int(m) for m in ROUND_RE.findall(text) if int(m) not in self.rounds_seen]
        self.rounds_seen.extend(new)
        return new

    def follow_file(self, path: Path) -> list[int]:
        try:
            with path.open("r", errors="replace") as fh:
                fh.seek(self._offset)
                chunk = fh.read()
                self._offset = fh.tell()
        except FileNotFoundError:
            return []
        return self.feed(chunk)


def pods_phase_summary(history: PodHistory, names: Sequence[str] | None = None) -> list[str]:
    """One line per pod: site, name and the phases it went through."""
    lines = []
    for name in names or sorted(history.phases):
        lines.append(f"{history.sites.get(name, '?'):8} {name}: {' -> '.join(history.phases.get(name, []))}")
    return lines
