"""Long-running kubectl commands (`get --watch`, `logs -f`): KubectlStream, and JSON objects from their lines."""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import sh

from kubectl_launcher import errors
from kubectl_launcher.kubectl.runner import (
    DEFAULT_MAX_STDERR,
    NO_STDIN,
    CommandResult,
    HeadTailStderr,
    kubectl_command,
    sh_log_context,
)

_log = logging.getLogger(__name__)


class StreamProcess(Protocol):
    """A started long-running process, as KubectlStream drives it."""

    def wait(self) -> int | None:
        """Block until the process has exited and all its output was handed over; its exit code
        (negative: the signal that ended it)."""
        ...

    def signal(self, signum: int) -> None:
        """Send `signum` to the process and its children (its process group); a no-op once gone."""
        ...


class Streamer(Protocol):
    """Starts the process behind Kubectl.stream; injectable (`Kubectl(streamer=...)`) for tests.

    Each stdout line goes to `on_line` as it arrives (its newline may be kept); `on_line` returning
    True means "send no more". stderr goes to `on_stderr` in chunks. Both are called from threads of
    the streamer's own, possibly before the call that starts the process has returned.
    """

    def __call__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        on_line: Callable[[str | bytes], bool],
        on_stderr: Callable[[str | bytes], object],
    ) -> StreamProcess: ...


class _ShProcess:
    def __init__(self, running: Any) -> None:
        self._running = running

    def wait(self) -> int | None:
        try:
            self._running.wait()
            code: int | None = self._running.exit_code
        except sh.ErrorReturnCode as exc:  # ended by a signal
            code = exc.exit_code
        return code

    def signal(self, signum: int) -> None:
        try:
            self._running.process.signal_group(signum)
        except (ProcessLookupError, PermissionError):
            pass


class ShStreamer:
    """Starts a stream's kubectl through `sh`: explicit env, no tty, line-buffered, its own session."""

    def __call__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        on_line: Callable[[str | bytes], bool],
        on_stderr: Callable[[str | bytes], object],
    ) -> StreamProcess:
        command = kubectl_command(argv[0], env)
        running = command(
            *argv[1:],
            _bg=True,
            _bg_exc=False,
            _in=NO_STDIN,  # see runner.NO_STDIN: sh would notice kubectl's end ~45 ms late
            _out=on_line,
            _out_bufsize=1,
            _err=on_stderr,
            _env=dict(env),
            _tty_in=False,
            _tty_out=False,
            _ok_code=list(range(256)),
            _new_session=True,  # a signal reaches kubectl's helpers too (credential plugins)
            _log_msg=sh_log_context,
        )
        return _ShProcess(running)


class KubectlStream:
    """One long-running kubectl command (`get --watch`, `logs -f`): its stdout lines as they arrive.

    Made by `Kubectl.stream(args)`: same binary, global flags and environment as `Kubectl.run`,
    no tty, started at once in the background. Read it one of two ways:

    * `for line in stream:` blocks for each line (newline stripped) and ends when kubectl exits;
      `stream.documents()` does the same for output that is a sequence of JSON objects, as
      `get --watch --output-watch-events -o json` prints ({"type": "ADDED", "object": {...}});
    * `stream.read(timeout)` returns the lines that have arrived (waiting up to `timeout` for the
      first) without blocking a poll loop; `stream.ended` tells the end from a quiet moment.

    The end of the stream is an event the caller must handle, not an error: a watch ends with exit
    code 0 whenever the server closes it (an API server restart, its watch timeout, or our own
    `--request-timeout`, which kubectl turns into the watch's timeout; `request_timeout=0` lifts
    it). Events may have been missed in between, so the caller lists again (`get -o json`, whose
    resourceVersion it may pass to the next watch) and starts a new stream. Any other end leaves
    `returncode`, `stderr` and `error` (the typed KubectlError, e.g. KubectlForbidden) to look at.

    `stop()` ends kubectl (SIGTERM, then SIGKILL) and waits for it; leaving a `with` block calls it.
    When the command ends, for whatever reason, it is journaled once (start time, duration, exit
    code, how it ended, a pasteable line) and then `on_exit(result)` runs, on the stream's own
    thread. Lines nobody reads are kept up to `max_buffered` bytes; beyond that kubectl is stopped
    and `overflowed` is True: read a stream promptly or stop it.

    What it needs of its Kubectl comes through the constructor: `record(result, how)` journals the
    end ("ended" / "stopped" / "overflowed"), `error(result)` builds the typed, redacted error of a
    failed end, `describe(argv)` names the command in messages (redacted).
    """

    def __init__(
        self,
        argv: tuple[str, ...],
        env: Mapping[str, str],
        *,
        record: Callable[[CommandResult, str], None],
        error: Callable[[CommandResult], errors.KubectlError],
        describe: Callable[[Sequence[str]], str],
        on_exit: Callable[[CommandResult], None] | None,
        max_buffered: int,
        grace: float,
        streamer: Streamer,
        purpose: str = "",
    ) -> None:
        self.argv = argv
        self.purpose = purpose
        self._record = record
        self._error = error
        self._describe = describe
        self._on_exit = on_exit
        self._max_buffered = max_buffered
        self._grace = grace
        self._lines: deque[str] = deque()
        self._buffered = 0
        self._cond = threading.Condition()
        self._ended = threading.Event()
        self._stderr = HeadTailStderr(DEFAULT_MAX_STDERR)
        self.stopped = False  # stop() ended it (or the buffer overflowed)
        self.overflowed = False
        self.result: CommandResult | None = None  # set when kubectl has exited
        self.started_at = time.time()
        self._t0 = time.monotonic()
        self._process: StreamProcess | None = None
        self._pending_signal: int | None = None  # a signal wanted before the streamer returned
        process = streamer(argv, env=env, on_line=self._line, on_stderr=self._stderr)
        with self._cond:
            self._process = process
            pending = self._pending_signal
        if pending is not None:
            process.signal(pending)
        self._waiter = threading.Thread(target=self._wait, name="kubectl-stream", daemon=True)
        self._waiter.start()

    # -- reading --

    def __iter__(self) -> Iterator[str]:
        while True:
            with self._cond:
                while not self._lines and not self._ended.is_set():
                    self._cond.wait()
                if not self._lines:
                    return
                line = self._take()
            yield line

    def read(self, timeout: float = 0.0) -> list[str]:
        """The lines that have arrived, waiting up to `timeout` seconds for the first; [] if none."""
        with self._cond:
            if not self._lines and not self._ended.is_set() and timeout > 0:
                self._cond.wait(timeout)
            return [self._take() for _ in range(len(self._lines))]

    def documents(self) -> Iterator[dict[str, Any]]:
        """The JSON objects kubectl prints one after another (indented, as `-o json` does)."""
        return iter_json_objects(self, limit=self._max_buffered, command=self._describe(self.argv))

    def _take(self) -> str:
        line = self._lines.popleft()
        self._buffered -= len(line)
        return line

    # -- state --

    @property
    def ended(self) -> bool:
        """kubectl has exited and every line has been read."""
        with self._cond:
            return self._ended.is_set() and not self._lines

    @property
    def returncode(self) -> int | None:
        """kubectl's exit code once it has exited (negative: the signal that ended it), else None."""
        return self.result.returncode if self.result is not None else None

    @property
    def stderr(self) -> str:
        """kubectl's stderr so far: head and tail kept (256 KiB)."""
        return self._stderr.text()

    @property
    def error(self) -> errors.KubectlError | None:
        """The typed error of a failed end; None while running, after exit code 0, or after stop()."""
        result = self.result
        if result is None or result.returncode == 0 or self.stopped:
            return None
        return self._error(result)

    def wait(self, timeout: float | None = None) -> CommandResult | None:
        """Wait for kubectl to exit (by itself: this does not stop it); None if still running."""
        self._ended.wait(timeout)
        return self.result

    # -- stopping --

    def stop(self) -> CommandResult:
        """End kubectl: SIGTERM, SIGKILL after the grace period; returns once it has exited."""
        if not self._ended.is_set():
            self.stopped = True
            self._signal(signal.SIGTERM)
            if not self._ended.wait(self._grace):
                self._signal(signal.SIGKILL)
            self._ended.wait()
        if threading.current_thread() is not self._waiter:  # stop() may be called from on_exit
            self._waiter.join()
        assert self.result is not None
        return self.result

    def __enter__(self) -> KubectlStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the process side (sh's threads) --

    def _signal(self, signum: int) -> None:
        with self._cond:
            process = self._process
            if process is None:  # the first lines can overflow before the streamer has returned
                self._pending_signal = signum
                return
        process.signal(signum)

    def _line(self, chunk: str | bytes) -> bool:
        line = chunk.decode("utf-8", "replace") if isinstance(chunk, bytes) else chunk
        line = line.rstrip("\n")
        with self._cond:
            if self._buffered + len(line) > self._max_buffered:
                self.overflowed = self.stopped = True
                overflow = True
            else:
                self._lines.append(line)
                self._buffered += len(line)
                self._cond.notify_all()
                overflow = False
        if overflow:
            self._signal(signal.SIGKILL)
        return overflow  # True: sh sends no more lines

    def _wait(self) -> None:
        assert self._process is not None
        returncode = self._process.wait()
        result = CommandResult(
            argv=self.argv,
            returncode=returncode,
            stderr=self._stderr.text(),
            duration=time.monotonic() - self._t0,
            started_at=self.started_at,
        )
        how = "overflowed" if self.overflowed else "stopped" if self.stopped else "ended"
        try:  # journaled before wait() returns, so that a caller finds the entry
            self._record(result, how)
        except OSError:
            _log.exception("cannot journal %s", self._describe(self.argv))
        with self._cond:
            self.result = result
            self._ended.set()
            self._cond.notify_all()
        if self._on_exit is not None:
            try:
                self._on_exit(result)
            except Exception:
                _log.exception("on_exit of %s failed", self._describe(self.argv))


def iter_json_objects(lines: Iterable[str], *, limit: int, command: str = "kubectl") -> Iterator[dict[str, Any]]:
    """JSON objects from lines of text, each object indented over many lines or all on one."""
    decoder = json.JSONDecoder()
    pending: list[str] = []
    size = 0
    for line in lines:
        if not pending and not line.strip():
            continue
        pending.append(line)
        size += len(line) + 1
        # An indented object ends with "}" at column 0; only then is a parse worth trying.
        if line.startswith("}") or (len(pending) == 1 and line.rstrip().endswith("}")):
            try:
                document, _ = decoder.raw_decode("\n".join(pending))
            except ValueError:
                document = None
            if isinstance(document, dict):
                yield document
                pending, size = [], 0
                continue
        if size > limit:
            raise errors.ProtocolError(f"kubectl printed {size} bytes that are not a JSON object; command: {command}")
    if pending and any(line.strip() for line in pending):
        raise errors.ProtocolError(f"kubectl's output ended inside a JSON object; command: {command}")
