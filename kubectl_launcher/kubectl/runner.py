"""The process side of the kubectl seam: CommandResult, the Runner protocol and ShRunner, stdin as a file."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import signal
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

import sh

from kubectl_launcher import errors

#: Oldest kubectl client we support, and why. 1.29 is the first release that can run exec/cp over
#: WebSocket (opt-in through KUBECTL_REMOTE_COMMAND_WEBSOCKETS=true, which we always set; default
#: from 1.30), the transport the API double and current servers speak. 1.27/1.28 only speak SPDY
#: for exec/cp and need --validate=false to apply against servers without protobuf OpenAPI.
#: setup.py checks it; the message for a missing binary names it.
MIN_KUBECTL_VERSION = (1, 29)
DEFAULT_MAX_OUTPUT = 16 * 1024 * 1024
DEFAULT_MAX_STDERR = 256 * 1024
# stdin reaches kubectl as a file it reads itself (in memory for bytes, see _stdin_feed). sh writes
# bytes given as `_in` to a pipe 1 KiB per wake-up of its feeder thread: `kubectl exec -i POD -- sh -c
# 'cat > /dev/null'` on the API double took 64 MiB at 6.2 MiB/s that way; reading a file, 160-450 MiB/s
# (bytes or stdin_path, 64-256 MiB, 2 busy shared cores), as fast as kubectl started from a shell.
_STDIN_CHUNK = 1024 * 1024
#: What sh gets as `_in` for a command without stdin (kubectl reads end-of-file at once).
NO_STDIN = b""

#: The Go runtime's settings for a kubectl command that ends by itself. kubectl's start-up allocates much
#: and keeps little, and Go's collector ran several times in it: without collections below GOMEMLIMIT a
#: command took 20-30 % less CPU (a get on the API double: 73 -> 57 ms, 66 -> 58 ms wall) for 2 MB more
#: memory, and every launch runs several on its critical path. The limit bounds what a long copy keeps
#: (collections start there). Never for a watch, whose heap would climb to the limit. An operator's own
#: GOGC / GOMEMLIMIT (passed through, below) win.
SHORT_COMMAND_GO_ENV = {"GOGC": "off", "GOMEMLIMIT": "128MiB"}

#: Environment variables the child inherits from ours when set (client.Kubectl.env): the operator's Go
#: runtime settings, where in-cluster credentials are found, and the proxy a site may need to reach its
#: API server.
PASS_THROUGH_ENV = (
    "GOGC",
    "GOMEMLIMIT",
    "KUBERNETES_SERVICE_HOST",
    "KUBERNETES_SERVICE_PORT",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "NO_PROXY",
    "no_proxy",
)

# sh logs every process it starts at INFO, naming it by its whole argv. Inside NVFlare that put each kubectl
# command line into the site's log.txt, bypassing the journal's redaction. Our journal is the record of what
# ran; sh's loggers only say "kubectl pid N" (see sh_log_context) and stay quiet unless an operator turns
# them up on purpose.
if logging.getLogger("sh").level == logging.NOTSET:
    logging.getLogger("sh").setLevel(logging.WARNING)


def kubectl_command(binary: str, env: Mapping[str, str]) -> Any:
    """The sh command for `binary`, looked up on the child's PATH; a clear ConfigError when it is missing."""
    try:
        return sh.Command(binary, search_paths=env.get("PATH", os.defpath).split(os.pathsep))
    except sh.CommandNotFound as exc:
        raise errors.ConfigError(
            f"kubectl binary {binary!r} not found or not executable; install kubectl "
            f"{MIN_KUBECTL_VERSION[0]}.{MIN_KUBECTL_VERSION[1]} or newer, or pass its path as kubectl=..."
        ) from exc


def sh_log_context(cmd: Any, call_args: Any, pid: int | None = None) -> str:
    """How sh's own log lines name a kubectl process: never by its argv (the journal has that, redacted)."""
    return f"kubectl pid {pid}" if pid else "kubectl"


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]  # the full argv that ran, binary and global flags included
    returncode: int | None  # None: killed by our deadline
    stdout: str = ""  # capped; "" when stdout went to a file
    stderr: str = ""  # capped: head and tail are kept
    duration: float = 0.0  # seconds
    started_at: float = 0.0  # epoch seconds
    timed_out: bool = False  # our deadline killed it
    stdout_truncated: bool = False  # more than the cap was printed; kubectl was stopped


@dataclass(frozen=True)
class StdinDigest:
    """What the journal keeps of stdin streamed from a file: its size and digest (None when unknown)."""

    size: int | None
    sha256: str | None


@dataclass(frozen=True)
class StdinRecord:
    """What the journal writes instead of stdin that carries a Secret (the journal adds a digest)."""

    description: str
    rebuild_argv: tuple[str, ...] | None = None


class Runner(Protocol):
    """Starts one process and waits for it. `stdin_file` is passed only when stdin is a file (a
    caller's `stdin_path` or file object): a runner used with such commands must accept it."""

    def __call__(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None,
        env: Mapping[str, str],
        timeout: float,
        stdout_path: str | None,
        stdin_file: BinaryIO | None = None,
    ) -> CommandResult: ...


class _CappedStdout:
    """sh output callback that keeps at most `limit` bytes and stops the process beyond that."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.chunks: list[bytes] = []
        self.size = 0
        self.overflow = False

    def __call__(self, chunk: str | bytes, stdin: Any, process_ref: Any) -> bool:
        data = chunk.encode() if isinstance(chunk, str) else chunk
        if self.size + len(data) > self.limit:
            self.overflow = True
            process = process_ref() if isinstance(process_ref, weakref.ref) else process_ref
            if process is not None:
                _kill_group(process)
            return True  # no more chunks
        self.chunks.append(data)
        self.size += len(data)
        return False

    def text(self) -> str:
        return b"".join(self.chunks).decode("utf-8", "replace")


class HeadTailStderr:
    """sh output callback keeping the first and last `limit // 2` bytes: the cause and the verdict."""

    def __init__(self, limit: int) -> None:
        self.half = max(limit // 2, 1)
        self.head = bytearray()
        self.tail: deque[bytes] = deque()
        self.tail_size = 0
        self.dropped = 0

    def __call__(self, chunk: str | bytes) -> bool:
        data = chunk.encode() if isinstance(chunk, str) else chunk
        room = self.half - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail.append(data)
            self.tail_size += len(data)
            while self.tail_size - len(self.tail[0]) >= self.half:
                self.dropped += len(self.tail[0])
                self.tail_size -= len(self.tail.popleft())
        return False

    def text(self) -> str:
        head = bytes(self.head).decode("utf-8", "replace")
        tail = b"".join(self.tail).decode("utf-8", "replace")
        if self.dropped:
            return f"{head}\n[... {self.dropped} bytes of stderr dropped ...]\n{tail}"
        return head + tail


class ShRunner:
    """Starts the process through `sh`: explicit env, no tty, our own deadline, capped output."""

    def __init__(self, *, max_stdout: int = DEFAULT_MAX_OUTPUT, max_stderr: int = DEFAULT_MAX_STDERR) -> None:
        self.max_stdout = max_stdout
        self.max_stderr = max_stderr

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
        command = kubectl_command(argv[0], env)
        capped = _CappedStdout(self.max_stdout)
        stderr_sink = HeadTailStderr(self.max_stderr)
        feed, own_feed = (stdin_file, False) if stdin_file is not None else (_stdin_feed(stdin), True)
        out_file = open(stdout_path, "wb") if stdout_path else None
        started_at = time.time()
        t0 = time.monotonic()
        returncode: int | None
        deadline_hit = threading.Event()
        deadline: threading.Timer | None = None
        running: Any = None
        try:
            with _interrupts_held():
                running = command(
                    *argv[1:],
                    # No stdin is an empty one: given none, sh holds a pipe open whose thread notices kubectl's
                    # end only at its next look, and every command took ~45 ms longer (107 ms for kubectl's 60).
                    _in=feed if feed is not None else NO_STDIN,
                    _out=out_file if out_file is not None else capped,
                    _err=stderr_sink,
                    _env=dict(env),
                    _tty_in=False,
                    _tty_out=False,
                    _ok_code=list(range(256)),
                    _bg=True,
                    _bg_exc=False,
                    # kubectl leads its own process group, so that a kill takes the credential plugins
                    # it runs too (sh's own _timeout would signal kubectl alone and orphan them).
                    _new_session=True,
                    _log_msg=sh_log_context,
                )
            deadline = threading.Timer(timeout, _kill_group, (running.process, deadline_hit))
            deadline.daemon = True
            deadline.start()
            try:
                running.wait()
                returncode = running.exit_code
            except sh.ErrorReturnCode as exc:  # killed by a signal: our deadline or output cap
                returncode = exc.exit_code
        except BaseException:
            # KeyboardInterrupt (in its own session no terminal signal reaches kubectl), wherever it lands once
            # kubectl has started: between the start and the wait as much as during the wait.
            if running is not None:
                _kill_group(running.process)
            raise
        finally:
            if deadline is not None:
                deadline.cancel()
            if out_file is not None:
                out_file.close()
            if own_feed and hasattr(feed, "close"):
                feed.close()
        timed_out = deadline_hit.is_set() and returncode != 0
        if timed_out:
            returncode = None
        return CommandResult(
            argv=tuple(argv),
            returncode=returncode,
            stdout="" if out_file is not None else capped.text(),
            stderr=stderr_sink.text(),
            duration=time.monotonic() - t0,
            started_at=started_at,
            timed_out=timed_out,
            stdout_truncated=capped.overflow,
        )


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """Hold Ctrl-C while kubectl starts, so that it lands once we hold kubectl's handle and can kill its group.

    kubectl runs in its own session (no terminal signal reaches it): a KeyboardInterrupt raised inside sh's
    start-up, after the fork, would leave it running with nobody to kill it. A signal mask cannot hold it
    (the kernel hands a process-directed SIGINT to any thread that does not block it, sh's threads included),
    so the handler is swapped for one that only notes the signal, which is sent again once kubectl is ours.
    Handlers can be set from the main thread only, where Python raises KeyboardInterrupt anyway.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    noted: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: noted.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if noted:
            os.kill(os.getpid(), signal.SIGINT)  # now handled as the process had asked


def _kill_group(process: Any, killed: threading.Event | None = None) -> None:
    """SIGKILL to kubectl's process group (sh's OProc); `killed` is set if the group was still there."""
    try:
        process.signal_group(signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return
    if killed is not None:
        killed.set()


class FileStdin:
    """stdin streamed from a file: hashed once for the journal, rewound for each attempt."""

    def __init__(self, record: StdinRecord, digest: StdinDigest, *, path: str | None, file: BinaryIO | None) -> None:
        self.record = record
        self.digest = digest
        self._path = path
        self._file = file
        self._start = file.tell() if file is not None and digest.size is not None else 0
        self.rewindable = path is not None or digest.size is not None

    @classmethod
    def from_path(cls, path: str) -> FileStdin:
        with open(path, "rb") as source:
            digest = _digest_rest(source)
        return cls(StdinRecord(f"the file {path}", ("cat", path)), digest, path=path, file=None)

    @classmethod
    def from_file(cls, file: BinaryIO) -> FileStdin | None:
        """None for a file object without a descriptor kubectl could read (io.BytesIO)."""
        try:
            file.fileno()
        except (OSError, AttributeError, ValueError):
            return None
        try:
            seekable = file.seekable()
        except (OSError, ValueError):
            seekable = False
        if seekable:
            start = file.tell()
            digest = _digest_rest(file)
            file.seek(start)
        else:
            digest = StdinDigest(None, None)
        name = getattr(file, "name", None)
        what = f"the file {name}" if isinstance(name, str) else "an open file"
        return cls(StdinRecord(what), digest, path=None, file=file)

    @contextlib.contextmanager
    def open(self) -> Iterator[BinaryIO]:
        if self._path is not None:
            with open(self._path, "rb") as source:
                yield source
            return
        assert self._file is not None
        if self.rewindable:
            self._file.seek(self._start)
        yield self._file


def _digest_rest(file: BinaryIO) -> StdinDigest:
    digest = hashlib.sha256()
    size = 0
    while chunk := file.read(_STDIN_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return StdinDigest(size, digest.hexdigest())


def _stdin_feed(data: bytes | None) -> Any:
    """What sh gets as `_in` for stdin held in memory: a file kubectl reads itself, never a pipe sh
    feeds 1 KiB at a time. The file lives in memory (memfd), so a Secret never touches a disk."""
    if data is None:
        return None
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is None:  # not Linux: 1 MiB chunks through sh's pipe
        return (data[i : i + _STDIN_CHUNK] for i in range(0, len(data), _STDIN_CHUNK))
    memory = os.fdopen(memfd_create("kubectl-launcher-stdin", os.MFD_CLOEXEC), "w+b")
    memory.write(data)
    memory.flush()
    memory.seek(0)
    return memory
