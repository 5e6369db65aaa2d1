"""Follows what the demo shows while a job runs: job pods and their phases, and the server's FedAvg rounds.

Display only. The pod watch is one long-lived ``kubectl get pods --watch`` and the round follower one
``kubectl logs --follow`` of the server job's main container, both started by ``Kubectl.stream`` (the
only code that starts kubectl), so they use the same kubeconfig and flags as the launcher; the
launcher itself never depends on them.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubectl_launcher.domain.names import JOB_LABEL, MANAGED_BY, MANAGED_BY_LABEL, SITE_LABEL
from kubectl_launcher.errors import ProtocolError
from kubectl_launcher.kubectl import Kubectl, KubectlStream

#: Everything the launcher created (design contract 4), as a ``--selector`` value.
MANAGED_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
#: Containers the workspace transfer adds; the job's own container is the other one.
TRANSFER_PREFIX = "kubectl-launcher-"
ROUND_RE = re.compile(r"Round (\d+) started")
#: Milestones after which a pod changes no more (see :func:`pod_milestones`).
FINAL_MILESTONES = ("phase-Succeeded", "phase-Failed", "deleted")
#: How long :meth:`PodWatcher.wait_until_ended` waits, by default, once a job is FINISHED: the launcher
#: reports a job's outcome when the keeper is released, and the keeper notices that within a second;
#: the rest is margin for a loaded (2-core CI) machine. Only a pod that does not end waits this long.
END_WAIT = 10.0


@dataclass
class PodSighting:
    """One pod as the watch saw it change."""

    name: str
    site: str
    phase: str
    detail: str = ""
    main_container: str = ""
    main_state: str = ""  # "", "waiting", "running" or "terminated"


@dataclass
class PodHistory:
    """Every phase each job pod went through, in order, and when each milestone was first seen."""

    phases: dict[str, list[str]] = field(default_factory=dict)
    sites: dict[str, str] = field(default_factory=dict)
    #: pod name -> its job label (design contract 4)
    jobs: dict[str, str] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    #: pod name -> milestone (see :func:`pod_milestones`) -> epoch seconds it was first seen
    milestones: dict[str, dict[str, float]] = field(default_factory=dict)

    def add(self, sighting: PodSighting) -> bool:
        seen = self.phases.setdefault(sighting.name, [])
        self.sites[sighting.name] = sighting.site
        label = sighting.phase + (f" ({sighting.detail})" if sighting.detail else "")
        if seen and seen[-1] == label:
            return False
        seen.append(label)
        return True

    def mark(self, name: str, milestones: Sequence[str], at: float) -> None:
        known = self.milestones.setdefault(name, {})
        for milestone in milestones:
            known.setdefault(milestone, at)

    def ended(self, name: str) -> bool:
        """Seen Succeeded, Failed or deleted: the watch has seen everything this pod will do."""
        return any(m in self.milestones.get(name, {}) for m in FINAL_MILESTONES)

    def not_ended(self, job_label: str, sites: Sequence[str] = ()) -> list[str]:
        """What keeps the watch from having seen the end of job ``job_label`` ([]: nothing).

        Each pod of the job not yet seen ending, with its last phase, and each of ``sites`` (labels)
        of which no pod of the job was seen at all.
        """
        mine = sorted(name for name, job in self.jobs.items() if job == job_label)
        missing = [
            f"{self.sites.get(name, '?')}: pod {name} last seen {(self.phases.get(name) or ['?'])[-1]}"
            for name in mine
            if not self.ended(name)
        ]
        seen_sites = {self.sites.get(name) for name in mine}
        missing += [f"{site}: no pod of the job seen" for site in sites if site not in seen_sites]
        return missing


def _container_state(statuses: Sequence[dict[str, Any]], name: str) -> dict[str, Any]:
    for cs in statuses:
        if cs.get("name") == name:
            state = cs.get("state")
            return state if isinstance(state, dict) else {}
    return {}


def main_container_name(pod: dict[str, Any]) -> str:
    """The job's own container: the first one the workspace transfer did not add."""
    for container in (pod.get("spec") or {}).get("containers") or []:
        name = str(container.get("name") or "")
        if name and not name.startswith(TRANSFER_PREFIX):
            return name
    return ""


def pod_milestones(pod: dict[str, Any]) -> list[str]:
    """What this pod object shows has happened: scheduled, init-running, init-done, main-running, ..."""
    status = pod.get("status") or {}
    spec = pod.get("spec") or {}
    found = ["seen"]
    if spec.get("nodeName"):
        found.append("scheduled")
    init_statuses = list(status.get("initContainerStatuses") or [])
    statuses = list(status.get("containerStatuses") or [])
    for cs in init_statuses:
        state = cs.get("state") or {}
        if "running" in state:
            found.append("init-running")
        if "terminated" in state:
            found += ["init-running", "init-done"]
    main = main_container_name(pod)
    for cs in statuses:
        state = cs.get("state") or {}
        role = "main" if cs.get("name") == main else "keeper"
        if "running" in state:
            found.append(f"{role}-running")
        if "terminated" in state:
            found += [f"{role}-running", f"{role}-exited"]
    phase = status.get("phase")
    if phase in ("Running", "Succeeded", "Failed"):
        found.append(f"phase-{phase}")
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        found.append("deleting")
    return found


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
    main = main_container_name(pod)
    main_state = next(iter(_container_state(list(status.get("containerStatuses") or []), main)), "")
    return PodSighting(
        name=str(meta.get("name")),
        site=str(labels.get(SITE_LABEL, "?")),
        phase=phase,
        detail=detail,
        main_container=main,
        main_state=main_state,
    )


class LineFollower:
    """One long-lived kubectl command (``Kubectl.stream``) whose stdout lines go to ``on_output`` on a thread.

    ``again=True`` (a watch): when kubectl ends by itself with exit code 0 — the server closed the
    watch — it is started again, so the display does not go quiet halfway through a job.
    ``json_objects=True``: ``on_output`` gets each JSON object kubectl prints (the seam's
    ``KubectlStream.documents``, decoded once per object) instead of each line.
    """

    def __init__(
        self,
        kubectl: Kubectl,
        args: Sequence[str],
        on_output: Callable[[Any], object],
        name: str,
        *,
        again: bool = False,
        json_objects: bool = False,
    ) -> None:
        self._kubectl = kubectl
        self.args = tuple(args)
        self._on_output = on_output
        self._name = name
        self._again = again
        self._json_objects = json_objects
        self._stream: KubectlStream | None = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self.error = ""

    def argv(self) -> tuple[str, ...]:
        return self._kubectl.argv(self.args)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.is_set():
            with self._lock:
                if self._stopped.is_set():
                    return
                stream = self._stream = self._kubectl.stream(self.args, request_timeout=0)
            try:
                for item in stream.documents() if self._json_objects else (line + "\n" for line in stream):
                    self._on_output(item)
            except ProtocolError as e:  # kubectl printed something that is no JSON object
                self.error = str(e)[-500:]
                stream.stop()
                return
            result = stream.wait()
            if result is None or result.returncode != 0 or not self._again:
                failure = stream.error
                if failure is not None:
                    self.error = str(failure)[-500:]
                return

    def wait(self, timeout: float) -> bool:
        """True once the command ended by itself (``kubectl logs -f`` ends with its container)."""
        if self._thread is None:
            return True
        self._thread.join(timeout=timeout)
        return not self._thread.is_alive()

    def stop(self) -> None:
        with self._lock:
            self._stopped.set()
            stream = self._stream
        if stream is not None:
            stream.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)


class PodWatcher:
    """Runs ``kubectl get pods -l managed-by=kubectl-launcher --watch`` and reports each phase change.

    ``on_pod(pod, sighting)`` also sees every pod object as it arrives (the demo starts the round
    follower from it); ``history`` keeps the phases and the milestone times for the timeline.
    """

    def __init__(
        self,
        kubectl: Kubectl,
        on_change: Callable[[PodSighting, str], None],
        *,
        on_pod: Callable[[dict[str, Any], PodSighting], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._on_change = on_change
        self._on_pod = on_pod
        self._clock = clock
        self.history = PodHistory()
        self._changed = threading.Condition()
        args = ("get", "pods", "--selector", MANAGED_SELECTOR, "--watch", "--output-watch-events", "--output", "json")
        self._stream = LineFollower(kubectl, args, self._event, "pod-watch", again=True, json_objects=True)

    @property
    def error(self) -> str:
        return self._stream.error

    def argv(self) -> tuple[str, ...]:
        return self._stream.argv()

    def start(self) -> None:
        self._stream.start()

    def stop(self) -> None:
        self._stream.stop()

    def wait_until_ended(self, job_label: str, sites: Sequence[str] = (), timeout: float = END_WAIT) -> list[str]:
        """Wait until every pod of the job has been seen ending (:meth:`PodHistory.not_ended`).

        Call it once the job is over and before :meth:`stop`: the launcher reports a job's outcome
        before its pod reaches its final phase, so a watch stopped at once can miss that last step.
        Returns what is still missing when ``timeout`` (seconds) passes, [] when nothing is.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                missing = self.history.not_ended(job_label, sites)
                left = deadline - time.monotonic()
                if not missing or left <= 0:
                    break
                self._changed.wait(left)
        if missing and self.error:
            missing.append(f"the pod watch failed: {self.error}")
        return missing

    def _event(self, event: dict[str, Any]) -> None:
        kind = str(event.get("type", "")).upper()
        pod = event.get("object") or {}
        if pod.get("kind") != "Pod":
            return
        at = self._clock()
        sighting = describe_pod(pod)
        job = ((pod.get("metadata") or {}).get("labels") or {}).get(JOB_LABEL)
        with self._changed:
            if job:
                self.history.jobs[sighting.name] = str(job)
            self.history.mark(sighting.name, pod_milestones(pod), at)
            if kind == "DELETED":
                self.history.mark(sighting.name, ["deleted"], at)
                sighting = PodSighting(sighting.name, sighting.site, "Deleted")
                self.history.deleted.add(sighting.name)
            changed = self.history.add(sighting)
            self._changed.notify_all()
        if self._on_pod is not None:
            self._on_pod(pod, sighting)
        if changed:
            self._on_change(sighting, kind)


class ServerLogGate:
    """When to start following the server job's log: once every site's job container has started (or the
    server's has ended). `kubectl logs -f` prints the log from its start, so nothing is missed; a kubectl
    process sooner would compete with the clients' launches for the machine's cores, an observer that the
    process launcher's runs do not have beside them."""

    def __init__(self, server: str, sites: Sequence[str]) -> None:
        self.server, self.sites = server, frozenset(sites)
        self._started: set[str] = set()
        self._server: PodSighting | None = None

    def see(self, seen: PodSighting) -> PodSighting | None:
        """The server pod's sighting to follow, once it is time; None until then."""
        if seen.main_state not in ("running", "terminated"):
            return None
        self._started.add(seen.site)
        if seen.site == self.server:
            self._server = seen
        server = self._server
        if server is not None and (self._started >= self.sites or server.main_state == "terminated"):
            return server
        return None


class RoundTracker:
    """Reads FedAvg's "Round N started" lines from a growing log (a file, a pod's log stream, results)."""

    def __init__(self) -> None:
        self.rounds_seen: list[int] = []
        self._offset = 0
        self._lock = threading.Lock()

    def feed(self, text: str) -> list[int]:
        with self._lock:
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


class LogFollower:
    """``kubectl logs --follow POD --container C``: hands each line to ``on_line`` as the job writes it."""

    def __init__(self, kubectl: Kubectl, pod: str, container: str, on_line: Callable[[str], object]) -> None:
        self.pod = pod
        self.container = container
        args = ("logs", "--follow", pod, "--container", container)
        self._stream = LineFollower(kubectl, args, on_line, f"logs-{container}")

    @property
    def error(self) -> str:
        return self._stream.error

    def start(self) -> None:
        self._stream.start()

    def wait(self, timeout: float) -> bool:
        return self._stream.wait(timeout)

    def stop(self) -> None:
        self._stream.stop()
