"""The results out of the pod: one ``kubectl exec`` into the keeper prints the job folder's tar stream and,
after it, the folder's listing, into a local file; checked, then merged.

Once the job container has ended and the keeper still runs, `Collector.collect` runs
pod_scripts.COLLECT_SCRIPT in the keeper: it refuses a job folder that is a symlink (or lies below one:
the results are exactly the job's folder, never what a link names), then ``tar cf - .`` in the folder,
then the listing (entries, and checksums or a byte total). This is the ``tar | kubectl exec`` form, not
``kubectl cp``: kubectl cp's own untar silently skips symlinks and cannot tell a cut stream at a member
boundary from a complete one. archive.check_results is the one gate the stream passes (tarfile's data
filter and our rules: nothing leaves its folder, nothing cut short; the tree is what the pod listed,
from the same stream); only then is it moved into ``<ws>/<job_id>/`` (never touching
``<ws>/<job_id>/kubectl-launcher/``). The keeper is then released with a command of its own
(`Collector.release`): a release must follow a verified merge, and nothing waits for it (workspace.py
starts it once the results are in; the job's outcome is known by then).

An attempt that failed is done again whole, into a fresh temp folder (step.py bounds how often and how
long); a refused folder or archive is not. When collection still fails, the keeper is not released
and its lease lapses, so the pod stays ``keep_timeout`` seconds: the log names the kubectl command that
fetches the results by hand, ``<ws>/<job_id>/kubectl-launcher/recover-results.sh`` holds it, and
TransferError is raised.
"""

from __future__ import annotations

import os
import shutil
import threading

from kubectl_launcher.domain.names import LAUNCHER_DIR
from kubectl_launcher.errors import KubectlError, RemoteCommandError, TransferError, UnsafeArchiveError
from kubectl_launcher.kubectl.purpose import COLLECT, RELEASE
from kubectl_launcher.objects.job_pod import JobPod
from kubectl_launcher.transfer import archive
from kubectl_launcher.transfer.background import Progress, file_size, log_transferred
from kubectl_launcher.transfer.lease import Lease
from kubectl_launcher.transfer.pod_scripts import (
    RELEASE_SCRIPT,
    SYMLINK_EXIT,
    collect_command,
    recovery_script,
    script_words,
)
from kubectl_launcher.transfer.pod_side import CONTROL_PATH, KEEPER_CONTAINER, script_command
from kubectl_launcher.transfer.step import Deadline, Job

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
        """Fetch, check and merge the results; TransferError when they stay in the pod (its keeper kept)."""
        try:
            with self.lease.kept(pod, KEEPER_CONTAINER, self.job.settings.keep_timeout):
                self.job.redo(
                    "collect the results", lambda attempt, deadline: self._collect_once(pod, deadline), image=image
                )
        except UnsafeArchiveError as e:
            raise self.keep_and_fail(pod, f"refused the results: {e}") from e
        except TransferError as e:
            raise self.keep_and_fail(pod, str(e)) from e

    def release(self, pod: JobPod) -> None:
        """Let the keeper end, once the results are in place; a failure is only logged (it ends by itself)."""
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
        except Exception:  # on a thread nobody asks for its outcome: a bug must still be seen
            self.job.log.exception("unexpected error releasing the keeper of pod %s", pod.name)

    def _collect_once(self, pod: JobPod, deadline: Deadline) -> None:
        job, s = self.job, self.job.settings
        scratch = job.scratch("incoming")
        try:
            tar_path = os.path.join(scratch, "results.tar")
            what = f"fetching the results from pod {pod.name}"
            measure = lambda: file_size(tar_path)  # noqa: E731 - read by the progress thread
            with Progress(job.log, what, s.progress_interval, job.clock, measure=measure) as progress:
                self._fetch(pod, tar_path, deadline)
                tree = os.path.join(scratch, "tree")
                manifest = archive.check_results(tar_path, tree)  # the listing follows the archive
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

    def _fetch(self, pod: JobPod, path: str, deadline: Deadline) -> None:
        """The job folder's tar stream and listing into ``path``; UnsafeArchiveError for a symlinked folder."""
        job = self.job
        try:
            pod.exec(
                KEEPER_CONTAINER,
                collect_command(job.mount_path, job.job_id, job.settings.verify_checksums),
                stdout_path=path,
                timeout=job.settings.command_timeout,
                total_timeout=deadline.remaining("collect the results"),
                purpose=COLLECT,
            )
        except RemoteCommandError as e:
            if e.returncode != SYMLINK_EXIT:
                raise
            with open(path, "rb") as f:  # the script's own words: it stopped before any tar
                said = script_words(f.read(4096)) or f"the job folder {job.pod_job_dir} is (below) a symlink"
            raise UnsafeArchiveError(said) from e

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
