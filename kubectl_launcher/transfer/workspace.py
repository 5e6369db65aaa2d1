"""The job's workspace into its pod before it starts, and its results back before the pod ends (Contract 7).

The launcher constructs one object per job and gives it to the handle::

    WorkspaceTransfer(site_workspace, job_id, workspace_mount_path, settings=TransferSettings(), *,
                      exclude=(), logger=None, clock=time.monotonic, sleep=time.sleep)

``decorate(pod, main_container)`` adds the init container that waits for the workspace and the keeper
that holds it after the job process exits; transfer_pod.py describes both, their lease and their scripts.

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

A copy or a tar stream holds up ``advance`` for as long as it runs, so around each one a background
thread renews the lease through the same Kubectl (journaled like every command), at least three times
per bound of the container that waits. It is stopped when the copy ends or fails; it dies with the
launcher's process, so a launcher that dies still leaves a pod that ends by itself within the bound.

Failures are retried ``attempts`` times. When collection still fails, the keeper is not released and
the lease is no longer refreshed, so the pod stays ``keep_timeout`` seconds. The log names the kubectl
command that fetches the results by hand, ``<ws>/<job_id>/kubectl-launcher/recover-results.sh``
holds it, and TransferError is raised (the handle turns it into EXCEPTION). The main container's own
exit code still decides the job's return code.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import yaml

from kubectl_launcher.domain.names import LAUNCHER_DIR
from kubectl_launcher.errors import ConfigError, KubectlError, KubectlRejected, TransferError, UnsafeArchiveError
from kubectl_launcher.kubectl import Kubectl
from kubectl_launcher.transfer import archive

# The pod side's names stay importable from here ("as" marks a re-export): transfer.X keeps working.
from kubectl_launcher.transfer.pod_side import ANNOTATION as ANNOTATION
from kubectl_launcher.transfer.pod_side import CONTROL_PATH as CONTROL_PATH
from kubectl_launcher.transfer.pod_side import CONTROL_VOLUME as CONTROL_VOLUME
from kubectl_launcher.transfer.pod_side import INIT_CONTAINER as INIT_CONTAINER
from kubectl_launcher.transfer.pod_side import KEEPER_CONTAINER as KEEPER_CONTAINER
from kubectl_launcher.transfer.pod_side import LEASE_SCRIPT as LEASE_SCRIPT
from kubectl_launcher.transfer.pod_side import LIST_SCRIPT as LIST_SCRIPT
from kubectl_launcher.transfer.pod_side import LOCAL_EXCLUDES as LOCAL_EXCLUDES
from kubectl_launcher.transfer.pod_side import PLACE_SCRIPT as PLACE_SCRIPT
from kubectl_launcher.transfer.pod_side import PREPARE_SCRIPT as PREPARE_SCRIPT
from kubectl_launcher.transfer.pod_side import RELEASE_SCRIPT as RELEASE_SCRIPT
from kubectl_launcher.transfer.pod_side import STAGE_PREFIX as STAGE_PREFIX
from kubectl_launcher.transfer.pod_side import WAIT_SCRIPT as WAIT_SCRIPT
from kubectl_launcher.transfer.pod_side import TransferSettings as TransferSettings
from kubectl_launcher.transfer.pod_side import (
    container_state,
    copy_in_argv,
    copy_out_argv,
    decorate_pod,
    exec_script_argv,
    human_size,
    init_container_failure,
    recovery_script,
    stage_path,
    tar_out_argv,
    tool_missing_failure,
)


def local_excludes(site_workspace: str, extra: Iterable[str] = (), workspace_mount_path: str = "") -> frozenset[str]:
    """Paths under local/ that are not sent, as upstream's bundle leaves them out, plus ``extra``.

    ``extra`` entries may be absolute (under the site workspace or the mount path) or relative to
    the site workspace; anything outside local/ is ignored.
    """
    out = set(LOCAL_EXCLUDES)
    runtime = os.path.join(site_workspace, "local", "study_runtime.yaml")
    try:
        with open(runtime, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except (OSError, yaml.YAMLError):
        doc = None
    studies = doc.get("studies") if isinstance(doc, dict) else None
    for study in (studies or {}).values() if isinstance(studies, dict) else ():
        template = study.get("pod_template") if isinstance(study, dict) else None
        if isinstance(template, str) and template:
            extra = (*extra, f"local/{template}")
    roots = [os.path.abspath(site_workspace)] + ([workspace_mount_path.rstrip("/")] if workspace_mount_path else [])
    for path in extra:
        rel = path
        if os.path.isabs(path):
            rel = next((os.path.relpath(path, r) for r in roots if path.startswith(r + "/")), "")
        parts = [p for p in rel.replace(os.sep, "/").split("/") if p not in ("", ".")]
        if len(parts) > 1 and parts[0] == "local" and ".." not in parts:
            out.add("/".join(parts[1:]))
    return frozenset(out)


class _Periodic:
    """Calls ``tick`` every ``interval`` seconds from a daemon thread until stopped; ``stop`` joins it.

    Restartable, and never runs two threads at once: ``start`` while running does nothing. A daemon
    thread dies with the launcher's process, which is what the pod's lease relies on.
    """

    def __init__(self, tick: Callable[[], None], interval: float, name: str) -> None:
        self._tick, self._interval, self._name = tick, interval, name
        self._lock = threading.Lock()
        self._running: tuple[threading.Thread, threading.Event] | None = None

    @property
    def running(self) -> bool:
        return self._running is not None

    def start(self) -> None:
        if self._interval <= 0:
            return
        with self._lock:
            if self._running is not None:
                return
            stop = threading.Event()
            thread = threading.Thread(target=self._loop, args=(stop,), name=self._name, daemon=True)
            self._running = (thread, stop)
            thread.start()

    def stop(self) -> None:
        with self._lock:
            running, self._running = self._running, None
        if running is not None:
            thread, stop = running
            stop.set()
            if thread is not threading.current_thread():
                thread.join()

    def __enter__(self) -> _Periodic:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self, stop: threading.Event) -> None:
        while not stop.wait(self._interval):
            self._tick()


class _Progress(_Periodic):
    """Logs 'still going' lines every interval while one long kubectl command runs."""

    def __init__(
        self,
        log: logging.Logger,
        what: str,
        interval: float,
        clock: Callable[[], float],
        measure: Callable[[], int] | None = None,
    ) -> None:
        super().__init__(self._report, interval, "kubectl-launcher-progress")
        self._log, self._what, self._clock, self._measure = log, what, clock, measure
        self.started = clock()

    def __enter__(self) -> _Progress:
        self.start()
        return self

    def _report(self) -> None:
        elapsed = max(self._clock() - self.started, 1e-6)
        if self._measure is None:
            self._log.info("%s: still running after %.0fs", self._what, elapsed)
            return
        try:
            done = self._measure()
        except OSError:
            return
        self._log.info(
            "%s: %s so far after %.0fs (%s/s)", self._what, human_size(done), elapsed, human_size(done / elapsed)
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
        self._lease_at: float | None = None
        self._lease_token = 0
        self._token_lock = threading.Lock()  # the renewer thread takes tokens too
        self._renewer: _Periodic | None = None

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
        if self._finished:
            return
        if self._main is None:
            raise TransferError("the workspace transfer's decorate() was never called for this pod")
        name = str((pod.get("metadata") or {}).get("name") or "")
        phase = (pod.get("status") or {}).get("phase")
        init = container_state(pod, "initContainerStatuses", INIT_CONTAINER)
        main = container_state(pod, "containerStatuses", self._main)
        keeper = container_state(pod, "containerStatuses", KEEPER_CONTAINER)
        try:
            if not self.delivered:
                if "running" in init:
                    self._deliver(kubectl, name)
                elif "terminated" in init:
                    self._init_ended(init["terminated"])
                elif phase in ("Succeeded", "Failed"):
                    self._finished = True  # ended before its workspace was wanted: nothing to collect
                return
            if "terminated" in main:
                if "running" in keeper:
                    self._collect(kubectl, name)
                elif "terminated" in keeper:
                    raise self._keep_and_fail(
                        kubectl,
                        name,
                        "the keeper container ended before the results were collected "
                        f"(exit code {keeper['terminated'].get('exitCode')}; the launcher's lease lapsed)",
                        fetch=False,
                    )
            elif "running" in keeper:
                self._refresh_lease(kubectl, name)
        except TransferError as e:
            self._finished = True
            self.error = e
            raise

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
        self._exec(
            kubectl,
            pod,
            container,
            LIST_SCRIPT,
            folder,
            checksums,
            idempotent=True,
            timeout=self.settings.command_timeout,
            stdout_path=path,
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
        with self._lease_kept(kubectl, pod, INIT_CONTAINER, bound) as renewer:
            self._deliver_staged(kubectl, pod, renewer)
        self.delivered = True
        # The keeper starts after the delivery and counts its bound from its own start: its first
        # lease is due an interval from now, not on the next look (which is the launch's last step).
        self._lease_at = self._clock()

    def _deliver_staged(self, kubectl: Kubectl, pod: str, renewer: _Periodic) -> None:
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
        renewer: _Periodic,
    ) -> None:
        s = self.settings
        stage = stage_path(self.mount_path, attempt)
        renewer.start()
        token = self._next_token()
        self._exec(kubectl, pod, INIT_CONTAINER, PREPARE_SCRIPT, self.mount_path, CONTROL_PATH, token, idempotent=True)
        what = f"sending the workspace to pod {pod} ({manifest.files} files, {human_size(manifest.total_bytes)})"
        self.log.info("%s", what)
        with _Progress(self.log, what, s.progress_interval, self._clock) as progress:
            # dest does not exist: kubectl cp renames onto it, whatever its test -d probe says
            kubectl.run(copy_in_argv(pod, staging, stage), timeout=s.command_timeout)
            listing = self._listing(kubectl, pod, INIT_CONTAINER, stage, scratch)
            archive.compare(manifest, listing, what="workspace delivered to the pod")
            renewer.stop()  # the init container ends once placed: a renewal then would only fail
            place = (self.mount_path, stage, CONTROL_PATH, "local", self.job_id)
            self._exec(kubectl, pod, INIT_CONTAINER, PLACE_SCRIPT, *place, idempotent=True)
        self._report("delivered the workspace", manifest, self._clock() - progress.started)

    def _report(self, what: str, manifest: archive.TreeManifest, seconds: float) -> None:
        rate = human_size(manifest.total_bytes / max(seconds, 1e-6))
        self.log.info(
            "%s: %d files, %s in %.1fs (%s/s), verified",
            what,
            manifest.files,
            human_size(manifest.total_bytes),
            seconds,
            rate,
        )

    def _retrying(self, what: str, step: Callable[[int], None]) -> None:
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

    # -- lease --

    def _next_token(self) -> str:
        with self._token_lock:
            self._lease_token += 1
            return str(self._lease_token)

    def _refresh_lease(self, kubectl: Kubectl, pod: str) -> None:
        now = self._clock()
        if self._lease_at is not None and now - self._lease_at < self.settings.lease_interval:
            return
        self._lease_at = now
        self._renew_lease(kubectl, pod, KEEPER_CONTAINER, self.settings.keep_timeout, idempotent=True, timeout=60)

    def _renew_lease(
        self, kubectl: Kubectl, pod: str, container: str, bound: int, *, idempotent: bool, timeout: float
    ) -> None:
        try:
            self._exec(
                kubectl,
                pod,
                container,
                LEASE_SCRIPT,
                CONTROL_PATH,
                self._next_token(),
                idempotent=idempotent,
                timeout=timeout,
            )
        except KubectlError as e:
            self.log.warning(
                "could not renew the lease of %s in pod %s (it lapses after %ds): %s", container, pod, bound, e
            )

    @contextlib.contextmanager
    def _lease_kept(self, kubectl: Kubectl, pod: str, container: str, bound: int) -> Iterator[_Periodic]:
        """Renew the lease from a background thread while a long copy holds up advance().

        Without it, a copy longer than ``bound`` (the waiting script's seconds without a new lease)
        would see the container give up mid-copy. The thread renews at least three times per bound
        and is stopped (joined) on the way out; a launcher that dies takes it along, so the pod
        still ends by itself. One renewer per transfer: a second one is a bug.
        """
        if self._renewer is not None:
            raise RuntimeError("a lease renewer is running already for this transfer")
        interval = min(self.settings.lease_interval, bound / 3)
        timeout = min(60.0, max(10.0, interval))  # stop() waits for a renewal in flight
        renewer = _Periodic(
            lambda: self._renew_lease(kubectl, pod, container, bound, idempotent=False, timeout=timeout),
            interval,
            "kubectl-launcher-lease",
        )
        self._renewer = renewer
        try:
            renewer.start()
            yield renewer
        finally:
            renewer.stop()
            self._renewer = None

    # -- collection --

    def _collect(self, kubectl: Kubectl, pod: str) -> None:
        try:
            with self._lease_kept(kubectl, pod, KEEPER_CONTAINER, self.settings.keep_timeout):
                self._retrying("collect the results", lambda attempt: self._collect_once(kubectl, pod))
        except UnsafeArchiveError as e:
            raise self._keep_and_fail(kubectl, pod, f"refused the results: {e}") from e
        except TransferError as e:
            raise self._keep_and_fail(kubectl, pod, str(e)) from e
        self.collected = True
        self._finished = True
        try:
            self._exec(kubectl, pod, KEEPER_CONTAINER, RELEASE_SCRIPT, CONTROL_PATH, idempotent=True, timeout=60)
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
            with _Progress(
                self.log, what, s.progress_interval, self._clock, measure=lambda: _size(tar_path)
            ) as progress:
                listing = self._listing(kubectl, pod, KEEPER_CONTAINER, self.pod_job_dir, scratch)
                kubectl.run(
                    tar_out_argv(pod, self.pod_job_dir),
                    idempotent=True,
                    timeout=s.command_timeout,
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
            self._report(f"collected the results into {self.job_dir}", manifest, self._clock() - progress.started)
        except OSError as e:
            raise TransferError(f"cannot put the results in place: {e}") from e
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _keep_and_fail(self, kubectl: Kubectl, pod: str, reason: str, *, fetch: bool = True) -> TransferError:
        """Leave the pod to its keeper (no release, no more lease), tell how to fetch results by hand."""
        self._lease_at = float("inf")
        dest = f"{self.job_dir}-results"
        command = kubectl.describe(kubectl.argv(copy_out_argv(pod, self.pod_job_dir, dest)))
        release = kubectl.describe(kubectl.argv(exec_script_argv(pod, KEEPER_CONTAINER, RELEASE_SCRIPT, CONTROL_PATH)))
        self.recovery_command = command if fetch else None
        if not fetch:
            return TransferError(f"results of job {self.job_id} were not collected: {reason}")
        script = os.path.join(self.own_dir, "recover-results.sh")
        try:
            os.makedirs(self.own_dir, exist_ok=True)
            with open(script, "w", encoding="utf-8") as f:
                f.write(recovery_script(self.job_id, pod, reason, self.settings.keep_timeout, command, release))
            os.chmod(script, 0o700)
        except OSError as e:
            self.log.warning("could not write %s: %s", script, e)
        self.log.error(
            "results of job %s were not collected: %s. Pod %s is kept for about %ds; fetch them by hand with: %s",
            self.job_id,
            reason,
            pod,
            self.settings.keep_timeout,
            command,
        )
        kubectl.note(f"results not collected; recover them with: {command}")
        return TransferError(
            f"results of job {self.job_id} were not collected: {reason}; "
            f"pod {pod} is kept for about {self.settings.keep_timeout}s, fetch them with: {command}"
        )


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0
