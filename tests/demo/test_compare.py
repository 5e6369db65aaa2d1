"""The demo's comparison with the process launcher (pure): the order of the runs and what the closing lines say."""

from __future__ import annotations

import pytest
from kubectl_launcher_demo.compare import OURS, PROCESS, Comparison, order
from kubectl_launcher_demo.flow import COMPLETED, JobOutcome


def outcome(seconds: float, status: str = COMPLETED) -> JobOutcome:
    return JobOutcome(job_id=f"job-{seconds}", status=status, wall_time=seconds)


def test_the_runs_alternate_in_swapped_pairs_so_neither_launcher_always_runs_first() -> None:
    assert order(1) == [OURS, PROCESS]
    assert order(3) == [OURS, PROCESS, PROCESS, OURS, OURS, PROCESS]
    assert order(4).count(OURS) == order(4).count(PROCESS) == 4
    with pytest.raises(ValueError, match="runs must be 1 or more"):
        order(0)


def test_medians_are_compared_so_one_slow_run_does_not_decide() -> None:
    c = Comparison()
    for launcher, seconds in zip(order(3), [20.0, 19.0, 19.5, 26.0, 20.5, 18.5], strict=True):
        c.add(launcher, outcome(seconds))
    assert [o.wall_time for o in c.ours] == [20.0, 26.0, 20.5]
    assert c.median(c.ours) == 20.5 and c.median(c.process) == 19.0
    first, each = c.lines()
    assert "median of 3 runs each" in first and "kubectl-launcher 20.5 s" in first
    assert "process launcher 19.0 s" in first and first.endswith("+7.9 %")
    assert f"{COMPLETED} x3" in first
    assert "(k p p k k p)" in each and "kubectl-launcher 20.0, 26.0, 20.5 s" in each


def test_one_run_each_says_so_and_a_failed_run_shows_in_the_statuses() -> None:
    c = Comparison()
    c.add(OURS, outcome(22.0))
    c.add(PROCESS, outcome(20.0, "FINISHED:EXECUTION_EXCEPTION"))
    (line,) = c.lines()
    assert "kubectl-launcher 22.0 s (FINISHED:COMPLETED)" in line
    assert "NVFlare process launcher 20.0 s (FINISHED:EXECUTION_EXCEPTION)" in line
    assert "+10.0 %" in line and "--compare-runs" in line
