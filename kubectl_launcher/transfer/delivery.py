"""The workspace into the pod: staged here, copied with ``kubectl cp``, checked by a listing, then placed.

While the init container runs, `deliver` stages ``local/`` (minus what upstream's bundle leaves out:
``study_data.yaml``, ``study_runtime.yaml``, the pod templates it names, and ``exclude``; see
excludes.py) and ``<job_id>/`` (minus the launcher's own folder) as hard links in a local folder, and
``kubectl cp``s it to a path in the pod that does not exist yet. kubectl cp probes its destination
with ``test -d`` and copies *into* an existing folder but *renames* onto a missing one, and a failed
probe counts as missing. With a fresh name both outcomes are the same, so a flaky probe or another
attempt can neither nest nor misplace files. Then a listing taken in the pod (entry count, ``sha256sum``
of every file, or a byte total where the image has no sha256sum) is compared with the local one, the
folders are moved into place, and ``delivered`` is written: the init container ends, the job starts.

An attempt that failed is done again whole, into a fresh staging folder (step.py bounds how often and
how long). The init container's lease is renewed from a background thread meanwhile (lease.py).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Collection, Iterable

from kubectl_launcher.domain.names import LAUNCHER_DIR
from kubectl_launcher.errors import TransferError
from kubectl_launcher.kubectl.purpose import DELIVER
from kubectl_launcher.objects.job_pod import JobPod
from kubectl_launcher.transfer import archive
from kubectl_launcher.transfer.background import Periodic, Progress, log_transferred
from kubectl_launcher.transfer.lease import Lease
from kubectl_launcher.transfer.pod_side import (
    CONTROL_PATH,
    INIT_CONTAINER,
    PLACE_SCRIPT,
    PREPARE_SCRIPT,
    human_size,
    script_command,
    stage_path,
)
from kubectl_launcher.transfer.step import Deadline, Job, list_in_pod


def deliver(job: Job, pod: JobPod, lease: Lease, image: str) -> None:
    """Stage, copy, verify and place the workspace; TransferError when it could not be delivered."""
    with lease.kept(pod, INIT_CONTAINER, job.settings.delivery_timeout) as renewer:
        scratch = job.scratch("outbox")
        try:
            staging = os.path.join(scratch, "bundle")
            manifest = stage_bundle(
                [
                    (os.path.join(job.site_workspace, "local"), "local", job.exclude),
                    (job.job_dir, job.job_id, {LAUNCHER_DIR}),
                ],
                staging,
                checksums=job.settings.verify_checksums,
            )
            job.redo(
                "deliver the workspace",
                lambda attempt, deadline: _deliver_once(
                    job, pod, staging, scratch, manifest, attempt, deadline, lease, renewer
                ),
                image=image,
            )
        except OSError as e:
            raise TransferError(f"cannot prepare the workspace for the pod: {e}") from e
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def _deliver_once(
    job: Job,
    pod: JobPod,
    staging: str,
    scratch: str,
    manifest: archive.TreeManifest,
    attempt: int,
    deadline: Deadline,
    lease: Lease,
    renewer: Periodic,
) -> None:
    s = job.settings
    stage = stage_path(job.mount_path, attempt)
    what = "deliver the workspace"
    renewer.start()
    prepare = script_command(PREPARE_SCRIPT, job.mount_path, CONTROL_PATH, lease.next_token())
    pod.exec(INIT_CONTAINER, prepare, total_timeout=deadline.remaining(what), purpose=DELIVER)
    said = f"sending the workspace to pod {pod.name} ({manifest.files} files, {human_size(manifest.total_bytes)})"
    job.log.info("%s", said)
    with Progress(job.log, said, s.progress_interval, job.clock) as progress:
        # stage does not exist: kubectl cp renames onto it, whatever its test -d probe says
        pod.copy_in(
            staging,
            stage,
            INIT_CONTAINER,
            timeout=s.command_timeout,
            total_timeout=deadline.remaining(what),
            purpose=DELIVER,
        )
        listing = list_in_pod(job, pod, INIT_CONTAINER, stage, scratch, purpose=DELIVER, deadline=deadline)
        archive.compare(manifest, listing, what="workspace delivered to the pod")
        renewer.stop()  # the init container ends once placed: a renewal then would only fail
        place = script_command(PLACE_SCRIPT, job.mount_path, stage, CONTROL_PATH, "local", job.job_id)
        pod.exec(INIT_CONTAINER, place, total_timeout=deadline.remaining(what), purpose=DELIVER)
    log_transferred(job.log, "delivered the workspace", manifest, job.clock() - progress.started)


# -- staging: the tree to send, built of hard links --


def stage_bundle(
    sources: Iterable[tuple[str, str, Collection[str]]],
    staging: str,
    *,
    checksums: bool = True,
) -> archive.TreeManifest:
    """Build the tree to send: for each ``(source_dir, name, excluded)`` a ``staging/name`` copy.

    Files are hard links where the filesystem allows (no data is copied; the site's own files are
    only read), copies otherwise. Symlinks are followed: the pod gets the content the site sees,
    never a link that dangles there. ``excluded`` holds paths relative to ``source_dir``.
    """
    os.makedirs(staging)
    manifest = archive.TreeManifest({".": archive.Entry("d")})
    for source, name, excluded in sources:
        if not os.path.isdir(source):
            continue
        _stage_dir(source, os.path.join(staging, name), name, set(excluded), manifest, checksums)
    return manifest


def _stage_dir(
    source: str, dest: str, rel: str, excluded: set[str], manifest: archive.TreeManifest, checksums: bool
) -> None:
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(source, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a symlink loop: send the folder once
            dirnames[:] = []
            continue
        seen.add(real)
        sub = os.path.relpath(dirpath, source)
        sub = "" if sub == "." else sub.replace(os.sep, "/")
        dirnames[:] = [d for d in dirnames if _join(sub, d) not in excluded]
        os.makedirs(os.path.join(dest, sub), exist_ok=True)
        manifest.entries[_join(rel, sub) or rel] = archive.Entry("d")
        for fname in filenames:
            rel_file = _join(sub, fname)
            if rel_file in excluded:
                continue
            src = os.path.join(dirpath, fname)
            try:
                st = os.stat(src)
            except FileNotFoundError as e:
                raise TransferError(f"cannot send {src}: it is a symlink to nothing") from e
            if not stat.S_ISREG(st.st_mode):
                continue  # sockets, fifos: nothing a job can read as a file
            dst = os.path.join(dest, rel_file)
            _link_or_copy(src, dst)
            digest = archive.sha256_file(dst) if checksums else None
            manifest.entries[_join(rel, rel_file)] = archive.Entry("f", st.st_size, digest)


def _join(a: str, b: str) -> str:
    return f"{a}/{b}" if a and b else a or b


def _link_or_copy(src: str, dst: str) -> None:
    try:
        # Linux link(2) links the symlink itself whatever follow_symlinks says: resolve it first
        os.link(os.path.realpath(src), dst)
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES, errno.ENOTSUP):
            raise
        shutil.copyfile(src, dst)
