"""The job's workspace into its pod before it starts, and its results back before the pod ends (Contract 7).

The launcher constructs one object per job and gives it to the handle::

    WorkspaceTransfer(site_workspace, job_id, workspace_mount_path, settings=TransferSettings(), *,
                      exclude=(), logger=None, clock=time.monotonic, sleep=time.sleep)

``decorate(pod, main_container)`` adds the init container that waits for the workspace and the keeper
that holds it after the job process exits; pod_side.py describes both, their lease and their scripts.

``advance(kubectl, pod)`` is called by the handle with every pod it reads:

* init container running → deliver: stage ``local/`` (minus what upstream's bundle leaves out:
  ``study_data.yaml``, ``study_runtime.yaml``, the pod templates it names, and ``exclude``) and
  ``<job_id>/`` (minus our ``kubectl-launcher/``) as hard links in a local folder; ``kubectl cp``
  it to a path in the pod that does not exist yet. kubectl cp probes its destination with
  ``test -d`` and copies *into* an existing folder but *renames* onto a missing one, and a failed
  probe counts as missing. With a fresh name both outcomes are the same, so a flaky probe or a
  retry can neither nest nor misplace files. Then a listing taken in the pod (entry count,
  ``sha256sum`` of every file, or a byte total where the image has no sha256sum) is compared with
  the local one, the folders are moved into place, and ``delivered`` is written.
* main container terminated, keeper running → collect: the same listing of ``<wmp>/<job_id>``,
  then ``kubectl exec keeper -- tar cf - -C <wmp>/<job_id> .`` into a local file. This is the
  ``tar | kubectl exec`` form, not ``kubectl cp``. kubectl cp's own untar silently skips symlinks
  and cannot tell a cut stream at a member boundary from a complete one. The tar file lets
  archive.extract_results check every member before it is written. Results go to a temporary
  folder first; absolute paths, ``..``, links leaving the tree and device files are refused;
  a stream without its end-of-archive blocks is refused. The extracted tree must then match the
  pod's listing. Only then is it moved into ``<ws>/<job_id>/`` (never touching
  ``<ws>/<job_id>/kubectl-launcher/``), and the keeper is released.
* otherwise, while the keeper runs → refresh the lease when due.

A copy or a tar stream holds up ``advance`` for as long as it runs, so around each one lease.py renews
the lease from a background thread, at least three times per bound of the container that waits.

A delivery or a collection runs as a Step on a daemon thread, so advance() returns at once; a later
look takes its outcome. Each is redone whole at most ``attempts`` times (``_retrying``, the transfer's
one retry layer). When collection still fails, recovery.py leaves the pod to its keeper and tells how
to fetch the results by hand; TransferError makes the handle's return code EXCEPTION.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kubectl_launcher.domain.names import LAUNCHER_DIR
from kubectl_launcher.errors import ConfigError, KubectlError, KubectlRejected, TransferError, UnsafeArchiveError
from kubectl_launcher.kubectl import Kubectl
from kubectl_launcher.kubectl.purpose import COLLECT, DELIVER, RELEASE
from kubectl_launcher.transfer import archive, recovery
from kubectl_launcher.transfer.background import Periodic, Progress, Step, file_size, in_background, log_transferred
from kubectl_launcher.transfer.excludes import local_excludes
from kubectl_launcher.transfer.lease import Lease
from kubectl_launcher.transfer.pod_side import (
    CONTROL_PATH,
    INIT_CONTAINER,
    KEEPER_CONTAINER,
    LIST_SCRIPT,
    PLACE_SCRIPT,
    PREPARE_SCRIPT,
    RELEASE_SCRIPT,
    TransferSettings,
    container_state,
    copy_in_argv,
    copy_out_argv,
    decorate_pod,
    exec_script_argv,
    human_size,
    init_container_failure,
    stage_path,
    tar_out_argv,
    tool_missing_failure,
)


class WorkspaceTransfer:
    """One job's workspace transfer; see the module docstring for the protocol."""

    def __init__(
        self,
        site_workspace: str,
        job_id: str,
        workspace_mount_path: str,
        settings: TransferSettings | None = None,
        *,
        exclude: Iterable[str] = (),
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        run_step: Callable[[Callable[[], None]], None] = in_background,
    ) -> None:
        if not job_id or "/" in job_id or job_id in (".", "..", LAUNCHER_DIR):
            raise ConfigError(f"job id {job_id!r} cannot name a folder in the workspace")
        if not workspace_mount_path.startswith("/"):
            raise ConfigError(f"workspace_mount_path must be absolute, got {workspace_mount_path!r}")
        self.site_workspace = os.path.abspath(site_workspace)
        self.job_id = job_id
        self.mount_path = workspace_mount_path.rstrip("/") or "/"
        self.settings = settings or TransferSettings()
        self._exclude = local_excludes(self.site_workspace, exclude, self.mount_path)
        self.log = logger or logging.getLogger(__name__)
        self._clock = clock
        self._sleep = sleep
        self._main: str | None = None
        self._image = ""
        self.delivered = False
        self.collected = False
        self._finished = False
        self.error: TransferError | None = None
        self.recovery_command: str | None = None
        self.lease = Lease(self.settings, clock, self.log)
        self._run_step = run_step
        self._step: Step | None = None  # a delivery or a collection under way (or done, outcome not yet taken)
        self._lock = threading.Lock()  # poll() and wait() may look from two threads

    # -- paths --

    @property
    def job_dir(self) -> str:
        return os.path.join(self.site_workspace, self.job_id)

    @property
    def own_dir(self) -> str:
        return os.path.join(self.job_dir, LAUNCHER_DIR)

    @property
    def pod_job_dir(self) -> str:
        return f"{self.mount_path.rstrip('/')}/{self.job_id}"

    @property
    def finished(self) -> bool:
        """Nothing more to do: results collected, the pod ended with nothing to collect, or failed for good."""
        return self._finished

    # -- Contract 7: decorate --

    def decorate(self, pod: dict[str, Any], main_container: str) -> None:
        image = decorate_pod(pod, main_container, self.mount_path, self.settings)
        if image is not None:
            self._main = main_container
            self._image = image

    # -- Contract 7: advance --

    def advance(self, kubectl: Kubectl, pod: Mapping[str, Any]) -> None:
        """Never blocks for a copy: a delivery or a collection runs as a Step (a daemon thread by default),
        and a later look takes its outcome (flags set, or its TransferError raised from here)."""
        with self._lock:
            if self._finished:
                return
            try:
                if self._step is None:
                    self._look(kubectl, pod)
                self._settle()
            except TransferError as e:
                self._finished = True
                self.error = e
                raise

    def _settle(self) -> None:
        step = self._step
        if step is None or not step.done.is_set():
            return
        self._step = None
        if step.error is not None:
            raise step.error

    def _start(self, work: Callable[[], None]) -> None:
        self._step = Step()
        self._run_step(self._step.runner(work))

    def _look(self, kubectl: Kubectl, pod: Mapping[str, Any]) -> None:
        if self._main is None:
            raise TransferError("the workspace transfer's decorate() was never called for this pod")
        name = str((pod.get("metadata") or {}).get("name") or "")
        phase = (pod.get("status") or {}).get("phase")
        init = container_state(pod, "initContainerStatuses", INIT_CONTAINER)
        main = container_state(pod, "containerStatuses", self._main)
        keeper = container_state(pod, "containerStatuses", KEEPER_CONTAINER)
        if not self.delivered:
            if "running" in init:
                self._start(lambda: self._deliver(kubectl, name))
            elif "terminated" in init:
                self._init_ended(init["terminated"])
            elif phase in ("Succeeded", "Failed"):
                self._finished = True  # ended before its workspace was wanted: nothing to collect
            return
        if "terminated" in main:
            if "running" in keeper:
                self._start(lambda: self._collect(kubectl, name))
            elif "terminated" in keeper:
                raise self._keep_and_fail(
                    kubectl,
                    name,
                    "the keeper container ended before the results were collected "
                    f"(exit code {keeper['terminated'].get('exitCode')}; the launcher's lease lapsed)",
                    fetch=False,
                )
        elif "running" in keeper:
            self.lease.refresh(kubectl, name)

    def _init_ended(self, terminated: Mapping[str, Any]) -> None:
        error = init_container_failure(terminated, self._image)
        if error is not None:
            raise error
        self.delivered = True  # exit code 0 is our marker: an earlier placement went through, its answer lost

    # -- delivery --

    def _exec(self, kubectl: Kubectl, pod: str, container: str, script: str, *args: str, **kw: Any) -> None:
        kubectl.run(exec_script_argv(pod, container, script, *args), **kw)

    def _listing(self, kubectl: Kubectl, pod: str, container: str, folder: str, scratch: str) -> archive.PodListing:
        path = os.path.join(scratch, "listing.txt")
        checksums = "1" if self.settings.verify_checksums else "0"
        purpose = DELIVER if container == INIT_CONTAINER else COLLECT
        timeout = self.settings.command_timeout
        self._exec(
            kubectl, pod, container, LIST_SCRIPT, folder, checksums, purpose=purpose, timeout=timeout, stdout_path=path
        )
        with open(path, "rb") as f:
            return archive.parse_pod_listing(f.read())

    def _scratch(self, name: str) -> str:
        base = self.own_dir
        if name == "outbox" and ":" in base:  # kubectl cp reads a ':' in a local path as "pod:path"
            return tempfile.mkdtemp(prefix=f"kubectl-launcher-{name}-")
        path = os.path.join(base, name)
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path)
        return path

    def _deliver(self, kubectl: Kubectl, pod: str) -> None:
        bound = self.settings.delivery_timeout
        with self.lease.kept(kubectl, pod, INIT_CONTAINER, bound) as renewer:
            self._deliver_staged(kubectl, pod, renewer)
        self.delivered = True
        # The keeper starts after the delivery and counts its bound from its own start: its first
        # lease is due an interval from now, not on the next look (which is the launch's last step).
        self.lease.renewed_at = self._clock()

    def _deliver_staged(self, kubectl: Kubectl, pod: str, renewer: Periodic) -> None:
        scratch = self._scratch("outbox")
        try:
            staging = os.path.join(scratch, "bundle")
            manifest = archive.stage_bundle(
                [
                    (os.path.join(self.site_workspace, "local"), "local", self._exclude),
                    (self.job_dir, self.job_id, {LAUNCHER_DIR}),
                ],
                staging,
                checksums=self.settings.verify_checksums,
            )
            self._retrying(
                "deliver the workspace",
                lambda attempt: self._deliver_once(kubectl, pod, staging, scratch, manifest, attempt, renewer),
            )
        except OSError as e:
            raise TransferError(f"cannot prepare the workspace for the pod: {e}") from e
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _deliver_once(
        self,
        kubectl: Kubectl,
        pod: str,
        staging: str,
        scratch: str,
        manifest: archive.TreeManifest,
        attempt: int,
        renewer: Periodic,
    ) -> None:
        s = self.settings
        stage = stage_path(self.mount_path, attempt)
        renewer.start()
        token = self.lease.next_token()
        self._exec(kubectl, pod, INIT_CONTAINER, PREPARE_SCRIPT, self.mount_path, CONTROL_PATH, token, purpose=DELIVER)
        what = f"sending the workspace to pod {pod} ({manifest.files} files, {human_size(manifest.total_bytes)})"
        self.log.info("%s", what)
        with Progress(self.log, what, s.progress_interval, self._clock) as progress:
            # dest does not exist: kubectl cp renames onto it, whatever its test -d probe says
            kubectl.run(copy_in_argv(pod, staging, stage), timeout=s.command_timeout, purpose=DELIVER)
            listing = self._listing(kubectl, pod, INIT_CONTAINER, stage, scratch)
            archive.compare(manifest, listing, what="workspace delivered to the pod")
            renewer.stop()  # the init container ends once placed: a renewal then would only fail
            place = (self.mount_path, stage, CONTROL_PATH, "local", self.job_id)
            self._exec(kubectl, pod, INIT_CONTAINER, PLACE_SCRIPT, *place, purpose=DELIVER)
        log_transferred(self.log, "delivered the workspace", manifest, self._clock() - progress.started)

    def _retrying(self, what: str, step: Callable[[int], None]) -> None:
        """The transfer's one retry layer: a step redone whole, at most ``attempts`` times; the seam does not
        retry the commands inside it again, so ``attempts * (command_timeout + retry_delay)`` bounds it."""
        last: Exception | None = None
        for attempt in range(1, self.settings.attempts + 1):
            try:
                step(attempt)
                return
            except UnsafeArchiveError:
                raise
            except (TransferError, KubectlError, OSError) as e:
                self._raise_if_tool_missing(e)
                if isinstance(e, KubectlRejected):
                    raise TransferError(f"cannot {what}: {e}") from e
                last = e
                if attempt < self.settings.attempts:
                    self.log.warning("could not %s (attempt %d of %d): %s", what, attempt, self.settings.attempts, e)
                    self._sleep(self.settings.retry_delay * attempt)
        raise TransferError(f"could not {what} after {self.settings.attempts} attempts: {last}") from last

    def _raise_if_tool_missing(self, e: Exception) -> None:
        error = tool_missing_failure(e, self._image) if isinstance(e, KubectlError) else None
        if error is not None:
            raise error from e

    # -- collection --

    def _collect(self, kubectl: Kubectl, pod: str) -> None:
        try:
            with self.lease.kept(kubectl, pod, KEEPER_CONTAINER, self.settings.keep_timeout):
                self._retrying("collect the results", lambda attempt: self._collect_once(kubectl, pod))
        except UnsafeArchiveError as e:
            raise self._keep_and_fail(kubectl, pod, f"refused the results: {e}") from e
        except TransferError as e:
            raise self._keep_and_fail(kubectl, pod, str(e)) from e
        self.collected = True
        self._finished = True
        try:
            self._exec(
                kubectl,
                pod,
                KEEPER_CONTAINER,
                RELEASE_SCRIPT,
                CONTROL_PATH,
                idempotent=True,
                timeout=60,
                purpose=RELEASE,
            )
        except KubectlError as e:
            self.log.warning(
                "results are in place, but the keeper of pod %s was not released; it ends within %ds: %s",
                pod,
                self.settings.keep_timeout,
                e,
            )

    def _collect_once(self, kubectl: Kubectl, pod: str) -> None:
        s = self.settings
        scratch = self._scratch("incoming")
        try:
            tar_path = os.path.join(scratch, "results.tar")
            what = f"fetching the results from pod {pod}"
            with Progress(
                self.log, what, s.progress_interval, self._clock, measure=lambda: file_size(tar_path)
            ) as progress:
                listing = self._listing(kubectl, pod, KEEPER_CONTAINER, self.pod_job_dir, scratch)
                kubectl.run(
                    tar_out_argv(pod, self.pod_job_dir),
                    timeout=s.command_timeout,
                    purpose=COLLECT,
                    stdout_path=tar_path,
                )
                tree = os.path.join(scratch, "tree")
                manifest = archive.extract_results(tar_path, tree)
                os.unlink(tar_path)
                archive.compare(manifest, listing, what="results fetched from the pod")
            skipped = archive.merge_into(tree, self.job_dir, keep={LAUNCHER_DIR})
            if skipped:
                self.log.warning(
                    "the job wrote %s/ in its workspace; it was not copied over the launcher's own folder", LAUNCHER_DIR
                )
            log_transferred(
                self.log, f"collected the results into {self.job_dir}", manifest, self._clock() - progress.started
            )
        except OSError as e:
            raise TransferError(f"cannot put the results in place: {e}") from e
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _keep_and_fail(self, kubectl: Kubectl, pod: str, reason: str, *, fetch: bool = True) -> TransferError:
        """Leave the pod to its keeper (no release, no more lease), tell how to fetch results by hand."""
        self.lease.renewed_at = float("inf")
        dest = f"{self.job_dir}-results"
        command = kubectl.describe(kubectl.argv(copy_out_argv(pod, self.pod_job_dir, dest)))
        release = kubectl.describe(kubectl.argv(exec_script_argv(pod, KEEPER_CONTAINER, RELEASE_SCRIPT, CONTROL_PATH)))
        self.recovery_command = command if fetch else None
        if not fetch:
            return TransferError(f"results of job {self.job_id} were not collected: {reason}")
        kubectl.note(f"results not collected; recover them with: {command}")
        return recovery.report(
            self.own_dir, self.job_id, pod, reason, self.settings.keep_timeout, command, release, self.log
        )
