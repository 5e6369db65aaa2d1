"""Classification of kubectl's stderr into typed errors, from the exact lines kubectl prints."""

from __future__ import annotations

import pytest

from kubectl_launcher import errors
from kubectl_launcher.kubectl.setup import parse_client_version
from kubectl_launcher.kubectl.stderr import classify

KLOG_127 = (
    "E1125 14:43:39.760244    9499 memcache.go:265] couldn't get current server API group list: "
    'Get "http://127.0.0.1:1/api?timeout=32s": dial tcp 127.0.0.1:1: connect: connection refused\n'
)
KLOG_133 = (
    'E1125 14:43:39.760244    9499 memcache.go:265] "Unhandled Error" err="couldn\'t get current server API '
    'group list: the server is currently unable to handle the request"\n'
)

# (stderr as kubectl prints it, expected class, expected reason)
TABLE = [
    ('Error from server (NotFound): pods "x" not found', errors.KubectlNotFound, "NotFound"),
    (
        'Error from server (AlreadyExists): error when creating "pod.yaml": pods "x" already exists',
        errors.KubectlAlreadyExists,
        "AlreadyExists",
    ),
    (
        'Error from server (Conflict): error when replacing "pod.yaml": Operation cannot be fulfilled on pods "x": '
        "the object has been modified; please apply your changes to the latest version and try again",
        errors.KubectlConflict,
        "Conflict",
    ),
    (
        'Error from server (Forbidden): pods "x" is forbidden: User "system:serviceaccount:nvflare:launcher" '
        'cannot get resource "pods" in API group "" in the namespace "default"',
        errors.KubectlForbidden,
        "Forbidden",
    ),
    (
        'Error from server (Forbidden): pods "x" is forbidden: exceeded quota: compute, requested: cpu=2',
        errors.KubectlUnavailable,
        "Forbidden",
    ),
    ("error: You must be logged in to the server (Unauthorized)", errors.KubectlUnauthorized, "Unauthorized"),
    ('The Pod "x" is invalid: spec.containers[0].image: Required value', errors.KubectlInvalid, "Invalid"),
    (
        'The Pod "x" is invalid: \n* spec.containers[0].image: Required value\n* metadata.name: Invalid value',
        errors.KubectlInvalid,
        "Invalid",
    ),
    (
        "Error from server (ServiceUnavailable): the server is currently unable to handle the request",
        errors.KubectlUnavailable,
        "ServiceUnavailable",
    ),
    (
        "Error from server (ServiceUnavailable): the server is currently unable to handle the request (get pods x)",
        errors.KubectlUnavailable,
        "ServiceUnavailable",
    ),
    (
        "Error from server (InternalError): Internal error occurred: etcdserver: request timed out",
        errors.KubectlUnavailable,
        "InternalError",
    ),
    (
        'Error from server (InternalError): an error on the server ("<html>bad gateway</html>") has prevented '
        "the request from succeeding (get pods x)",
        errors.KubectlUnavailable,
        "InternalError",
    ),
    (
        "Error from server (Timeout): Timeout: request did not complete within requested timeout - "
        "context deadline exceeded",
        errors.KubectlUnavailable,
        "Timeout",
    ),
    (
        "Error from server (TooManyRequests): Too many requests, please try again later.",
        errors.KubectlUnavailable,
        "TooManyRequests",
    ),
    (
        KLOG_133 * 5 + "Error from server (ServiceUnavailable): the server is currently unable to handle the request",
        errors.KubectlUnavailable,
        "ServiceUnavailable",
    ),
    (
        KLOG_127 * 5 + "The connection to the server 127.0.0.1:1 was refused - did you specify the right host or port?",
        errors.KubectlUnavailable,
        "ConnectionRefused",
    ),
    (
        "Unable to connect to the server: dial tcp: lookup nonexistent-host.invalid on 10.255.255.53:53: no such host",
        errors.KubectlError,
        "CannotConnect",
    ),
    ("Unable to connect to the server: net/http: TLS handshake timeout", errors.KubectlUnavailable, "CannotConnect"),
    (
        "Unable to connect to the server: tls: failed to verify certificate: x509: cannot validate certificate "
        "for 10.255.255.1 because it doesn't contain any IP SANs",
        errors.KubectlError,
        "CannotConnect",
    ),
    (
        "Unable to connect to the server: dial tcp 10.0.0.1:6443: i/o timeout",
        errors.KubectlUnavailable,
        "CannotConnect",
    ),
    ("Unable to connect to the server: EOF", errors.KubectlUnavailable, "CannotConnect"),
    (
        "Unable to connect to the server: net/http: request canceled (Client.Timeout exceeded while awaiting headers)",
        errors.KubectlUnavailable,
        "CannotConnect",
    ),
    ("Unable to connect to the server: context deadline exceeded", errors.KubectlUnavailable, "CannotConnect"),
    ("error: stat /nonexistent: no such file or directory", errors.KubectlError, "Configuration"),
    ("Error in configuration: context was not found for specified context: foo", errors.KubectlError, "Configuration"),
    ("error: current-context is not set", errors.KubectlError, "Configuration"),
    ('error: Apply failed with 1 conflict: conflict with "other": .spec.x', errors.KubectlError, "Unknown"),
    ("something kubectl never printed before", errors.KubectlError, "Unknown"),
]


@pytest.mark.parametrize("stderr, cls, reason", TABLE)
def test_stderr_is_classified_by_kubectls_last_words(stderr: str, cls: type[errors.KubectlError], reason: str) -> None:
    found = classify(stderr + "\n", 1)
    assert found.error_class is cls
    assert found.reason == reason
    assert found.message  # kubectl's own words are carried


def test_permanent_connection_errors_are_not_transient() -> None:
    found = classify("Unable to connect to the server: x509: certificate signed by unknown authority", 1)
    assert not found.error_class.transient


def test_remote_exit_code_becomes_the_errors_returncode() -> None:
    stderr = (
        'OCI runtime exec failed: exec failed: unable to start container process: exec: "tar": executable file '
        "not found in $PATH: unknown\ncommand terminated with exit code 126\n"
    )
    found = classify(stderr, 126)
    assert found.error_class is errors.RemoteCommandError
    assert found.returncode == 126


def test_our_deadline_is_a_transient_timeout() -> None:
    found = classify("", None, timed_out=True)
    assert found.error_class is errors.KubectlTimeout
    assert found.error_class.transient


def test_klog_lines_never_become_the_message() -> None:
    found = classify(KLOG_127 * 5 + 'Error from server (NotFound): pods "x" not found\n', 1)
    assert found.message == 'Error from server (NotFound): pods "x" not found'


def test_client_side_apply_conflict_drops_the_echoed_patch() -> None:
    stderr = "\n".join(
        [
            "Error from server (Conflict): error when applying patch:",
            '{"data":{"key":"c2VjcmV0LXZhbHVl"},"metadata":{"annotations":{}}}',
            "to:",
            'Resource: "/v1, Resource=secrets", GroupVersionKind: "/v1, Kind=Secret"',
            'Name: "x", Namespace: "default"',
            'for: "s.json": error when patching "s.json": Operation cannot be fulfilled on secrets "x": modified',
        ]
    )
    found = classify(stderr, 1)
    assert found.error_class is errors.KubectlConflict
    assert "c2VjcmV0LXZhbHVl" not in found.message
    assert "Operation cannot be fulfilled" in found.message


def test_message_is_cleaned_and_capped() -> None:
    found = classify("error: bad\x1b[31m thing " + "y" * 10_000 + "\n", 1)
    assert "\x1b" not in found.message
    assert len(found.message) <= 2048


@pytest.mark.parametrize(
    "stdout, version",
    [
        ('{"clientVersion": {"major": "1", "minor": "32", "gitVersion": "v1.32.5"}}', (1, 32)),
        ('{"clientVersion": {"major": "1", "minor": "32+", "gitVersion": "v1.32.4-dispatcher"}}', (1, 32)),
        ('{"clientVersion": {"gitVersion": "v1.28.15"}}', (1, 28)),
        ("not json", None),
    ],
)
def test_client_version_is_read_with_or_without_a_plus(stdout: str, version: tuple[int, int] | None) -> None:
    assert parse_client_version(stdout) == version
