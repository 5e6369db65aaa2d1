"""The exception hierarchy: what went wrong, and whether a retry can help."""

from __future__ import annotations

from collections.abc import Sequence


class LauncherError(RuntimeError):
    """Base class of every error this package raises on purpose."""


class ConfigError(LauncherError, ValueError):
    """Bad settings or set-up, found before anything runs. The message names the field and the fix."""


class KubectlError(LauncherError):
    """kubectl ran (or tried to) and did not do what was asked.

    Carries the argv (already redacted by the site's one registry, kubectl/redact.py: never stdin, never a Secret),
    the exit code, and a capped, cleaned excerpt of kubectl's own message.
    """

    #: True when the same command may succeed if run again later.
    transient: bool = False

    def __init__(
        self,
        message: str,
        *,
        argv: Sequence[str] = (),
        returncode: int | None = None,
        stderr: str = "",
        reason: str | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stderr = stderr
        self.reason = reason
        self.attempts = attempts


class KubectlUnavailable(KubectlError):
    """Transient: cannot reach the server, TLS/i-o timeout, 5xx, 429. Retry with backoff."""

    transient = True


class KubectlTimeout(KubectlUnavailable):
    """Our own deadline killed kubectl."""


class KubectlRejected(KubectlError):
    """Permanent: the server answered and said no (Forbidden, Invalid, AlreadyExists, NotFound, ...)."""


class KubectlNotFound(KubectlRejected):
    """The object does not exist (HTTP 404 / reason NotFound)."""


class KubectlAlreadyExists(KubectlRejected):
    """The object exists already (HTTP 409 / reason AlreadyExists)."""


class KubectlConflict(KubectlRejected):
    """Optimistic-concurrency conflict; retry only after re-reading the object."""


class KubectlForbidden(KubectlRejected):
    """RBAC said no."""


class KubectlUnauthorized(KubectlRejected):
    """Credentials missing, wrong or expired."""


class KubectlInvalid(KubectlRejected):
    """The server refused the object as invalid (HTTP 422)."""


class RemoteCommandError(KubectlError):
    """`kubectl exec`/`cp` ran, but the command inside the container exited non-zero."""


class ProtocolError(LauncherError):
    """kubectl's output broke the contract: not JSON, wrong kind, missing fields."""


class TransferError(LauncherError):
    """The workspace could not be delivered to the pod, or results could not be brought back complete."""


class UnsafeArchiveError(TransferError):
    """Results from the pod tried to escape their folder (absolute path, `..`, link out, device file)."""
