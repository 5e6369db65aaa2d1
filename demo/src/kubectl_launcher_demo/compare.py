"""The demo's comparison with NVFlare's process launcher: the same job, several times with each, alternating.

One run of each says little: NVFlare's own loops (its scheduler, the clients' task fetches, the job-status
check) each wait up to a second, so one job's submit->done varies by about ±2 s from run to run under either
launcher, as much as the launches cost. ``--compare-runs N`` runs the job N times with each, in the order
ours, process, process, ours, ours, process, ... (pairs swapped in turn, so that neither launcher always runs
first after a restart of the parents), and compares the medians (`run_comparison`). ``order`` and
``Comparison`` are pure.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from kubectl_launcher_demo.deployment import PocDeployment
from kubectl_launcher_demo.flow import JobOutcome, Say, run_job
from kubectl_launcher_demo.job import JobSpec

OURS, PROCESS = "kubectl", "process"
NAMES = {OURS: "kubectl-launcher", PROCESS: "process launcher"}


def order(runs: int) -> list[str]:
    """Which launcher runs each job, ``runs`` jobs each: pairs (ours, process) and (process, ours) in turn."""
    if runs < 1:
        raise ValueError(f"runs must be 1 or more, got {runs}")
    sequence: list[str] = []
    for pair in range(runs):
        sequence += [OURS, PROCESS] if pair % 2 == 0 else [PROCESS, OURS]
    return sequence


@dataclass
class Comparison:
    """Every job of the comparison, by launcher, in the order they ran."""

    ours: list[JobOutcome] = field(default_factory=list)
    process: list[JobOutcome] = field(default_factory=list)

    def add(self, launcher: str, outcome: JobOutcome) -> None:
        (self.ours if launcher == OURS else self.process).append(outcome)

    @staticmethod
    def median(outcomes: Sequence[JobOutcome]) -> float:
        return statistics.median(o.wall_time for o in outcomes)

    @property
    def ratio(self) -> float:
        """Our median submit->done over the process launcher's."""
        return self.median(self.ours) / self.median(self.process)

    def lines(self) -> list[str]:
        """The closing lines: each launcher's median and every run, then how they compare."""
        runs = len(self.ours)
        if runs == 1:
            ours, process = self.ours[0], self.process[0]
            return [
                f"wall time, submit -> done: kubectl-launcher {ours.wall_time:.1f} s ({ours.status}) | "
                f"NVFlare process launcher {process.wall_time:.1f} s ({process.status}) "
                f"({_relative(self.ratio)}; one run each: see --compare-runs)"
            ]
        return [
            f"wall time, submit -> done, median of {runs} runs each: kubectl-launcher "
            f"{self.median(self.ours):.1f} s ({_statuses(self.ours)}) | NVFlare process launcher "
            f"{self.median(self.process):.1f} s ({_statuses(self.process)}): {_relative(self.ratio)}",
            f"  each run, in the order they ran ({' '.join('k' if k == OURS else 'p' for k in order(runs))}): "
            f"kubectl-launcher {_times(self.ours)}; process launcher {_times(self.process)}",
        ]


def _relative(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f} %"


def _times(outcomes: Sequence[JobOutcome]) -> str:
    return ", ".join(f"{o.wall_time:.1f}" for o in outcomes) + " s"


def _statuses(outcomes: Sequence[JobOutcome]) -> str:
    found = sorted({o.status for o in outcomes})
    return ", ".join(f"{status} x{sum(o.status == status for o in outcomes)}" for status in found)


def run_comparison(
    dep: PocDeployment,
    spec: JobSpec,
    first: JobOutcome,
    runs: int,
    *,
    use_ours: Callable[[], None],
    say: Say,
    timeout: float,
) -> Comparison:
    """After `first` (ours, the demo's main job): the rest of `order(runs)`, the parents restarted whenever the
    launcher changes (`use_ours` configures ours again; NVFlare's process launcher needs nothing)."""
    say(
        "--compare: the same job with NVFlare's process launcher"
        + (f", {runs} runs with each launcher, alternating" if runs > 1 else "")
    )
    comparison = Comparison()
    comparison.add(OURS, first)
    current = OURS
    for launcher in order(runs)[1:]:
        if launcher != current:
            dep.stop()
            if launcher == PROCESS:
                dep.use_process_launcher()
            else:
                use_ours()
            current = launcher
            say(f"parents restarted with the {NAMES[launcher]} in {dep.start():.1f} s")
        # The process launcher's jobs need no image; ours run the one the first did.
        job = spec if launcher == OURS else JobSpec(rounds=spec.rounds, sleep=spec.sleep, name=spec.name)
        outcome = run_job(dep, job, say=say, timeout=timeout)
        say(f"{NAMES[launcher]}: job {outcome.job_id} {outcome.status} in {outcome.wall_time:.1f} s")
        comparison.add(launcher, outcome)
    return comparison
