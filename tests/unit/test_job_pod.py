"""JobPod: one pod as an object over a scripted kubectl (a fake Runner inside a real Kubectl)."""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from collections.abc import Sequence
from pathlib import Path

import pytest

from kubectl_launcher.errors import ConfigError, KubectlRejected, ProtocolError
from kubectl_launcher.kubectl import CommandResult, Kubectl, commands, purpose
from kubectl_launcher.objects.job_pod import JobPod, PodRead, PodReadStatus
from tests.support import fake_runner
from tests.support.fake_runner import RunnerCall

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "pods"
POD = "j1-site-1-f505dccd"
FORBIDDEN = f'Error from server (Forbidden): pods "{POD}" is forbidden: User "x" cannot get resource "pods"'
REFUSED = "The connection to the server 127.0.0.1:6443 was refused - did you specify the right host or port?"
NOT_FOUND = f'Error from server (NotFound): pods "{POD}" not found'


class Runner(fake_runner.ScriptedRunner):
    """Each call must be the next scripted sub-command (after the global flags)."""

    def __init__(self) -> None:
        super().__init__()
        self.script: deque[tuple[tuple[str, ...], int, str, str]] = deque()

    def expect(self, args: Sequence[str], stdout: str = "", *, rc: int = 0, stderr: str = "") -> Runner:
        self.script.append((tuple(args), rc, stdout, stderr))
        return self

    def answer(self, call: RunnerCall) -> CommandResult:
        if not self.script:
            self.reject(f"unexpected command: {call.argv}")
        want, rc, stdout, stderr = self.script.popleft()
        args = call.argv[-len(want) :]
        if args != want:
            self.reject(f"expected {want}, got {call.argv}")
        return CommandResult(call.argv, rc, stdout, stderr)


def rig(namespace: str = "nvflare", pod_namespace: str | None = None) -> tuple[Runner, JobPod]:
    runner = Runner()
    kubectl = Kubectl(namespace=namespace, retries=0, runner=runner)
    return runner, JobPod(kubectl, POD, pod_namespace)


def running() -> str:
    return (FIXTURES / "running.json").read_text().replace("j550e8400-e29b-41d4-a716-446655440000-site-1-f505dccd", POD)


def namespaces(call: RunnerCall) -> list[str]:
    return [call.argv[i + 1] for i, word in enumerate(call.argv) if word in ("--namespace", "-n")]


def test_read_reports_found_gone_refused_and_unreachable() -> None:
    runner, pod = rig()
    runner.expect(commands.get_pod(POD), running()).expect(commands.get_pod(POD), "")
    runner.expect(commands.get_pod(POD), rc=1, stderr=FORBIDDEN).expect(commands.get_pod(POD), rc=1, stderr=REFUSED)
    runner.expect(commands.get_pod(POD), rc=1, stderr=NOT_FOUND)
    found, gone, refused, unreachable, not_found = (pod.read() for _ in range(5))
    assert found.status is PodReadStatus.FOUND and found.pod is not None and found.pod["metadata"]["name"] == POD
    assert gone.status is PodReadStatus.GONE and not_found.status is PodReadStatus.GONE
    assert refused.status is PodReadStatus.UNAVAILABLE and refused.permanent
    assert isinstance(refused.exception, KubectlRejected)
    assert unreachable.status is PodReadStatus.UNAVAILABLE and not unreachable.permanent
    assert "kubectl --namespace nvflare" in unreachable.error
    assert runner.unexpected == [] and not runner.script


def test_read_of_output_that_is_not_a_pod_is_unavailable_but_not_a_refusal() -> None:
    runner, pod = rig()
    runner.expect(commands.get_pod(POD), json.dumps({"kind": "Service"}))
    read = pod.read()
    assert read.status is PodReadStatus.UNAVAILABLE and not read.permanent
    assert isinstance(read.exception, ProtocolError)


def test_a_pod_in_another_namespace_is_reached_with_one_namespace_flag() -> None:
    runner, pod = rig(namespace="default", pod_namespace="nvflare")
    runner.expect(commands.get_pod(POD), "").expect(pod.delete_args(), "")
    assert pod.namespace == "nvflare"
    assert pod.read().status is PodReadStatus.GONE
    assert pod.delete() is True
    assert [namespaces(call) for call in runner.received] == [["nvflare"], ["nvflare"]]
    assert "--namespace nvflare" in pod.describe(pod.delete_args())


def test_events_are_a_list_or_none_when_they_cannot_be_read(caplog: pytest.LogCaptureFixture) -> None:
    runner, pod = rig()
    events = (FIXTURES / "events_image_pull_failed.json").read_text()
    runner.expect(commands.get_pod_events(POD), events).expect(commands.get_pod_events(POD), rc=1, stderr=FORBIDDEN)
    found = pod.events()
    assert found is not None and found and all("reason" in event for event in found)
    with caplog.at_level(logging.WARNING):
        assert pod.events() is None
    assert f"failed to query events for pod {POD} (namespace nvflare)" in caplog.text


def test_delete_says_whether_it_worked_and_logs_why_not(caplog: pytest.LogCaptureFixture) -> None:
    runner, pod = rig()
    runner.expect(commands.delete_pod(POD, grace_period=1), f'pod "{POD}" deleted\n')
    runner.expect(commands.delete_pod(POD, grace_period=1), rc=1, stderr=FORBIDDEN)
    runner.expect(commands.delete_secret("cred"), rc=1, stderr=FORBIDDEN)
    with caplog.at_level(logging.INFO):
        assert pod.delete() is True
        assert pod.delete() is False
        assert pod.delete_secret("cred") is False
    assert "--request-timeout 30s delete pod " in caplog.text
    assert f"failed to delete pod {POD}" in caplog.text
    assert "failed to delete Secret cred (namespace nvflare)" in caplog.text


def retire_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "kubectl-launcher-retire-credentials"]


def started_job_container() -> PodRead:
    return PodRead(PodReadStatus.FOUND, json.loads(running()))


CONTAINER = "container-j550e8400-e29b-41d4-a716-446655440000"


def test_the_credential_secret_is_retired_once_the_job_container_has_started_and_only_once() -> None:
    runner, pod = rig()
    runner.expect(commands.delete_secret("cred"), 'secret "cred" deleted\n')
    pending = PodRead(PodReadStatus.FOUND, {**json.loads(running()), "status": {"phase": "Pending"}})
    pod.retire_credentials(pending, CONTAINER, "cred", delay=0)
    assert retire_threads() == []  # the job container has not started: nothing to retire yet
    for _ in range(3):  # every look sees it running; one delete
        pod.retire_credentials(started_job_container(), CONTAINER, "cred", delay=0.2)
    for thread in retire_threads():
        thread.join(timeout=10)
    assert retire_threads() == []
    assert [call.argv[-len(commands.delete_secret("cred")) :] for call in runner.received] == [
        commands.delete_secret("cred")
    ]
    pod.clean_up(delete_pod=False, secret="cred")  # deleted already: not again
    assert runner.unexpected == [] and not runner.script and len(runner.received) == 1


def test_a_clean_up_during_the_retire_delay_deletes_the_secret_at_once_and_ends_the_wait() -> None:
    runner, pod = rig()
    runner.expect(commands.delete_secret("cred"), 'secret "cred" deleted\n')
    pod.retire_credentials(started_job_container(), CONTAINER, "cred", delay=3600)
    (waiting,) = retire_threads()
    assert runner.received == []  # it waits its delay: nothing deleted yet
    pod.clean_up(delete_pod=False, secret="cred")
    assert len(runner.received) == 1  # clean_up() deleted it itself, without waiting for the thread
    waiting.join(timeout=10)
    assert not waiting.is_alive()
    assert runner.unexpected == [] and not runner.script and len(runner.received) == 1


def test_apply_returns_the_pod_and_points_a_validation_failure_at_the_setting(tmp_path: Path) -> None:
    runner, pod = rig()
    manifest = str(tmp_path / "manifest.json")
    runner.expect(commands.apply_file(manifest), running())
    runner.expect(commands.apply_file(manifest, validate=False), "")
    runner.expect(
        commands.apply_file(manifest), rc=1, stderr="error: failed to download openapi; turn off with --validate=false"
    )
    assert pod.apply(manifest)["metadata"]["name"] == POD
    with pytest.raises(ProtocolError, match="printed nothing"):
        pod.apply(manifest, validate=False)
    with pytest.raises(ConfigError, match='"kubectl_validate": false'):
        pod.apply(manifest)


def test_exec_runs_in_the_named_container_and_a_copy_is_described_for_a_human(tmp_path: Path) -> None:
    runner, pod = rig()
    runner.expect(("exec", POD, "--container", "keeper", "--", "tar", "cf", "-", "."), "tar")
    pod.exec("keeper", ("tar", "cf", "-", "."), purpose=purpose.COLLECT, timeout=5)
    assert runner.received[0].timeout == 5
    assert pod.exec_args("init", ("cat",), stdin=True) == ("exec", POD, "--container", "init", "--stdin", "--", "cat")
    described = pod.describe(pod.copy_out_args("/ws/job", "/r", "keeper"))
    assert described.endswith(f"cp --container keeper {POD}:/ws/job /r")
