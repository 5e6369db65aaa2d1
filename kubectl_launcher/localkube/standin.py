"""A stand-in container runtime (plain processes, no mount namespace) with runtime.py's interface; used only
until the sandboxed runtime is available."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


class SandboxUnavailable(RuntimeError):
    pass


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
    mounts: tuple[Mount, ...]
    hidden_paths: tuple[str, ...]
    tmp_dir: str


class RunningContainer:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc
        self.pid = proc.pid

    async def wait(self) -> int:
        code = await self._proc.wait()
        return 128 - code if code < 0 else code

    async def kill(self, grace_seconds: float) -> None:
        if self._proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(self._proc.wait(), grace_seconds)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            await self._proc.wait()


class ContainerRuntime:
    def __init__(self, root_dir: str) -> None:
        self.root_dir = root_dir

    def check_support(self) -> None:
        return None

    async def start(self, spec: ContainerSpec, log_path: str) -> RunningContainer:
        with open(log_path, "ab") as log:
            proc = await asyncio.create_subprocess_exec(
                *spec.argv,
                cwd=spec.working_dir if os.path.isdir(spec.working_dir) else None,
                env=dict(spec.env),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        return RunningContainer(proc)

    async def exec(self, spec: ContainerSpec, argv: Sequence[str]) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *argv,
            cwd=spec.working_dir if os.path.isdir(spec.working_dir) else None,
            env=dict(spec.env),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
