"""The seam with the real kubectl against a loopback Status server: error classes, deadline, output, stdin."""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from localkube.testing import SDK_BIN

from kubectl_launcher import errors
from kubectl_launcher.kubectl import Kubectl, StdinRecord
from kubectl_launcher.kubectl.journal import Journal
from tests.support.journals import recorded_commands

try:
    from tests.support.status_server import Answer, StatusServer, running_status_server
except ModuleNotFoundError:  # run as `pytest`, not `python -m pytest`: the repository root is not on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.support.status_server import Answer, StatusServer, running_status_server

pytestmark = pytest.mark.integration

GET_POD = ("get", "pod", "x", "--output", "json")


@pytest.fixture(scope="session")
def kubectl_binary(kubectl_path: str) -> str:
    # The suite-wide choice (tests/conftest.py): a missing binary fails the test loudly.
    return kubectl_path


@pytest.fixture
def server() -> Iterator[StatusServer]:
    with running_status_server() as srv:
        yield srv


@pytest.fixture
def kubeconfig(server: StatusServer, tmp_path: Path) -> str:
    return server.write_kubeconfig(str(tmp_path / "kubeconfig"))


def make_kubectl(kubectl_binary: str, kubeconfig: str, tmp_path: Path, **kw: object) -> Kubectl:
    options: dict[str, object] = {
        "kubectl": kubectl_binary,
        "cache_dir": str(tmp_path / "cache"),
        "sleep": lambda seconds: None,
        "journal": Journal(str(tmp_path / "journal")),
    }
    options.update(kw)
    return Kubectl(kubeconfig, **options)  # type: ignore[arg-type]


@pytest.fixture
def kubectl(kubectl_binary: str, kubeconfig: str, tmp_path: Path) -> Kubectl:
    return make_kubectl(kubectl_binary, kubeconfig, tmp_path)


def test_get_json_reads_a_pod(kubectl: Kubectl, server: StatusServer) -> None:
    pod = kubectl.get_json(GET_POD, expect_kind="Pod")
    assert pod is not None and pod["metadata"]["name"] == "x"
    assert server.requests == [("GET", "/api/v1/namespaces/default/pods/x")]


@pytest.mark.parametrize(
    "status, cls, words",
    [
        ("NotFound", errors.KubectlNotFound, 'Error from server (NotFound): pods "x" not found'),
        ("AlreadyExists", errors.KubectlAlreadyExists, 'pods "x" already exists'),
        ("Conflict", errors.KubectlConflict, "the object has been modified"),
        ("Forbidden", errors.KubectlForbidden, 'cannot get resource "pods"'),
        ("Unauthorized", errors.KubectlUnauthorized, "error: You must be logged in to the server (Unauthorized)"),
        ("Invalid", errors.KubectlInvalid, 'The Pod "x" is invalid: spec.containers[0].image: Required value'),
    ],
)
def test_permanent_errors_are_typed_and_not_retried(
    kubectl: Kubectl, server: StatusServer, status: str, cls: type[errors.KubectlError], words: str
) -> None:
    server.answer = Answer(status=status)
    with pytest.raises(cls) as caught:
        kubectl.get_json(GET_POD)
    assert words in str(caught.value)
    assert words in caught.value.stderr
    assert caught.value.returncode == 1
    assert caught.value.attempts == 1
    assert server.pod_requests() == 1


@pytest.mark.parametrize(
    "status, words",
    [
        ("InternalError", "Error from server (InternalError): Internal error occurred: etcdserver: request timed out"),
        ("ServiceUnavailable", "Error from server (ServiceUnavailable): the server is currently unable"),
        ("TooManyRequests", "Error from server (TooManyRequests): Too many requests"),
        ("QuotaExceeded", "exceeded quota"),
    ],
)
def test_transient_errors_are_retried_then_reported_with_the_attempts(
    kubectl_binary: str, kubeconfig: str, tmp_path: Path, server: StatusServer, status: str, words: str
) -> None:
    kubectl = make_kubectl(kubectl_binary, kubeconfig, tmp_path, retries=2)
    server.answer = Answer(status=status)
    with pytest.raises(errors.KubectlUnavailable) as caught:
        kubectl.get_json(GET_POD)
    assert words in str(caught.value)
    assert caught.value.attempts == 3
    assert "3 attempts" in str(caught.value)
    assert server.pod_requests() == 3


def test_a_transient_error_that_clears_is_retried_to_success(kubectl: Kubectl, server: StatusServer) -> None:
    server.script = [Answer(status="ServiceUnavailable"), Answer(status="InternalError")]
    pod = kubectl.get_json(GET_POD)
    assert pod is not None and pod["kind"] == "Pod"
    assert server.pod_requests() == 3


def test_writes_are_not_retried(kubectl: Kubectl, server: StatusServer) -> None:
    server.answer = Answer(status="ServiceUnavailable")
    manifest = json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}})
    with pytest.raises(errors.KubectlUnavailable) as caught:
        kubectl.run(["create", "--validate=false", "-f", "-"], stdin=manifest)
    assert caught.value.attempts == 1
    assert server.pod_requests() == 1


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_connection_refused_is_transient_and_carries_kubectls_words(
    kubectl_binary: str, server: StatusServer, tmp_path: Path
) -> None:
    port = closed_port()
    config = server.write_kubeconfig(str(tmp_path / "refused"), url=f"http://127.0.0.1:{port}")
    kubectl = make_kubectl(kubectl_binary, config, tmp_path, retries=1)
    with pytest.raises(errors.KubectlUnavailable) as caught:
        kubectl.run(["get", "pod", "x"], idempotent=True)
    assert f"The connection to the server 127.0.0.1:{port} was refused" in str(caught.value)
    assert caught.value.reason == "ConnectionRefused"
    assert caught.value.attempts == 2
    assert "E1" not in caught.value.stderr.split(":")[0]  # klog lines are not the message


def kubectl_processes(marker: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(int(pid))
    return found


def test_our_deadline_kills_a_hanging_kubectl(
    kubectl_binary: str, kubeconfig: str, tmp_path: Path, server: StatusServer
) -> None:
    kubectl = make_kubectl(kubectl_binary, kubeconfig, tmp_path, command_timeout=1.0, retries=0)
    server.answer = Answer(hang=True)
    with pytest.raises(errors.KubectlTimeout) as caught:
        kubectl.get_json(GET_POD)
    assert caught.value.returncode is None
    assert "did not finish within 1s and was killed" in str(caught.value)
    assert kubectl_processes(kubeconfig) == []
    (entry,) = recorded_commands(str(tmp_path / "journal"))
    assert entry.returncode is None and entry.data["timed_out"] is True


def test_huge_output_is_a_protocol_error(
    kubectl_binary: str, kubeconfig: str, tmp_path: Path, server: StatusServer
) -> None:
    kubectl = make_kubectl(kubectl_binary, kubeconfig, tmp_path, max_output=64 * 1024)
    server.answer = Answer(huge=1024 * 1024)
    with pytest.raises(errors.ProtocolError, match="more than 65536 bytes"):
        kubectl.get_json(GET_POD)


def test_huge_output_within_the_cap_is_read_whole(kubectl: Kubectl, server: StatusServer) -> None:
    server.answer = Answer(huge=2 * 1024 * 1024)
    pod = kubectl.get_json(GET_POD)
    assert pod is not None and len(pod["metadata"]["annotations"]["padding"]) == 2 * 1024 * 1024


def test_output_that_is_not_json_is_a_protocol_error(kubectl: Kubectl) -> None:
    with pytest.raises(errors.ProtocolError, match="not JSON"):
        kubectl.get_json(["get", "pod", "x", "--output", "name"])


def test_stdin_reaches_the_server_and_never_the_journal(kubectl: Kubectl, server: StatusServer, tmp_path: Path) -> None:
    marker = "stdin-marker-7f3a"
    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "x", "annotations": {"m": marker}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    source = tmp_path / "pod.json"
    source.write_text(json.dumps(manifest))
    result = kubectl.run(
        ["create", "--validate=false", "-f", "-", "--output", "json"],
        stdin=source.read_bytes(),
        stdin_record=StdinRecord("the pod manifest", ("cat", str(source))),
    )
    assert json.loads(result.stdout)["metadata"]["annotations"]["m"] == marker
    assert any(marker.encode() in body for body in server.bodies)
    for name in ("journal.sh", "journal.jsonl"):
        assert marker not in (tmp_path / "journal" / name).read_text()


def test_check_setup_accepts_a_good_configuration(kubectl_binary: str, kubeconfig: str, tmp_path: Path) -> None:
    make_kubectl(kubectl_binary, kubeconfig, tmp_path, context="status").check_setup()


@pytest.mark.parametrize(
    "change, words",
    [
        ({"context": "nope"}, "context 'nope' is not in the kubeconfig (it has: status)"),
        ({"kubeconfig": "/nonexistent/kubeconfig"}, "does not exist"),
        ({"kubectl": "/nonexistent/kubectl"}, "not found or not executable"),
        # The machine's real kubectl 1.28 (beside the PATH dispatcher); its absence fails the test, loudly.
        ({"kubectl": os.path.join(SDK_BIN, "kubectl.1.28")}, "is version 1.28; kubectl-launcher needs 1.29"),
    ],
)
def test_check_setup_names_the_problem(
    kubectl_binary: str, kubeconfig: str, tmp_path: Path, change: dict[str, str], words: str
) -> None:
    options: dict[str, object] = {"kubeconfig": kubeconfig}
    options.update(change)
    config = str(options.pop("kubeconfig"))
    kubectl = make_kubectl(str(options.pop("kubectl", kubectl_binary)), config, tmp_path, **options)
    with pytest.raises(errors.ConfigError) as caught:
        kubectl.check_setup()
    assert words in str(caught.value)
