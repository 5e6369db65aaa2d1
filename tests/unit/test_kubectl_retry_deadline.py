"""The one retry policy with a total deadline per operation, driven by a scripted Runner and a fake clock."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import ClassVar

import pytest

from kubectl_launcher import errors
from kubectl_launcher.kubectl import CommandResult, Kubectl, RetryPolicy
from kubectl_launcher.kubectl.journal import Journal
from tests.support.fake_runner import RunnerCall, ScriptedRunner

UNAVAILABLE = "Error from server (ServiceUnavailable): the server is currently unable to handle the request\n"
GET = ["get", "pod", "x", "--output", "json"]
KILLED = -1.0  # an attempt that runs until its deadline kills it


@dataclass
class FakeClock:
    """Monotonic seconds that move only when the code under test sleeps or a scripted command runs."""

    now: float = 1000.0
    slept: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@dataclass
class TimedRunner(ScriptedRunner):
    """Each call fails as transient after the scripted number of seconds (KILLED: at its deadline)."""

    takes_stdin_file: ClassVar[bool] = True
    clock: FakeClock
    script: list[float]

    @property
    def timeouts(self) -> list[float]:
        return [call.timeout for call in self.received]

    def answer(self, call: RunnerCall) -> CommandResult:
        spent = self.next_scripted(self.script, call)
        if spent == KILLED:
            self.clock.now += call.timeout
            return CommandResult(call.argv, None, "", "", call.timeout, timed_out=True)
        self.clock.now += spent
        return CommandResult(call.argv, 1, "", UNAVAILABLE, spent)


def make(script: list[float], *, retries: int) -> tuple[Kubectl, TimedRunner, FakeClock]:
    clock = FakeClock()
    runner = TimedRunner(clock, list(script))
    policy = RetryPolicy(retries=retries, sleep=clock.sleep, clock=clock)
    return Kubectl(runner=runner, retry=policy, cache_dir="/c"), runner, clock


def test_the_total_deadline_stops_retries_before_they_are_spent() -> None:
    kubectl, runner, clock = make([4.0] * 11, retries=10)
    start = clock.now
    with pytest.raises(errors.KubectlUnavailable) as caught:
        kubectl.run(GET, idempotent=True, timeout=10, total_timeout=30)
    # attempts end at 4, 8.5, 13.5, 19.5, 27.5; the next backoff (8 s) would pass 30 s
    assert len(runner.received) == 5
    assert clock.slept == [0.5, 1.0, 2.0, 4.0]
    assert clock.now - start <= 30
    assert caught.value.attempts == 5
    assert "5 attempts, no retry within the total deadline of 30s" in str(caught.value)


def test_each_attempt_is_given_only_what_is_left_of_the_total() -> None:
    kubectl, runner, _ = make([KILLED, KILLED], retries=3)
    with pytest.raises(errors.KubectlTimeout) as caught:
        kubectl.run(GET, idempotent=True, timeout=10, total_timeout=15)
    assert runner.timeouts == [10, 4.5]  # 10.5 s gone after the first attempt and its backoff
    assert "did not finish within 4.5s" in str(caught.value)
    assert caught.value.attempts == 2


def test_the_first_attempt_never_outlives_the_total_deadline() -> None:
    kubectl, runner, _ = make([KILLED], retries=0)
    with pytest.raises(errors.KubectlTimeout):
        kubectl.run(GET, idempotent=True, timeout=60, total_timeout=5)
    assert runner.timeouts == [5]


def test_without_a_total_deadline_every_attempt_gets_its_full_timeout() -> None:
    kubectl, runner, clock = make([KILLED] * 4, retries=3)
    with pytest.raises(errors.KubectlTimeout):
        kubectl.run(GET, idempotent=True, timeout=10)
    assert runner.timeouts == [10, 10, 10, 10]
    assert clock.slept == [0.5, 1.0, 2.0]


def test_the_default_total_is_room_for_every_attempt_capped_but_never_below_one_attempt() -> None:
    policy = RetryPolicy(retries=3)
    assert policy.default_total(60) == 4 * 60 + 0.5 + 1 + 2
    assert policy.default_total(200) == 600  # capped: four 200 s attempts would take 13 minutes
    assert policy.default_total(3600) == 3600  # one long command keeps the deadline its caller gave
    assert RetryPolicy(retries=0).default_total(30) == 30


def test_a_pipe_is_not_retried_even_with_time_left() -> None:
    kubectl, runner, _ = make([1.0, 1.0], retries=3)
    read_end, write_end = os.pipe()
    os.write(write_end, b"streamed")
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe, pytest.raises(errors.KubectlUnavailable) as caught:
        kubectl.run(["exec", "-i", "pod", "--", "tar", "xf", "-"], stdin=pipe, idempotent=True, total_timeout=600)
    assert caught.value.attempts == 1 and len(runner.received) == 1


def test_a_command_that_is_not_idempotent_is_tried_once_whatever_the_deadline() -> None:
    kubectl, runner, clock = make([1.0], retries=3)
    with pytest.raises(errors.KubectlUnavailable):
        kubectl.run(["create", "-f", "-"], stdin=b"{}", total_timeout=600)
    assert len(runner.received) == 1 and clock.slept == []


def test_the_policy_comes_whole_or_as_shorthands_not_both() -> None:
    with pytest.raises(errors.ConfigError, match="not both"):
        Kubectl(retry=RetryPolicy(), sleep=lambda s: None)
    with pytest.raises(errors.ConfigError):
        RetryPolicy(retries=-1)


def test_a_job_copy_follows_the_same_policy(tmp_path: os.PathLike[str]) -> None:
    kubectl, runner, _ = make([4.0] * 11, retries=10)
    job = kubectl.for_job(Journal(os.path.join(tmp_path, "job")))
    with pytest.raises(errors.KubectlUnavailable):
        job.run(GET, idempotent=True, timeout=10, total_timeout=30)
    assert len(runner.received) == 5 and job.retry is kubectl.retry
