"""kubectl's stderr → the error class to raise and whether a retry can help (pure: text in, verdict out).

Also `clean_excerpt`, the one way stderr is cut down before it reaches a message or a journal line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kubectl_launcher import errors

# klog's own lines (I0102 15:04:05.000000 ...): kubectl's diagnostics, never its verdict.
_KLOG = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ ")

_TRANSIENT_REASONS = frozenset({"ServiceUnavailable", "InternalError", "Timeout", "ServerTimeout", "TooManyRequests"})
_REASON_CLASSES: dict[str, type[errors.KubectlError]] = {
    "NotFound": errors.KubectlNotFound,
    "AlreadyExists": errors.KubectlAlreadyExists,
    "Conflict": errors.KubectlConflict,
    "Forbidden": errors.KubectlForbidden,
    "Unauthorized": errors.KubectlUnauthorized,
    "Invalid": errors.KubectlInvalid,
}
# Substrings that mean "try again later" whatever the wrapper (Argo's and Garden's lists, trimmed).
_TRANSIENT_TEXT = (
    "connection refused",
    "connection reset by peer",
    "i/o timeout",
    "TLS handshake timeout",
    "http2: client connection lost",
    "etcdserver: leader changed",
    "etcdserver: request timed out",
    "etcdserver: too many requests",
    "resource quota evaluation timed out",
    "Operation cannot be fulfilled on resourcequota",
    "exceeded quota",
    "context deadline exceeded",
    "Client.Timeout exceeded",
    "unexpected EOF",
)
_PERMANENT_CONNECT_TEXT = ("x509", "no such host", "certificate")

_REMOTE_EXIT = re.compile(r"^command terminated with exit code (\d+)")
_SERVER_REASON = re.compile(r"^Error from server \((\w+)\): ")
_SERVER_NO_REASON = re.compile(r"^Error from server: ")
_UNAUTHORIZED = re.compile(r"^error: You must be logged in to the server")
_INVALID = re.compile(r'^The \S+ "[^"]*" is invalid')
_REFUSED = re.compile(r"^The connection to the server (\S+) was refused")
_UNABLE = re.compile(r"^Unable to connect to the server: ")
_CONFIG = re.compile(r"^(Error in configuration: |error: stat |error: current-context)")
_GENERIC = re.compile(r"^error: ")
_HEADERS = (_REMOTE_EXIT, _SERVER_REASON, _SERVER_NO_REASON, _UNAUTHORIZED, _INVALID, _REFUSED, _UNABLE, _CONFIG)


def clean_excerpt(text: str, limit: int = 2048) -> str:
    """One line: control characters dropped, whitespace collapsed, head and tail kept within `limit`."""
    text = "".join(ch if ch.isprintable() or ch.isspace() else " " for ch in text)
    text = " ".join(text.split())
    if len(text) > limit:
        half = (limit - 5) // 2
        text = f"{text[:half]} ... {text[-half:]}"
    return text


@dataclass(frozen=True)
class Classification:
    error_class: type[errors.KubectlError]
    reason: str
    message: str  # kubectl's own words, cleaned and capped
    returncode: int | None = None  # the remote exit code, for `command terminated with exit code N`


def message_lines(stderr: str) -> list[str]:
    """stderr without klog lines and blank lines."""
    return [line for line in stderr.splitlines() if line.strip() and not _KLOG.match(line)]


def _kubectl_words(lines: list[str]) -> tuple[str, str]:
    """(the line that says what went wrong, the message from there to the end)."""
    for i in range(len(lines) - 1, -1, -1):
        if any(p.match(lines[i]) for p in _HEADERS):
            break
    else:
        for i in range(len(lines) - 1, -1, -1):
            if _GENERIC.match(lines[i]):
                break
        else:
            i = len(lines) - 1
    header = lines[i] if lines else ""
    rest = lines[i:]
    if header.rstrip().endswith("error when applying patch:") and len(rest) > 2:
        # Client-side apply echoes the whole patch (Secret data included); keep only the verdict.
        rest = [header, rest[-1]]
    return header, clean_excerpt("\n".join(rest))


def classify(stderr: str, returncode: int | None, *, timed_out: bool = False) -> Classification:
    """Map a failed command to an error class from kubectl's last words on stderr."""
    lines = message_lines(stderr)
    header, message = _kubectl_words(lines)
    if timed_out or returncode is None:
        return Classification(errors.KubectlTimeout, "DeadlineExceeded", message)
    transient_text = any(t.lower() in message.lower() for t in _TRANSIENT_TEXT)
    if m := _REMOTE_EXIT.match(header):
        return Classification(errors.RemoteCommandError, "RemoteCommandFailed", message, int(m.group(1)))
    if m := _SERVER_REASON.match(header):
        reason = m.group(1)
        if reason in _TRANSIENT_REASONS or (reason == "Forbidden" and "exceeded quota" in message):
            return Classification(errors.KubectlUnavailable, reason, message)
        return Classification(_REASON_CLASSES.get(reason, errors.KubectlRejected), reason, message)
    if _SERVER_NO_REASON.match(header):
        cls = errors.KubectlUnavailable if transient_text else errors.KubectlRejected
        return Classification(cls, "ServerError", message)
    if _UNAUTHORIZED.match(header):
        return Classification(errors.KubectlUnauthorized, "Unauthorized", message)
    if _INVALID.match(header):
        return Classification(errors.KubectlInvalid, "Invalid", message)
    if _REFUSED.match(header):
        return Classification(errors.KubectlUnavailable, "ConnectionRefused", message)
    if _UNABLE.match(header):
        if any(t in message for t in _PERMANENT_CONNECT_TEXT):
            return Classification(errors.KubectlError, "CannotConnect", message)
        return Classification(errors.KubectlUnavailable, "CannotConnect", message)
    if _CONFIG.match(header):
        return Classification(errors.KubectlError, "Configuration", message)
    if transient_text:
        return Classification(errors.KubectlUnavailable, "Transient", message)
    return Classification(errors.KubectlError, "Unknown", message)


__all__ = ["Classification", "classify", "clean_excerpt", "message_lines"]
