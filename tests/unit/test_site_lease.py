"""The site's one lease (transfer/site_lease.py) with a scripted runner and a hand-driven pause: one annotate per
interval for all of its jobs, members in and out, failures logged and never raised, the seam's retries; the pod
side's part that is pure: the lease word in a downward-API annotations file, the probe and the volume."""

from __future__ import annotations

import logging
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from kubectl_launcher.domain.names import JOB_LABEL, MANAGED_BY, MANAGED_BY_LABEL, SITE_LABEL
from kubectl_launcher.kubectl import CommandResult, Kubectl
from kubectl_launcher.kubectl.purpose import LEASE
from kubectl_launcher.objects.pod_watch import site_selector
from kubectl_launcher.transfer import pod_side
from kubectl_launcher.transfer.lease import Lease
from kubectl_launcher.transfer.pod_side import TransferSettings
from kubectl_launcher.transfer.site_lease import JOBS_PER_COMMAND, SiteLease, lease_selector
from tests.support.fake_runner import RunnerCall, ScriptedRunner

SITE = site_selector({MANAGED_BY_LABEL: MANAGED_BY, SITE_LABEL: "site-1"}) or ""


class Annotator(ScriptedRunner):
    """Answers `kubectl annotate pods --selector ...` only; `failures` are given first, one per call."""

    def __init__(self, failures: list[CommandResult] | None = None) -> None:
        super().__init__()
        self.failures = list(failures or [])

    def answer(self, call: RunnerCall) -> CommandResult:
        args = call.argv[call.argv.index("--request-timeout") + 2 :]
        if args[:3] != ("annotate", "pods", "--selector"):
            self.reject(f"not an annotate: {args}")
        if self.failures:
            return self.failures.pop(0)
        return CommandResult(call.argv, 0, "pod/x\n", "")

    def selectors(self) -> list[str]:
        return [c.argv[c.argv.index("--selector") + 1] for c in self.received]

    def tokens(self) -> list[str]:
        return [next(a for a in c.argv if a.startswith(pod_side.LEASE_ANNOTATION + "=")) for c in self.received]


class Pauses:
    """The lease's pause between renewals, driven by the test: each `tick()` lets exactly one renewal happen."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._go = 0
        self._waiting = 0  # threads paused now
        self._consumed_at = -1  # len(seconds) when the last tick's permit was taken
        self.seconds: list[float] = []

    def __call__(self, stop: threading.Event, seconds: float) -> bool:
        with self._changed:
            self.seconds.append(seconds)
            self._waiting += 1
            self._changed.notify_all()
            try:
                while not self._go and not stop.is_set():
                    self._changed.wait(0.05)
                if stop.is_set():
                    return True
                self._go -= 1
                self._consumed_at = len(self.seconds)
                return False
            finally:
                self._waiting -= 1
                self._changed.notify_all()

    def tick(self) -> None:
        """Wait until a thread pauses, let it renew once, and wait until it pauses again (its renewal done)."""
        with self._changed:
            assert self._changed.wait_for(lambda: self._waiting > 0, 30), "the lease's thread never paused"
            self._go, self._consumed_at = 1, -1
            self._changed.notify_all()
            assert self._changed.wait_for(lambda: 0 <= self._consumed_at < len(self.seconds), 30), "no renewal"


def _lease(runner: Annotator, **kw: Any) -> tuple[SiteLease, Pauses]:
    pauses = Pauses()
    kubectl = Kubectl(namespace="nvflare", runner=runner, retries=2, sleep=lambda _: None)
    return SiteLease(kubectl, SITE, wait=pauses, token_prefix="t", **kw), pauses


def test_ten_jobs_are_renewed_by_one_annotate_per_interval() -> None:
    runner = Annotator()
    lease, pauses = _lease(runner)
    members = [lease.join(f"job-{i}", 30) for i in range(10)]
    assert runner.received == []  # joining runs nothing: the renewals run on the lease's own thread
    pauses.tick()
    pauses.tick()
    assert len(runner.received) == 2  # two intervals, two commands, for ten pods
    jobs = ",".join(f"job-{i}" for i in range(10))
    assert runner.selectors() == [f"{SITE},{JOB_LABEL} in ({jobs})"] * 2
    assert runner.tokens() == [f"{pod_side.LEASE_ANNOTATION}=t-1", f"{pod_side.LEASE_ANNOTATION}=t-2"]
    assert "--overwrite" in runner.received[0].argv and pauses.seconds[:2] == [30, 30]
    for m in members:
        m.release()
    assert not lease.running and lease.threads_started == 1 and runner.unexpected == []


def test_a_big_site_is_renewed_by_one_annotate_per_hundred_jobs_with_one_token() -> None:
    runner = Annotator()
    lease, _ = _lease(runner)
    members = [lease.join(f"job-{i:03d}", 30) for i in range(250)]
    assert lease.renew(30)
    named = [sel.split(" in (")[1].rstrip(")").split(",") for sel in runner.selectors()]
    assert [len(jobs) for jobs in named] == [JOBS_PER_COMMAND, JOBS_PER_COMMAND, 50]
    assert sorted(job for jobs in named for job in jobs) == [f"job-{i:03d}" for i in range(250)]
    assert max(len(sel) for sel in runner.selectors()) < 4096  # a URL API servers and proxies accept
    assert set(runner.tokens()) == {f"{pod_side.LEASE_ANNOTATION}=t-1"}  # one renewal, one word
    for m in members:
        m.release()


def test_a_job_that_leaves_gets_no_more_word_and_the_last_one_stops_the_thread() -> None:
    runner = Annotator()
    lease, pauses = _lease(runner)
    a, b = lease.join("job-a", 20), lease.join("job-b", 20)
    a.release()
    a.release()  # idempotent
    pauses.tick()
    assert runner.selectors() == [lease_selector(SITE, ["job-b"])]
    b.release()
    assert not lease.running
    c = lease.join("job-c", 20)  # a later job starts it again
    pauses.tick()
    assert runner.selectors()[-1] == lease_selector(SITE, ["job-c"]) and lease.threads_started == 2
    c.release()


def test_stop_ends_the_renewals_of_a_dead_launcher_and_a_later_join_starts_afresh() -> None:
    runner = Annotator()
    lease, pauses = _lease(runner)
    lease.join("job-a", 20)
    member = lease.join("job-b", 20)
    pauses.tick()
    lease.stop(wait=True)
    assert not lease.running and lease.jobs() == [] and len(runner.received) == 1
    member.release()  # after stop: nothing to do, nothing raised
    again = lease.join("job-c", 20)
    pauses.tick()
    assert runner.selectors()[-1] == lease_selector(SITE, ["job-c"])
    again.release()


def test_a_dropped_membership_is_released_by_the_garbage_collector() -> None:
    lease, _ = _lease(Annotator())
    lease.join("job-a", 20)  # nobody keeps it
    assert lease.jobs() == [] and not lease.running


def test_the_shortest_interval_of_the_members_sets_the_pace() -> None:
    lease, pauses = _lease(Annotator())
    slow, fast = lease.join("job-a", 60), lease.join("job-b", 15)
    pauses.tick()
    assert pauses.seconds[-1] == 15
    fast.release()
    pauses.tick()
    assert pauses.seconds[-1] == 60
    slow.release()


def test_a_failed_renewal_is_logged_never_raised_and_the_next_one_goes_through(
    caplog: pytest.LogCaptureFixture,
) -> None:
    refused = CommandResult(("kubectl",), 1, "", 'Error from server (Forbidden): pods is forbidden: User "x"')
    runner = Annotator([refused])
    lease, pauses = _lease(runner)
    member = lease.join("job-a", 20)
    with caplog.at_level(logging.WARNING):
        pauses.tick()
        pauses.tick()
    assert len(runner.received) == 2 and lease.renewals == 1  # Forbidden is permanent: not retried
    assert "could not renew the lease of 1 of the site's job pods" in caplog.text and "Forbidden" in caplog.text
    member.release()


def test_a_transient_failure_is_retried_by_the_seams_policy_within_the_interval() -> None:
    down = CommandResult(("kubectl",), 1, "", "The connection to the server 127.0.0.1:1 was refused")
    runner = Annotator([down, down])
    lease, pauses = _lease(runner)
    member = lease.join("job-a", 20)
    pauses.tick()
    assert len(runner.received) == 3 and lease.renewals == 1  # two retries (retries=2), one renewal
    assert all(c.timeout <= 20 for c in runner.received)
    member.release()


def test_every_renewal_is_journaled_with_the_lease_purpose(tmp_path: Path) -> None:
    from kubectl_launcher.kubectl.journal import Journal

    site_journal, job_journal = Journal(str(tmp_path / "site")), Journal(str(tmp_path / "job"))
    kubectl = Kubectl(namespace="nvflare", runner=Annotator(), retries=0, journal=site_journal)
    lease = SiteLease.for_site(kubectl.for_job(job_journal), SITE)
    assert lease is SiteLease.for_site(kubectl, SITE)  # one per site: every job's copy shares it
    assert lease.kubectl.journals == (site_journal,)  # the site's journal only
    assert lease.renew(10)  # no member: nothing to do, nothing run
    member = lease.join("job-a", 10)
    assert lease.renew(10)
    member.release()
    text = (tmp_path / "site" / "journal.jsonl").read_text()
    assert text.count(f'"purpose": "{LEASE}"') == 1
    assert not (tmp_path / "job" / "journal.jsonl").exists()


def test_a_pod_with_our_labels_joins_its_sites_lease_and_lapse_leaves_it() -> None:
    runner = Annotator()
    kubectl = Kubectl(namespace="nvflare-lease-test", runner=runner, retries=0)
    lease = Lease(TransferSettings(lease_interval=30), clock=lambda: 0.0, log=logging.getLogger("t"))
    plain = {"metadata": {"name": "p", "labels": {}}}
    assert not lease.attach(kubectl, plain) and lease.due()  # a pod without our labels: one exec when due
    labels = {MANAGED_BY_LABEL: MANAGED_BY, SITE_LABEL: "site-1", JOB_LABEL: "job-a"}
    assert lease.attach(kubectl, {"metadata": {"name": "p", "labels": labels}})
    site = SiteLease.for_site(kubectl, SITE)
    assert site.jobs() == ["job-a"] and not lease.due()
    with lease.kept(None, pod_side.INIT_CONTAINER, 900) as renewer:  # type: ignore[arg-type]
        renewer.start()  # inert: the site renews the pod meanwhile
        assert not renewer.running
    lease.lapse()
    assert site.jobs() == [] and not site.running
    assert not lease.attach(kubectl, {"metadata": {"name": "p", "labels": labels}})  # never again after lapse
    assert runner.received == []


# -- the pod side --

FORMATMAP = 'a="x"\nkubectl-launcher/job="j"\nkubectl-launcher/lease="t-7"\nz="say \\"kubectl-launcher/lease=no\\""'


def test_the_lease_word_is_read_from_the_kubelets_annotations_file() -> None:
    assert pod_side.lease_word(FORMATMAP) == '"t-7"'
    assert pod_side.lease_word('a="x"\nkubectl-launcher/lease="t-8"') == '"t-8"'  # the last line: no newline
    assert pod_side.lease_word('a="kubectl-launcher/lease=1"') is None  # in a value, quoted: not a line of ours
    assert pod_side.lease_word("") is None


def _wait(tmp_path: Path, annotations: str, bound: int = 1) -> subprocess.CompletedProcess[str]:
    ctl = tmp_path / "ctl"
    ctl.mkdir(exist_ok=True)
    notes = tmp_path / "annotations"
    notes.write_text(annotations)
    argv = ["sh", "-c", pod_side.WAIT_SCRIPT, "keeper", str(ctl), "1", "released", str(bound), "0", str(notes)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_the_waiting_script_gives_up_without_word_and_leaves_the_lapse_marker(tmp_path: Path) -> None:
    done = _wait(tmp_path, FORMATMAP)
    assert done.returncode == 0 and "no word from the launcher for 1s" in done.stderr
    reason = (tmp_path / "ctl" / pod_side.LAPSED_MARKER).read_text()
    assert reason == "no word from the launcher for 1s: its lease lapsed\n"
    probe = pod_side.lapse_probe(TransferSettings())["exec"]["command"]
    lapsed = [*probe[:-1], str(tmp_path / "ctl" / pod_side.LAPSED_MARKER)]
    out = subprocess.run(lapsed, capture_output=True, text=True, timeout=60, check=False)
    assert (out.returncode, out.stdout) == (1, reason)  # the probe fails and says why
    healthy = subprocess.run([*probe[:-1], str(tmp_path / "none")], capture_output=True, timeout=60, check=False)
    assert healthy.returncode == 0


def test_the_waiting_script_reads_the_lease_line_of_the_annotations_file(tmp_path: Path) -> None:
    """Changes of our line keep it waiting; changes of any other line do not count."""
    notes = tmp_path / "annotations"
    ctl = tmp_path / "ctl"
    stop = threading.Event()

    def writer(ours: bool) -> None:
        n = 0
        while not stop.wait(0.1):
            n += 1
            line = f'kubectl-launcher/lease="t-{n}"' if ours else f'other="{n}"\nkubectl-launcher/lease="t-0"'
            (tmp_path / "next").write_text(f'a="x"\n{line}')
            (tmp_path / "next").rename(notes)  # as the kubelet's ..data swap: whole files only
            if n == 12 and ours:
                (ctl / "released").touch()

    for ours in (True, False):
        for leftover in (ctl / "released", ctl / pod_side.LAPSED_MARKER):
            leftover.unlink(missing_ok=True)
        stop.clear()
        thread = threading.Thread(target=writer, args=(ours,))
        thread.start()
        try:
            done = _wait(tmp_path, 'a="x"', bound=2)
        finally:
            stop.set()
            thread.join()
        assert (ctl / pod_side.LAPSED_MARKER).exists() is not ours, done.stderr


def test_the_probe_waits_for_keep_timeout_and_looks_once_per_lease_interval() -> None:
    probe = pod_side.lapse_probe(TransferSettings(keep_timeout=600, lease_interval=4))
    assert (probe["initialDelaySeconds"], probe["periodSeconds"], probe["failureThreshold"]) == (600, 4, 3)
    assert pod_side.lapse_probe(TransferSettings())["periodSeconds"] == 10  # at most every 10 s
    assert probe["exec"]["command"][-1] == f"{pod_side.CONTROL_PATH}/{pod_side.LAPSED_MARKER}"
    assert "lapsed" in pod_side.WAIT_SCRIPT and f"{pod_side.LEASE_ANNOTATION}=" in pod_side.WAIT_SCRIPT


def test_the_site_renews_three_times_per_delivery_bound_too() -> None:
    short_delivery = TransferSettings(delivery_timeout=120, keep_timeout=300, lease_interval=60)  # the demo's
    assert short_delivery.renewal_interval == 40
    assert TransferSettings().renewal_interval == 60
    runner = Annotator()
    kubectl = Kubectl(namespace="nvflare-lease-pace", runner=runner, retries=0)
    lease = Lease(short_delivery, clock=lambda: 0.0, log=logging.getLogger("t"))
    labels = {MANAGED_BY_LABEL: MANAGED_BY, SITE_LABEL: "site-1", JOB_LABEL: "job-a"}
    assert lease.attach(kubectl, {"metadata": {"name": "p", "labels": labels}})
    site = SiteLease.for_site(kubectl, SITE)
    assert site._interval() == 40
    lease.lapse()
