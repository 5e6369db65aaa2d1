"""Journal → replay round trip with the real kubectl: the pasteable lines, then re-running them."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubectl_launcher import cli
from kubectl_launcher.kubectl import Kubectl, StdinRecord
from kubectl_launcher.kubectl.journal import Journal

try:
    from tests.support.status_server import Answer, StatusServer, running_status_server
except ModuleNotFoundError:  # run as `pytest`, not `python -m pytest`: the repository root is not on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.support.status_server import Answer, StatusServer, running_status_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def kubectl_binary(kubectl_path: str) -> str:
    # The suite-wide choice (tests/conftest.py): a missing binary fails the test loudly.
    return kubectl_path


@pytest.fixture
def server() -> Iterator[StatusServer]:
    with running_status_server() as srv:
        yield srv


@pytest.fixture
def recorded(kubectl_binary: str, server: StatusServer, tmp_path: Path) -> Journal:
    """A journal of three commands: a get, a create fed on stdin (rebuilt by `cat`), a failed get."""
    journal = Journal(str(tmp_path / "journal"))
    kubeconfig = server.write_kubeconfig(str(tmp_path / "kubeconfig"))
    kubectl = Kubectl(kubeconfig, kubectl=kubectl_binary, cache_dir=str(tmp_path / "cache"), journal=journal)
    kubectl.get_json(["get", "pod", "x", "--output", "json"])
    manifest = tmp_path / "pod.json"
    manifest.write_text(json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "y"}}))
    kubectl.run(
        ["create", "--validate=false", "-f", "-", "--output", "name"],
        stdin=manifest.read_bytes(),
        stdin_record=StdinRecord("pod y", ("cat", str(manifest))),
    )
    server.script = [Answer(status="NotFound")]
    kubectl.run(["get", "pod", "gone", "--output", "json"], check=False)
    return journal


def command_lines(path: str) -> list[str]:
    return [line for line in Path(path).read_text().splitlines() if line and not line.startswith("#")]


def test_dry_run_prints_the_lines_of_the_sh_file(recorded: Journal, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["replay", recorded.sh_path, "--dry-run"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed == command_lines(recorded.sh_path)
    assert len(printed) == 3
    assert printed[1].startswith(f"cat {shlex.quote(str(Path(recorded.directory).parent / 'pod.json'))} | KUBERC=off")


def test_pasted_lines_run_in_a_shell_as_recorded(recorded: Journal, server: StatusServer) -> None:
    # What an operator does: paste the first line into a shell.
    first = command_lines(recorded.sh_path)[0]
    done = subprocess.run(["sh", "-c", first], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["metadata"]["name"] == "x"


def test_replay_reruns_every_command_and_reports_same(
    recorded: Journal, server: StatusServer, capsys: pytest.CaptureFixture[str]
) -> None:
    before = server.pod_requests()
    server.script = [Answer(), Answer(), Answer(status="NotFound")]
    assert cli.main(["replay", recorded.sh_path]) == 0
    out = capsys.readouterr().out
    assert [f"[{n}] same" in out for n in (1, 2, 3)] == [True, True, True]
    assert server.pod_requests() - before == 3
    assert server.bodies[-1] == server.bodies[0]  # stdin rebuilt byte for byte


def test_replay_stops_at_a_different_result_and_shows_both(
    recorded: Journal, server: StatusServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.phase = "Failed"
    assert cli.main(["replay", recorded.sh_path]) == 1
    out = capsys.readouterr().out
    assert "[1] DIFFERENT: output" in out
    assert "phase=Running" in out and "phase=Failed" in out
    assert "[2]" not in out


def test_replay_from_n_with_keep_going(
    recorded: Journal, server: StatusServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.script = [Answer(status="AlreadyExists")]  # entry 2 now fails; entry 3 now succeeds
    assert cli.main(["replay", recorded.sh_path, "--from", "2", "--keep-going"]) == 1
    out = capsys.readouterr().out
    assert "[1]" not in out
    assert "[2] DIFFERENT: exit code" in out and "AlreadyExists" in out
    assert "[3] DIFFERENT: exit code" in out
