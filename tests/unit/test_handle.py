"""K8sJobHandle driven by a scripted kubectl (a fake Runner inside a real Kubectl) and a fake clock."""

from __future__ import annotations

import copy
import json
import logging
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from kubectl_launcher.domain.pod_status import JobState
from kubectl_launcher.errors import TransferError
from kubectl_launcher.handle import K8sJobHandle, PodReadStatus
from kubectl_launcher.kubectl import CommandResult, Kubectl, commands
from kubectl_launcher.objects.job_pod import JobPod
from tests.support import fake_runner
from tests.support.fake_runner import RunnerCall

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "pods"
POD = "j550e8400-e29b-41d4-a716-446655440000-site-1-f505dccd"
CONTAINER = "container-j550e8400-e29b-41d4-a716-446655440000"
SECRET = f"nvflare-cred-{POD}"
NS = "nvflare"
JOB_CONFIG = {
    "name": POD,
    "image": "nvflare/nvflare:2.9.0",
    "container_name": CONTAINER,
    "command": "nvflare.private.fed.app.client.worker_process",
    "module_args": {"-m": "/var/tmp/nvflare/workspace", "-n": "550e8400-e29b-41d4-a716-446655440000"},
}
REFUSED = "The connection to the server 127.0.0.1:6443 was refused - did you specify the right host or port?"
UNAVAILABLE_503 = (
    "Error from server (ServiceUnavailable): the server is currently unable to handle the request (get pods "
    + POD
    + ")"
)
FORBIDDEN = (
    f'Error from server (Forbidden): pods "{POD}" is forbidden: User "system:serviceaccount:{NS}:nvflare" '
    f'cannot get resource "pods" in API group "" in the namespace "{NS}"'
)
T0 = 1748779200.0  # 2025-06-01T12:00:00Z, when the recorded pods were created

GET_POD = commands.get_pod(POD)
GET_EVENTS = commands.get_pod_events(POD)
DELETE_POD = commands.delete_pod(POD, grace_period=1)
DELETE_SECRET = commands.delete_secret(SECRET)


def pod_json(name: str) -> str:
    return (FIXTURES / name).read_text()


def events_json(name: str = "events_empty.json", *, shift: float = 0.0) -> str:
    return (FIXTURES / name).read_text()


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class ScriptedRunner(fake_runner.ScriptedRunner):
    """Plays kubectl: each call must be the next scripted sub-command, or the test fails loudly."""

    def __init__(self, prefix: int) -> None:
        super().__init__()
        self.prefix = prefix
        self.script: deque[tuple[tuple[str, ...], int | None, str, str]] = deque()
        self.calls: list[tuple[str, ...]] = []

    def expect(self, args: Sequence[str], stdout: str = "", *, rc: int | None = 0, stderr: str = "") -> ScriptedRunner:
        self.script.append((tuple(args), rc, stdout, stderr))
        return self

    def answer(self, call: RunnerCall) -> CommandResult:
        args = call.argv[self.prefix :]
        self.calls.append(args)
        if not self.script:
            self.reject(f"unscripted kubectl call: {args}")
        want, rc, stdout, stderr = self.script.popleft()
        if want != args:
            self.reject(f"expected {want}, got {args}")
        return CommandResult(call.argv, rc, stdout, stderr, timed_out=rc is None)


class Rig:
    def __init__(self, *, retries: int = 0, namespace: str = NS) -> None:
        self.clock = FakeClock()
        probe = Kubectl(namespace=namespace)
        self.runner = ScriptedRunner(len(probe.argv(())))
        self.kubectl = Kubectl(namespace=namespace, retries=retries, runner=self.runner, sleep=self.clock.sleep)

    def handle(self, **kwargs: Any) -> K8sJobHandle:
        kwargs.setdefault("namespace", NS)
        kwargs.setdefault("pod_name", POD)
        kwargs.setdefault("credential_secret_name", SECRET)
        kwargs.setdefault("clock", self.clock.time)
        kwargs.setdefault("sleep", self.clock.sleep)
        # upstream's policy asks at every pending look; the grace has its own tests
        kwargs.setdefault("events_grace", 0.0)
        return K8sJobHandle("j550e8400-e29b-41d4-a716-446655440000", self.kubectl, copy.deepcopy(JOB_CONFIG), **kwargs)

    def pod(self, fixture: str) -> Rig:
        self.runner.expect(GET_POD, pod_json(fixture))
        return self

    def events(self, fixture: str = "events_empty.json") -> Rig:
        self.runner.expect(GET_EVENTS, events_json(fixture))
        return self

    def fail(self, args: Sequence[str], stderr: str, rc: int | None = 1) -> Rig:
        self.runner.expect(args, rc=rc, stderr=stderr)
        return self

    def gone(self) -> Rig:
        self.runner.expect(GET_POD, "")
        return self

    def deletes(self, *, pod: bool = True, secret: bool = True) -> Rig:
        if pod:
            self.runner.expect(DELETE_POD, f'pod "{POD}" deleted\n')
        if secret:
            self.runner.expect(DELETE_SECRET, f'secret "{SECRET}" deleted\n')
        return self


@pytest.fixture
def rig() -> Iterator[Rig]:
    r = Rig()
    yield r
    assert r.runner.unexpected == []
    assert list(r.runner.script) == [], "scripted kubectl calls that never happened"


# --- construction and the manifest --------------------------------------------------------------


def test_constructing_a_handle_runs_no_kubectl(rig: Rig) -> None:
    handle = rig.handle()
    assert rig.runner.calls == []
    assert handle.pod_name == POD
    assert handle.terminal_state is None and handle.terminal_return_code is None


def test_get_manifest_returns_a_deep_copy() -> None:
    handle = K8sJobHandle("job1", None, JOB_CONFIG)
    manifest = handle.get_manifest()
    assert manifest["metadata"]["name"] == POD
    assert manifest["spec"]["containers"][0]["name"] == CONTAINER
    manifest["spec"]["containers"][0]["image"] = "changed"
    assert handle.get_manifest()["spec"]["containers"][0]["image"] == "nvflare/nvflare:2.9.0"


def test_pod_name_defaults_to_the_job_id() -> None:
    assert K8sJobHandle("job1", None, JOB_CONFIG).pod_name == "job1"


@pytest.mark.parametrize("missing", ["image", "command"])
def test_a_missing_image_or_command_is_upstreams_value_error(missing: str) -> None:
    config = {k: v for k, v in JOB_CONFIG.items() if k != missing}
    with pytest.raises(ValueError, match=f"job_config must contain a non-empty '{missing}' key"):
        K8sJobHandle("job1", None, config)


@pytest.mark.parametrize("bad", [-1, "10", True, [1]])
def test_a_bad_pending_timeout_is_upstreams_value_error(bad: Any) -> None:
    with pytest.raises(ValueError, match="pending_timeout must be a non-negative number of seconds or None"):
        K8sJobHandle("job1", None, JOB_CONFIG, pending_timeout=bad)


def test_a_handle_without_kubectl_refuses_to_poll() -> None:
    with pytest.raises(RuntimeError, match="api_instance=None"):
        K8sJobHandle("job1", None, JOB_CONFIG).poll()


def test_a_handle_failed_at_launch_polls_its_outcome_without_kubectl() -> None:
    handle = K8sJobHandle("job1", None, JOB_CONFIG)
    assert handle.end(JobState.TERMINATED, 101) is True
    assert handle.end(JobState.SUCCEEDED) is False  # the first outcome stays
    assert handle.poll() == 101
    handle.wait()
    assert handle.enter_states(JobState.RUNNING) is False


# --- reaching RUNNING ---------------------------------------------------------------------------


def test_enter_states_reaches_running_after_the_pod_starts(rig: Rig) -> None:
    rig.pod("pending_just_created.json").events("events_normal_only.json")
    rig.pod("pending_container_creating.json").events("events_normal_only.json")
    rig.pod("running.json")
    handle = rig.handle()
    assert handle.enter_states([JobState.RUNNING]) is True
    assert rig.clock.slept == [1.0, 1.0]
    assert handle.terminal_state is None


def test_enter_states_accepts_one_state_and_rejects_other_values(rig: Rig) -> None:
    rig.pod("running.json")
    handle = rig.handle()
    assert handle.enter_states(JobState.RUNNING) is True
    with pytest.raises(ValueError, match="expect job_states_to_enter with valid values"):
        handle.enter_states(["running"])  # type: ignore[list-item]


def test_enter_states_is_false_when_the_job_ends_before_running(rig: Rig) -> None:
    rig.pod("failed_exit_1.json").deletes(pod=False)
    handle = rig.handle()
    assert handle.enter_states([JobState.RUNNING]) is False
    assert handle.poll() == 9


def test_enter_states_times_out_deletes_the_pod_and_reports_exception(rig: Rig) -> None:
    for _ in range(4):
        rig.pod("pending_container_creating.json").events()
    rig.deletes()
    handle = rig.handle(timeout=3)
    assert handle.enter_states([JobState.RUNNING]) is False
    assert handle.poll() == 101
    assert handle.terminal_state is JobState.TERMINATED


# --- pending classification in the handle --------------------------------------------------------


@pytest.mark.parametrize(
    "fixture",
    [
        "pending_image_pull_backoff.json",
        "pending_err_image_pull.json",
        "pending_create_container_config_error.json",
        "pending_init_image_pull_backoff.json",
        "pending_unscheduled_node_affinity.json",
        "unknown_node_lost.json",
    ],
)
def test_a_startup_failure_deletes_the_pod_and_reports_exception(
    rig: Rig, fixture: str, caplog: pytest.LogCaptureFixture
) -> None:
    rig.pod(fixture).deletes()
    handle = rig.handle()
    with caplog.at_level(logging.INFO):
        assert handle.enter_states([JobState.RUNNING]) is False
    assert handle.poll() == 101
    assert rig.clock.slept == []
    assert f"pod {POD} (namespace {NS})" in caplog.text
    assert "--request-timeout 30s delete pod " in caplog.text


def test_a_recent_warning_event_fails_a_scheduled_pod(rig: Rig) -> None:
    rig.clock.now = T0 + 60
    rig.pod("pending_container_creating.json").events("events_image_pull_failed.json").deletes()
    assert rig.handle().poll() == 101


def test_insufficient_cpu_waits_for_pending_timeout_then_fails(rig: Rig) -> None:
    for _ in range(6):
        rig.pod("pending_unscheduled_insufficient_cpu.json")
    rig.deletes()
    handle = rig.handle(pending_timeout=5)
    handle.wait()
    assert rig.clock.now == T0 + 5
    assert handle.poll() == 101


def test_pending_timeout_zero_fails_on_the_first_shortage(rig: Rig) -> None:
    rig.pod("pending_unscheduled_insufficient_gpu.json").deletes()
    handle = rig.handle(pending_timeout=0)
    assert handle.poll() == 101


def test_pending_timeout_none_waits_until_the_launch_timeout(rig: Rig) -> None:
    for _ in range(11):
        rig.pod("pending_unscheduled_insufficient_memory.json")
    rig.deletes()
    handle = rig.handle(pending_timeout=None, timeout=10)
    assert handle.enter_states([JobState.RUNNING]) is False
    assert handle.poll() == 101


def test_progress_resets_the_resource_timer(rig: Rig) -> None:
    for _ in range(3):
        rig.pod("pending_unscheduled_insufficient_cpu.json")
    rig.pod("pending_container_creating.json").events()  # scheduled: the shortage is over
    for _ in range(3):
        rig.pod("pending_unscheduled_insufficient_cpu.json")  # e.g. a preempted, rescheduled pod
    handle = rig.handle(pending_timeout=3)
    codes = []
    for _ in range(7):
        codes.append(handle.poll())
        rig.clock.sleep(1)
    assert codes == [127] * 7
    assert handle.terminal_state is None


def test_a_failed_pod_read_pauses_the_resource_timer(rig: Rig) -> None:
    rig.pod("pending_unscheduled_insufficient_cpu.json")  # t=0 starts the timer
    for _ in range(5):
        rig.fail(GET_POD, REFUSED)  # t=1..5: we cannot see; the gap does not count
    rig.pod("pending_unscheduled_insufficient_cpu.json")  # t=6: resumes at 1 s of waiting
    rig.pod("pending_unscheduled_insufficient_cpu.json")  # t=7: 2 s
    rig.pod("pending_unscheduled_insufficient_cpu.json").deletes()  # t=8: 3 s -> fail
    handle = rig.handle(pending_timeout=3)
    codes = []
    for _ in range(9):
        codes.append(handle.poll())
        rig.clock.sleep(1)
    assert codes == [127] * 8 + [101]


def test_a_failed_event_query_pauses_the_timer_of_an_unscheduled_pod(rig: Rig) -> None:
    shortage = "events_failed_scheduling_insufficient_cpu_series.json"
    rig.pod("pending_just_created.json").events(shortage)  # t=0 starts the timer
    for _ in range(4):
        rig.pod("pending_just_created.json").fail(GET_EVENTS, UNAVAILABLE_503)  # t=1..4 paused
    rig.pod("pending_just_created.json").events(shortage)  # t=5: 1 s
    rig.pod("pending_just_created.json").events(shortage).deletes()  # t=6: 2 s -> fail
    handle = rig.handle(pending_timeout=2)
    codes = []
    for _ in range(7):
        codes.append(handle.poll())
        rig.clock.sleep(1)
    assert codes == [127] * 6 + [101]


def test_an_unscheduled_pod_with_no_scheduler_verdict_keeps_waiting(rig: Rig) -> None:
    for _ in range(3):
        rig.pod("pending_just_created.json").events()
    handle = rig.handle(pending_timeout=0)
    assert [handle.poll() for _ in range(3)] == [127, 127, 127]


# --- outcomes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "code", "state"),
    [
        ("succeeded.json", 0, JobState.SUCCEEDED),
        ("failed_exit_1.json", 9, JobState.TERMINATED),
        ("failed_exit_101.json", 101, JobState.TERMINATED),
        ("failed_exit_102.json", 102, JobState.TERMINATED),
        ("failed_exit_103.json", 103, JobState.TERMINATED),
        ("failed_exit_137_oomkilled.json", 9, JobState.TERMINATED),
        ("failed_sidecar_exit_101.json", 9, JobState.TERMINATED),
    ],
)
def test_the_outcome_follows_the_ended_pod_and_the_secret_goes_once(
    rig: Rig, fixture: str, code: int, state: JobState
) -> None:
    rig.pod("running.json").pod(fixture).deletes(pod=False)
    handle = rig.handle()
    assert handle.poll() == 127
    assert handle.poll() == code
    assert handle.terminal_state is state
    assert handle.poll() == code  # no more kubectl calls once ended
    handle.wait()


def test_wait_returns_when_the_pod_ends(rig: Rig) -> None:
    rig.pod("running.json").pod("running.json").pod("succeeded.json").deletes(pod=False)
    handle = rig.handle()
    handle.wait()
    assert handle.poll() == 0
    assert rig.clock.slept == [1.0, 1.0]


def test_a_vanished_pod_is_terminated(rig: Rig) -> None:
    rig.pod("running.json").gone().deletes(pod=False)
    handle = rig.handle()
    assert handle.poll() == 127
    assert handle.poll() == 9
    assert handle.terminal_state is JobState.TERMINATED


def test_a_pod_with_no_phase_yet_is_unknown_and_pauses_the_timer(rig: Rig) -> None:
    rig.pod("no_phase.json").pod("running.json")
    handle = rig.handle()
    assert handle.poll() == 127
    assert handle.poll() == 127


# --- kubectl failures -------------------------------------------------------------------------


def test_transient_failures_report_unknown_and_the_next_poll_recovers(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    rig.pod("running.json")
    rig.fail(GET_POD, REFUSED).fail(GET_POD, UNAVAILABLE_503).fail(GET_POD, "", rc=None)
    rig.runner.expect(GET_POD, "<html>bad gateway</html>")  # not JSON: a ProtocolError
    rig.pod("running.json").pod("succeeded.json").deletes(pod=False)
    handle = rig.handle()
    with caplog.at_level(logging.DEBUG):
        codes = [handle.poll() for _ in range(7)]
    assert codes == [127] * 6 + [0]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # the first failure is logged, repeats are quiet
    assert "kubectl --namespace nvflare" in warnings[0].getMessage()
    assert "can be read again after 4 failed attempt(s)" in caplog.text


def test_the_seam_retries_a_transient_failure_within_one_poll() -> None:
    r = Rig(retries=2)
    r.fail(GET_POD, REFUSED).fail(GET_POD, REFUSED).pod("running.json")
    handle = r.handle()
    assert handle.poll() == 127
    assert r.runner.unexpected == [] and not r.runner.script
    assert r.clock.slept == [0.5, 1.0]  # Kubectl's backoff, through the fake clock


def test_a_refusing_server_is_logged_loudly_and_fails_the_job_after_the_limit(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(4):
        rig.fail(GET_POD, FORBIDDEN)
    rig.fail(DELETE_POD, FORBIDDEN).fail(DELETE_SECRET, FORBIDDEN)
    handle = rig.handle(permanent_failure_limit=3)
    with caplog.at_level(logging.INFO):
        handle.wait()
    assert handle.poll() == 101
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "kubectl was refused reading" in errors[0] and "Forbidden" in errors[0]
    assert sum("kubectl was refused reading" in e for e in errors) == 1
    assert any("failed to delete" in e for e in errors)


def test_a_refusal_that_ends_keeps_the_job_alive(rig: Rig) -> None:
    rig.fail(GET_POD, FORBIDDEN).fail(GET_POD, FORBIDDEN).pod("running.json")
    rig.fail(GET_POD, FORBIDDEN).fail(GET_POD, FORBIDDEN).pod("running.json")
    handle = rig.handle(permanent_failure_limit=2)
    codes = []
    for _ in range(6):
        codes.append(handle.poll())
        rig.clock.sleep(1)
    assert codes == [127] * 6


def test_no_limit_means_a_refusing_server_never_fails_the_job(rig: Rig) -> None:
    for _ in range(5):
        rig.fail(GET_POD, FORBIDDEN)
    handle = rig.handle(permanent_failure_limit=None)
    for _ in range(5):
        assert handle.poll() == 127
        rig.clock.sleep(1000)


# --- terminate ---------------------------------------------------------------------------------


def test_terminate_deletes_pod_and_secret_once(rig: Rig) -> None:
    rig.pod("running.json").deletes()
    handle = rig.handle()
    assert handle.poll() == 127
    handle.terminate()
    handle.terminate()
    assert handle.poll() == 9
    assert rig.runner.calls.count(DELETE_POD) == 1
    assert rig.runner.calls.count(DELETE_SECRET) == 1


def test_terminate_retries_a_pod_delete_that_failed_but_not_the_secret(rig: Rig) -> None:
    rig.fail(DELETE_POD, REFUSED).fail(DELETE_SECRET, REFUSED)
    rig.deletes(secret=False)
    handle = rig.handle()
    handle.terminate()
    handle.terminate()
    handle.terminate()
    assert rig.runner.calls.count(DELETE_POD) == 2


def test_terminate_after_the_job_ended_keeps_its_outcome(rig: Rig) -> None:
    rig.pod("succeeded.json").deletes(pod=False).deletes(secret=False)
    handle = rig.handle()
    assert handle.poll() == 0
    handle.terminate()
    assert handle.poll() == 0


def test_terminate_without_a_credential_secret_deletes_only_the_pod(rig: Rig) -> None:
    rig.deletes(secret=False)
    handle = rig.handle(credential_secret_name=None)
    handle.terminate()
    assert handle.poll() == 9


def test_terminate_uses_the_handles_namespace_when_kubectl_has_another() -> None:
    r = Rig(namespace="default")
    r.runner.expect(DELETE_POD).expect(DELETE_SECRET)
    handle = r.handle()
    handle.terminate()
    assert r.runner.unexpected == [] and not r.runner.script
    assert handle.namespace == NS and r.kubectl.namespace == "default"
    for call in r.runner.received:  # one --namespace, the handle's: no second flag appended
        assert [call.argv[i + 1] for i, word in enumerate(call.argv) if word == "--namespace"] == [NS]


def test_terminate_from_another_thread_wins_over_a_poll_in_flight(rig: Rig) -> None:
    in_get = threading.Event()
    release = threading.Event()
    scripted = rig.runner

    def slow_runner(argv: Sequence[str], **kwargs: Any) -> CommandResult:
        if tuple(argv[scripted.prefix :]) == GET_POD:
            in_get.set()
            assert release.wait(5)
        return scripted(argv, **kwargs)

    rig.kubectl.runner = slow_runner
    rig.deletes().pod("running.json")  # the get is answered only after terminate() has deleted
    handle = rig.handle()
    codes: list[int] = []
    poller = threading.Thread(target=lambda: codes.append(handle.poll()))
    poller.start()
    assert in_get.wait(5)
    terminator = threading.Thread(target=handle.terminate)
    terminator.start()
    terminator.join(5)
    assert not terminator.is_alive(), "terminate() waited for the poll's kubectl call"
    release.set()
    poller.join(5)
    assert codes == [9]
    assert handle.poll() == 9


# --- the workspace transfer (Contract 7) -----------------------------------------------------------


class FakeTransfer:
    # Contract 7's progress flags; subclasses that drive them override these.
    delivered = False
    collected = False

    def __init__(self, *, finish_after: int = 2, error_at: int | None = None) -> None:
        self.decorated: list[tuple[str, str]] = []
        self.advanced: list[str | None] = []
        self.finish_after = finish_after
        self.error_at = error_at

    def decorate(self, pod: dict[str, Any], main_container: str) -> None:
        pod["spec"]["initContainers"] = [{"name": "workspace-wait", "image": "busybox"}]
        self.decorated.append((pod["metadata"]["name"], main_container))

    def advance(self, kubectl: Kubectl, pod: dict[str, Any]) -> None:
        self.advanced.append(pod.get("status", {}).get("phase"))
        if self.error_at is not None and len(self.advanced) == self.error_at:
            raise TransferError("collecting results failed; recover them with: kubectl cp ...")

    @property
    def finished(self) -> bool:
        return len(self.advanced) >= self.finish_after


def _main_terminated_sidecar_running() -> str:
    pod = json.loads(pod_json("running.json"))
    pod["status"]["containerStatuses"][0]["state"] = {"terminated": {"exitCode": 0, "reason": "Completed"}}
    pod["status"]["containerStatuses"].append({"name": "workspace-keeper", "state": {"running": {}}})
    return json.dumps(pod)


def test_the_transfer_decorates_the_manifest_and_advances_until_finished(rig: Rig) -> None:
    transfer = FakeTransfer(finish_after=3)
    rig.pod("pending_init_running.json")  # an init container runs: no event query
    rig.pod("running.json")
    rig.runner.expect(GET_POD, _main_terminated_sidecar_running())  # job done, results being collected
    rig.pod("running.json")  # finished now: no more advance calls
    rig.pod("succeeded.json").deletes(pod=False)
    handle = rig.handle(workspace_transfer=transfer)
    assert transfer.decorated == [(POD, CONTAINER)]
    assert handle.get_manifest()["spec"]["initContainers"][0]["name"] == "workspace-wait"
    codes = [handle.poll() for _ in range(5)]
    assert codes == [127, 127, 127, 127, 0]
    assert transfer.advanced == ["Pending", "Running", "Running"]


def test_a_transfer_error_before_the_job_ran_fails_it_and_deletes_the_pod(rig: Rig) -> None:
    rig.pod("pending_init_running.json").deletes()
    handle = rig.handle(workspace_transfer=FakeTransfer(error_at=1))
    assert handle.poll() == 101


def test_a_transfer_error_after_the_job_ran_keeps_the_pod_for_recovery(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    rig.runner.expect(GET_POD, _main_terminated_sidecar_running())
    rig.deletes(pod=False)
    handle = rig.handle(workspace_transfer=FakeTransfer(error_at=1))
    with caplog.at_level(logging.WARNING):
        assert handle.poll() == 101
    assert "recover them with: kubectl cp" in caplog.text


def test_the_pod_read_seam_reports_found_gone_and_unavailable(rig: Rig) -> None:
    rig.pod("running.json").gone().fail(GET_POD, FORBIDDEN).fail(GET_POD, REFUSED)
    pod = JobPod(rig.kubectl, POD)
    found, gone, refused, unreachable = (pod.read() for _ in range(4))
    assert found.status is PodReadStatus.FOUND and found.pod is not None
    assert found.pod["metadata"]["name"] == POD
    assert gone.status is PodReadStatus.GONE
    assert refused.status is PodReadStatus.UNAVAILABLE and refused.permanent
    assert unreachable.status is PodReadStatus.UNAVAILABLE and not unreachable.permanent
    assert "kubectl --namespace nvflare" in unreachable.error


class CollectingTransfer(FakeTransfer):
    """A transfer that says when the workspace is in the pod and when the results are back."""

    def __init__(self, *, deliver_at: int = 1, collect_at: int = 3) -> None:
        super().__init__(finish_after=collect_at)
        self.deliver_at = deliver_at
        self.collect_at = collect_at

    @property
    def delivered(self) -> bool:
        return len(self.advanced) >= self.deliver_at

    @property
    def collected(self) -> bool:
        return len(self.advanced) >= self.collect_at


def _init_done_main_waiting() -> str:
    pod = json.loads(pod_json("pending_init_running.json"))
    pod["status"]["initContainerStatuses"][0]["state"] = {"terminated": {"exitCode": 0, "reason": "Completed"}}
    return json.dumps(pod)


def test_after_the_delivery_the_handle_looks_again_quickly_until_the_job_container_runs(rig: Rig) -> None:
    transfer = CollectingTransfer(collect_at=10)
    rig.pod("pending_init_running.json")  # delivers
    rig.pod("pending_init_running.json")  # the init container has not noticed yet
    rig.runner.expect(GET_POD, _init_done_main_waiting())  # an init container finished: no event query
    rig.pod("running.json")
    handle = rig.handle(workspace_transfer=transfer)
    assert handle.enter_states([JobState.RUNNING]) is True
    assert rig.clock.slept == [0.2, 0.2, 0.2]
    rig.pod("running.json").pod("running.json")
    handle.poll()
    handle.poll()
    assert transfer.advanced == ["Pending"] * 3 + ["Running"] * 3
    assert rig.clock.slept == [0.2, 0.2, 0.2]  # the job container runs: the window is closed


def test_the_quick_looks_end_after_their_window(rig: Rig) -> None:
    transfer = CollectingTransfer(collect_at=30)
    for _ in range(18):
        rig.pod("pending_init_running.json")
    rig.pod("running.json")
    handle = rig.handle(workspace_transfer=transfer)
    assert handle.enter_states([JobState.RUNNING]) is True
    assert rig.clock.slept[:15] == [0.2] * 15
    assert rig.clock.slept[15:] == [1.0, 1.0, 1.0]


def test_a_handle_without_a_delivered_transfer_keeps_the_normal_interval(rig: Rig) -> None:
    rig.pod("pending_init_running.json").pod("pending_init_running.json").pod("running.json")
    handle = rig.handle(workspace_transfer=FakeTransfer(finish_after=5))
    assert handle.enter_states([JobState.RUNNING]) is True
    assert rig.clock.slept == [1.0, 1.0]


@pytest.mark.parametrize(
    ("exit_code", "code", "state"),
    [(0, 0, JobState.SUCCEEDED), (1, 9, JobState.TERMINATED), (101, 101, JobState.TERMINATED)],
)
def test_collected_results_end_the_job_with_the_job_containers_exit_code(
    rig: Rig, exit_code: int, code: int, state: JobState
) -> None:
    pod = json.loads(_main_terminated_sidecar_running())
    pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] = exit_code
    rig.pod("running.json").pod("running.json")
    rig.runner.expect(GET_POD, json.dumps(pod))  # collects: the outcome is known, no wait for the phase
    rig.deletes(pod=False)  # the Secret goes; the pod is left to end by itself
    transfer = CollectingTransfer(deliver_at=1, collect_at=3)
    handle = rig.handle(workspace_transfer=transfer)
    handle.wait()
    assert handle.terminal_state is state
    assert handle.poll() == code
    assert transfer.advanced == ["Running", "Running", "Running"]


def test_a_finished_transfer_that_collected_nothing_waits_for_the_pods_phase(rig: Rig) -> None:
    rig.runner.expect(GET_POD, _main_terminated_sidecar_running())
    rig.pod("succeeded.json").deletes(pod=False)
    transfer = FakeTransfer(finish_after=1)  # finished, but says nothing about results
    handle = rig.handle(workspace_transfer=transfer)
    assert handle.poll() == 127
    assert handle.poll() == 0
