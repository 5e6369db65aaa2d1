"""archive.py (safe extraction and checks of results, listings taken in the pod) and delivery.py's bundles."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from kubectl_launcher.errors import TransferError, UnsafeArchiveError
from kubectl_launcher.transfer import archive, delivery
from tests.support.trees import snapshot as _snapshot


def _tar(path: Path, members: list[tuple[str, str, bytes | str]]) -> Path:
    """members: (kind, name, data-or-linkname); kind in f d l h c p."""
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tf:
        for kind, name, data in members:
            info = tarfile.TarInfo(name)
            info.mode = 0o644
            payload = None
            if kind == "f":
                assert isinstance(data, bytes)
                info.size, payload = len(data), io.BytesIO(data)
            elif kind == "d":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif kind == "l":
                info.type, info.linkname = tarfile.SYMTYPE, str(data)
            elif kind == "h":
                info.type, info.linkname = tarfile.LNKTYPE, str(data)
            elif kind == "c":
                info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
            elif kind == "p":
                info.type = tarfile.FIFOTYPE
            tf.addfile(info, payload)
    return path


HOSTILE = {
    "symlink to /etc/passwd": [("d", "./", b""), ("l", "./passwd", "/etc/passwd")],
    "relative symlink out": [("l", "up", "../../outside")],
    "../escape entry": [("f", "../escape", b"x")],
    "nested ../ entry": [("d", "a", b""), ("f", "a/../../escape", b"x")],
    "absolute path": [("f", "/tmp/kubectl-launcher-abs-escape", b"x")],
    "hard link out (absolute)": [("h", "pw", "/etc/passwd")],
    "hard link out (relative)": [("h", "pw", "../outside/victim")],
    "hard link to unknown member": [("h", "pw", "never-seen")],
    "device file": [("c", "null", b"")],
    "fifo": [("p", "pipe", b"")],
    "symlink chain": [("d", "d", b""), ("l", "d/l", ".."), ("l", "m", "d/l/..")],
    "write below a symlink": [("d", "sub", b""), ("l", "ln", "sub"), ("f", "ln/x", b"x")],
    "symlink then file of same name": [("l", "a", "b"), ("f", "a", b"x")],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_results_are_refused_and_nothing_outside_changes(tmp_path: Path, case: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_bytes(b"untouched")
    before = _snapshot(tmp_path)
    tar = _tar(tmp_path / "r.tar", HOSTILE[case])
    before = _snapshot(tmp_path)
    dest = tmp_path / "job" / "incoming"
    with pytest.raises(UnsafeArchiveError):
        archive.extract_results(str(tar), str(dest))
    after = {k: v for k, v in _snapshot(tmp_path).items() if not k.startswith("job")}
    assert after == before
    assert not Path("/tmp/kubectl-launcher-abs-escape").exists()


def test_a_stream_cut_at_a_member_boundary_is_not_taken_as_complete(tmp_path: Path) -> None:
    tar = _tar(tmp_path / "r.tar", [("f", "a", b"a" * 512), ("f", "b", b"b" * 512)])
    data = tar.read_bytes()
    tar.write_bytes(data[: 512 + 512])  # header + data of the first member only
    with pytest.raises(TransferError) as err:
        archive.extract_results(str(tar), str(tmp_path / "out"))
    assert not isinstance(err.value, UnsafeArchiveError)


def test_a_stream_cut_inside_a_member_is_refused(tmp_path: Path) -> None:
    tar = _tar(tmp_path / "r.tar", [("f", "a", b"a" * 4000)])
    tar.write_bytes(tar.read_bytes()[:1500])
    with pytest.raises(TransferError, match="damaged or cut short"):
        archive.extract_results(str(tar), str(tmp_path / "out"))


def _make_tree(root: Path) -> None:
    (root / "sp ace dir/ünïcødé").mkdir(parents=True)
    (root / "sp ace dir/ünïcødé/fïle with space.txt").write_text("héllo\n", encoding="utf-8")
    (root / "empty").mkdir()
    (root / "nested/empty too").mkdir(parents=True)
    (root / "data.bin").write_bytes(bytes(range(256)) * 100)
    (root / "zero").write_bytes(b"")
    os.symlink("data.bin", root / "link-inside")
    os.symlink("../data.bin", root / "nested/link-up-inside")
    os.link(root / "data.bin", root / "hardlink")


def test_a_real_tar_of_a_tree_round_trips_byte_identical(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _make_tree(src)
    tar_path = tmp_path / "r.tar"
    with tarfile.open(tar_path, "w", format=tarfile.GNU_FORMAT) as tf:
        tf.add(src, arcname=".")
    manifest = archive.extract_results(str(tar_path), str(tmp_path / "out"))
    assert _snapshot(tmp_path / "out") == _snapshot(src)
    assert manifest.entries == archive.scan_tree(str(src)).entries
    assert os.stat(tmp_path / "out/hardlink").st_ino == os.stat(tmp_path / "out/data.bin").st_ino


def test_merge_replaces_results_keeps_own_folder_and_never_writes_through_a_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    job = tmp_path / "job"
    (job / "kubectl-launcher").mkdir(parents=True)
    (job / "kubectl-launcher/manifest.json").write_text("ours")
    (job / "meta.json").write_text("old")
    (job / "untouched").write_text("stays")
    os.symlink(victim, job / "app")  # results hold a folder named app
    incoming = tmp_path / "in"
    (incoming / "kubectl-launcher").mkdir(parents=True)
    (incoming / "kubectl-launcher/manifest.json").write_text("theirs")
    (incoming / "app/config").mkdir(parents=True)
    (incoming / "app/config/x.json").write_text("{}")
    (incoming / "meta.json").write_text("new")
    skipped = archive.merge_into(str(incoming), str(job), keep={"kubectl-launcher"})
    assert skipped == ["kubectl-launcher"]
    assert (job / "kubectl-launcher/manifest.json").read_text() == "ours"
    assert (job / "meta.json").read_text() == "new"
    assert (job / "untouched").read_text() == "stays"
    assert not (job / "app").is_symlink()
    assert (job / "app/config/x.json").read_text() == "{}"
    assert list(victim.iterdir()) == []


def test_bundle_leaves_out_excluded_paths_follows_symlinks_and_keeps_empty_folders(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "local/custom").mkdir(parents=True)
    (ws / "local/resources.json").write_text("{}")
    (ws / "local/study_data.yaml").write_text("secret-ish")
    (ws / "local/empty").mkdir()
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text("target")
    os.symlink(elsewhere, ws / "local/linked.json")
    (ws / "job1/kubectl-launcher").mkdir(parents=True)
    (ws / "job1/kubectl-launcher/journal.sh").write_text("x")
    (ws / "job1/meta.json").write_text("{}")
    staging = tmp_path / "stage"
    manifest = delivery.stage_bundle(
        [(str(ws / "local"), "local", {"study_data.yaml"}), (str(ws / "job1"), "job1", {"kubectl-launcher"})],
        str(staging),
    )
    assert sorted(manifest.entries) == sorted(
        [
            ".",
            "local",
            "local/custom",
            "local/empty",
            "local/resources.json",
            "local/linked.json",
            "job1",
            "job1/meta.json",
        ]
    )
    assert not (staging / "local/linked.json").is_symlink()
    assert (staging / "local/linked.json").read_text() == "target"
    assert os.stat(staging / "local/resources.json").st_ino == os.stat(ws / "local/resources.json").st_ino
    assert archive.scan_tree(str(staging)).entries == manifest.entries


def test_listing_parser_reads_gnu_escapes_busybox_newlines_and_byte_totals() -> None:
    d1, d2 = "a" * 64, "b" * 64
    gnu = f"entries 3\nsha256\n{d1}  ./plain\n\\{d2}  ./new\\nline\n".encode()
    assert archive.parse_pod_listing(gnu).sha256 == {"plain": d1, "new\nline": d2}
    busybox = f"entries 3\nsha256\n{d1}  ./plain\n{d2}  ./new\nline\n".encode()
    assert archive.parse_pod_listing(busybox).sha256 == {"plain": d1, "new\nline": d2}
    plain = archive.parse_pod_listing(b"entries 7\nbytes 1234\n")
    assert (plain.entries, plain.total_bytes, plain.sha256) == (7, 1234, None)
    with pytest.raises(TransferError):
        archive.parse_pod_listing(b"garbage")


def test_compare_names_the_first_difference(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"1")
    local = archive.scan_tree(str(tmp_path))
    digest = local.entries["a"].sha256
    archive.compare(local, archive.PodListing(2, {"a": str(digest)}, None), what="t")
    with pytest.raises(TransferError, match="entries"):
        archive.compare(local, archive.PodListing(3, {"a": str(digest)}, None), what="t")
    with pytest.raises(TransferError, match="differs"):
        archive.compare(local, archive.PodListing(2, {"a": "0" * 64}, None), what="t")
    with pytest.raises(TransferError, match="only on the pod"):
        archive.compare(local, archive.PodListing(2, {"a": str(digest), "b": "0" * 64}, None), what="t")
    with pytest.raises(TransferError, match="bytes"):
        archive.compare(local, archive.PodListing(2, None, 5), what="t")


def test_check_results_extracts_and_compares_with_the_pods_listing_in_one_step(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "model.bin").write_bytes(b"weights")
    tar_path = tmp_path / "r.tar"
    with tarfile.open(tar_path, "w", format=tarfile.GNU_FORMAT) as tf:
        tf.add(src, arcname=".")
    listed = archive.scan_tree(str(src))
    sums = {rel: str(e.sha256) for rel, e in listed.entries.items() if e.kind == "f"}
    manifest = archive.check_results(str(tar_path), str(tmp_path / "ok"), archive.PodListing(2, sums, None))
    assert manifest.entries == listed.entries and not tar_path.exists()
    with tarfile.open(tar_path, "w", format=tarfile.GNU_FORMAT) as tf:
        tf.add(src, arcname=".")
    with pytest.raises(TransferError, match="differs"):
        archive.check_results(
            str(tar_path), str(tmp_path / "bad"), archive.PodListing(2, {"model.bin": "0" * 64}, None)
        )
    _tar(tmp_path / "evil.tar", [("l", "passwd", "/etc/passwd")])
    with pytest.raises(UnsafeArchiveError):
        archive.check_results(str(tmp_path / "evil.tar"), str(tmp_path / "evil"), archive.PodListing(2, {}, None))


def test_the_listing_that_follows_the_archive_in_the_same_stream_is_what_the_results_are_checked_against(
    tmp_path: Path,
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "model.bin").write_bytes(b"weights")
    digest = archive.sha256_file(str(src / "model.bin"))

    def stream(name: str, listing: bytes) -> str:
        path = tmp_path / name
        with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tf:
            tf.add(src, arcname=".")
        with open(path, "ab") as f:  # after tar's end-of-archive and its zero padding, as the keeper prints it
            f.write(listing)
        return str(path)

    ok = stream("ok", f"entries 2\nsha256\n{digest}  ./model.bin\n".encode())
    assert archive.check_results(ok, str(tmp_path / "ok-tree")).total_bytes == 7
    with pytest.raises(TransferError, match="differs"):
        archive.check_results(
            stream("bad", f"entries 2\nsha256\n{'0' * 64}  ./model.bin\n".encode()), str(tmp_path / "b")
        )
    with pytest.raises(TransferError, match="lists 3 entries"):
        archive.check_results(stream("count", b"entries 3\nbytes 7\n"), str(tmp_path / "c"))
    with pytest.raises(TransferError, match="no entry count"):
        archive.check_results(stream("none", b""), str(tmp_path / "n"))


def test_results_pass_tarfiles_data_filter_which_drops_group_and_other_write_bits(tmp_path: Path) -> None:
    path = tmp_path / "r.tar"
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tf:
        info = tarfile.TarInfo("shared.txt")
        info.size, info.mode = 2, 0o6666  # setuid, setgid, writable by all
        tf.addfile(info, io.BytesIO(b"hi"))
    archive.extract_results(str(path), str(tmp_path / "out"))
    assert os.stat(tmp_path / "out/shared.txt").st_mode & 0o7777 == 0o644


def test_a_bundle_holds_regular_files_only_and_sums_for_the_names_sha256sum_reads_back(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("same inode")
    os.link(src / "a.txt", src / "b.txt")  # two names of one file: still two regular members
    (src / "new\nline.txt").write_text("odd name")
    staging = tmp_path / "staging"
    manifest = delivery.stage_bundle([(str(src), "job", ())], str(staging))
    delivery.write_bundle(str(staging), manifest, str(tmp_path / "bundle.tar"))
    with tarfile.open(tmp_path / "bundle.tar") as tf:
        members = {m.name: m for m in tf.getmembers()}
        sums = tf.extractfile("sha256").read().decode()  # type: ignore[union-attr]
    assert sorted(members) == [
        "sha256",
        "tree",
        "tree/job",
        "tree/job/a.txt",
        "tree/job/b.txt",
        "tree/job/new\nline.txt",
    ]
    assert all(m.isreg() or m.isdir() for m in members.values())
    assert {(m.uid, m.gid, m.uname) for m in members.values()} == {(0, 0, "")}
    assert sums.splitlines() == [f"{manifest.entries[f'job/{n}'].sha256}  ./job/{n}" for n in ("a.txt", "b.txt")]
