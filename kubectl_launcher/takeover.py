"""The take-over: a site's new launcher adopts the pods an earlier one left (its process killed, its host
restarted), in the spirit of Airflow's ``try_adopt_task_instances``.

On its first use the launcher lists its site's pods (one ``kubectl get pods --selector``), and
domain/takeover.py says which are orphans and what to do with each. For every orphan a handle is built
from the launcher's own parts — the same K8sJobHandle and WorkspaceTransfer a launch makes, without an
apply — and, on a thread of its own:

* an ended pod: the handle's transfer collects what the keeper still holds (verified as in a launch;
  when it cannot, ``recover-results.sh`` says how), then the pod and the job's credential Secret are
  deleted;
* a pending or running pod: the handle follows it to its end (results collected as above), or — with
  ``running_orphans="terminate"`` — terminates it at once.

Every decision and outcome is a note in the site journal (and the job's journal) and a log line; the
handle's commands are journaled as a launch's are. Nothing is ever applied: a pod the take-over follows
is the only one of its job, and a relaunch of that job meanwhile is refused as any relaunch of a job
whose pod exists.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Collection, Mapping
from typing import Any, Protocol

from kubectl_launcher.domain.job_rows import selector
from kubectl_launcher.domain.names import LAUNCHER_DIR, credential_secret_name, uuid4_to_rfc1123
from kubectl_launcher.domain.takeover import Adoption, Orphan, find_orphans, main_container
from kubectl_launcher.errors import KubectlError, ProtocolError
from kubectl_launcher.handle import K8sJobHandle
from kubectl_launcher.kubectl import Kubectl
from kubectl_launcher.kubectl.journal import Journal
from kubectl_launcher.kubectl.purpose import TAKEOVER
from kubectl_launcher.transfer.pod_side import CONTROL_VOLUME, KEEPER_CONTAINER
from kubectl_launcher.transfer.workspace import WorkspaceTransfer

__all__ = ["LauncherParts", "TakeOver", "adopted_handle"]


class LauncherParts(Protocol):
    """What the take-over uses of its launcher (K8sJobLauncher is one): its settings and the same
    builders a launch uses for the handle and the workspace transfer."""

    pending_timeout: float | None
    default_python_path: str

    # launcher.K8sJobLauncher.job_handle: the keyword arguments are pending_timeout, python_path,
    # workspace_transfer, pod_name and credential_secret_name.
    job_handle: Callable[..., K8sJobHandle]

    def workspace_transfer_for(self, workspace_root: str, raw_job_id: str) -> WorkspaceTransfer | None: ...


def adopted_handle(
    parts: LauncherParts, orphan: Orphan, pod: Mapping[str, Any], kubectl: Kubectl, workspace_root: str
) -> K8sJobHandle:
    """The handle a launch would have made for `pod`, built from the pod as it is: nothing is applied, so
    of the manifest only the containers' names and the labels matter."""
    labels = dict((pod.get("metadata") or {}).get("labels") or {})
    main = main_container(pod, (KEEPER_CONTAINER,)) or {}
    job_config = {
        "name": orphan.pod_name,
        "image": orphan.image or "unknown",
        "container_name": orphan.main_container,
        "command": "adopted",
        "labels": labels,
        # The transfer finds the workspace volume through the main container's mounts; its own control
        # volume and containers it adds again (decorate), as for a launch.
        "volume_mount_list": list(main.get("volumeMounts") or []),
        "volume_list": [v for v in (pod.get("spec") or {}).get("volumes") or [] if v.get("name") != CONTROL_VOLUME],
    }
    return parts.job_handle(
        uuid4_to_rfc1123(orphan.job_id),
        kubectl,
        job_config,
        pending_timeout=parts.pending_timeout,
        python_path=parts.default_python_path,
        workspace_transfer=parts.workspace_transfer_for(workspace_root, orphan.job_id),
        pod_name=orphan.pod_name,
        credential_secret_name=credential_secret_name(orphan.pod_name),
    )


class TakeOver:
    """One take-over of a site's orphans: `start()` lists and decides (in the caller's thread, so that a
    launch that follows finds nothing half-done), each orphan is then handled on a thread of its own;
    `join()` waits for them (tests, the CLI). `outcomes` maps a pod name to what became of it."""

    def __init__(
        self,
        site_kubectl: Kubectl,
        workspace_root: str,
        site_name: str,
        parts: LauncherParts,
        *,
        followed: Collection[str] = (),
        running_orphans: str = "follow",
        logger: logging.Logger | None = None,
    ) -> None:
        self.kubectl = site_kubectl
        self.workspace_root = workspace_root
        self.site_name = site_name
        self.parts = parts
        self.followed = frozenset(followed)
        self.running_orphans = running_orphans
        self.logger = logger or logging.getLogger("TakeOver")
        self.orphans: list[Orphan] = []
        self.outcomes: dict[str, str] = {}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self) -> TakeOver:
        """List the site's pods and start adopting its orphans; a failed listing is logged, never raised
        (a launcher that cannot take over still launches)."""
        sel = selector(site=self.site_name)
        try:
            listing = self.kubectl.get_json(["get", "pods", "--selector", sel, "--output", "json"], purpose=TAKEOVER)
        except (KubectlError, ProtocolError) as e:
            self._say(logging.WARNING, f"take-over: could not list the site's pods ({sel}): {e}")
            return self
        pods = [p for p in (listing or {}).get("items") or [] if isinstance(p, Mapping)]
        self.orphans = find_orphans(
            pods,
            site_name=self.site_name,
            followed=self.followed,
            running_orphans=self.running_orphans,
            helpers=(KEEPER_CONTAINER,),
        )
        by_name = {str((p.get("metadata") or {}).get("name")): p for p in pods}
        if not self.orphans:  # the usual start: only the log says so, the journal keeps to commands
            self.logger.info(f"take-over: no pod of site {self.site_name} is left without its launcher")
        for orphan in self.orphans:
            thread = threading.Thread(
                target=self._adopt, args=(orphan, by_name[orphan.pod_name]), name=f"takeover-{orphan.pod_name}"
            )
            thread.daemon = True  # a job followed for hours must not keep the parent from exiting
            self._threads.append(thread)
            thread.start()
        return self

    def join(self, timeout: float | None = None) -> bool:
        """Wait for every orphan's thread (at most `timeout` seconds each); True when all have ended."""
        for thread in self._threads:
            thread.join(timeout)
        return not any(thread.is_alive() for thread in self._threads)

    # -- one orphan --

    def _adopt(self, orphan: Orphan, pod: Mapping[str, Any]) -> None:
        job_kubectl = self.kubectl.for_job(
            Journal(os.path.join(self.workspace_root, orphan.job_id, LAUNCHER_DIR), "journal")
        )
        job_kubectl.declare_public(orphan.job_id, orphan.pod_name, credential_secret_name(orphan.pod_name))
        try:
            handle = adopted_handle(self.parts, orphan, pod, job_kubectl, self.workspace_root)
            if orphan.adoption is Adoption.TERMINATE:
                self._say(logging.WARNING, f"take-over: terminating {orphan.describe()}, as the site asks", job_kubectl)
                handle.terminate()
                self._done(orphan, "terminated; pod and credential Secret deleted", job_kubectl)
                return
            doing = "collecting its results" if orphan.adoption is Adoption.COLLECT else "following it to its end"
            self._say(logging.INFO, f"take-over: {orphan.describe()} has no launcher; {doing}", job_kubectl)
            handle.wait()
            code = handle.poll()
            transfer = handle.workspace_transfer
            results = (
                "no workspace transfer"
                if transfer is None
                else "results collected into " + os.path.join(self.workspace_root, orphan.job_id)
                if getattr(transfer, "collected", False)
                else "results NOT collected" + _recovery(transfer)
            )
            handle.terminate()  # the outcome stays; the pod and the job's credential Secret go
            ended = f"ended {_state(handle)} (return code {code}); {results}; pod and credential Secret deleted"
            self._done(orphan, ended, job_kubectl)
        except Exception as e:  # one orphan's failure must not stop the others, nor the launcher
            self.logger.exception(f"take-over of {orphan.describe()} failed")
            self._done(orphan, f"take-over failed: {e}", job_kubectl, level=logging.ERROR)

    def _done(self, orphan: Orphan, what: str, kubectl: Kubectl, *, level: int = logging.INFO) -> None:
        with self._lock:
            self.outcomes[orphan.pod_name] = what
        self._say(level, f"take-over: {orphan.describe()}: {what}", kubectl)

    def _say(self, level: int, text: str, kubectl: Kubectl | None = None) -> None:
        self.logger.log(level, text)
        (kubectl or self.kubectl).note(text)  # the job's Kubectl writes to the site journal as well


def _state(handle: K8sJobHandle) -> str:
    state = handle.terminal_state
    return state.name if state is not None else "UNKNOWN"


def _recovery(transfer: Any) -> str:
    command = getattr(transfer, "recovery_command", None)
    return f" (fetch them by hand: {command})" if command else ""
