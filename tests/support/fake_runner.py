"""A scripted fake Runner: the kubectl seam's protocol written once; each test module scripts the answers."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO, ClassVar, NoReturn, TypeVar

from kubectl_launcher.kubectl import CommandResult

T = TypeVar("T")


@dataclass(frozen=True)
class RunnerCall:
    """One call of the Runner, as Kubectl made it."""

    argv: tuple[str, ...]
    stdin: bytes | None
    env: dict[str, str]
    timeout: float
    stdout_path: str | None
    stdin_file: BinaryIO | None = None


@dataclass(eq=False)
class ScriptedRunner:
    """A hand-written Runner for tests: records each call in `received` and hands it to `answer`,
    which a test module writes in a subclass. A command the script does not cover goes to `reject`, which
    notes it in `unexpected` (seen even where the code under test swallows the error) and fails the test.

    stdin as a file (`stdin_file`) is rejected too, unless the subclass sets `takes_stdin_file`."""

    takes_stdin_file: ClassVar[bool] = False
    received: list[RunnerCall] = field(default_factory=list, kw_only=True)
    unexpected: list[str] = field(default_factory=list, kw_only=True)

    def __call__(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None,
        env: Mapping[str, str],
        timeout: float,
        stdout_path: str | None,
        stdin_file: BinaryIO | None = None,
    ) -> CommandResult:
        call = RunnerCall(tuple(argv), stdin, dict(env), timeout, stdout_path, stdin_file)
        self.received.append(call)
        if stdin_file is not None and not self.takes_stdin_file:
            self.reject(f"stdin as a file, which this fake runner does not read: {shlex.join(call.argv)}")
        return self.answer(call)

    def answer(self, call: RunnerCall) -> CommandResult:
        raise NotImplementedError(f"{type(self).__name__} scripts no answers")

    def reject(self, message: str) -> NoReturn:
        self.unexpected.append(message)
        raise AssertionError(message)

    def next_scripted(self, script: list[T], call: RunnerCall) -> T:
        """The next scripted answer, taken from `script`; once the script is used up, the test fails."""
        if not script:
            self.reject(f"unexpected command: {shlex.join(call.argv)}")
        return script.pop(0)
