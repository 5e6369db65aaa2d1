"""One launch, the manager between the plan and the handle (as NVFlare's Slurm launcher hands its plan to a
manager): one read that nothing of the job exists, the pod's manifest file, one server-side apply of the
Secrets and the pod, the pod made owner of its credential Secret (while the pod starts), the handle; and,
when a step fails, its own steps undone, newest first, and nothing else touched."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from kubectl_launcher.domain.manifest import to_json
from kubectl_launcher.domain.plan import LaunchPlan
from kubectl_launcher.domain.pod_status import JobState, ReturnCode
from kubectl_launcher.handle import K8sJobHandle
from kubectl_launcher.kubectl import Kubectl
from kubectl_launcher.kubectl.journal import Journal
from kubectl_launcher.objects.job_pod import JobPod
from kubectl_launcher.objects.launch_secrets import LaunchSecrets
from kubectl_launcher.objects.pod_watch import PodWatch, WatchHold, site_selector
from kubectl_launcher.transfer.workspace import WorkspaceTransfer

__all__ = ["Launch", "LaunchParts"]


class LaunchParts(Protocol):
    """What a launch uses of its launcher (launcher.K8sJobLauncher is one): its log, its apply setting, and
    the builders of the job's handle and workspace transfer that a take-over uses too."""

    logger: logging.Logger
    kubectl_validate: bool

    # launcher.K8sJobLauncher.job_handle: job id, kubectl (None: a handle that owns no pod), job config, then
    # the keyword arguments pending_timeout, python_path, workspace_transfer, pod_name, credential_secret_name.
    job_handle: Callable[..., K8sJobHandle]

    def make_workspace_transfer(self, plan: LaunchPlan) -> WorkspaceTransfer | None: ...


class Launch:
    """The manager of one launch: checks that nothing of it exists (one read), writes the pod's manifest,
    applies the Secrets and the pod together (one apply), makes the pod own its credential Secret while
    the pod starts, builds the handle, and undoes its own steps, newest first, when one fails."""

    def __init__(self, launcher: LaunchParts, plan: LaunchPlan, site_kubectl: Kubectl) -> None:
        self.launcher = launcher
        self.plan = plan
        self.logger = launcher.logger
        self.kubectl = site_kubectl.for_job(Journal(plan.job_dir, "journal"))
        # Public first: a credential that equals the job id (NVFlare's server job token) is then no secret.
        self.kubectl.declare_public(
            plan.raw_job_id,
            plan.job_id,
            plan.pod_name,
            plan.site_name,
            self.kubectl.namespace,
            plan.credential_secret_name,
            plan.startup_secret_name,
            *plan.labels.values(),
        )
        for value in plan.credential_env.values():
            self.kubectl.redact(value)
        self.pod = JobPod(self.kubectl, plan.pod_name, logger=self.logger)
        # (kind, name) of what this launch created, in creation order; the startup Secret is the site's.
        self.created: list[tuple[str, str]] = []
        self.secrets = LaunchSecrets(
            self.kubectl, plan, validate=launcher.kubectl_validate, created=self.created, logger=self.logger
        )
        self._watch_hold: WatchHold | None = None

    def run(self) -> K8sJobHandle:
        try:
            return self._run()
        finally:
            if self._watch_hold is not None:
                self._watch_hold.release()  # the handle follows its pod by now (its first look subscribed)

    def _hold_site_watch(self) -> None:
        """Start the site's pod watch now, unless it runs already: its list and watch come up while the pod
        is applied, and the handle's first look finds them answering instead of waiting for them (on every
        launch of a site whose jobs do not overlap, ~0.2 s of its critical path)."""
        selector = site_selector(self.plan.labels)
        if selector is not None:
            self._watch_hold = PodWatch.for_site(self.kubectl, selector).hold()

    def _run(self) -> K8sJobHandle:
        plan, launcher = self.plan, self.launcher
        handle: K8sJobHandle | None = None
        try:
            # One read of the pod and both Secrets: a foreign Secret or an existing pod stops the launch
            # here, before anything is created.
            pod_exists = self.secrets.check_before_apply()
            handle = launcher.job_handle(
                plan.job_id,
                # A pod of this name is another launch's: the handle of this failed one must not own it
                # (NVFlare may terminate() it, which deletes the pod and its credential Secret).
                None if pod_exists is not None else self.kubectl,
                plan.job_config,
                pending_timeout=plan.pending_timeout,
                python_path=plan.python_path,
                workspace_transfer=launcher.make_workspace_transfer(plan),
                pod_name=plan.pod_name,
                credential_secret_name=plan.credential_secret_name,
            )
            if pod_exists is not None:
                raise RuntimeError(pod_exists)
            self._write_manifest(handle.get_manifest())
            self._hold_site_watch()
            # The Secrets (stdin) and the pod (the manifest file) in one server-side apply.
            pod = self.secrets.apply(plan.manifest_path)
            # While the pod is scheduled and its init container starts: off the launch's critical path.
            owning = threading.Thread(
                target=self._own_credential_secret, args=(pod,), name="kubectl-launcher-own-secret"
            )
            owning.start()
        except BaseException as e:
            self._clean_up()
            if handle is None or not isinstance(e, Exception):
                raise
            self.logger.error(f"failed to launch job {plan.job_id}: {e}")
            handle.end(JobState.TERMINATED, ReturnCode.EXCEPTION)
            return handle
        self.logger.info(
            f"launched job {plan.raw_job_id} as pod {plan.pod_name} in namespace {self.pod.namespace} "
            f"(manifest {plan.manifest_path})"
        )
        try:
            entered = handle.enter_states([JobState.RUNNING])
        except BaseException:
            owning.join()
            handle.terminate()
            raise
        owning.join()  # the Secret's owner is set (or its failure logged) before NVFlare gets the handle
        if not entered:
            self.logger.warning(f"unable to enter running phase {plan.job_id}")
        return handle

    def _own_credential_secret(self, pod: Mapping[str, Any]) -> None:
        try:
            self.secrets.own_credential_secret(pod)
        except Exception:  # on its own thread: nothing above it would tell
            self.logger.exception(f"unexpected error setting the ownerReference of {self.plan.credential_secret_name}")

    # -- the pod --

    def _write_manifest(self, pod: Mapping[str, Any]) -> None:
        path = self.plan.manifest_path
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        partial = f"{path}.partial"
        with open(partial, "w", encoding="utf-8") as f:
            f.write(to_json(pod))
        os.replace(partial, path)

    # -- cleanup --

    def _clean_up(self) -> None:
        """Delete what this launch created, newest first (the pod before the Secret it reads)."""
        for kind, name in reversed(self.created):
            pod = kind == "pod"
            try:
                deleted = self.pod.delete() if pod else self.pod.delete_secret(name)
            except Exception as e:  # the launch's own error is the one its caller must see
                self.logger.warning(f"unexpected error removing {kind} {name}: {e!r}")
                deleted = False
            if not deleted:
                args = self.pod.delete_args() if pod else self.pod.delete_secret_args(name)
                self.logger.warning(
                    f"could not remove {kind} {name} after a failed launch; remove it with: {self.pod.describe(args)}"
                )
        self.created.clear()
