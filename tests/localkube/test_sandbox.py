"""The container's view (localkube/sandbox.py): volumes, nesting, private /tmp, hidden paths, no host writes."""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from localkube.runtime import ContainerRuntime, ContainerSpec, Mount
from localkube.sandbox import View

from tests.support.leftovers import assert_nothing_left


class Box:
    """One runtime plus what a kubelet would hand it; records every container so the test can check cleanup."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.runtime = ContainerRuntime(str(base / "state"))
        self.tmp = base / "pod-tmp"
        self.tmp.mkdir()
        self.groups: set[int] = set()

    def volume(self, name: str, files: dict[str, str] | None = None) -> Path:
        path = self.base / "volumes" / name
        path.mkdir(parents=True)
        for rel, text in (files or {}).items():
            (path / rel).parent.mkdir(parents=True, exist_ok=True)
            (path / rel).write_text(text)
        return path

    def spec(
        self,
        script: str,
        *,
        mounts: Sequence[Mount] = (),
        hidden: Sequence[str] = (),
        working_dir: str = "/",
        image_paths: Sequence[str] = (),
    ) -> ContainerSpec:
        return ContainerSpec(
            argv=("/bin/sh", "-c", script),
            env={},
            working_dir=working_dir,
            mounts=tuple(mounts),
            hidden_paths=tuple(hidden),
            tmp_dir=str(self.tmp),
            image_paths=tuple(image_paths),
        )

    def run(self, spec: ContainerSpec) -> tuple[int, str]:
        log = self.base / "container.log"
        log.unlink(missing_ok=True)

        async def scenario() -> int:
            container = await self.runtime.start(spec, str(log))
            self.groups.add(container.pid)
            return await container.wait()

        code = asyncio.run(scenario())
        return code, log.read_text()


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    b = Box(tmp_path)
    yield b
    assert_nothing_left([str(tmp_path)], b.groups)


@pytest.fixture
def host_dir() -> Iterator[Path]:
    """A directory of the host's "image" outside /tmp (the view replaces /tmp), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="localkube-sandbox-test-", dir="/var/tmp"))
    yield path
    shutil.rmtree(path)
    with open("/proc/self/mountinfo") as f:
        assert str(path) not in f.read()


def test_walk_follows_symlinks_relative_to_the_view_root(tmp_path: Path) -> None:
    (tmp_path / "run" / "lock").mkdir(parents=True)
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "run").symlink_to("/run")  # absolute: must mean <root>/run, not the host's /run
    (tmp_path / "var" / "up").symlink_to("../run/lock")
    (tmp_path / "loop").symlink_to("loop")
    view = View(str(tmp_path))

    assert view.walk("/var/run/lock") == ("/run/lock", [])
    assert view.walk("/var/run/nvflare/ws") == ("/run", ["nvflare", "ws"])
    assert view.walk("/var/up/x") == ("/run/lock", ["x"])
    assert view.walk("/var/../var/./run") == ("/run", [])
    with pytest.raises(OSError) as info:
        view.walk("/loop/x")
    assert info.value.errno == errno.ELOOP


def test_volumes_appear_at_their_mount_paths_and_read_only_is_enforced(box: Box) -> None:
    data = box.volume("data", {"in.txt": "input"})
    config = box.volume("config", {"app.conf": "setting"})
    spec = box.spec(
        "cat /data/in.txt; echo; cat /etc/app/app.conf; echo;"
        " echo written > /data/out.txt && echo data-writable;"
        " { echo nope > /etc/app/new; } 2>/dev/null || echo config-read-only",
        mounts=[Mount(str(data), "/data"), Mount(str(config), "/etc/app", read_only=True)],
    )

    code, log = box.run(spec)

    assert code == 0, log
    assert log.splitlines() == ["input", "setting", "data-writable", "config-read-only"]
    assert (data / "out.txt").read_text() == "written\n"
    assert sorted(os.listdir(config)) == ["app.conf"]
    assert not os.path.exists("/etc/app")


def test_a_mount_nested_in_a_volume_is_created_inside_that_volume(box: Box) -> None:
    workspace = box.volume("workspace")
    startup = box.volume("startup", {"client.key": "KEY"})
    spec = box.spec(
        "cat /ws/startup/client.key; echo; echo result > /ws/result.txt;"
        " { echo x > /ws/startup/new; } 2>/dev/null || echo startup-read-only",
        mounts=[Mount(str(workspace), "/ws"), Mount(str(startup), "/ws/startup", read_only=True)],
    )

    code, log = box.run(spec)

    assert code == 0, log
    assert log.splitlines() == ["KEY", "startup-read-only"]
    # As a kubelet does, the mount point of the inner volume is made inside the outer one; the outer volume
    # stays the host directory, so what the container writes there is there for exec / kubectl cp.
    assert sorted(os.listdir(workspace)) == ["result.txt", "startup"]
    assert os.listdir(workspace / "startup") == []
    assert sorted(os.listdir(startup)) == ["client.key"]


def test_tmp_is_private_and_empty(box: Box) -> None:
    marker = f"localkube-host-{os.getpid()}-{time.monotonic_ns()}"
    inside = f"localkube-inside-{os.getpid()}-{time.monotonic_ns()}"
    Path("/tmp", marker).write_text("host")
    try:
        code, log = box.run(
            box.spec(f"ls -A /tmp | wc -l; test -e /tmp/{marker} || echo hidden; echo x > /tmp/{inside}")
        )
    finally:
        Path("/tmp", marker).unlink()

    assert code == 0, log
    assert log.split() == ["0", "hidden"]
    assert not os.path.exists(f"/tmp/{inside}")
    assert (box.tmp / inside).read_text() == "x\n"


def test_image_paths_under_tmp_stay_visible_read_only_while_the_rest_of_tmp_is_private(box: Box) -> None:
    # A venv or checkout under /tmp is part of the "image" (CI may clone there); the rest of /tmp is not.
    with (
        tempfile.TemporaryDirectory(prefix="localkube-image-", dir="/tmp") as image,
        tempfile.TemporaryDirectory(prefix="localkube-other-", dir="/tmp") as other,
    ):
        Path(image, "bin").mkdir()
        Path(image, "bin", "tool").write_text("from the image")
        Path(other, "secret").write_text("not for pods")
        code, log = box.run(
            box.spec(
                f"cat {image}/bin/tool; echo; test -e {other}/secret || echo other-hidden; "
                f"touch {image}/bin/new 2>/dev/null || echo read-only",
                image_paths=[image],
            )
        )
        assert not Path(image, "bin", "new").exists()
    assert code == 0, log
    assert log.split("\n")[:3] == ["from the image", "other-hidden", "read-only"]


def test_hidden_paths_are_empty_and_read_only(box: Box, host_dir: Path) -> None:
    # a cluster whose state lives outside /tmp, so that the view could show its scratch directory
    box.runtime = ContainerRuntime(str(host_dir / "cluster"))
    secret_site = host_dir / "site-1"
    secret_site.mkdir()
    (secret_site / "private.key").write_text("do not read")
    (host_dir / "public.txt").write_text("fine")
    spec = box.spec(
        f"ls -A {secret_site} | wc -l; cat {host_dir}/public.txt; echo;"
        f" touch {secret_site}/x 2>/dev/null || echo read-only;"
        # the cluster's own scratch directory is hidden too
        f" ls -A {host_dir}/cluster/sandbox | wc -l",
        hidden=[str(secret_site), "/does/not/exist"],
    )

    code, log = box.run(spec)

    assert code == 0, log
    assert log.split() == ["0", "fine", "read-only", "0"]
    assert sorted(os.listdir(secret_site)) == ["private.key"]


def test_a_mount_path_under_a_missing_host_directory_creates_nothing_on_the_host(box: Box, host_dir: Path) -> None:
    (host_dir / "keep.txt").write_text("kept")
    (host_dir / "shared").mkdir()
    before = sorted(os.listdir(host_dir))
    workspace = box.volume("workspace", {"ws.txt": "volume"})
    spec = box.spec(
        f"cat {host_dir}/keep.txt; echo; cat {host_dir}/nvflare/workspace/ws.txt; echo; pwd;"
        f" echo through-shim > {host_dir}/shared/written.txt",
        mounts=[Mount(str(workspace), f"{host_dir}/nvflare/workspace")],
        working_dir=f"{host_dir}/work/dir",
    )

    code, log = box.run(spec)

    assert code == 0, log
    assert log.splitlines() == ["kept", "volume", f"{host_dir}/work/dir"]
    assert sorted(os.listdir(host_dir)) == before
    # entries of the shimmed directory are still the host's own (bound back), so writes inside them land there
    assert (host_dir / "shared" / "written.txt").read_text() == "through-shim\n"
    assert sorted(os.listdir(workspace)) == ["ws.txt"]


def test_a_mount_path_through_an_absolute_symlink_stays_in_the_view(box: Box, host_dir: Path) -> None:
    (host_dir / "real").mkdir()
    (host_dir / "link").symlink_to(host_dir / "real")
    data = box.volume("data", {"f": "via-link"})

    code, log = box.run(box.spec(f"cat {host_dir}/real/data/f", mounts=[Mount(str(data), f"{host_dir}/link/data")]))

    assert (code, log) == (0, "via-link")
    assert os.listdir(host_dir / "real") == []


def test_working_dir_is_used_and_created_inside_a_volume_when_missing(box: Box) -> None:
    workspace = box.volume("workspace")

    assert box.run(box.spec("pwd", working_dir="/usr/lib")) == (0, "/usr/lib\n")
    code, log = box.run(box.spec("pwd; touch here", mounts=[Mount(str(workspace), "/ws")], working_dir="/ws/job/run"))

    assert (code, log) == (0, "/ws/job/run\n")
    assert os.path.exists(workspace / "job" / "run" / "here")


def test_a_file_volume_is_mounted_on_a_file(box: Box, host_dir: Path) -> None:
    token = box.base / "token"
    token.write_text("t0ken")

    code, log = box.run(
        box.spec(f"cat {host_dir}/conf/token", mounts=[Mount(str(token), f"{host_dir}/conf/token", read_only=True)])
    )

    assert (code, log) == (0, "t0ken")
    assert os.listdir(host_dir) == []


def test_mounts_nested_in_a_read_only_volume_or_a_hidden_path_leave_both_as_they_were(box: Box, host_dir: Path) -> None:
    config = box.volume("config", {"a.conf": "A"})
    inner = box.volume("inner", {"b": "B"})
    hidden = host_dir / "site"
    hidden.mkdir()
    (hidden / "secret").write_text("S")
    spec = box.spec(
        f"cat /conf/a.conf /conf/sub/inner/b {hidden}/ws/b; echo; ls -A {hidden};"
        " { touch /conf/new; } 2>/dev/null || echo conf-read-only;"
        f" {{ touch {hidden}/new; }} 2>/dev/null || echo hidden-read-only;"
        " echo w > /conf/sub/inner/written",
        mounts=[
            Mount(str(config), "/conf", read_only=True),
            Mount(str(inner), "/conf/sub/inner"),
            Mount(str(inner), f"{hidden}/ws", read_only=True),
        ],
        hidden=[str(hidden)],
    )

    code, log = box.run(spec)

    assert code == 0, log
    assert log.splitlines() == ["ABB", "ws", "conf-read-only", "hidden-read-only"]
    assert sorted(os.listdir(config)) == ["a.conf"]  # no mount point made in a read-only volume
    assert sorted(os.listdir(hidden)) == ["secret"]
    assert (inner / "written").read_text() == "w\n"
