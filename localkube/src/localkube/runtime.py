"""Runs pod containers as local processes in private mount namespaces (imitates a CRI runtime such as containerd).

What a kubelet sees, as with containerd + runc:

* ``start()`` returns once the container's own program is running (the exec succeeded). A program that cannot
  be started (missing binary, permission denied, a volume that cannot be mounted) raises
  :class:`ContainerStartError`; a kubelet reports that as ``state.terminated`` with ``reason: StartError``,
  ``exitCode: 128`` and runc's message, which the exception carries.
* ``RunningContainer.wait()`` gives the exit code, ``128 + signal`` for a signal (137 SIGKILL, 143 SIGTERM).
  When the main process exits, whatever it left behind in its process group is killed, as the end of a
  container's PID 1 takes the rest of the container with it.
* ``RunningContainer.kill(grace)`` sends SIGTERM to the container's process group, then SIGKILL when the grace
  period runs out (a kubelet's ``terminationGracePeriodSeconds``).
* ``exec()`` builds the same view again for ``kubectl exec`` / ``kubectl cp``; the shared state is the host-side
  volume directories. A program that cannot be started raises :class:`ContainerStartError` with exit code 126
  and the message runc prints for ``exec``.

There is no PID namespace, on purpose: a program that is PID 1 of its namespace ignores a SIGTERM it has no
handler for, so every delete of a ``sleep`` pod would wait out its whole grace period. The process group stands
in for the container instead; a process that leaves it (``setsid``, a double-forked daemon) escapes kill().
An exec'd process leads its own process group too: stop it with ``os.killpg(process.pid, signal.SIGKILL)``.

The view itself is built by ``sandbox.py``, run as a stand-alone script inside ``unshare``; this module hands it
the plan through a pipe (the env may hold secrets: never argv, never a file) and learns through a second,
close-on-exec pipe whether the exec happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from localkube import sandbox

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # containerd's default for images
_HELPER = os.path.abspath(sandbox.__file__)
_HELPER_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
_STARTUP_TIMEOUT = 30.0
_MESSAGE_CAP = 2000
_RUNC_START = (
    "failed to create containerd task: failed to create shim task: OCI runtime create failed: "
    "runc create failed: unable to start container process: "
)
_RUNC_EXEC = "OCI runtime exec failed: exec failed: unable to start container process: "


@dataclass(frozen=True)
class Mount:
    host_path: str
    container_path: str
    read_only: bool = False


@dataclass(frozen=True)
class ContainerSpec:
    argv: tuple[str, ...]
    env: Mapping[str, str]
    working_dir: str
    mounts: tuple[Mount, ...]  # in order; a later mount may nest inside an earlier one
    hidden_paths: tuple[str, ...]  # host folders the container must see empty
    tmp_dir: str  # host directory that becomes the container's private /tmp
    # Host folders that belong to the "image" although they lie under /tmp (a venv or a checkout in /tmp):
    # shown read-only at the same path on top of the private /tmp. Folders elsewhere are in the view anyway.
    image_paths: tuple[str, ...] = ()


class SandboxUnavailable(RuntimeError):
    """Neither root nor unprivileged user namespaces can give a container its private mount namespace."""


class ContainerStartError(RuntimeError):
    """The container's program could not be started; ``str()`` is runc's message, as a kubelet reports it."""

    reason = "StartError"

    def __init__(self, message: str, *, exit_code: int, errno_value: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.errno = errno_value


class ContainerRuntime:
    """Starts containers (and execs into them) for one cluster; ``root_dir`` holds its scratch mount point."""

    def __init__(self, root_dir: str, *, python: str | None = None, unshare: str | None = None) -> None:
        self.root_dir = os.path.abspath(root_dir)
        self._scratch = os.path.join(self.root_dir, "sandbox")
        # One mount point serves every container: each namespace mounts its own tmpfs on it.
        self._rootfs = os.path.join(self._scratch, "rootfs")
        self._python = python or sys.executable
        self._unshare = unshare
        self._lock = threading.Lock()
        self._namespace: tuple[str, ...] | None = None
        self._unavailable: SandboxUnavailable | None = None

    def check_support(self) -> None:
        self._namespace_args()

    async def start(self, spec: ContainerSpec, log_path: str) -> RunningContainer:
        """Start the container; stdout and stderr are appended to ``log_path``, stdin is /dev/null."""
        ns = await self._namespace_args_async()
        loop = asyncio.get_running_loop()
        log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        with _Pipes() as pipes:
            log_offset = os.fstat(log_fd).st_size
            try:
                popen = subprocess.Popen(
                    self._argv(ns, pipes),
                    stdin=subprocess.DEVNULL,
                    stdout=log_fd,
                    stderr=log_fd,
                    pass_fds=pipes.child_fds,
                    start_new_session=True,
                    env=_HELPER_ENV,
                )
            finally:
                os.close(log_fd)
            try:
                status = await pipes.exchange(self._plan(spec))
            except BaseException:
                _kill_group(popen.pid)
                popen.wait()
                raise
        if status.startswith(b"H") and len(status) == 1:
            return RunningContainer(popen, loop)
        popen.wait()
        raise self._start_error(status, spec, popen.returncode, lambda: _read_from(log_path, log_offset), _RUNC_START)

    async def exec(self, spec: ContainerSpec, argv: Sequence[str]) -> asyncio.subprocess.Process:
        """Run ``argv`` in a fresh copy of the container's view, with stdin/stdout/stderr pipes.

        The process leads its own process group: ``os.killpg(process.pid, ...)`` stops it with its children.
        """
        ns = await self._namespace_args_async()
        exec_spec = ContainerSpec(
            argv=tuple(argv),
            env=spec.env,
            working_dir=spec.working_dir,
            mounts=spec.mounts,
            hidden_paths=spec.hidden_paths,
            tmp_dir=spec.tmp_dir,
            image_paths=spec.image_paths,
        )
        with _Pipes() as pipes:
            process = await asyncio.create_subprocess_exec(
                *self._argv(ns, pipes),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                pass_fds=pipes.child_fds,
                start_new_session=True,
                env=_HELPER_ENV,
            )
            try:
                status = await pipes.exchange(self._plan(exec_spec))
            except BaseException:
                _kill_group(process.pid)
                await process.wait()
                raise
        if status.startswith(b"H") and len(status) == 1:
            return process
        stderr = await _drain(process)
        raise self._start_error(status, exec_spec, process.returncode, lambda: stderr, _RUNC_EXEC, exec_code=126)

    def _plan(self, spec: ContainerSpec) -> bytes:
        if not spec.argv:
            raise ValueError("a container needs a command: argv is empty")
        env = dict(spec.env)
        env.setdefault("PATH", DEFAULT_PATH)
        plan: dict[str, Any] = {
            "root": self._rootfs,
            "tmp": os.path.abspath(spec.tmp_dir),
            "image": [os.path.abspath(p) for p in spec.image_paths],
            # Our own scratch mount point shows a stale copy of the view inside the view: hide it.
            "hide": [self._scratch, *spec.hidden_paths],
            "mounts": [[os.path.abspath(m.host_path), m.container_path, m.read_only] for m in spec.mounts],
            "workdir": spec.working_dir or "/",
            "argv": list(spec.argv),
            "env": env,
        }
        return json.dumps(plan).encode()

    def _argv(self, ns: Sequence[str], pipes: _Pipes) -> list[str]:
        assert self._unshare is not None  # set by the probe
        plan_fd, status_fd = pipes.child_fds
        return [self._unshare, *ns, self._python, "-I", "-S", "-B", _HELPER, str(plan_fd), str(status_fd)]

    @staticmethod
    def _start_error(
        status: bytes,
        spec: ContainerSpec,
        returncode: int | None,
        output: Any,
        prefix: str,
        *,
        exec_code: int = 128,
    ) -> ContainerStartError:
        if not status.startswith(b"H"):
            # unshare (or the python running sandbox.py) failed before the view was even started.
            detail = _cap(output().strip()) or f"exit code {returncode}"
            return ContainerStartError(f"{prefix}sandbox did not start: {detail}: unknown", exit_code=exec_code)
        try:
            report = json.loads(status[2:]) if status[1:2] == b"E" else {}
        except ValueError:  # sandbox.py died while reporting
            report = {"message": _cap(status[2:].decode(errors="replace"))}
        err = int(report.get("errno", 0))
        if report.get("stage") == "exec":
            program = spec.argv[0]
            if err == errno.ENOENT and "/" not in program:
                what = "executable file not found in $PATH"
            elif err == errno.ENOENT:
                what = f"stat {program}: no such file or directory"
            else:
                what = os.strerror(err).lower() if err else _cap(str(report.get("message", "")))
            return ContainerStartError(
                f'{prefix}exec: "{program}": {what}: unknown', exit_code=exec_code, errno_value=err
            )
        message = _cap(str(report.get("message", "unknown failure")))
        return ContainerStartError(
            f"{prefix}error during container init: {message}: unknown", exit_code=exec_code, errno_value=err
        )

    async def _namespace_args_async(self) -> tuple[str, ...]:
        if self._namespace is not None:
            return self._namespace
        return await asyncio.to_thread(self._namespace_args)

    def _namespace_args(self) -> tuple[str, ...]:
        with self._lock:
            if self._unavailable is not None:
                raise self._unavailable
            if self._namespace is None:
                try:
                    self._namespace = self._probe()
                except SandboxUnavailable as exc:
                    self._unavailable = exc
                    raise
            return self._namespace

    def _probe(self) -> tuple[str, ...]:
        """The unshare flags that work here: plain mount namespaces as root, else a user namespace too."""
        uid = os.geteuid()
        self._unshare = self._unshare or shutil.which("unshare", path=_HELPER_ENV["PATH"])
        if self._unshare is None:
            raise SandboxUnavailable(_unavailable_message(uid, ["the `unshare` program (util-linux) is not installed"]))
        try:
            os.close(os.pidfd_open(os.getpid()))
        except (AttributeError, OSError) as exc:
            raise SandboxUnavailable(f"localkube needs Linux >= 5.3 (pidfd_open) to watch containers: {exc}") from None
        os.makedirs(self._rootfs, exist_ok=True)
        candidates: list[tuple[str, ...]] = [("-m", "--propagation", "private")] if uid == 0 else []
        candidates.append(("-r", "-m", "--propagation", "private"))
        failures = []
        for ns in candidates:
            argv = [self._unshare, *ns, self._python, "-I", "-S", "-B", _HELPER, "--probe", self._rootfs]
            shown = shlex.join(["unshare", *ns])
            try:
                result = subprocess.run(
                    argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=_STARTUP_TIMEOUT, env=_HELPER_ENV
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                failures.append(f"`{shown}` failed: {exc}")
                continue
            if result.returncode == 0:
                return ns
            lines = result.stderr.decode(errors="replace").strip().splitlines()
            failures.append(f"`{shown}` failed: {_cap(lines[-1]) if lines else f'exit code {result.returncode}'}")
        raise SandboxUnavailable(_unavailable_message(uid, failures))


class RunningContainer:
    """A started container: its main process leads its own process group."""

    def __init__(self, popen: subprocess.Popen[bytes], loop: asyncio.AbstractEventLoop) -> None:
        self.pid = popen.pid
        self._popen = popen
        self._loop = loop
        self._exited: asyncio.Future[int] = loop.create_future()
        # A pidfd turns readable when the process exits, before anyone reaps it: the process group cannot be
        # reused while the leader is a zombie, so killing the group stays safe until we reap.
        self._pidfd = os.pidfd_open(popen.pid)
        loop.add_reader(self._pidfd, self._on_exit)

    @property
    def exit_code(self) -> int | None:
        return self._exited.result() if self._exited.done() else None

    def _on_exit(self) -> None:
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        _kill_group(self.pid)  # what the main process left behind dies with it, as in a container
        returncode = self._popen.wait()
        self._exited.set_result(returncode if returncode >= 0 else 128 - returncode)

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)

    async def kill(self, grace_seconds: float) -> None:
        if self._exited.done():
            return
        _kill_group(self.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(self._exited), timeout=max(grace_seconds, 0.0))
        except TimeoutError:
            if not self._exited.done():
                _kill_group(self.pid)
            await asyncio.shield(self._exited)


class _Pipes:
    """The plan pipe (parent writes, sandbox.py reads) and the status pipe (sandbox.py writes, closes on exec)."""

    def __init__(self) -> None:
        self._plan_r, self._plan_w = os.pipe()
        self._status_r, self._status_w = os.pipe()
        self.child_fds = (self._plan_r, self._status_w)
        self._closed: set[int] = set()

    def __enter__(self) -> _Pipes:
        return self

    def __exit__(self, *exc: object) -> None:
        for fd in (self._plan_r, self._plan_w, self._status_r, self._status_w):
            self._close(fd)

    def _close(self, fd: int) -> None:
        if fd not in self._closed:
            self._closed.add(fd)
            os.close(fd)

    async def exchange(self, plan: bytes) -> bytes:
        """Send the plan, then read the status pipe to its end: b"H" alone means the exec happened."""
        for fd in self.child_fds:
            self._close(fd)
        with contextlib.suppress(BrokenPipeError):  # the child died before reading; the status tells why
            view = memoryview(plan)
            while view:
                view = view[os.write(self._plan_w, view) :]
        self._close(self._plan_w)
        return await asyncio.wait_for(_read_to_end(self._status_r), timeout=_STARTUP_TIMEOUT)


async def _read_to_end(fd: int) -> bytes:
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    chunks: list[bytes] = []
    done: asyncio.Future[bytes] = loop.create_future()

    def readable() -> None:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return
        if chunk:
            chunks.append(chunk)
        elif not done.done():
            done.set_result(b"".join(chunks))

    loop.add_reader(fd, readable)
    try:
        return await done
    finally:
        loop.remove_reader(fd)


async def _drain(process: asyncio.subprocess.Process) -> str:
    if process.stdin is not None:
        process.stdin.close()
    _, stderr = await process.communicate()
    return stderr.decode(errors="replace")


def _read_from(path: str, offset: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(_MESSAGE_CAP).decode(errors="replace")
    except OSError:
        return ""


def _kill_group(pgid: int, sig: signal.Signals = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _cap(text: str) -> str:
    return text if len(text) <= _MESSAGE_CAP else text[:_MESSAGE_CAP] + "..."


def _unavailable_message(uid: int, failures: Sequence[str]) -> str:
    return (
        "localkube cannot run pod containers on this machine: each container needs a private mount namespace, "
        "which needs root or unprivileged user namespaces, and neither works here "
        f"(running as uid {uid}: {'; '.join(failures)}). "
        "Run as root (as CI does), or allow unprivileged user namespaces: "
        "`sysctl -w kernel.unprivileged_userns_clone=1` (Debian kernels), a non-zero user.max_user_namespaces, "
        "`sysctl -w kernel.apparmor_restrict_unprivileged_userns=0` (Ubuntu 23.10+), or inside Docker a "
        "seccomp profile that allows unshare."
    )
