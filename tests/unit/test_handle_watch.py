"""K8sJobHandle for a pod with our labels: it follows the pod through its site's watch (a hand-written
fake subscription here), runs no kubectl to look, and waits for a change instead of sleeping."""

from __future__ import annotations

import copy
import gc
import json
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from nvflare.apis.job_launcher_spec import JobReturnCode

from kubectl_launcher.domain.job_tracker import EVENTS_GRACE
from kubectl_launcher.domain.names import managed_labels
from kubectl_launcher.domain.pod_cache import NOT_LISTED
from kubectl_launcher.domain.pod_status import Event, JobState, Pod
from kubectl_launcher.handle import K8sJobHandle, PodRead, PodReadStatus
from kubectl_launcher.kubectl import Kubectl
from kubectl_launcher.objects.pod_watch import site_selector
from tests.unit.test_handle import (
    DELETE_POD,
    DELETE_SECRET,
    JOB_CONFIG,
    NS,
    POD,
    SECRET,
    T0,
    FakeClock,
    FakeTransfer,
    ScriptedRunner,
    pod_json,
)

JOB = "j550e8400-e29b-41d4-a716-446655440000"
LABELS = managed_labels("site-1", "550e8400-e29b-41d4-a716-446655440000")
SELECTOR = site_selector(LABELS)
FORBIDDEN = 'Error from server (Forbidden): pods is forbidden: User "x" cannot list resource "pods"'


def found(fixture: str) -> PodRead:
    return PodRead(PodReadStatus.FOUND, json.loads(pod_json(fixture)))


def down(error: str = "connection refused", *, permanent: bool = False, last: Pod | None = None) -> PodRead:
    return PodRead(PodReadStatus.UNAVAILABLE, last, error, permanent)


@dataclass
class FakeFollower:
    """One subscription as the handle sees it: each wait_for_change moves to the next scripted read
    (True) and lets `seconds` pass on the fake clock when the script is spent (False)."""

    clock: FakeClock
    reads: deque[PodRead]
    current: PodRead = field(default_factory=lambda: PodRead(PodReadStatus.UNAVAILABLE, None, NOT_LISTED))
    events_answer: list[Event] | None = field(default_factory=list)
    waits: list[float] = field(default_factory=list)
    wakes: int = 0
    released: int = 0
    events_asked: int = 0

    def latest(self) -> PodRead:
        return self.current

    def wait_for_change(self, timeout: float) -> bool:
        self.waits.append(timeout)
        if self.wakes:
            return True
        if self.reads:
            self.current = self.reads.popleft()
            return True
        self.clock.now += timeout
        return False

    def events(self) -> list[Event] | None:
        self.events_asked += 1
        return self.events_answer

    def wake(self) -> None:
        self.wakes += 1

    def release(self) -> None:
        self.released += 1


@dataclass
class WatchRig:
    clock: FakeClock = field(default_factory=FakeClock)
    runner: ScriptedRunner = field(init=False)
    kubectl: Kubectl = field(init=False)
    followers: list[FakeFollower] = field(default_factory=list)
    subscribed: list[tuple[str, str, str]] = field(default_factory=list)
    script: deque[PodRead] = field(default_factory=deque)
    events: list[Event] | None = field(default_factory=list)

    def __post_init__(self) -> None:
        self.runner = ScriptedRunner(len(Kubectl(namespace=NS).argv(())))
        self.kubectl = Kubectl(namespace=NS, retries=0, runner=self.runner, sleep=self.clock.sleep)

    def subscribe(self, kubectl: Kubectl, selector: str, name: str) -> FakeFollower:
        self.subscribed.append((kubectl.namespace, selector, name))
        follower = FakeFollower(self.clock, self.script, events_answer=self.events)
        self.followers.append(follower)
        return follower

    def reads(self, *reads: PodRead) -> WatchRig:
        self.script.extend(reads)
        return self

    def handle(self, *, labels: dict[str, str] | None = LABELS, **kwargs: Any) -> K8sJobHandle:
        job_config = copy.deepcopy(JOB_CONFIG)
        if labels is not None:
            job_config["labels"] = dict(labels)
        kwargs.setdefault("sleep", self._no_sleep)
        return K8sJobHandle(
            JOB, self.kubectl, job_config, namespace=NS, pod_name=POD, credential_secret_name=SECRET,
            clock=self.clock.time, subscribe=self.subscribe, **kwargs,
        )  # fmt: skip

    @staticmethod
    def _no_sleep(seconds: float) -> None:
        raise AssertionError(f"a handle following the watch slept {seconds}s instead of waiting for a change")

    @property
    def follower(self) -> FakeFollower:
        assert len(self.followers) == 1, self.followers
        return self.followers[0]


@pytest.fixture
def rig() -> Iterator[WatchRig]:
    r = WatchRig()
    yield r
    assert r.runner.unexpected == []
    assert list(r.runner.script) == [], "scripted kubectl calls that never happened"


def test_the_subscription_is_taken_on_the_first_look_not_at_construction(rig: WatchRig) -> None:
    handle = rig.handle()
    assert rig.subscribed == []
    rig.reads(found("running.json"))
    assert handle.poll() == 127
    assert rig.subscribed == [(NS, SELECTOR, POD)]


def test_poll_answers_from_the_watch_without_any_kubectl(rig: WatchRig) -> None:
    rig.reads(found("running.json"))
    handle = rig.handle()
    assert [handle.poll() for _ in range(3)] == [127, 127, 127]
    assert rig.runner.calls == []


def test_the_first_look_waits_for_the_watchs_first_answer(rig: WatchRig) -> None:
    rig.reads(found("running.json"))
    handle = rig.handle()
    assert handle.enter_states([JobState.RUNNING]) is True
    assert rig.follower.waits[:1] and rig.runner.calls == []


def test_wait_wakes_on_each_change_and_returns_when_the_pod_ends(rig: WatchRig) -> None:
    rig.reads(found("pending_container_creating.json"), found("running.json"), found("succeeded.json"))
    rig.runner.expect(DELETE_SECRET, f'secret "{SECRET}" deleted\n')
    handle = rig.handle()
    handle.wait()
    assert handle.poll() == 0
    assert rig.follower.released == 1  # the job ended: the site's watch is told at once
    # The first look waited for the watch's first answer; every later pause is one poll interval at most.
    assert all(w == handle.poll_interval for w in rig.follower.waits[1:])


def test_a_pod_deleted_behind_our_back_is_terminated(rig: WatchRig) -> None:
    rig.reads(found("running.json"), PodRead(PodReadStatus.GONE))
    rig.runner.expect(DELETE_SECRET, f'secret "{SECRET}" deleted\n')
    handle = rig.handle()
    handle.wait()
    assert handle.terminal_state is JobState.TERMINATED and handle.poll() == 9


def test_while_the_watch_is_down_the_job_is_unknown_and_never_failed(rig: WatchRig) -> None:
    running = found("running.json")
    rig.reads(running, down(last=running.pod), down(last=running.pod), running)
    handle = rig.handle()
    assert [handle.poll() for _ in range(5)] == [127] * 5
    assert handle.terminal_state is None and rig.runner.calls == []


def test_a_watch_refused_for_the_limit_fails_the_job(rig: WatchRig) -> None:
    running = found("running.json")
    rig.reads(running, down(FORBIDDEN, permanent=True, last=running.pod))
    rig.runner.expect(DELETE_POD, f'pod "{POD}" deleted\n').expect(DELETE_SECRET, "deleted\n")
    handle = rig.handle(permanent_failure_limit=3)
    handle.wait()  # each quiet wait lets the poll interval pass on the fake clock
    assert handle.poll() == 101
    assert rig.follower.released == 1


def test_a_pending_pod_is_judged_from_the_watchs_shared_events_not_a_query_of_its_own(rig: WatchRig) -> None:
    rig.clock.now = T0 + 60
    rig.reads(found("pending_container_creating.json"))
    rig.runner.expect(DELETE_POD, f'pod "{POD}" deleted\n').expect(DELETE_SECRET, "deleted\n")
    handle = rig.handle()
    rig.events = json.loads(pod_json("../pods/events_image_pull_failed.json"))["items"]
    assert handle.poll() == JobReturnCode.UNKNOWN  # just seen: a pod's first moments are no time to ask
    assert rig.follower.events_asked == 0
    rig.clock.now += EVENTS_GRACE
    assert handle.poll() == 101  # a pull failure, seen in the events the site's watch read
    assert rig.follower.events_asked == 1


def test_terminate_releases_the_subscription_and_deletes_once(rig: WatchRig) -> None:
    rig.reads(found("running.json"))
    rig.runner.expect(DELETE_POD, f'pod "{POD}" deleted\n').expect(DELETE_SECRET, "deleted\n")
    handle = rig.handle()
    handle.poll()
    handle.terminate()
    handle.terminate()
    assert rig.follower.released == 1 and rig.follower.wakes >= 1
    assert handle.poll() == 9


def test_a_handle_dropped_unended_lets_its_subscription_go(rig: WatchRig) -> None:
    rig.reads(found("running.json"))
    handle = rig.handle()
    handle.poll()
    gone: list[bool] = []
    weakref.finalize(rig.follower, lambda: gone.append(True))
    rig.followers.clear()
    del handle
    gc.collect()
    assert gone == [True]  # nothing else holds it: a PodSubscription's own finalizer then releases it


def test_end_from_another_thread_wakes_a_wait_under_way(rig: WatchRig) -> None:
    rig.reads(found("running.json"))
    handle = rig.handle()
    handle.poll()
    handle.end(JobState.TERMINATED)
    assert rig.follower.wakes == 1
    handle.wait()  # returns: the outcome is recorded
    assert handle.poll() == 9


class StepTransfer(FakeTransfer):
    """A transfer offering Contract 7's on_step_end."""

    def __init__(self) -> None:
        super().__init__(finish_after=99)
        self.callbacks: list[Callable[[], None]] = []

    def on_step_end(self, callback: Callable[[], None]) -> None:
        self.callbacks.append(callback)


def test_a_transfer_that_says_when_a_step_ends_wakes_the_handle(rig: WatchRig) -> None:
    transfer = StepTransfer()
    rig.reads(found("pending_init_running.json"))
    handle = rig.handle(workspace_transfer=transfer)
    assert len(transfer.callbacks) == 1
    handle.poll()
    transfer.callbacks[0]()  # the delivery ended, on the transfer's own thread
    assert rig.follower.wakes == 1


def test_a_transfer_without_on_step_end_is_still_driven(rig: WatchRig) -> None:
    transfer = FakeTransfer(finish_after=1)
    rig.reads(found("pending_init_running.json"))
    handle = rig.handle(workspace_transfer=transfer)
    assert handle.poll() == 127 and transfer.advanced == ["Pending"]


def test_a_pod_without_our_labels_is_polled_with_kubectl_get(rig: WatchRig) -> None:
    rig.runner.expect(("get", "pod", POD, "--ignore-not-found", "--output", "json"), pod_json("running.json"))
    handle = rig.handle(labels=None)
    assert handle.poll() == 127 and rig.subscribed == []
