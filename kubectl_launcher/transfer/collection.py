"""The results out of the pod: ``tar`` over ``kubectl exec`` into a local file, checked, then merged.

Once the job container has ended and the keeper still runs, `Collector.collect` takes the listing of
``<wmp>/<job_id>`` in the pod, then ``kubectl exec keeper -- tar cf - -C <wmp>/<job_id> .`` into a
local file. This is the ``tar | kubectl exec`` form, not ``kubectl cp``: kubectl cp's own untar
silently skips symlinks and cannot tell a cut stream at a member boundary from a complete one.
archive.check_results is the one gate the archive passes (nothing leaves its folder, nothing cut
short, the tree is what the pod listed); only then is it moved into ``<ws>/<job_id>/`` (never touching
``<ws>/<job_id>/kubectl-launcher/``), and the keeper is released.

An attempt that failed is done again whole, into a fresh temp folder (step.py bounds how often and how
long). When collection still fails, the keeper is not released and its lease lapses, so the pod stays
``keep_timeout`` seconds: the log names the kubectl command that fetches the results by hand,
``<ws>/<job_id>/kubectl-launcher/recover-results.sh`` holds it, and TransferError is raised.
"""

from __future__ import annotations

import os
import shutil
import threading

from kubectl_launcher.domain.names import LAUNCHER_DIR
from kubectl_launcher.errors import KubectlError, TransferError, UnsafeArchiveError
from kubectl_launcher.kubectl.purpose import COLLECT, RELEASE
from kubectl_launcher.objects.job_pod import JobPod
from kubectl_launcher.transfer import archive
from kubectl_launcher.transfer.background import Progress, file_size, log_transferred
from kubectl_launcher.transfer.lease import Lease
from kubectl_launcher.transfer.pod_side import (
    CONTROL_PATH,
    KEEPER_CONTAINER,
    RELEASE_SCRIPT,
    recovery_script,
    script_command,
    tar_out_command,
)
from kubectl_launcher.transfer.step import Deadline, Job, list_in_pod

#: Seconds for the release, the seam's retries included: a keeper not released ends by itself anyway.
RELEASE_TIMEOUT = 60.0


class Collector:
    """One job's collection, and what it leaves when it fails: ``recovery_command``."""

    def __init__(self, job: Job, lease: Lease, closed: threading.Event) -> None:
        self.job = job
        self.lease = lease
        self._closed = closed  # the handle let go of the job: no recovery script for a pod it deletes
        #: the kubectl command that fetches the results by hand, once a collection failed
        self.recovery_command: str | None = None

    def collect(self, pod: JobPod, image: str) -> None:
        """Fetch, check and merge the results, then release the keeper; TransferError when they stay in the pod."""
        try:
            with self.lease.kept(pod, KEEPER_CONTAINER, self.job.settings.keep_timeout):
                self.job.redo(
                    "collect the results", lambda attempt, deadline: self._collect_once(pod, deadline), image=image
                )
        except UnsafeArchiveError as e:
            raise self.keep_and_fail(pod, f"refused the results: {e}") from e
        except TransferError as e:
            raise self.keep_and_fail(pod, str(e)) from e
        try:
            pod.exec(
                KEEPER_CONTAINER,
                script_command(RELEASE_SCRIPT, CONTROL_PATH),
                idempotent=True,
                timeout=RELEASE_TIMEOUT,
                total_timeout=RELEASE_TIMEOUT,
                purpose=RELEASE,
            )
        except KubectlError as e:
            self.job.log.warning(
                "results are in place, but the keeper of pod %s was not released; it ends within %ds: %s",
                pod.name,
                self.job.settings.keep_timeout,
                e,
            )

    def _collect_once(self, pod: JobPod, deadline: Deadline) -> None:
        job, s = self.job, self.job.settings
        scratch = job.scratch("incoming")
        try:
            tar_path = os.path.join(scratch, "results.tar")
            what = f"fetching the results from pod {pod.name}"
            measure = lambda: file_size(tar_path)  # noqa: E731 - read by the progress thread
            with Progress(job.log, what, s.progress_interval, job.clock, measure=measure) as progress:
                listing = list_in_pod(
                    job, pod, KEEPER_CONTAINER, job.pod_job_dir, scratch, purpose=COLLECT, deadline=deadline
                )
                pod.exec(
                    KEEPER_CONTAINER,
                    tar_out_command(job.pod_job_dir),
                    stdout_path=tar_path,
                    timeout=s.command_timeout,
                    total_timeout=deadline.remaining("collect the results"),
                    purpose=COLLECT,
                )
                tree = os.path.join(scratch, "tree")
                manifest = archive.check_results(tar_path, tree, listing)
            skipped = archive.merge_into(tree, job.job_dir, keep={LAUNCHER_DIR})
            if skipped:
                job.log.warning(
                    "the job wrote %s/ in its workspace; it was not copied over the launcher's own folder", LAUNCHER_DIR
                )
            seconds = job.clock() - progress.started
            log_transferred(job.log, f"collected the results into {job.job_dir}", manifest, seconds)
        except OSError as e:
            raise TransferError(f"cannot put the results in place: {e}") from e
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def keep_and_fail(self, pod: JobPod, reason: str, *, fetch: bool = True) -> TransferError:
        """Leave the pod to its keeper (no release, no more lease) and tell how to fetch the results by hand."""
        job = self.job
        self.lease.lapse()
        if not fetch or self._closed.is_set():
            return TransferError(f"results of job {job.job_id} were not collected: {reason}")
        command = pod.describe(pod.copy_out_args(job.pod_job_dir, f"{job.job_dir}-results", KEEPER_CONTAINER))
        release = pod.describe(pod.exec_args(KEEPER_CONTAINER, script_command(RELEASE_SCRIPT, CONTROL_PATH)))
        self.recovery_command = command
        keep = job.settings.keep_timeout
        script = os.path.join(job.own_dir, "recover-results.sh")
        try:
            os.makedirs(job.own_dir, exist_ok=True)
            with open(script, "w", encoding="utf-8") as f:
                f.write(recovery_script(job.job_id, pod.name, reason, keep, command, release))
            os.chmod(script, 0o700)
        except OSError as e:
            job.log.warning("could not write %s: %s", script, e)
        job.log.error(
            "results of job %s were not collected: %s. Pod %s is kept for about %ds; fetch them by hand with: %s",
            job.job_id,
            reason,
            pod.name,
            keep,
            command,
        )
        pod.kubectl.note(f"results not collected; recover them with: {command}")
        return TransferError(
            f"results of job {job.job_id} were not collected: {reason}; "
            f"pod {pod.name} is kept for about {keep}s, fetch them with: {command}"
        )
