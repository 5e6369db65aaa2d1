"""Builds a container's filesystem view in a private mount namespace and execs it (imitates runc's rootfs setup).

This file runs as a stand-alone script (``python -I -S sandbox.py PLAN_FD STATUS_FD``) started by ``runtime.py``
through util-linux ``unshare -m --propagation private`` (plus ``-r`` where only user namespaces are available), so
every mount below lives in that namespace only and disappears with the last process in it. It imports nothing
but the standard library, and it does the whole setup in one process with ``mount(2)`` through ctypes: no shell,
so no quoting, and no ``mount`` executable per bind (a view costs a few dozen syscalls, not dozens of execs).

The view, in order (as a container runtime layers a rootfs, its /tmp and the pod's volumes):

1. a tmpfs over the per-cluster scratch directory ``plan["root"]`` becomes the container's ``/``;
2. every top-level host directory is bind-mounted into it recursively (the host stands in for every image),
   top-level symlinks are recreated (merged-usr ``/bin -> usr/bin``), top-level files are bind-mounted;
   ``/proc``, ``/dev`` and ``/sys`` come along this way, which is what python and tar need;
3. the host's ``/tmp`` is replaced by the container's private ``tmp`` directory, and the *image paths* that
   lie under ``/tmp`` (the cluster's own venv or checkout when it runs from ``/tmp``) are bound back
   read-only at their paths, so that "the image" still holds the Python the pods run;
4. each hidden path (and the scratch directory itself) is covered with an empty read-only tmpfs;
5. the volumes are bind-mounted at their mount paths in the given order, so a later mount may nest inside an
   earlier one (``read_only`` is a read-only remount that keeps the flags the kernel locks in a user namespace);
6. the working directory is made to exist, then ``chroot`` + ``chdir`` + ``execvpe`` with exactly the given env.

Paths are resolved inside the view, not on the host: a symlink met on the way (``/var/run -> /run``) is followed
relative to the view's root, so a mount never lands on a host path by accident.

Creating a missing mount point or working directory must never create anything in the host's "image". Every
directory of the view belongs to the innermost mount above it, of one of four kinds: *image* (a top-level host
bind), *hidden* (the read-only tmpfs over a hidden path), *volume* (a pod volume or the private /tmp) or
*synthetic* (a tmpfs this script mounted: the root, or a shim). Missing components are created in synthetic
directories and inside volumes (pod storage, where a kubelet creates nested mount points too: an emptyDir at
``/ws`` gains the ``startup`` directory a secret volume is mounted on). When the deepest existing directory is
image or hidden (mount path ``/var/tmp/nvflare/ws`` on a host that has ``/var/tmp`` but no ``/var/tmp/nvflare``),
or a read-only volume, that directory gets a *shim*: its current tree is bind-mounted aside, a tmpfs is mounted
over it, and each of its entries is bound back (directories recursively, so mounts made earlier inside it stay;
symlinks are recreated). The view then shows the same ``/var/tmp`` plus a synthetic ``nvflare`` directory, and
the host's ``/var/tmp`` is untouched. The cost is one bind per entry of that one directory; a file the container
creates directly in a shimmed directory lands in the tmpfs (like a container's writable layer), not on the host.
A shim of a read-only directory is remounted read-only once its new entries exist. (An overlayfs over the
directory would be one mount instead of one per entry, but overlayfs does not show the mounts below its lower
directory — earlier volumes would vanish — and unprivileged overlay mounts need Linux 5.11.)
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import posixpath
import signal
import stat
import sys
from collections.abc import Mapping, Sequence
from typing import Any

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_REC = 0x4000
MS_RELATIME = 0x200000
MNT_DETACH = 0x2
ST_RELATIME = 0x1000  # statvfs's flag differs from the mount flag; the others share their values
MAX_SYMLINK_HOPS = 40  # the kernel's own limit (ELOOP)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def _b(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    if _libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source or fstype or ''} on {target}: {os.strerror(err)}")


def umount(target: str, flags: int = MNT_DETACH) -> None:
    if _libc.umount2(_b(target), flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"umount {target}: {os.strerror(err)}")


def remount_read_only(target: str) -> None:
    # In a user namespace the kernel refuses a remount that would drop nosuid/nodev/noexec/atime flags it
    # locked when the mount was copied, so carry the current ones over.
    current = os.statvfs(target).f_flag
    keep = current & (MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME)
    if current & ST_RELATIME:
        keep |= MS_RELATIME
    mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | keep)


def view_path(path: str) -> str:
    """The normalised absolute form of a container path ('' and relative paths are taken from /)."""
    return posixpath.normpath(posixpath.join("/", path)).replace("//", "/")


IMAGE, HIDDEN, VOLUME, SYNTHETIC = "image", "hidden", "volume", "synthetic"
_CREATABLE = (VOLUME, SYNTHETIC)


class View:
    """A container's root under construction at ``root`` (a directory in this mount namespace)."""

    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/") or "/"
        self.mounts: dict[str, str] = {}  # view path of each mount point -> its kind
        self._stages = 0

    def real(self, path: str) -> str:
        return self.root if path == "/" else self.root + path

    def kind(self, path: str) -> str:
        """The kind of the innermost mount that holds view path ``path`` (which has no symlinks)."""
        while path not in self.mounts:
            path = posixpath.dirname(path)
        return self.mounts[path]

    def _mounted(self, path: str, kind: str) -> None:
        # A new mount point hides whatever was mounted below it.
        prefix = path.rstrip("/") + "/"
        self.mounts = {p: k for p, k in self.mounts.items() if not p.startswith(prefix)}
        self.mounts[path] = kind

    def walk(self, path: str) -> tuple[str, list[str]]:
        """(deepest existing directory or final entry, components still missing), following symlinks in the view."""
        todo = [c for c in reversed(view_path(path).split("/")) if c]
        current = "/"
        hops = 0
        while todo:
            name = todo.pop()
            if name == ".":
                continue
            if name == "..":
                current = posixpath.dirname(current)
                continue
            candidate = posixpath.join(current, name)
            try:
                st = os.lstat(self.real(candidate))
            except FileNotFoundError:
                return current, [name, *reversed(todo)]
            if stat.S_ISLNK(st.st_mode):
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    raise OSError(errno.ELOOP, f"too many levels of symbolic links: {path}")
                target = os.readlink(self.real(candidate))
                if target.startswith("/"):
                    current = "/"
                todo.extend(c for c in reversed(target.split("/")) if c)
                continue
            if todo and not stat.S_ISDIR(st.st_mode):
                raise NotADirectoryError(errno.ENOTDIR, f"not a directory: {candidate} (on the way to {path})")
            current = candidate
        return current, []

    def ensure(self, path: str, *, directory: bool = True) -> str:
        """Make ``path`` exist in the view (a directory, or an empty file to bind a file on); return it resolved."""
        current, missing = self.walk(path)
        if not missing:
            is_dir = os.path.isdir(self.real(current))
            if directory and not is_dir:
                raise NotADirectoryError(errno.ENOTDIR, f"not a directory: {path}")
            if not directory and is_dir:
                raise IsADirectoryError(errno.EISDIR, f"cannot mount a file on directory {path}")
            return current
        if ".." in missing:
            raise OSError(errno.EINVAL, f"'..' after a missing directory in {path}")
        missing = [name for name in missing if name != "."]
        parent = current
        read_only = bool(os.statvfs(self.real(parent)).f_flag & MS_RDONLY)  # ST_RDONLY has the same value
        if read_only or self.kind(parent) not in _CREATABLE:
            # Image and hidden directories are the host's; a read-only volume cannot take a mount point.
            self.shim(parent)
        for index, name in enumerate(missing):
            child = posixpath.join(current, name)
            self._create(child, directory=directory or index < len(missing) - 1)
            current = child
        if read_only:
            remount_read_only(self.real(parent))  # the shim stays as read-only as what it stands for
        return current

    def _create(self, path: str, *, directory: bool) -> None:
        if directory:
            os.mkdir(self.real(path), 0o755)
        else:
            os.close(os.open(self.real(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))

    def shim(self, path: str) -> None:
        """Put a tmpfs over directory ``path`` that shows the same entries, so that it can gain new ones."""
        target = self.real(path)
        st = os.stat(target)
        self._stages += 1
        stage = self.real(f"/.localkube-stage-{self._stages}")
        os.mkdir(stage, 0o700)
        mount(target, stage, None, MS_BIND | MS_REC)
        kinds = {name: self.kind(posixpath.join(path, name)) for name in os.listdir(stage)}
        mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, f"mode={stat.S_IMODE(st.st_mode):o}")
        self._mounted(path, SYNTHETIC)
        try:
            os.chown(target, st.st_uid, st.st_gid)
        except OSError:
            pass  # an owner that is not mapped into our user namespace: root-owned is close enough
        for name, kind in kinds.items():
            source, entry = os.path.join(stage, name), os.path.join(target, name)
            mode = os.lstat(source).st_mode
            if stat.S_ISLNK(mode):
                os.symlink(os.readlink(source), entry)
                continue
            self._create(posixpath.join(path, name), directory=stat.S_ISDIR(mode))
            mount(source, entry, None, MS_BIND | MS_REC if stat.S_ISDIR(mode) else MS_BIND)
            self.mounts[posixpath.join(path, name)] = kind
        umount(stage)
        os.rmdir(stage)

    def mount_root(self) -> None:
        mount("tmpfs", self.root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755")
        self.mounts = {"/": SYNTHETIC}

    def bind_host(self, skip: Sequence[str] = ("tmp",)) -> None:
        names = sorted(os.listdir("/"))
        # Bind the directory that holds our own root first: a recursive bind copies the mounts under it, and
        # at that moment our root is still an empty tmpfs rather than a half-built view.
        home = view_path(os.path.realpath(self.root)).split("/")[1]
        if home in names:
            names.remove(home)
            names.insert(0, home)
        for name in names:
            if name in skip:
                continue
            host, inside = "/" + name, self.real("/" + name)
            mode = os.lstat(host).st_mode
            if stat.S_ISLNK(mode):
                os.symlink(os.readlink(host), inside)
            elif stat.S_ISDIR(mode) or stat.S_ISREG(mode):
                self._create(host, directory=stat.S_ISDIR(mode))
                mount(host, inside, None, MS_BIND | MS_REC if stat.S_ISDIR(mode) else MS_BIND)
                self.mounts[host] = IMAGE

    def private_tmp(self, source: str) -> None:
        inside = self.real("/tmp")
        os.mkdir(inside)
        os.chmod(inside, 0o1777)
        mount(source, inside, None, MS_BIND | MS_REC)
        self._mounted("/tmp", VOLUME)

    def image_path(self, path: str) -> None:
        if not view_path(path).startswith("/tmp/") or not os.path.isdir(path):
            return  # outside /tmp the host's folder is already in the view
        inside = self.ensure(path)
        mount(path, self.real(inside), None, MS_BIND | MS_REC)
        remount_read_only(self.real(inside))
        self._mounted(inside, IMAGE)

    def hide(self, path: str) -> None:
        current, missing = self.walk(path)
        if missing or current == "/" or not os.path.isdir(self.real(current)):
            return  # nothing there to hide (hidden paths are host folders)
        mount("tmpfs", self.real(current), "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755,size=4k")
        self._mounted(current, HIDDEN)

    def bind_volume(self, source: str, path: str, read_only: bool) -> None:
        if view_path(path) == "/":
            raise OSError(errno.EINVAL, "a volume cannot be mounted at /")
        is_dir = os.path.isdir(source)  # follows symlinks on the host, as the kubelet hands over the host path
        if not is_dir and not os.path.exists(source):
            raise FileNotFoundError(errno.ENOENT, f"volume source {source} does not exist")
        inside = self.ensure(path, directory=is_dir)
        mount(source, self.real(inside), None, MS_BIND | MS_REC)
        if read_only:
            remount_read_only(self.real(inside))
        self._mounted(inside, VOLUME)

    def build(self, plan: Mapping[str, Any]) -> str:
        """Build the whole view from a plan (see runtime.py); return the working directory inside it."""
        self.mount_root()
        self.bind_host()
        self.private_tmp(plan["tmp"])
        for image in plan.get("image", ()):
            self.image_path(image)
        for hidden in plan["hide"]:
            self.hide(hidden)
        for source, path, read_only in plan["mounts"]:
            self.bind_volume(source, path, bool(read_only))
        workdir: str = self.ensure(plan["workdir"])
        return workdir


def _default_signals() -> None:
    # A container starts with default signal handling, as runc gives it. Ignored signals and the signal mask
    # survive exec, and ours come from Python (which ignores SIGPIPE and SIGXFSZ) and from whatever started
    # the kubelet (a shell script's background job ignores SIGINT).
    for sig in signal.valid_signals():
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            try:
                signal.signal(sig, signal.SIG_DFL)
            except (OSError, ValueError):
                pass  # signals the C library reserves for itself
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def _report(status_fd: int, stage: str, exc: BaseException) -> None:
    err = exc.errno if isinstance(exc, OSError) and exc.errno else 0
    message = str(exc)
    os.write(status_fd, b"E" + json.dumps({"stage": stage, "errno": err, "message": message}).encode())


def _read_plan(fd: int) -> dict[str, Any]:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    os.close(fd)
    plan: dict[str, Any] = json.loads(b"".join(chunks))
    return plan


def probe(root: str) -> int:
    """Check that this namespace can mount and chroot (``check_support``): the same calls a real view makes."""
    view = View(root)
    view.mount_root()
    os.mkdir(view.real("/usr"))
    mount("/usr", view.real("/usr"), None, MS_BIND | MS_REC)
    remount_read_only(view.real("/usr"))
    os.chroot(view.root)
    os.chdir("/")
    return 0


def main(argv: Sequence[str]) -> int:
    if len(argv) == 3 and argv[1] == "--probe":
        return probe(argv[2])
    plan_fd, status_fd = int(argv[1]), int(argv[2])
    os.write(status_fd, b"H")  # tells runtime.py that unshare worked and this script runs
    os.set_inheritable(status_fd, False)  # closes on a successful exec: that is the "started" signal
    try:
        plan = _read_plan(plan_fd)
        workdir = View(plan["root"]).build(plan)
        os.chroot(plan["root"])
        os.chdir(workdir)
    except Exception as exc:
        _report(status_fd, "view", exc)
        return 1
    _default_signals()
    os.umask(0o022)  # runc's default, whatever the kubelet's own umask is
    argv_out: list[str] = plan["argv"]
    try:
        os.execvpe(argv_out[0], argv_out, plan["env"])
    except OSError as exc:
        _report(status_fd, "exec", exc)
        return 127 if exc.errno == errno.ENOENT else 126
    return 1  # not reached: execvpe returns only by raising


if __name__ == "__main__":
    sys.exit(main(sys.argv))
