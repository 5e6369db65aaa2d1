"""The kubectl seam: the only code that starts kubectl; classifies its failures and retries transient ones."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shlex
import shutil
import signal
import tempfile
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

import sh

from . import errors, kubectl_setup
from .journal import Journal, Redactor, StdinDigest

# Re-exported: callers and tests import these from the seam.
from .kubectl_errors import Classification, classify, message_lines
from .kubectl_setup import MIN_KUBECTL_VERSION, parse_client_version

_log = logging.getLogger(__name__)

DEFAULT_MAX_OUTPUT = 16 * 1024 * 1024
DEFAULT_MAX_STDERR = 256 * 1024
# stdin reaches kubectl as a file it reads itself (in memory for bytes, see _stdin_feed). sh writes
# bytes given as `_in` to a pipe 1 KiB per wake-up of its feeder thread: `kubectl exec -i POD -- sh -c
# 'cat > /dev/null'` on the API double took 64 MiB at 6.2 MiB/s that way; reading a file, 160-450 MiB/s
# (bytes or stdin_path, 64-256 MiB, 2 busy shared cores), as fast as kubectl started from a shell.
_STDIN_CHUNK = 1024 * 1024
_BACKOFF_FIRST = 0.5
_BACKOFF_CAP = 8.0

# Environment variables the child inherits from ours when set: where in-cluster credentials are
# found, and the proxy a site may need to reach its API server.
_PASS_THROUGH_ENV = (
    "KUBERNETES_SERVICE_HOST",
    "KUBERNETES_SERVICE_PORT",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "NO_PROXY",
    "no_proxy",
)


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
                try:
                    process.kill()
                except ProcessLookupError:
                    pass
            return True  # no more chunks
        self.chunks.append(data)
        self.size += len(data)
        return False

    def text(self) -> str:
        return b"".join(self.chunks).decode("utf-8", "replace")


class _HeadTailStderr:
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
        try:
            command = sh.Command(argv[0], search_paths=env.get("PATH", os.defpath).split(os.pathsep))
        except sh.CommandNotFound as exc:
            raise errors.ConfigError(
                f"kubectl binary {argv[0]!r} not found or not executable; install kubectl "
                f"{MIN_KUBECTL_VERSION[0]}.{MIN_KUBECTL_VERSION[1]} or newer, or pass its path as kubectl=..."
            ) from exc
        capped = _CappedStdout(self.max_stdout)
        stderr_sink = _HeadTailStderr(self.max_stderr)
        feed, own_feed = (stdin_file, False) if stdin_file is not None else (_stdin_feed(stdin), True)
        out_file = open(stdout_path, "wb") if stdout_path else None
        started_at = time.time()
        t0 = time.monotonic()
        returncode: int | None
        timed_out = False
        try:
            running = command(
                *argv[1:],
                _in=feed,
                _out=out_file if out_file is not None else capped,
                _err=stderr_sink,
                _env=dict(env),
                _tty_in=False,
                _tty_out=False,
                _timeout=timeout,
                _ok_code=list(range(256)),
                _bg_exc=False,
                _return_cmd=True,
            )
            returncode = running.exit_code
        except sh.TimeoutException:
            returncode, timed_out = None, True
        except sh.ErrorReturnCode as exc:  # killed by a signal (e.g. our output cap)
            returncode = exc.exit_code
        finally:
            if out_file is not None:
                out_file.close()
            if own_feed and hasattr(feed, "close"):
                feed.close()
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


class _FileStdin:
    """stdin streamed from a file: hashed once for the journal, rewound for each attempt."""

    def __init__(self, record: StdinRecord, digest: StdinDigest, *, path: str | None, file: BinaryIO | None) -> None:
        self.record = record
        self.digest = digest
        self._path = path
        self._file = file
        self._start = file.tell() if file is not None and digest.size is not None else 0
        self.rewindable = path is not None or digest.size is not None

    @classmethod
    def from_path(cls, path: str) -> _FileStdin:
        with open(path, "rb") as source:
            digest = _digest_rest(source)
        return cls(StdinRecord(f"the file {path}", ("cat", path)), digest, path=path, file=None)

    @classmethod
    def from_file(cls, file: BinaryIO) -> _FileStdin | None:
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


# --- long-running commands ----------------------------------------------------------------------


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
    """

    def __init__(
        self,
        kubectl: Kubectl,
        argv: tuple[str, ...],
        env: Mapping[str, str],
        *,
        on_exit: Callable[[CommandResult], None] | None,
        max_buffered: int,
        grace: float,
    ) -> None:
        self.argv = argv
        self._kubectl = kubectl
        self._env = env
        self._on_exit = on_exit
        self._max_buffered = max_buffered
        self._grace = grace
        self._lines: deque[str] = deque()
        self._buffered = 0
        self._cond = threading.Condition()
        self._ended = threading.Event()
        self._stderr = _HeadTailStderr(DEFAULT_MAX_STDERR)
        self.stopped = False  # stop() ended it (or the buffer overflowed)
        self.overflowed = False
        self.result: CommandResult | None = None  # set when kubectl has exited
        self.started_at = time.time()
        self._t0 = time.monotonic()
        try:
            command = sh.Command(argv[0], search_paths=env.get("PATH", os.defpath).split(os.pathsep))
        except sh.CommandNotFound as exc:
            raise errors.ConfigError(f"kubectl binary {argv[0]!r} not found or not executable") from exc
        self._running = command(
            *argv[1:],
            _bg=True,
            _bg_exc=False,
            _in=None,
            _out=self._line,
            _out_bufsize=1,
            _err=self._stderr,
            _env=dict(env),
            _tty_in=False,
            _tty_out=False,
            _ok_code=list(range(256)),
            _new_session=True,  # stop() ends kubectl's helpers too (credential plugins)
        )
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
        return iter_json_objects(self, limit=self._max_buffered, command=self._kubectl.describe(self.argv))

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
        found = classify(result.stderr, result.returncode)
        return self._kubectl._error(result, found, 1, 0.0)

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
        try:
            self._running.process.signal_group(signum)
        except (ProcessLookupError, PermissionError):
            pass

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
        try:
            self._running.wait()
            returncode: int | None = self._running.exit_code
        except sh.ErrorReturnCode as exc:  # ended by a signal
            returncode = exc.exit_code
        result = CommandResult(
            argv=self.argv,
            returncode=returncode,
            stderr=self._stderr.text(),
            duration=time.monotonic() - self._t0,
            started_at=self.started_at,
        )
        how = "overflowed" if self.overflowed else "stopped" if self.stopped else "ended"
        try:  # journaled before wait() returns, so that a caller finds the entry
            self._kubectl._record(result, None, None, self._env, 1, stream=how)
        except OSError:
            _log.exception("cannot journal %s", self._kubectl.describe(self.argv))
        with self._cond:
            self.result = result
            self._ended.set()
            self._cond.notify_all()
        if self._on_exit is not None:
            try:
                self._on_exit(result)
            except Exception:
                _log.exception("on_exit of %s failed", self._kubectl.describe(self.argv))


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


# --- the seam ------------------------------------------------------------------------------------


class _CacheDir:
    """A private discovery cache, removed when the last Kubectl sharing it is gone."""

    def __init__(self, path: str | None) -> None:
        self._given = path
        self._path: str | None = path
        self._lock = threading.Lock()

    @property
    def path(self) -> str:
        with self._lock:
            if self._path is None:
                self._path = tempfile.mkdtemp(prefix="kubectl-launcher-cache-")
                weakref.finalize(self, shutil.rmtree, self._path, True)
            return self._path


@dataclass
class _Shared:
    redactor: Redactor = field(default_factory=Redactor)


def _seconds(value: float) -> str:
    return f"{value:g}s"


class Kubectl:
    """Runs kubectl commands with our global flags, environment, deadline, journal and retry policy.

    This is the object NVFlare's K8s launcher API calls `api_instance`.
    """

    def __init__(
        self,
        kubeconfig: str | None = None,
        context: str | None = None,
        namespace: str = "default",
        kubectl: str = "kubectl",
        *,
        request_timeout: float = 30.0,
        command_timeout: float = 60.0,
        cache_dir: str | None = None,
        retries: int = 3,
        journal: Journal | None = None,
        runner: Runner | None = None,
        sleep: Callable[[float], None] = time.sleep,
        extra_env: Mapping[str, str] | None = None,
        max_output: int = DEFAULT_MAX_OUTPUT,
    ) -> None:
        if retries < 0:
            raise errors.ConfigError(f"retries must be 0 or more, got {retries}")
        if command_timeout <= 0 or request_timeout < 0:
            raise errors.ConfigError("command_timeout must be positive and request_timeout not negative")
        self.kubeconfig = kubeconfig
        self.context = context
        self.namespace = namespace
        self.kubectl = kubectl
        self.request_timeout = request_timeout
        self.command_timeout = command_timeout
        self.retries = retries
        self.max_output = max_output
        self.journals: tuple[Journal, ...] = (journal,) if journal is not None else ()
        self.runner: Runner = runner or ShRunner(max_stdout=max_output)
        self.sleep = sleep
        self.extra_env = dict(extra_env or {})
        self._cache = _CacheDir(cache_dir)
        self._shared = _Shared()

    # -- configuration --

    @property
    def cache_dir(self) -> str:
        return self._cache.path

    def redact(self, value: str) -> None:
        """Register a secret: it never appears in a journal or an error message."""
        self._shared.redactor.add(value)

    def note(self, text: str) -> None:
        """A remark for the operator in every journal of this Kubectl, between its commands (redacted)."""
        for journal in self.journals:
            journal.note(text, redactor=self._shared.redactor)

    def for_job(self, journal: Journal) -> Kubectl:
        """A copy whose commands go to this Kubectl's journals and to `journal` (one job's)."""
        clone = object.__new__(Kubectl)
        clone.__dict__.update(self.__dict__)
        clone.journals = (*self.journals, journal)
        return clone

    def env(self) -> dict[str, str]:
        """The child's complete environment (sh replaces, never merges)."""
        env = {
            "KUBERC": "off",
            "KUBECTL_KUBERC": "false",
            "LC_ALL": "C",
            "KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "true",
            "KUBECACHEDIR": self.cache_dir,
        }
        if self.kubeconfig is not None:
            env["KUBECONFIG"] = self.kubeconfig
        elif os.environ.get("KUBECONFIG"):
            env["KUBECONFIG"] = os.environ["KUBECONFIG"]
        for name in _PASS_THROUGH_ENV:
            if name in os.environ:
                env[name] = os.environ[name]
        env.update(self.extra_env)
        env["HOME"] = os.environ.get("HOME", "/")
        env["PATH"] = os.environ.get("PATH", os.defpath)
        return env

    def argv(self, args: Sequence[str]) -> tuple[str, ...]:
        """The full argv for a kubectl sub-command: binary, global flags, then `args`."""
        argv = [self.kubectl]
        if self.kubeconfig is not None:
            argv += ["--kubeconfig", self.kubeconfig]
        if self.context is not None:
            argv += ["--context", self.context]
        argv += ["--namespace", self.namespace, "--request-timeout", _seconds(self.request_timeout)]
        return (*argv, *args)

    def describe(self, argv: Sequence[str]) -> str:
        """argv as a redacted, shell-quoted string for messages."""
        return shlex.join(self._shared.redactor.argv(argv))

    # -- running --

    def run(
        self,
        args: Sequence[str],
        *,
        stdin: bytes | str | BinaryIO | None = None,
        stdin_record: StdinRecord | None = None,
        idempotent: bool = False,
        timeout: float | None = None,
        check: bool = True,
        stdout_path: str | None = None,
        stdin_path: str | None = None,
    ) -> CommandResult:
        """Run `kubectl <global flags> <args>`; with check=True a failure raises a typed KubectlError.

        idempotent=True retries transient failures (up to `retries` more attempts, exponential
        backoff). Every attempt is journaled. stdout is not to be trusted when returncode != 0.

        stdin: bytes or text held in memory, or an open binary file read from its current position
        to its end. `stdin_path` streams a file kubectl reads itself, never held in memory: the way
        to feed a large tar to `exec -i`. A file's digest is journaled; a file that cannot seek (a
        pipe) is not retried. Without a stdin_record, a path is journaled as `cat PATH | kubectl ...`.
        """
        if stdin is not None and stdin_path is not None:
            raise TypeError("pass stdin or stdin_path, not both")
        argv = self.argv(args)
        source: _FileStdin | None = None
        data: bytes | None = None
        if stdin_path is not None:
            source = _FileStdin.from_path(stdin_path)
        elif isinstance(stdin, str):
            data = stdin.encode()
        elif isinstance(stdin, bytes):
            data = stdin
        elif stdin is not None:
            source = _FileStdin.from_file(stdin)
            if source is None:  # no file descriptor (BytesIO): it is in memory anyway
                data = stdin.read()
        if source is not None and stdin_record is None:
            stdin_record = source.record
        env = self.env()
        deadline = timeout if timeout is not None else self.command_timeout
        attempts = 1 + (self.retries if idempotent and (source is None or source.rewindable) else 0)
        attempt = 0
        while True:
            attempt += 1
            if source is None:
                result = self.runner(argv, stdin=data, env=env, timeout=deadline, stdout_path=stdout_path)
                self._record(result, data, stdin_record, env, attempt)
            else:
                with source.open() as feed:
                    result = self.runner(
                        argv, stdin=None, env=env, timeout=deadline, stdout_path=stdout_path, stdin_file=feed
                    )
                self._record(result, source.digest, stdin_record, env, attempt)
            if result.stdout_truncated and check:
                raise errors.ProtocolError(
                    f"kubectl printed more than {self.max_output} bytes and was stopped; "
                    f"command: {self.describe(result.argv)}"
                )
            if result.returncode == 0 and not result.timed_out:
                return result
            found = classify(result.stderr, result.returncode, timed_out=result.timed_out)
            if found.error_class.transient and attempt < attempts:
                self.sleep(min(_BACKOFF_CAP, _BACKOFF_FIRST * 2 ** (attempt - 1)))
                continue
            if not check:
                return result
            raise self._error(result, found, attempt, deadline)

    def _record(
        self,
        result: CommandResult,
        stdin: bytes | StdinDigest | None,
        stdin_record: StdinRecord | None,
        env: Mapping[str, str],
        attempt: int,
        *,
        stream: str | None = None,
    ) -> None:
        shown_env = {k: v for k, v in env.items() if k not in ("HOME", "PATH")}
        for journal in self.journals:
            journal.record(
                result,
                stdin=stdin,
                stdin_record=stdin_record,
                env=shown_env,
                attempt=attempt,
                redactor=self._shared.redactor,
                stream=stream,
            )

    def _error(
        self, result: CommandResult, found: Classification, attempts: int, deadline: float
    ) -> errors.KubectlError:
        redactor = self._shared.redactor
        command = self.describe(result.argv)
        words = redactor.text(found.message) or "(no message on stderr)"
        if found.error_class is errors.KubectlTimeout:
            summary = f"kubectl did not finish within {deadline:g}s and was killed"
            if found.message:
                summary += f"; its last words: {words}"
        else:
            summary = f"kubectl failed: {words}"
        tried = f"{attempts} attempts" if attempts > 1 else "1 attempt"
        rc = "killed" if result.returncode is None else f"exit code {result.returncode}"
        message = f"{summary} [{rc}, {tried}; command: {command}]"
        returncode = found.returncode if found.returncode is not None else result.returncode
        return found.error_class(
            message,
            argv=redactor.argv(result.argv),
            returncode=returncode,
            stderr=words,
            reason=found.reason,
            attempts=attempts,
        )

    def stream(
        self,
        args: Sequence[str],
        *,
        on_exit: Callable[[CommandResult], None] | None = None,
        request_timeout: float | None = None,
        max_buffered: int | None = None,
        grace: float = 5.0,
    ) -> KubectlStream:
        """Start `kubectl <global flags> <args>` in the background and follow its stdout line by line.

        For commands that do not end by themselves: `get pods -l SELECTOR --watch --output-watch-events
        -o json`, `logs -f`. See KubectlStream for reading, the end of a watch (exit code 0: list
        again) and stop(). `request_timeout` replaces the Kubectl's for this command (kubectl makes
        it the watch's lifetime; 0: none). Raises ConfigError when the binary cannot be found.
        """
        argv = self.argv(args)
        if request_timeout is not None:
            at = argv.index("--request-timeout", 1)
            argv = (*argv[: at + 1], _seconds(request_timeout), *argv[at + 2 :])
        return KubectlStream(
            self,
            argv,
            self.env(),
            on_exit=on_exit,
            max_buffered=max_buffered if max_buffered is not None else self.max_output,
            grace=grace,
        )

    def get_json(self, args: Sequence[str], *, expect_kind: str | None = None) -> dict[str, Any] | None:
        """run() + parse stdout as JSON; empty stdout (e.g. --ignore-not-found) gives None."""
        result = self.run(args, idempotent=True)
        command = self.describe(result.argv)
        if result.stdout_truncated or len(result.stdout) > self.max_output:
            raise errors.ProtocolError(f"kubectl printed more than {self.max_output} bytes; command: {command}")
        if not result.stdout.strip():
            return None
        try:
            document = json.loads(result.stdout)
        except ValueError as exc:
            raise errors.ProtocolError(
                f"kubectl printed {len(result.stdout)} bytes that are not JSON ({exc}); command: {command}"
            ) from None
        if not isinstance(document, dict):
            raise errors.ProtocolError(f"kubectl printed JSON that is not an object; command: {command}")
        if expect_kind is not None and document.get("kind") != expect_kind:
            raise errors.ProtocolError(
                f"kubectl printed a {document.get('kind')!r} where a {expect_kind!r} was expected; command: {command}"
            )
        return document

    # -- preflight --

    def check_setup(self) -> None:
        """Raise ConfigError naming the problem and the fix, before a bad set-up looks like an outage."""
        kubectl_setup.check_setup(self)


__all__ = [
    "MIN_KUBECTL_VERSION",
    "Classification",
    "CommandResult",
    "Kubectl",
    "KubectlStream",
    "Runner",
    "ShRunner",
    "StdinRecord",
    "classify",
    "iter_json_objects",
    "message_lines",
    "parse_client_version",
]
