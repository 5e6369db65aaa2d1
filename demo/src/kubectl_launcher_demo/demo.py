"""The README's main-job demo: a real NVFlare FedAvg job whose job processes run as pods through kubectl-launcher.

``scripts/demo`` runs ``python -m kubectl_launcher_demo.demo``. Without ``--kubeconfig``/``--image`` it starts
the local API double, so one machine with kubectl is enough.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from kubectl_launcher_demo.compare import Comparison, run_comparison
from kubectl_launcher_demo.deployment import CLIENTS, SERVER, SITES, DeploymentError, PocDeployment
from kubectl_launcher_demo.flow import JobFailed, JobOutcome, run_job
from kubectl_launcher_demo.job import JobSpec
from kubectl_launcher_demo.report import (
    count_kubectl_processes,
    failure_lines,
    job_artifacts,
    return_code_name,
    site_results,
    startup_failures,
)
from kubectl_launcher_demo.target import DEFAULT_PYTHON_PATH, JobTarget, RealCluster
from kubectl_launcher_demo.watch import RoundTracker

if TYPE_CHECKING:
    from kubectl_launcher_demo.timeline import SiteTimeline

EXIT_OK, EXIT_JOB_FAILED, EXIT_SETUP, EXIT_INTERRUPTED = 0, 1, 2, 130
#: The image name the demo's pods carry on the double (the host filesystem stands in for every image).
DOUBLE_IMAGE = "kubectl-launcher-demo/nvflare:2.9"
UNPULLABLE_IMAGE = "registry.invalid/kubectl-launcher-demo/does-not-exist:0"


def transfer_settings(real_cluster: bool) -> dict[str, object]:
    """The workspace transfer's settings (resources.json ``workspace_transfer``), chosen for a demo job.

    The workspace is ~30 KB each way, so none of these costs time on the happy path; they bound how
    long a pod lingers when something goes wrong. ``verify_checksums`` stays on: the listing it adds
    to is read anyway (it is what the transfer compares against), and the checksums of 30 KB cost
    nothing measurable (see the timeline's deliver/collect rows).
    """
    return {
        "verify_checksums": True,
        # A demo workspace takes well under a second; an init container waiting 30 minutes (the
        # default) for a parent that died only keeps a stray pod around.
        "delivery_timeout": 120,
        # The keeper holds results until collected. 5 minutes is plenty for one collection; the lease
        # is renewed every minute while the job runs, so a long job is never cut short.
        "keep_timeout": 300,
        "lease_interval": 60.0,
        "command_timeout": 120.0,
        # On the double a failed kubectl cp is not congestion: retry at once. A real cluster keeps the default.
        "retry_delay": 5.0 if real_cluster else 1.0,
    }


class Console:
    """Timestamped, thread-safe lines (the pod watch prints from its own thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._t0 = time.monotonic()

    def __call__(self, message: str) -> None:
        with self._lock:
            print(f"[{time.monotonic() - self._t0:6.1f}s] {message}", flush=True)

    def plain(self, message: str = "") -> None:
        with self._lock:
            print(message, flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/demo", description=__doc__)
    parser.add_argument("--folder", type=Path, default=Path(".demo"), help="where everything goes (wiped first)")
    parser.add_argument("--rounds", type=int, default=3, help="FedAvg rounds (default 3)")
    parser.add_argument("--sleep", type=float, default=0.3, help="pretend training per round, seconds (default 0.3)")
    parser.add_argument(
        "--compare",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the same job with NVFlare's process launcher and print both wall times (default on)",
    )
    parser.add_argument(
        "--compare-runs",
        type=int,
        default=3,
        metavar="N",
        help="with --compare: run the job N times with each launcher, alternating, and compare the medians "
        "(default 3: one run of each varies by about ±2 s with NVFlare's own loops)",
    )
    parser.add_argument(
        "--break",
        dest="breakage",
        choices=("client-error", "image"),
        help="break it on purpose: the client script raises, or the job image cannot be pulled",
    )
    parser.add_argument("--kubeconfig", default=None, help="a real cluster's kubeconfig (default: $KUBECONFIG)")
    parser.add_argument("--image", default=None, help="job image with nvflare 2.9 and tar (real cluster only)")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--python-path", default=DEFAULT_PYTHON_PATH, help="python inside --image")
    parser.add_argument(
        "--parent-host", default=None, help="real cluster: address of this machine that the job pods can reach"
    )
    parser.add_argument(
        "--launcher",
        choices=("kubectl", "process"),
        default="kubectl",
        help="process: only NVFlare's process launcher, no cluster (a baseline, and a check of the set-up)",
    )
    parser.add_argument("--kubectl", default="kubectl", help="kubectl binary (default: kubectl on PATH)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds a job may take (default 300)")
    ns = parser.parse_args(argv)
    if ns.compare_runs < 1:
        parser.error(f"--compare-runs must be 1 or more, got {ns.compare_runs}")
    if ns.kubeconfig is None and ns.image is not None:
        ns.kubeconfig = os.environ.get("KUBECONFIG") or None
    if ns.image is not None and ns.kubeconfig is None:
        parser.error("--image needs --kubeconfig (or KUBECONFIG) pointing at the real cluster")
    if ns.kubeconfig is not None and ns.image is None:
        parser.error("--kubeconfig means a real cluster: add --image (a job image with nvflare 2.9 and tar)")
    return ns


class _Interrupted(Exception):
    pass


@dataclass(frozen=True)
class _Figures:
    """What the summary says of the job: its sites' timelines, and the kubectl processes it started."""

    sites: list[SiteTimeline]
    kubectl: int
    per_site: dict[str, int]


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise _Interrupted(signal.Signals(signum).name)


def main(argv: Sequence[str] | None = None) -> int:
    ns = parse_args(argv)
    say = Console()
    kubectl_bin = shutil.which(ns.kubectl)
    if kubectl_bin is None:
        print(
            f"error: {ns.kubectl!r} is not on PATH. The demo drives the real kubectl binary: install kubectl "
            "1.29 or newer (https://kubernetes.io/docs/tasks/tools/) or pass --kubectl /path/to/kubectl.",
            file=sys.stderr,
        )
        return EXIT_SETUP
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    demo = Demo(ns, say, kubectl_bin)
    try:
        return demo.run()
    except _Interrupted as exc:
        say(f"interrupted ({exc}); cleaning up")
        return EXIT_INTERRUPTED
    except (DeploymentError, JobFailed) as exc:
        say(f"FAILED: {exc}")
        return EXIT_JOB_FAILED if isinstance(exc, JobFailed) else EXIT_SETUP
    finally:
        # A second Ctrl-C during cleanup must not leave pods or parents behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        demo.cleanup()


class Demo:
    """The demo's steps, with every resource it starts remembered for :meth:`cleanup`."""

    def __init__(self, ns: argparse.Namespace, say: Console, kubectl_bin: str) -> None:
        self.ns = ns
        self.say = say
        self.kubectl_bin = kubectl_bin
        self.root = ns.folder.resolve()
        real = None
        if ns.kubeconfig is not None:
            real = RealCluster(ns.kubeconfig, ns.image, ns.namespace, ns.python_path, ns.parent_host)
        self.target = JobTarget(real, kubectl=kubectl_bin, workdir=self.root / "localkube", double_image=DOUBLE_IMAGE)
        self.real_cluster = self.target.is_real
        self.dep: PocDeployment | None = None
        self.watcher: Any = None
        self.stream_kubectl: Any = None
        self.followers: dict[str, Any] = {}
        self._follow_lock = threading.Lock()
        self.rounds = RoundTracker()

    # ------------------------------------------------------------------ steps
    def run(self) -> int:
        ns, say = self.ns, self.say
        if self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True)
        dep = self.dep = PocDeployment(self.root / "nvflare")
        if ns.launcher == "process":
            return self._run_process_only(dep)
        self._start_cluster(dep)
        image = self.target.image
        if ns.breakage == "image":
            image = self._unpullable_image()
        say(f"preparing NVFlare POC (server + {len(CLIENTS)} clients) under {dep.root}")
        dep.prepare()
        self.target.configure(dep, transfer_settings(self.real_cluster))
        if self.target.parent_host is not None:
            say(f"job pods call their parents back at {self.target.parent_host} (local/comm_config.json 'internal')")
        for site in SITES:
            say(f"{site:7} job launcher: {dep.launcher_path(site)}")
        say(f"starting the parents (fed port {dep.port})")
        say(f"parents up, both clients registered in {dep.start():.1f} s")
        self._start_watch()
        spec = JobSpec(rounds=ns.rounds, sleep=ns.sleep, fail=ns.breakage == "client-error", image=image)
        say(f"submitting {spec.name}: NumPy FedAvg, {spec.rounds} rounds, 2 clients, job image {image}")
        ours = self._run_job(dep, spec)
        ok = self._report(dep, ours, spec)
        # Read now: the comparison's jobs append to the same site journals.
        figures = self._figures(dep, ours)
        comparison: Comparison | None = None
        if ns.compare and ok:
            comparison = self._compare(dep, spec, ours)
        self._summary(dep, ours, figures, comparison)
        return EXIT_OK if ok else EXIT_JOB_FAILED

    def _run_process_only(self, dep: PocDeployment) -> int:
        self.say(f"preparing NVFlare POC (server + {len(CLIENTS)} clients) under {dep.root}, process launcher")
        dep.prepare()
        dep.use_process_launcher()
        self.say(f"parents up, both clients registered in {dep.start():.1f} s")
        spec = JobSpec(rounds=self.ns.rounds, sleep=self.ns.sleep, fail=self.ns.breakage == "client-error")
        outcome = run_job(dep, spec, say=self.say, timeout=self.ns.timeout)
        ok = self._report(dep, outcome, spec)
        self.say.plain(
            f"wall time, submit -> done: NVFlare process launcher {outcome.wall_time:.1f} s ({outcome.status})"
        )
        return EXIT_OK if ok else EXIT_JOB_FAILED

    def _start_cluster(self, dep: PocDeployment) -> None:
        # On the double, job pods see their workspace only through kubectl cp, as on a real cluster.
        kubeconfig = self.target.open(dep)
        if self.target.cluster is not None:
            self.say(f"local API double up: {self.target.cluster.url} (kubeconfig {kubeconfig})")
        else:
            self.say(f"real cluster: kubeconfig {kubeconfig}, namespace {self.target.namespace}")

    def _unpullable_image(self) -> str:
        if self.target.cluster is not None:
            self.target.cluster.faults.make_unpullable(UNPULLABLE_IMAGE)
        self.say(f"--break image: the job image {UNPULLABLE_IMAGE} cannot be pulled")
        return UNPULLABLE_IMAGE

    def _start_watch(self) -> None:
        from kubectl_launcher.domain.names import site_name_to_rfc1123
        from kubectl_launcher_demo.watch import PodSighting, PodWatcher, ServerLogGate

        # A watch and a log follow stay open as long as the job runs.
        self.stream_kubectl = self.target.client(streams=True)
        site_of_label = {site_name_to_rfc1123(site): site for site in SITES}
        server_label = site_name_to_rfc1123(SERVER)

        def on_change(pod: PodSighting, event: str) -> None:
            site = site_of_label.get(pod.site, pod.site)
            self.say(f"{site:7} pod {pod.name}: {pod.phase}" + (f" ({pod.detail})" if pod.detail else ""))

        gate = ServerLogGate(server_label, list(site_of_label))

        def on_pod(_pod: dict[str, Any], seen: PodSighting) -> None:
            # The server job writes its log inside the pod; follow it to show the rounds as they start.
            server = gate.see(seen)
            if server is not None:
                self._follow_server_log(server.name, server.main_container)

        self.watcher = PodWatcher(self.stream_kubectl, on_change, on_pod=on_pod)
        self.watcher.start()

    def _follow_server_log(self, pod: str, container: str) -> None:
        from kubectl_launcher_demo.watch import LogFollower

        with self._follow_lock:
            if pod in self.followers or self.stream_kubectl is None:
                return

            def on_line(line: str) -> None:
                for r in self.rounds.feed(line):
                    self.say(f"round {r} started (server, live from pod {pod})")

            follower = LogFollower(self.stream_kubectl, pod, container, on_line)
            self.followers[pod] = follower
            follower.start()

    def _stop_streams(self) -> None:
        with self._follow_lock:
            followers = list(self.followers.values())
        for follower in followers:
            follower.stop()
        if self.watcher is not None:
            self.watcher.stop()

    def _run_job(self, dep: PocDeployment, spec: JobSpec) -> JobOutcome:
        try:
            outcome = run_job(dep, spec, say=self.say, timeout=self.ns.timeout, rounds=self.rounds)
            self._see_pods_end(outcome.job_id)
            return outcome
        finally:
            self._stop_streams()

    def _see_pods_end(self, job_id: str) -> None:
        """The launcher reports a job over before its pods reach their final phase: let the watch see it."""
        from kubectl_launcher.domain.names import site_name_to_rfc1123, uuid4_to_rfc1123
        from kubectl_launcher_demo.watch import END_WAIT

        if self.watcher is None:
            return
        sites = [site_name_to_rfc1123(site) for site in SITES]
        missing = self.watcher.wait_until_ended(uuid4_to_rfc1123(job_id), sites)
        if missing:
            self.say(f"warning: the pod watch did not see every job pod end within {END_WAIT:.0f} s:")
            for line in missing:
                self.say(f"  {line}")

    def _report(self, dep: PocDeployment, outcome: JobOutcome, spec: JobSpec) -> bool:
        say = self.say
        say(f"job {outcome.job_id}: {outcome.status} in {outcome.wall_time:.1f} s (submit -> done)")
        for client, rc in outcome.client_rcs.items():
            say(f"{client:7} job return code from the launcher: {return_code_name(rc)}")
        if not outcome.ok:
            for site, reason in startup_failures(dep, outcome.job_id).items():
                say(f"{site:7} job pod never started: {reason}; the launcher deleted it and reported EXCEPTION")
            for line in failure_lines(dep, outcome.job_id):
                say(f"  {line}")
            say("the job FAILED: see the lines above and the site logs under " + str(dep.prod_dir))
            return False
        say(f"rounds run: {outcome.rounds}")
        if outcome.result_dir is not None:
            say(f"server results (from the job store): {outcome.result_dir}")
        if outcome.final_model is not None:
            expected = spec.expected_final_model()
            verdict = "as expected" if outcome.final_model == expected else f"EXPECTED {expected}"
            say(f"final global model (models/server.npy): {outcome.final_model} ({verdict})")
        if outcome.metrics:
            last = outcome.metrics[-1]
            acc = [m["value"] for m in last.get("aggregated_metrics", []) if m.get("name") == "accuracy"]
            say(f"last round's aggregated accuracy: {acc[0] if acc else '?'}")
        for site, path, files in site_results(dep, outcome.job_id):
            say(f"{site:7} results back in its workspace: {path} ({files} files)")
        return True

    def _compare(self, dep: PocDeployment, spec: JobSpec, first: JobOutcome) -> Comparison:
        def use_ours() -> None:
            self.target.configure(dep, transfer_settings(self.real_cluster))

        return run_comparison(
            dep, spec, first, self.ns.compare_runs, use_ours=use_ours, say=self.say, timeout=self.ns.timeout
        )

    def _figures(self, dep: PocDeployment, ours: JobOutcome) -> _Figures:
        """The job's timeline and kubectl processes, from its site journals, watch and logs."""
        from kubectl_launcher_demo import timeline

        pods = self.watcher.history if self.watcher is not None else None
        sites = timeline.build(dep, ours.job_id, pods, result_dir=ours.result_dir, finished_at=ours.finished_at)
        return _Figures(sites, *count_kubectl_processes(dep, ours.job_id))

    def _summary(self, dep: PocDeployment, ours: JobOutcome, figures: _Figures, comparison: Comparison | None) -> None:
        plain = self.say.plain
        plain("")
        plain("=" * 78)
        manifests, journals = job_artifacts(dep, ours.job_id)
        for site in SITES:
            if site in manifests:
                plain(f"{site:7} manifest: {manifests[site]}")
            if site in journals:
                plain(f"{site:7} journal:  {journals[site]}")
        first = journals.get(SERVER) or next(iter(journals.values()), None)
        if first is not None:
            # The demo's venv is on PATH only inside scripts/demo: name the command by its path so the line
            # pastes as it is in the operator's own shell.
            cli = shutil.which("kubectl-launcher") or "kubectl-launcher"
            plain("try:      " + shlex.join([cli, "replay", "--dry-run", str(first)]))
        self._timeline(dep, ours, figures.sites, comparison.process[0] if comparison is not None else None)
        detail = ", ".join(f"{site} {n}" for site, n in figures.per_site.items())
        plain(f"kubectl processes started for the job: {figures.kubectl} ({detail})")
        if comparison is None:
            plain(f"wall time, submit -> done: kubectl-launcher {ours.wall_time:.1f} s ({ours.status})")
        else:
            for line in comparison.lines():
                plain(line)
        plain("=" * 78)

    def _timeline(
        self, dep: PocDeployment, ours: JobOutcome, sites: list[SiteTimeline], baseline: JobOutcome | None
    ) -> None:
        """Where the job's time went, per site: what an operator debugging a slow job wants first."""
        from kubectl_launcher_demo import timeline

        plain = self.say.plain
        submitted = ours.meta.get("submit_time")
        if not isinstance(submitted, int | float):
            return
        plain("-" * 78)
        for line in timeline.render(sites, float(submitted)):
            plain(line)
        base_path: list[tuple[str, float, str]] = []
        base_submitted = baseline.meta.get("submit_time") if baseline is not None else None
        if baseline is not None and isinstance(base_submitted, int | float):
            base = timeline.build(
                dep,
                baseline.job_id,
                None,
                result_dir=baseline.result_dir,
                finished_at=baseline.finished_at,
                kubectl=False,
            )
            base_path = timeline.critical_path(base, float(base_submitted), baseline.finished_at)
        plain("where submit -> FINISHED went" + (", next to NVFlare's process launcher:" if base_path else ":"))
        ours_path = timeline.critical_path(sites, float(submitted), ours.finished_at)
        for line in timeline.render_paths(ours_path, base_path):
            plain(line)
        plain("-" * 78)

    # ------------------------------------------------------------------ cleanup
    def cleanup(self) -> None:
        say = self.say
        self._stop_streams()
        if self.dep is not None:
            self.dep.stop()
        on_double = self.target.cluster is not None
        try:
            for line in self.target.close():
                say(line)
        except Exception as exc:  # cleanup must go on; say what did not stop
            say(f"warning: {'stopping the local API double' if on_double else 'cleaning up the cluster'} failed: {exc}")
        if self.dep is not None:
            left = self.dep.leftover_processes()
            if left:
                say(f"warning: processes still running after cleanup: {left}")
        say("cleaned up: parents stopped" + (", local API double stopped" if on_double else ""))


if __name__ == "__main__":
    sys.exit(main())
