"""Where a result archive is checked: `check_results` is the one gate every tar stream from a pod passes
before anything of it reaches the site's workspace (extract_results: tarfile's ``data`` filter first,
then our own rules: nothing may leave the folder, a stream cut short is refused; compare: the tree must be
what the pod listed, the listing that follows the archive in the same stream). Also the trees on the
site's side (scan_tree, TreeManifest), the pod's listings (parse_pod_listing) and merge_into, which
moves checked results into place."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tarfile
from collections.abc import Collection
from dataclasses import dataclass, field

from kubectl_launcher.errors import TransferError, UnsafeArchiveError

_CHUNK = 1024 * 1024
#: tar ends with two zero blocks; a stream without them was cut short, even at a member boundary.
_END_OF_ARCHIVE = b"\0" * 1024


@dataclass(frozen=True)
class Entry:
    kind: str  # "f" regular file, "d" directory, "l" symlink
    size: int = 0
    sha256: str | None = None
    target: str | None = None


@dataclass
class TreeManifest:
    """Every entry under one root, keyed by its relative POSIX path ("." is the root itself)."""

    entries: dict[str, Entry] = field(default_factory=dict)

    @property
    def files(self) -> int:
        return sum(1 for e in self.entries.values() if e.kind == "f")

    @property
    def total_bytes(self) -> int:
        return sum(e.size for e in self.entries.values() if e.kind == "f")


@dataclass(frozen=True)
class PodListing:
    """What the listing script printed in the pod: an entry count, and checksums or a byte total."""

    entries: int
    sha256: dict[str, str] | None
    total_bytes: int | None


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------- scan


def scan_tree(root: str, *, checksums: bool = True) -> TreeManifest:
    """List ``root`` without following symlinks, the way ``find .`` sees it in the pod."""
    manifest = TreeManifest({".": Entry("d")})
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                manifest.entries[rel] = Entry("l", target=os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                manifest.entries[rel] = Entry("d")
            elif stat.S_ISREG(st.st_mode):
                digest = sha256_file(path) if checksums else None
                manifest.entries[rel] = Entry("f", st.st_size, digest)
            else:
                manifest.entries[rel] = Entry("o")
    return manifest


# ----------------------------------------------------------------------------------- results (fetch)


def member_path(name: str) -> str:
    """The normalised relative path of a tar member; UnsafeArchiveError if it could leave the root."""
    if name.startswith("/") or name.startswith("\\"):
        raise UnsafeArchiveError(f"results archive holds an absolute path: {name!r}")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"results archive holds a '..' path: {name!r}")
    return "/".join(parts) or "."


def link_target_inside(link: str, target: str) -> bool:
    """Whether a symlink at ``link`` pointing to ``target`` stays in the root, read lexically."""
    if not target or target.startswith("/"):
        return False
    depth = link.count("/")  # parts of the link's own folder
    if link == ".":
        return False
    for part in target.split("/"):
        if part in ("", "."):
            continue
        depth += -1 if part == ".." else 1
        if depth < 0:
            return False
    return True


def extract_results(tar_path: str, dest: str) -> TreeManifest:
    """Extract a tar stream taken in the pod into the fresh folder ``dest``, refusing anything unsafe.

    Every member passes tarfile's ``data`` filter first (the standard library's rules for archives from
    elsewhere); regular files are extracted by tarfile under that filter. On top, refused
    (UnsafeArchiveError): absolute paths, ``..``, a member below a symlink, symlinks whose target is
    absolute or leaves the root, hard links to anything but a file extracted before, device files,
    fifos, duplicate names. Symlinks are created last, so nothing is ever written through one; a
    final ``realpath`` check covers chains of links. A stream cut short raises TransferError. The
    caller removes ``dest`` on any error.
    """
    return _extract(tar_path, dest)[0]


def _extract(tar_path: str, dest: str) -> tuple[TreeManifest, int]:
    """extract_results, and the offset just past the archive's end-of-archive blocks."""
    os.makedirs(dest)
    links: list[tuple[str, str]] = []
    files: set[str] = set()
    dir_times: list[tuple[str, int, float]] = []
    seen: set[str] = set()
    try:
        with tarfile.open(tar_path, mode="r|") as tf:
            for member in tf:
                _data_filter(member, dest)
                rel = member_path(member.name)
                if rel in seen and rel != ".":
                    raise UnsafeArchiveError(f"results archive names {rel!r} twice")
                seen.add(rel)
                _refuse_below_link(rel, links)
                target = os.path.join(dest, rel)
                if rel != ".":
                    # no symlink exists yet (they come last), so creating parents cannot leave dest
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                if member.isdir():
                    if rel != ".":
                        os.makedirs(target, 0o700, exist_ok=True)
                    dir_times.append((target, member.mode, member.mtime))
                elif member.isreg():
                    # the filter keeps the owner's read and write bits and drops group/other write bits
                    tf.extract(member, dest, set_attrs=True, filter="data")
                    files.add(rel)
                elif member.issym():
                    if not link_target_inside(rel, member.linkname):
                        raise UnsafeArchiveError(
                            f"results archive holds a symlink leaving the folder: {rel!r} -> {member.linkname!r}"
                        )
                    links.append((rel, member.linkname))
                elif member.islnk():
                    source = member_path(member.linkname)
                    if source not in files:
                        raise UnsafeArchiveError(
                            f"results archive holds a hard link to outside the folder: {rel!r} -> {member.linkname!r}"
                        )
                    os.link(os.path.join(dest, source), target, follow_symlinks=False)
                else:
                    raise UnsafeArchiveError(f"results archive holds a device file or fifo: {rel!r}")
            end = tf.offset
    except tarfile.TarError as e:
        raise TransferError(f"the results archive is damaged or cut short: {e}") from e
    _check_end_of_archive(tar_path, end)
    for rel, linkname in links:
        os.symlink(linkname, os.path.join(dest, rel))
    _check_links_resolve_inside(dest, [rel for rel, _ in links])
    for path, mode, mtime in reversed(dir_times):
        os.chmod(path, (mode & 0o777) | 0o700)
        os.utime(path, (mtime, mtime))
    return scan_tree(dest), end + len(_END_OF_ARCHIVE)


def _data_filter(member: tarfile.TarInfo, dest: str) -> None:
    """tarfile's ``data`` filter on one member: the first line of defence, before our own rules."""
    try:
        tarfile.data_filter(member, dest)
    except tarfile.FilterError as e:
        raise UnsafeArchiveError(f"results archive refused by tarfile's data filter: {member.name!r}: {e}") from e


def _refuse_below_link(rel: str, links: list[tuple[str, str]]) -> None:
    for link, _ in links:
        if rel.startswith(link + "/"):
            raise UnsafeArchiveError(f"results archive writes below the symlink {link!r}: {rel!r}")


def _check_end_of_archive(tar_path: str, offset: int) -> None:
    with open(tar_path, "rb") as f:
        f.seek(offset)
        tail = f.read(len(_END_OF_ARCHIVE))
    if tail != _END_OF_ARCHIVE:
        raise TransferError("the results archive was cut short (no end-of-archive blocks)")


def _check_links_resolve_inside(dest: str, links: list[str]) -> None:
    root = os.path.realpath(dest)
    for rel in links:
        resolved = os.path.realpath(os.path.join(dest, rel))
        if resolved != root and not resolved.startswith(root + os.sep):
            raise UnsafeArchiveError(f"results archive holds a symlink chain leaving the folder: {rel!r}")


def check_results(tar_path: str, dest: str, listing: PodListing | None = None) -> TreeManifest:
    """The results stream at ``tar_path``, extracted into the fresh folder ``dest`` and checked.

    UnsafeArchiveError when a member would leave ``dest`` (see extract_results); TransferError when
    the stream was cut short or the tree differs from the pod's own listing of the folder it came
    from: ``listing``, or (None) the listing that follows the archive's end in the same stream (the
    collection script prints it there; tar's zero padding before it is skipped). The stream is
    removed once extracted. The caller removes ``dest`` on error.
    """
    manifest, end = _extract(tar_path, dest)
    if listing is None:
        with open(tar_path, "rb") as f:
            f.seek(end)
            listing = parse_pod_listing(f.read().lstrip(b"\0"))
    os.unlink(tar_path)
    compare(manifest, listing, what="results fetched from the pod")
    return manifest


def merge_into(source: str, dest: str, *, keep: Collection[str] = ()) -> list[str]:
    """Move the tree ``source`` into ``dest`` (created if missing), replacing what is there.

    Names in ``keep`` at the top level of ``dest`` are never touched (the entries of that name in
    ``source`` are left behind and returned). Nothing in ``dest`` is followed: a symlink where the
    results hold a folder is replaced, never written through.
    """
    skipped: list[str] = []
    os.makedirs(dest, exist_ok=True)
    for name in sorted(os.listdir(source)):
        if name in keep:
            skipped.append(name)
            continue
        _move(os.path.join(source, name), os.path.join(dest, name))
    return skipped


def _move(src: str, dst: str) -> None:
    src_is_dir = stat.S_ISDIR(os.lstat(src).st_mode)
    try:
        dst_mode: int | None = os.lstat(dst).st_mode
    except FileNotFoundError:
        dst_mode = None
    if src_is_dir and dst_mode is not None and stat.S_ISDIR(dst_mode):
        for name in sorted(os.listdir(src)):
            _move(os.path.join(src, name), os.path.join(dst, name))
        shutil.copystat(src, dst, follow_symlinks=False)
        os.rmdir(src)
        return
    if dst_mode is not None and stat.S_ISDIR(dst_mode):
        shutil.rmtree(dst)
    elif dst_mode is not None and src_is_dir:
        os.unlink(dst)
    os.replace(src, dst)


# ------------------------------------------------------------------------------------ pod listings


def parse_pod_listing(data: bytes) -> PodListing:
    """Read a listing printed in the pod (COLLECT_SCRIPT's, DELIVER_SCRIPT's); TransferError without an entry count."""
    text = data.decode("utf-8", "surrogateescape")
    entries: int | None = None
    total: int | None = None
    sums: dict[str, str] | None = None
    last: str | None = None
    for line in text.split("\n"):
        if line.startswith("entries "):
            entries = int(line.split()[1])
        elif line.startswith("bytes "):
            total = int(line.split()[1])
        elif line == "sha256":
            sums = {}
        elif sums is not None and _is_sum_line(line):
            digest, name = line.lstrip("\\")[:64], line.lstrip("\\")[66:]
            if line.startswith("\\"):  # GNU escapes names holding a newline or backslash
                name = _unescape_gnu(name)
            last = member_path(name)
            sums[last] = digest
        elif sums is not None and last is not None and line:
            # busybox prints a name holding a newline as is: the line continues the previous name
            digest = sums.pop(last)
            last = f"{last}\n{line}"
            sums[last] = digest
    if entries is None:
        raise TransferError(f"the listing taken in the pod has no entry count: {text[:200]!r}")
    return PodListing(entries, sums, total)


def _is_sum_line(line: str) -> bool:
    body = line[1:] if line.startswith("\\") else line
    return len(body) > 66 and body[64:66] in ("  ", " *") and all(c in "0123456789abcdef" for c in body[:64])


def _unescape_gnu(name: str) -> str:
    out: list[str] = []
    chars = iter(name)
    for c in chars:
        if c == "\\":
            nxt = next(chars, "")
            out.append({"n": "\n", "r": "\r", "\\": "\\"}.get(nxt, "\\" + nxt))
        else:
            out.append(c)
    return "".join(out)


def compare(local: TreeManifest, pod: PodListing, *, what: str) -> None:
    """Raise TransferError naming the first difference between a local tree and the pod's listing."""
    if pod.entries != len(local.entries):
        raise TransferError(
            f"{what}: the pod lists {pod.entries} entries, the site has {len(local.entries)} "
            f"({local.files} files, {local.total_bytes} bytes)"
        )
    if pod.sha256 is not None:
        local_sums = {k: e.sha256 for k, e in local.entries.items() if e.kind == "f"}
        for rel in sorted(set(local_sums) | set(pod.sha256)):
            if rel not in pod.sha256 or rel not in local_sums:
                side = "site" if rel in local_sums else "pod"
                raise TransferError(f"{what}: {rel!r} is only on the {side}'s side")
            if local_sums[rel] is not None and local_sums[rel] != pod.sha256[rel]:
                raise TransferError(f"{what}: {rel!r} differs between the pod and the site (sha256)")
    elif pod.total_bytes is not None and pod.total_bytes != local.total_bytes:
        raise TransferError(f"{what}: the pod holds {pod.total_bytes} bytes of files, the site {local.total_bytes}")
