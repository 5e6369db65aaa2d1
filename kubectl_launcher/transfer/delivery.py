"""The workspace into the pod: staged here, streamed as one tar into one ``kubectl exec -i``, verified in
the pod before it is placed.

While the init container runs, `deliver` stages ``local/`` (minus what upstream's bundle leaves out:
``study_data.yaml``, ``study_runtime.yaml``, the pod templates it names, and ``exclude``; see
excludes.py) and ``<job_id>/`` (minus the launcher's own folder) as hard links in a local folder, and
writes one tar of it (`write_bundle`): the tree as ``tree/``, and the expected ``sha256sum`` lines as
``sha256``. One ``kubectl exec -i`` into the init container reads that tar on stdin and runs
pod_scripts.DELIVER_SCRIPT: it forgets earlier attempts' staging folders, writes the lease token,
extracts into a fresh staging folder, checks entry count, byte total and (when asked and the image has
``sha256sum``) every checksum, and only then moves the folders into place and writes ``delivered``:
the init container ends, the job starts. The pod's own listing comes back on stdout and is compared
here too (archive.compare). So a delivery is one kubectl process, where ``kubectl cp`` and the
listing, prepare and place execs around it were four.

A stream that arrives damaged leaves nothing placed (the script exits 6); the attempt is done again
whole, into a fresh staging folder (step.py bounds how often and how long). The init container's
lease is renewed from a background thread meanwhile (lease.py). Nothing secret is in the bundle: the
startup kit and credentials reach the pod as Secrets, never through these files.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import stat
import tarfile
from collections.abc import Collection, Iterable

from kubectl_launcher.domain.names import LAUNCHER_DIR
from kubectl_launcher.errors import RemoteCommandError, TransferError
from kubectl_launcher.kubectl.purpose import DELIVER
from kubectl_launcher.objects.job_pod import JobPod
from kubectl_launcher.transfer import archive
from kubectl_launcher.transfer.background import Periodic, Progress, log_transferred
from kubectl_launcher.transfer.lease import Lease
from kubectl_launcher.transfer.pod_scripts import (
    BUNDLE_SUMS,
    BUNDLE_TREE,
    DAMAGED_EXIT,
    deliver_command,
    script_words,
)
from kubectl_launcher.transfer.pod_side import INIT_CONTAINER, human_size, stage_path
from kubectl_launcher.transfer.step import Deadline, Job

#: What DELIVER_SCRIPT prints when an earlier attempt placed the workspace and only its answer was lost.
_DELIVERED_BEFORE = b"delivered before"


def deliver(job: Job, pod: JobPod, lease: Lease, image: str) -> None:
    """Stage, stream, verify and place the workspace; TransferError when it could not be delivered."""
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
            bundle = os.path.join(scratch, "bundle.tar")
            write_bundle(staging, manifest, bundle)
            shutil.rmtree(staging)  # the tar holds it all now
            job.redo(
                "deliver the workspace",
                lambda attempt, deadline: _deliver_once(
                    job, pod, bundle, scratch, manifest, attempt, deadline, lease, renewer
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
    bundle: str,
    scratch: str,
    manifest: archive.TreeManifest,
    attempt: int,
    deadline: Deadline,
    lease: Lease,
    renewer: Periodic,
) -> None:
    s = job.settings
    what = "deliver the workspace"
    command = deliver_command(
        job.mount_path,
        lease.next_token(),
        stage_path(job.mount_path, attempt),
        len(manifest.entries),
        manifest.total_bytes,
        s.verify_checksums,
        ("local", job.job_id),
    )
    said = f"sending the workspace to pod {pod.name} ({manifest.files} files, {human_size(manifest.total_bytes)})"
    job.log.info("%s", said)
    listing_path = os.path.join(scratch, f"listing-{attempt}.txt")
    renewer.start()
    try:
        with Progress(job.log, said, s.progress_interval, job.clock) as progress:
            pod.exec(
                INIT_CONTAINER,
                command,
                stdin_path=bundle,
                stdout_path=listing_path,
                timeout=s.command_timeout,
                total_timeout=deadline.remaining(what),
                purpose=DELIVER,
            )
    except RemoteCommandError as e:
        if e.returncode != DAMAGED_EXIT:
            raise
        with open(listing_path, "rb") as f:
            words = script_words(f.read(4096)) or "the workspace arrived damaged"
        # step.py redoes it; the journal holds the command, the message only what the pod said
        raise TransferError(f"pod {pod.name}: {words} (exit code {e.returncode})") from e
    finally:
        renewer.stop()  # the init container ends once placed: a renewal then would only fail
    with open(listing_path, "rb") as f:
        said_by_pod = f.read()
    if said_by_pod.startswith(_DELIVERED_BEFORE):
        job.log.info("the workspace was placed in pod %s by an earlier attempt", pod.name)
        return
    # placed already (the pod checked first): a difference here is a broken contract, not a damaged stream
    archive.compare(manifest, archive.parse_pod_listing(said_by_pod), what="workspace delivered to the pod")
    if s.verify_checksums and b"sha256 verified" not in said_by_pod:
        job.log.info("pod %s has no sha256sum: the workspace was checked by entry count and byte total", pod.name)
    log_transferred(job.log, "delivered the workspace", manifest, job.clock() - progress.started)


def write_bundle(staging: str, manifest: archive.TreeManifest, path: str) -> None:
    """The delivery's stream: ``manifest``'s entries of ``staging`` under ``tree/``, then ``sha256``.

    Every file is a regular member (never a hard link to another, whatever inodes the staging shares),
    owned by nobody in particular (uid 0, no names: the pod's tar keeps its own owner). ``sha256``
    holds ``sha256sum -c`` lines for the files with a checksum, except names holding a newline or a
    backslash, which sha256sum writes escaped (GNU) or not at all (busybox): those are still counted
    in the entries and bytes the pod checks.
    """
    sums: list[str] = []
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for rel in sorted(manifest.entries, key=lambda r: (r != ".", r)):  # the root first, parents before children
            entry = manifest.entries[rel]
            name = BUNDLE_TREE if rel == "." else f"{BUNDLE_TREE}/{rel}"
            source = staging if rel == "." else os.path.join(staging, rel)
            st = os.stat(source)
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = int(st.st_mtime), 0, 0, "", ""
            if entry.kind == "d":
                info.type, info.mode = tarfile.DIRTYPE, (st.st_mode & 0o777) | 0o700
                tf.addfile(info)
                continue
            info.size, info.mode = st.st_size, (st.st_mode & 0o777) | 0o600
            with open(source, "rb") as f:
                tf.addfile(info, f)
            if entry.sha256 is not None and "\n" not in rel and "\\" not in rel:
                sums.append(f"{entry.sha256}  ./{rel}\n")
        data = "".join(sums).encode("utf-8", "surrogateescape")
        info = tarfile.TarInfo(BUNDLE_SUMS)
        info.size, info.mode = len(data), 0o600
        tf.addfile(info, io.BytesIO(data))


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
