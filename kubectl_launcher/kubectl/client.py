"""The kubectl seam: `Kubectl` runs commands with our global flags, environment, journal and retry policy."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, BinaryIO

from kubectl_launcher import errors
from kubectl_launcher.kubectl import setup as kubectl_setup
from kubectl_launcher.kubectl.journal import Journal
from kubectl_launcher.kubectl.redact import Redactor
from kubectl_launcher.kubectl.retry import RetryPolicy
from kubectl_launcher.kubectl.runner import (
    DEFAULT_MAX_OUTPUT,
    PASS_THROUGH_ENV,
    SHORT_COMMAND_GO_ENV,
    CommandResult,
    FileStdin,
    Runner,
    ShRunner,
    StdinDigest,
    StdinRecord,
)
from kubectl_launcher.kubectl.stderr import Classification, classify
from kubectl_launcher.kubectl.stream import KubectlStream, ShStreamer, Streamer


class _CacheDir:
    """A private discovery cache, removed when the last Kubectl sharing it is gone."""

    def __init__(self, path: str | None) -> None:
        self._path: str | None = path
        self._lock = threading.Lock()

    @property
    def path(self) -> str:
        with self._lock:
            if self._path is None:
                self._path = tempfile.mkdtemp(prefix="kubectl-launcher-cache-")
                weakref.finalize(self, shutil.rmtree, self._path, True)
            return self._path


def _seconds(value: float) -> str:
    return f"{value:g}s"


class Kubectl:
    """Runs kubectl commands with our global flags, environment, deadline, journal and retry policy.

    This is the object NVFlare's K8s launcher API calls `api_instance`.

    Retries follow one RetryPolicy (retry.py): pass `retry=RetryPolicy(...)`, or its shorthands
    `retries` (default 3), `sleep` and `clock` (monotonic seconds), not both. Secrets are hidden by one
    registry per site: this Kubectl's, shared with its `for_job` copies and handed to every journal
    they record into; `redact(value)` registers one.
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
        retries: int | None = None,
        journal: Journal | None = None,
        runner: Runner | None = None,
        streamer: Streamer | None = None,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] | None = None,
        retry: RetryPolicy | None = None,
        extra_env: Mapping[str, str] | None = None,
        max_output: int = DEFAULT_MAX_OUTPUT,
    ) -> None:
        if retry is None:
            retry = RetryPolicy(
                retries=3 if retries is None else retries,
                sleep=sleep or time.sleep,
                clock=clock or time.monotonic,
            )
        elif retries is not None or sleep is not None or clock is not None:
            raise errors.ConfigError("pass retry=RetryPolicy(...) or its shorthands retries/sleep/clock, not both")
        if command_timeout <= 0 or request_timeout < 0:
            raise errors.ConfigError("command_timeout must be positive and request_timeout not negative")
        self.kubeconfig = kubeconfig
        self.context = context
        self.namespace = namespace
        self.kubectl = kubectl
        self.request_timeout = request_timeout
        self.command_timeout = command_timeout
        self.retry = retry
        self.max_output = max_output
        self.journals: tuple[Journal, ...] = (journal,) if journal is not None else ()
        self.runner: Runner = runner or ShRunner(max_stdout=max_output)
        self.streamer: Streamer = streamer or ShStreamer()
        self.extra_env = dict(extra_env or {})
        self._cache = _CacheDir(cache_dir)
        self._redactor = Redactor()  # the site's one registry: for_job copies share it

    # -- configuration --

    @property
    def cache_dir(self) -> str:
        return self._cache.path

    def redact(self, value: str) -> None:
        """Register a secret: from now on it never appears in a journal (the site's or any job's), a
        note, an error message or describe(). Values shorter than 4 characters are ignored."""
        self._redactor.add(value)

    def declare_public(self, *values: str) -> None:
        """Identifiers printed by design (job id, pod name, namespace, site, labels' values): a value equal
        to one, or part of one, is never registered as a secret (redact.py says why)."""
        self._redactor.declare_public(*values)

    def note(self, text: str) -> None:
        """A remark for the operator in every journal of this Kubectl, between its commands (redacted)."""
        for journal in self.journals:
            journal.note(text, redactor=self._redactor)

    def for_job(self, journal: Journal) -> Kubectl:
        """A copy whose commands go to this Kubectl's journals and to `journal` (one job's); it shares
        this Kubectl's redaction registry, retry policy and discovery cache."""
        clone = object.__new__(Kubectl)
        clone.__dict__.update(self.__dict__)
        clone.journals = (*self.journals, journal)
        return clone

    def env(self, *, ends_by_itself: bool = False) -> dict[str, str]:
        """The child's complete environment (sh replaces, never merges); `ends_by_itself`: for a command
        that is not a watch or a `logs -f` (see SHORT_COMMAND_GO_ENV)."""
        env = {
            "KUBERC": "off",
            "KUBECTL_KUBERC": "false",
            "LC_ALL": "C",
            "KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "true",
            "KUBECACHEDIR": self.cache_dir,
            **(SHORT_COMMAND_GO_ENV if ends_by_itself else {}),
        }
        if self.kubeconfig is not None:
            env["KUBECONFIG"] = self.kubeconfig
        elif os.environ.get("KUBECONFIG"):
            env["KUBECONFIG"] = os.environ["KUBECONFIG"]
        for name in PASS_THROUGH_ENV:
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
        return shlex.join(self._redactor.argv(argv))

    # -- running --

    def run(
        self,
        args: Sequence[str],
        *,
        stdin: bytes | str | BinaryIO | None = None,
        stdin_record: StdinRecord | None = None,
        idempotent: bool = False,
        timeout: float | None = None,
        total_timeout: float | None = None,
        check: bool = True,
        stdout_path: str | None = None,
        stdin_path: str | None = None,
        purpose: str = "",
    ) -> CommandResult:
        """Run `kubectl <global flags> <args>`; with check=True a failure raises a typed KubectlError.

        idempotent=True retries transient failures under the retry policy (retry.py): at most
        `retries` more attempts with capped exponential backoff, all within `total_timeout` seconds.
        `timeout` is each attempt's deadline (default: command_timeout), shortened to what is left of
        the total; `total_timeout=None` means RetryPolicy.default_total(timeout): room for every
        attempt and backoff, at most 600 s, never less than one `timeout`. Every attempt is
        journaled. stdout is not to be trusted when returncode != 0.

        stdin: bytes or text held in memory, or an open binary file read from its current position
        to its end. `stdin_path` streams a file kubectl reads itself, never held in memory: the way
        to feed a large tar to `exec -i`. A file's digest is journaled; a file that cannot seek (a
        pipe) is not retried. Without a stdin_record, a path is journaled as `cat PATH | kubectl ...`.
        `purpose` (a name from kubectl.purpose) is journaled with every attempt.
        """
        if stdin is not None and stdin_path is not None:
            raise TypeError("pass stdin or stdin_path, not both")
        argv = self.argv(args)
        source: FileStdin | None = None
        data: bytes | None = None
        if stdin_path is not None:
            source = FileStdin.from_path(stdin_path)
        elif isinstance(stdin, str):
            data = stdin.encode()
        elif isinstance(stdin, bytes):
            data = stdin
        elif stdin is not None:
            source = FileStdin.from_file(stdin)
            if source is None:  # no file descriptor (BytesIO): it is in memory anyway
                data = stdin.read()
        if source is not None and stdin_record is None:
            stdin_record = source.record
        env = self.env(ends_by_itself=True)
        operation = self.retry.start(
            timeout if timeout is not None else self.command_timeout,
            total_timeout,
            retryable=idempotent and (source is None or source.rewindable),
        )
        while True:
            deadline = operation.next_timeout()
            if source is None:
                result = self.runner(argv, stdin=data, env=env, timeout=deadline, stdout_path=stdout_path)
                self._record(result, data, stdin_record, env, operation.attempts, purpose=purpose)
            else:
                with source.open() as feed:
                    result = self.runner(
                        argv, stdin=None, env=env, timeout=deadline, stdout_path=stdout_path, stdin_file=feed
                    )
                self._record(result, source.digest, stdin_record, env, operation.attempts, purpose=purpose)
            if result.stdout_truncated and check:
                raise errors.ProtocolError(
                    f"kubectl printed more than {self.max_output} bytes and was stopped; "
                    f"command: {self.describe(result.argv)}"
                )
            if result.returncode == 0 and not result.timed_out:
                return result
            found = classify(result.stderr, result.returncode, timed_out=result.timed_out)
            if found.error_class.transient and operation.retry():
                continue
            if not check:
                return result
            out_of_time = operation.total if operation.out_of_time else None
            raise self._error(result, found, operation.attempts, deadline, out_of_time=out_of_time)

    def _record(
        self,
        result: CommandResult,
        stdin: bytes | StdinDigest | None,
        stdin_record: StdinRecord | None,
        env: Mapping[str, str],
        attempt: int,
        *,
        stream: str | None = None,
        purpose: str = "",
    ) -> None:
        shown_env = {k: v for k, v in env.items() if k not in ("HOME", "PATH")}
        for journal in self.journals:
            journal.record(
                result,
                stdin=stdin,
                stdin_record=stdin_record,
                env=shown_env,
                attempt=attempt,
                redactor=self._redactor,
                stream=stream,
                purpose=purpose,
            )

    def _error(
        self,
        result: CommandResult,
        found: Classification,
        attempts: int,
        deadline: float,
        *,
        out_of_time: float | None = None,
    ) -> errors.KubectlError:
        redactor = self._redactor
        command = self.describe(result.argv)
        words = redactor.text(found.message) or "(no message on stderr)"
        if found.error_class is errors.KubectlTimeout:
            summary = f"kubectl did not finish within {deadline:g}s and was killed"
            if found.message:
                summary += f"; its last words: {words}"
        else:
            summary = f"kubectl failed: {words}"
        tried = f"{attempts} attempts" if attempts > 1 else "1 attempt"
        if out_of_time is not None:
            tried += f", no retry within the total deadline of {out_of_time:g}s"
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

    def _stream_error(self, result: CommandResult) -> errors.KubectlError:
        return self._error(result, classify(result.stderr, result.returncode), 1, 0.0)

    def stream(
        self,
        args: Sequence[str],
        *,
        on_exit: Callable[[CommandResult], None] | None = None,
        request_timeout: float | None = None,
        max_buffered: int | None = None,
        grace: float = 5.0,
        purpose: str = "",
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
        env = self.env()

        def record(result: CommandResult, how: str) -> None:
            self._record(result, None, None, env, 1, stream=how, purpose=purpose)

        return KubectlStream(
            argv,
            env,
            record=record,
            error=self._stream_error,
            describe=self.describe,
            on_exit=on_exit,
            max_buffered=max_buffered if max_buffered is not None else self.max_output,
            grace=grace,
            streamer=self.streamer,
            purpose=purpose,
        )

    def get_json(
        self, args: Sequence[str], *, expect_kind: str | None = None, purpose: str = ""
    ) -> dict[str, Any] | None:
        """run() + parse stdout as JSON; empty stdout (e.g. --ignore-not-found) gives None."""
        result = self.run(args, idempotent=True, purpose=purpose)
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
