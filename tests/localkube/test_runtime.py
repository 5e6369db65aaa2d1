"""Container processes (localkube/runtime.py): env, exit codes, kill with grace, exec + tar, start errors, support."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from localkube.runtime import (
    DEFAULT_PATH,
    ContainerRuntime,
    ContainerSpec,
    ContainerStartError,
    Mount,
    RunningContainer,
    SandboxUnavailable,
)

from tests.support.leftovers import assert_nothing_left, live_members

REPO = Path(__file__).resolve().parents[2]


class Pod:
    """A runtime, a volume and a log, as a kubelet would set them up; remembers every process group it made."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.runtime = ContainerRuntime(str(base / "state"))
        self.tmp = base / "tmp"
        self.tmp.mkdir()
        self.data = base / "data"
        self.data.mkdir()
        self.log = base / "main.log"
        self.groups: set[int] = set()

    def spec(self, *argv: str, env: Mapping[str, str] | None = None) -> ContainerSpec:
        return ContainerSpec(
            argv=argv,
            env=dict(env or {}),
            working_dir="/data",
            mounts=(Mount(str(self.data), "/data"),),
            hidden_paths=(),
            tmp_dir=str(self.tmp),
        )

    async def start(self, *argv: str, env: Mapping[str, str] | None = None) -> RunningContainer:
        container = await self.runtime.start(self.spec(*argv, env=env), str(self.log))
        self.groups.add(container.pid)
        return container

    async def exec(self, argv: Sequence[str], stdin: bytes = b"") -> tuple[int, bytes, bytes]:
        process = await self.runtime.exec(self.spec("true"), argv)
        self.groups.add(process.pid)
        stdout, stderr = await process.communicate(stdin)
        assert process.returncode is not None
        return process.returncode, stdout, stderr

    def assert_nothing_left(self) -> None:
        assert_nothing_left([str(self.base)], self.groups)


@pytest.fixture
def pod(tmp_path: Path) -> Iterator[Pod]:
    p = Pod(tmp_path)
    yield p
    p.assert_nothing_left()


async def _until(predicate: object, timeout: float = 10.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def test_env_is_exactly_the_spec_env_plus_a_default_path(pod: Pod) -> None:
    async def scenario() -> list[int]:
        first = await pod.start("/usr/bin/env", env={"NVFLARE_TOKEN": "abc", "EMPTY": ""})
        code1 = await first.wait()
        second = await pod.start("/usr/bin/env", env={"PATH": "/usr/bin:/bin"})
        return [code1, await second.wait()]

    assert asyncio.run(scenario()) == [0, 0]
    assert pod.log.read_text().splitlines() == [
        "NVFLARE_TOKEN=abc",
        "EMPTY=",
        f"PATH={DEFAULT_PATH}",
        "PATH=/usr/bin:/bin",
    ]


def test_exit_code_and_both_output_streams_go_to_the_log(pod: Pod) -> None:
    async def scenario() -> int:
        container = await pod.start("sh", "-c", "echo out; echo err >&2; exit 3")
        return await container.wait()

    assert asyncio.run(scenario()) == 3
    assert sorted(pod.log.read_text().splitlines()) == ["err", "out"]


def test_kill_sends_sigterm_to_the_whole_group_and_reports_143(pod: Pod) -> None:
    async def scenario() -> tuple[int, int | None]:
        # a shell that waits for two children: SIGTERM reaches all three
        container = await pod.start("sh", "-c", "sleep 60 & sleep 60 & wait")
        await _until(lambda: len(live_members({container.pid})) == 3)
        await container.kill(grace_seconds=10)
        return await container.wait(), container.exit_code

    assert asyncio.run(scenario()) == (143, 143)


def test_kill_escalates_to_sigkill_after_the_grace_period(pod: Pod) -> None:
    async def scenario() -> tuple[int, float]:
        container = await pod.start("sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.05; done")
        await _until(lambda: pod.log.exists() and "ready" in pod.log.read_text())
        started = time.monotonic()
        await container.kill(grace_seconds=0.3)
        return await container.wait(), time.monotonic() - started

    code, took = asyncio.run(scenario())
    assert code == 137
    print(f"kill with a 0.3 s grace took {took:.2f} s")


def test_processes_left_behind_die_with_the_main_process(pod: Pod) -> None:
    async def scenario() -> int:
        container = await pod.start("sh", "-c", "sleep 60 & echo $! > /data/child; exit 0")
        return await container.wait()

    assert asyncio.run(scenario()) == 0
    # the fixture checks that the sleep is gone as well
    assert (pod.data / "child").read_text().strip().isdigit()


def test_exec_sees_the_containers_files_and_runs_tar_both_ways(pod: Pod) -> None:
    upload = io.BytesIO()
    with tarfile.open(fileobj=upload, mode="w") as tar:
        for name, text in {"app/config.json": "{}", "app/custom/model.py": "W = 1"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text.encode()))

    async def scenario() -> dict[str, Any]:
        container = await pod.start("sh", "-c", "echo from-main > /data/main.txt; sleep 60")
        await _until(lambda: (pod.data / "main.txt").exists())
        results: dict[str, Any] = {
            "cat": await pod.exec(["cat", "/data/main.txt"]),
            "test -d dir": (await pod.exec(["test", "-d", "/data"]))[0],
            "test -d file": (await pod.exec(["test", "-d", "/data/main.txt"]))[0],
            "upload": await pod.exec(["tar", "-xmf", "-", "-C", "/data"], stdin=upload.getvalue()),
            "download": await pod.exec(["tar", "cf", "-", "/data/app"]),
            "pwd": await pod.exec(["pwd"]),
        }
        await container.kill(grace_seconds=5)
        results["main"] = await container.wait()
        return results

    results = asyncio.run(scenario())

    assert results["cat"] == (0, b"from-main\n", b"")
    assert (results["test -d dir"], results["test -d file"]) == (0, 1)
    assert results["upload"] == (0, b"", b"")
    assert (pod.data / "app" / "custom" / "model.py").read_text() == "W = 1"
    code, archive, stderr = results["download"]
    assert code == 0, stderr
    assert b"Removing leading" in stderr  # GNU tar's own note, which kubectl passes through as on a real cluster
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        assert sorted(tar.getnames()) == [
            "data/app",
            "data/app/config.json",
            "data/app/custom",
            "data/app/custom/model.py",
        ]
    assert results["pwd"] == (0, b"/data\n", b"")
    assert results["main"] == 143


def test_a_missing_program_is_a_start_error_as_a_kubelet_reports_it(pod: Pod) -> None:
    async def start(*argv: str) -> ContainerStartError:
        with pytest.raises(ContainerStartError) as info:
            await pod.start(*argv)
        return info.value

    (pod.data / "script.sh").write_text("echo not executable")
    (pod.data / "script.sh").chmod(0o644)
    not_on_path = asyncio.run(start("no-such-program", "--flag"))
    no_file = asyncio.run(start("/opt/none/python"))
    not_executable = asyncio.run(start("/data/script.sh"))

    assert not_on_path.exit_code == 128 and not_on_path.reason == "StartError"
    assert 'exec: "no-such-program": executable file not found in $PATH' in str(not_on_path)
    assert 'exec: "/opt/none/python": stat /opt/none/python: no such file or directory' in str(no_file)
    assert 'exec: "/data/script.sh": permission denied' in str(not_executable)


def test_exec_of_a_missing_program_is_an_error_with_exit_code_126(pod: Pod) -> None:
    async def scenario() -> ContainerStartError:
        with pytest.raises(ContainerStartError) as info:
            await pod.runtime.exec(pod.spec("true"), ["bash-not-here", "-l"])
        return info.value

    error = asyncio.run(scenario())
    assert error.exit_code == 126
    assert str(error).startswith('OCI runtime exec failed: exec failed: unable to start container process: exec: "bash')


def test_a_volume_that_cannot_be_mounted_is_a_start_error(pod: Pod) -> None:
    spec = ContainerSpec(
        argv=("true",),
        env={},
        working_dir="/",
        mounts=(Mount(str(pod.base / "gone"), "/data"),),
        hidden_paths=(),
        tmp_dir=str(pod.tmp),
    )

    async def scenario() -> ContainerStartError:
        with pytest.raises(ContainerStartError) as info:
            await pod.runtime.start(spec, str(pod.log))
        return info.value

    error = asyncio.run(scenario())
    assert "error during container init" in str(error) and str(pod.base / "gone") in str(error)


def test_check_support_names_the_problem_and_the_fix_when_unshare_cannot_run(tmp_path: Path) -> None:
    runtime = ContainerRuntime(str(tmp_path), unshare=str(tmp_path / "no-unshare"))

    with pytest.raises(SandboxUnavailable) as info:
        runtime.check_support()

    message = str(info.value)
    assert "needs root or unprivileged user namespaces" in message
    assert "Run as root" in message and "kernel.unprivileged_userns_clone" in message
    with pytest.raises(SandboxUnavailable):  # remembered, and start() says the same
        asyncio.run(runtime.start(ContainerSpec(("true",), {}, "/", (), (), str(tmp_path)), str(tmp_path / "log")))


def test_check_support_passes_on_what_unshare_said(tmp_path: Path) -> None:
    # what unshare prints where the kernel refuses the namespace (seccomp, a sysctl, no CAP_SYS_ADMIN)
    fake = tmp_path / "unshare"
    fake.write_text("#!/bin/sh\necho 'unshare: unshare failed: Operation not permitted' >&2\nexit 1\n")
    fake.chmod(0o755)

    with pytest.raises(SandboxUnavailable) as info:
        ContainerRuntime(str(tmp_path / "state"), unshare=str(fake)).check_support()

    message = str(info.value)
    assert "`unshare -r -m --propagation private` failed: unshare: unshare failed: Operation not permitted" in message
    assert message.count("\n") == 0  # one message, one line


_AS_NOBODY = """
import asyncio, os, sys
from localkube.runtime import ContainerRuntime, ContainerSpec, Mount, SandboxUnavailable
root = sys.argv[1]
runtime = ContainerRuntime(os.path.join(root, "state"))
try:
    runtime.check_support()
except SandboxUnavailable as exc:
    print("UNAVAILABLE", exc)
    sys.exit(0)
for name in ("tmp", "vol"):
    os.mkdir(os.path.join(root, name))
os.makedirs(os.path.join(root, "conf"))
script = "id -u; echo hi > /vol/f; ls -A /tmp | wc -l; { touch /vol/conf/x; } 2>/dev/null || echo read-only"
spec = ContainerSpec(("sh", "-c", script), {}, "/vol",
                     (Mount(os.path.join(root, "vol"), "/vol"), Mount(os.path.join(root, "conf"), "/vol/conf", True)),
                     (), os.path.join(root, "tmp"))
async def main():
    container = await runtime.start(spec, os.path.join(root, "log"))
    print("PID", container.pid, flush=True)
    print("EXIT", await container.wait())
asyncio.run(main())
print("LOG", open(os.path.join(root, "log")).read().split())
"""


def test_a_normal_user_gets_a_user_namespace_or_one_clear_message() -> None:
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to run this test as a normal user"
    root = tempfile.mkdtemp(prefix="localkube-nobody-")  # not under pytest's tmp_path: that is private to root
    os.chown(root, 65534, 65534)
    # The checkout may sit where uid 65534 cannot read it (CI clones into a 0700 temporary folder), so the
    # user gets its own copy of the two modules under test (standard library only) in a bare package.
    code = os.path.join(root, "code")
    shutil.copytree(
        REPO / "localkube" / "src" / "localkube",
        os.path.join(code, "localkube"),
        ignore=lambda _dir, names: [n for n in names if n not in ("__init__.py", "runtime.py", "sandbox.py")],
    )
    Path(code, "localkube", "__init__.py").write_text("")
    for folder, _dirs, files in os.walk(root):
        for name in [folder, *(os.path.join(folder, f) for f in files)]:
            os.chown(name, 65534, 65534)
    try:
        result = subprocess.run(
            [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", _AS_NOBODY, root],
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": code},
            cwd=root,
        )
        assert result.returncode == 0, result.stderr
        if result.stdout.startswith("UNAVAILABLE"):
            # this kernel forbids unprivileged user namespaces: the one message must say why and what to do
            assert "neither works here (running as uid 65534" in result.stdout
            assert "unprivileged user namespaces" in result.stdout
            return
        lines = result.stdout.splitlines()
        # root inside its user namespace, a private /tmp, a read-only volume nested in a writable one
        assert lines[1:] == ["EXIT 0", "LOG ['0', '0', 'read-only']"], result.stdout
        assert Path(root, "vol", "f").read_text() == "hi\n"
        assert Path(root, "vol", "f").stat().st_uid == 65534  # ... and nobody on the host
        pid = int(lines[0].split()[1])
        assert live_members({pid}) == []
    finally:
        shutil.rmtree(root)
    with open("/proc/self/mountinfo") as f:
        assert root not in f.read()


@pytest.mark.parametrize("signal_number, code", [(signal.SIGKILL, 137), (signal.SIGINT, 130), (signal.SIGPIPE, 141)])
def test_a_container_killed_by_a_signal_reports_128_plus_the_signal(pod: Pod, signal_number: int, code: int) -> None:
    # SIGINT and SIGPIPE also check that the container does not inherit ignored signals from its kubelet
    async def scenario() -> int:
        container = await pod.start("sleep", "60")
        os.kill(container.pid, signal_number)
        return await container.wait()

    assert asyncio.run(scenario()) == code


def test_no_file_descriptor_is_left_open_by_start_exec_or_a_failed_start(pod: Pod) -> None:
    async def scenario() -> None:
        container = await pod.start("true")
        await container.wait()
        await pod.exec(["true"])
        with pytest.raises(ContainerStartError):
            await pod.start("no-such-program")
        with pytest.raises(ContainerStartError):
            await pod.runtime.exec(pod.spec("true"), ["no-such-program"])

    asyncio.run(scenario())  # a first run: the probe and asyncio's own lazily opened descriptors
    before = sorted(os.listdir("/proc/self/fd"))
    asyncio.run(scenario())
    assert sorted(os.listdir("/proc/self/fd")) == before


def test_containers_started_together_each_get_their_own_view(pod: Pod) -> None:
    volumes = [pod.base / f"vol-{i}" for i in range(4)]

    async def one(i: int) -> int:
        volumes[i].mkdir()
        spec = ContainerSpec(
            argv=("sh", "-c", f"echo {i} > /ws/id; ls /ws"),
            env={},
            working_dir="/ws",
            mounts=(Mount(str(volumes[i]), "/ws"),),
            hidden_paths=(),
            tmp_dir=str(pod.tmp),
        )
        container = await pod.runtime.start(spec, str(pod.base / f"log-{i}"))
        pod.groups.add(container.pid)
        return await container.wait()

    async def scenario() -> list[int]:
        return list(await asyncio.gather(*(one(i) for i in range(4))))

    started = time.monotonic()
    assert asyncio.run(scenario()) == [0, 0, 0, 0]
    print(f"4 containers started and finished together in {time.monotonic() - started:.3f} s")
    assert [(v / "id").read_text() for v in volumes] == ["0\n", "1\n", "2\n", "3\n"]
    assert [(pod.base / f"log-{i}").read_text() for i in range(4)] == ["id\n"] * 4
