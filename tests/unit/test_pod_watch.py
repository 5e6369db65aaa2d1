"""The site-wide pod watch driven by a hand-written streamer and a scripted runner: no process starts.

The streamer's processes are fed by the test line by line (a watch that goes on until the test ends
it), so each step is observed as a subscriber would: latest(), wait_for_change().
"""

from __future__ import annotations

import json
import queue
import signal
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from kubectl_launcher.domain.pod_cache import PodReadStatus, reconnect_delay
from kubectl_launcher.kubectl import CommandResult, Kubectl
from kubectl_launcher.kubectl.journal import Journal
from kubectl_launcher.objects.pod_watch import PodWatch, site_selector

try:
    from tests.support import fake_runner
except ModuleNotFoundError:  # run as `pytest`, not `python -m pytest`: the repository root is not on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.support import fake_runner

T = TypeVar("T")
SELECTOR = "app.kubernetes.io/managed-by=kubectl-launcher,kubectl-launcher/site=site-1-abc"
FOUND, GONE, UNAVAILABLE = PodReadStatus.FOUND, PodReadStatus.GONE, PodReadStatus.UNAVAILABLE
REFUSED = "The connection to the server 127.0.0.1:1 was refused - did you specify the right host or port?\n"
FORBIDDEN = 'Error from server (Forbidden): pods is forbidden: User "x" cannot list resource "pods"\n'


def eventually(predicate: Callable[[], T], timeout: float = 10.0) -> T:
    """Poll (bounded) until predicate() is truthy; its value. Not a timing assertion: a bound on a hang."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value: {value!r})")
        time.sleep(0.01)


def pod(name: str, rv: int, phase: str = "Running") -> dict[str, Any]:
    return {"kind": "Pod", "metadata": {"name": name, "resourceVersion": str(rv)}, "status": {"phase": phase}}


def pod_list(rv: int, *pods: dict[str, Any]) -> str:
    return json.dumps({"kind": "PodList", "metadata": {"resourceVersion": str(rv)}, "items": list(pods)})


def line(kind: str, obj: dict[str, Any]) -> str:
    return json.dumps({"type": kind, "object": obj})


def query(argv: Sequence[str]) -> dict[str, str]:
    raw = argv[argv.index("--raw") + 1]
    return dict(urllib.parse.parse_qsl(raw.split("?", 1)[1]))


class LiveProcess:
    """A watch process the test speaks for: say() a line, end() with a code; a signal ends it."""

    def __init__(self, on_line: Callable[[str | bytes], bool], on_stderr: Callable[[str | bytes], object]) -> None:
        self._on_line = on_line
        self._on_stderr = on_stderr
        self._queue: queue.Queue[tuple[str, int]] = queue.Queue()
        self.signals: list[int] = []

    def say(self, *lines: str) -> None:
        for text in lines:
            self._queue.put((text, 0))

    def end(self, returncode: int = 0, stderr: str = "") -> None:
        self._queue.put((stderr, returncode if returncode else 0))
        self._queue.put(("", -1000 - returncode))

    def wait(self) -> int | None:
        stderr = ""
        while True:
            text, code = self._queue.get()
            if code <= -1000:
                if stderr:
                    self._on_stderr(stderr)
                return -1000 - code
            if code > 0:
                stderr = text
            elif code < 0:
                return code  # signalled
            elif text:
                self._on_line(text + "\n")

    def signal(self, signum: int) -> None:
        if signum not in (signal.SIGTERM, signal.SIGKILL):
            raise AssertionError(f"unexpected signal {signum}")
        self.signals.append(signum)
        self._queue.put(("", -signum))


@dataclass
class LiveStreamer:
    """Starts a LiveProcess per stream; a test reaches the n-th with process(n)."""

    started: list[tuple[str, ...]] = field(default_factory=list)
    processes: list[LiveProcess] = field(default_factory=list)

    def __call__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        on_line: Callable[[str | bytes], bool],
        on_stderr: Callable[[str | bytes], object],
    ) -> LiveProcess:
        process = LiveProcess(on_line, on_stderr)
        self.started.append(tuple(argv))
        self.processes.append(process)
        return process

    def process(self, n: int) -> LiveProcess:
        return eventually(lambda: len(self.processes) >= n and self.processes[n - 1])


@dataclass
class ListRunner(fake_runner.ScriptedRunner):
    """Answers `get --raw` lists and `get events` from their scripts, in order."""

    lists: list[tuple[int, str, str]] = field(default_factory=list)
    events: list[tuple[int, str, str]] = field(default_factory=list)

    def answer(self, call: fake_runner.RunnerCall) -> CommandResult:
        script = self.events if "events" in call.argv else self.lists
        rc, out, err = self.next_scripted(script, call)
        return CommandResult(call.argv, rc, out, err, 0.01, 1_700_000_000.0)

    @property
    def list_calls(self) -> list[fake_runner.RunnerCall]:
        return [c for c in self.received if "--raw" in c.argv]


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Pause:
    """The watch's backoff waits, recorded; from the `hold_from`-th on they wait for `released`."""

    delays: list[float] = field(default_factory=list)
    hold_from: int | None = None
    released: threading.Event = field(default_factory=threading.Event)

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self.hold_from is not None and len(self.delays) >= self.hold_from:
            self.released.wait(10)


@dataclass
class Site:
    kubectl: Kubectl
    runner: ListRunner
    streamer: LiveStreamer
    clock: Clock
    pause: Pause
    watch: PodWatch

    @property
    def pauses(self) -> list[float]:
        return self.pause.delays


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    runner, streamer, clock, pause = ListRunner(), LiveStreamer(), Clock(), Pause()
    kubectl = Kubectl(
        kubectl="/nonexistent/kubectl",
        namespace="ns1",
        cache_dir=str(tmp_path / "cache"),
        journal=Journal(str(tmp_path / "site")),
        runner=runner,
        streamer=streamer,
        sleep=lambda seconds: None,  # the seam's own retries (the events read), not the watch's backoff
    )
    watch = PodWatch(
        kubectl,
        SELECTOR,
        clock=clock,
        pause=pause,
        rng=lambda: 0.5,
        backoff_first=0.5,
        backoff_cap=30.0,
        watch_timeout=300.0,
        confirm_after=5.0,
        healthy_after=10.0,
        events_interval=1.0,
    )
    yield Site(kubectl, runner, streamer, clock, pause, watch)
    pause.released.set()
    watch.stop()
    assert not runner.unexpected


def test_the_first_subscription_lists_then_watches_from_the_lists_resource_version(site: Site) -> None:
    site.runner.lists.append((0, pod_list(100, pod("a", 90, "Pending")), ""))
    sub = site.watch.subscribe("a")
    first = site.streamer.process(1)
    assert eventually(lambda: sub.latest().status is FOUND)
    assert sub.latest().pod == pod("a", 90, "Pending")
    (listing,) = site.runner.list_calls
    raw = listing.argv[listing.argv.index("--raw") + 1]
    assert raw.startswith("/api/v1/namespaces/ns1/pods?") and query(listing.argv) == {"labelSelector": SELECTOR}
    watch_argv = site.streamer.started[0]
    assert query(watch_argv) == {
        "labelSelector": SELECTOR,
        "watch": "true",
        "resourceVersion": "100",
        "allowWatchBookmarks": "true",
        "timeoutSeconds": "450",  # 300 s * (1 + rng 0.5)
    }
    assert watch_argv[watch_argv.index("--request-timeout") + 1] == "0s"
    first.say(line("MODIFIED", pod("a", 101, "Succeeded")))
    assert sub.wait_for_change(10.0) is True
    read = sub.latest()
    assert read.status is FOUND and read.pod is not None and read.pod["status"]["phase"] == "Succeeded"
    assert sub.wait_for_change(0.05) is False  # nothing new since latest()


def test_a_watch_the_server_closed_resumes_from_the_last_resource_version_without_a_list(site: Site) -> None:
    site.runner.lists.append((0, pod_list(100, pod("a", 90)), ""))
    sub = site.watch.subscribe("a")
    site.streamer.process(1).say(
        line("MODIFIED", pod("a", 105)), line("BOOKMARK", {"metadata": {"resourceVersion": "120"}})
    )
    eventually(lambda: (sub.latest().pod or {}).get("metadata", {}).get("resourceVersion") == "105")
    site.streamer.process(1).end(0)
    site.streamer.process(2)
    assert query(site.streamer.started[1])["resourceVersion"] == "120"
    assert len(site.runner.list_calls) == 1
    assert site.pauses == []  # a healthy watch comes back at once
    assert sub.latest().status is FOUND


def test_an_expired_resource_version_lists_again_and_reconciles_pods_deleted_in_the_gap(site: Site) -> None:
    site.runner.lists += [(0, pod_list(100, pod("a", 90), pod("b", 91)), ""), (0, pod_list(300, pod("b", 91)), "")]
    a, b = site.watch.subscribe("a"), site.watch.subscribe("b")
    eventually(lambda: a.latest().status is FOUND)
    site.streamer.process(1).say(
        line("ERROR", {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"})
    )
    assert a.wait_for_change(10.0)
    assert eventually(lambda: a.latest().status is GONE)
    assert b.latest().status is FOUND
    site.streamer.process(2)
    assert query(site.streamer.started[1])["resourceVersion"] == "300"
    assert site.streamer.processes[0].signals == [signal.SIGTERM]


def test_a_pod_deleted_behind_our_back_is_gone(site: Site) -> None:
    site.runner.lists.append((0, pod_list(100, pod("a", 90)), ""))
    sub = site.watch.subscribe("a")
    eventually(lambda: sub.latest().status is FOUND)
    site.streamer.process(1).say(line("DELETED", pod("a", 110)))
    assert eventually(lambda: sub.latest().status is GONE)


def test_an_outage_reads_unavailable_with_the_last_pod_and_backs_off_for_the_whole_site(site: Site) -> None:
    site.runner.lists += [
        (0, pod_list(100, pod("a", 90)), ""),
        (1, "", REFUSED),
        (1, "", REFUSED),
        (1, "", FORBIDDEN),
        (0, pod_list(200, pod("a", 150, "Succeeded")), ""),
    ]
    subs = [site.watch.subscribe("a") for _ in range(3)]
    eventually(lambda: subs[0].latest().status is FOUND)
    site.clock.now += 1  # the watch lived one second without an event: not yet healthy
    site.streamer.process(1).end(1, REFUSED)
    # The failed watch, then two refused lists and a forbidden one: one kubectl at a time, with backoff.
    second = site.streamer.process(2)
    read = subs[0].latest()
    assert read.status is FOUND and read.pod == pod("a", 150, "Succeeded")
    assert site.pauses == [reconnect_delay(n, 0.5) for n in (1, 2, 3, 4)]
    assert len(site.runner.list_calls) == 5 and len(site.streamer.started) == 2
    assert all(s.latest().status is FOUND for s in subs)
    second.end(0)
    site.streamer.process(3)


def test_while_down_a_subscriber_sees_unavailable_and_whether_it_is_a_refusal(site: Site) -> None:
    site.runner.lists += [(0, pod_list(100, pod("a", 90)), ""), (1, "", FORBIDDEN)]
    site.pause.hold_from = 2  # the loop stays in its backoff after the refused list
    sub = site.watch.subscribe("a")
    eventually(lambda: sub.latest().status is FOUND)
    site.streamer.process(1).end(1, REFUSED)
    read = eventually(lambda: (r := sub.latest()).permanent and r)
    assert read.status is UNAVAILABLE and read.pod == pod("a", 90) and "Forbidden" in read.error
    assert len(site.runner.list_calls) == 2 and len(site.streamer.started) == 1
    site.pause.released.set()
    sub.release()


def test_the_last_release_stops_the_watch_and_a_new_subscription_starts_a_new_one(site: Site) -> None:
    site.runner.lists += [(0, pod_list(100, pod("a", 90)), ""), (0, pod_list(200, pod("a", 95)), "")]
    first, second = site.watch.subscribe("a"), site.watch.subscribe("b")
    process = site.streamer.process(1)
    eventually(lambda: first.latest().status is FOUND)
    first.release()
    first.release()  # idempotent
    assert process.signals == [] and site.watch.running
    second.release()
    assert process.signals == [signal.SIGTERM] and not site.watch.running
    assert first.released and second.released
    again = site.watch.subscribe("a")
    site.streamer.process(2)
    assert eventually(lambda: again.latest().status is FOUND)
    assert site.watch.informers_started == 2 and len(site.runner.list_calls) == 2
    assert query(site.streamer.started[1])["resourceVersion"] == "200"


def test_wake_ends_a_wait_for_change_without_changing_what_latest_reads(site: Site) -> None:
    site.runner.lists.append((0, pod_list(100, pod("a", 90)), ""))
    sub = site.watch.subscribe("a")
    eventually(lambda: sub.latest().status is FOUND)
    before = sub.latest()
    woke: list[bool] = []
    waiter = threading.Thread(target=lambda: woke.append(sub.wait_for_change(30.0)))
    waiter.start()
    sub.wake()
    waiter.join()
    assert woke == [True] and sub.latest() == before
    assert sub.wait_for_change(0.0) is False  # the wake was taken by the last read


def test_a_subscription_dropped_unreleased_is_released_when_collected(site: Site) -> None:
    site.runner.lists.append((0, pod_list(100), ""))
    sub = site.watch.subscribe("a")
    process = site.streamer.process(1)
    del sub
    assert eventually(lambda: not site.watch.running)
    assert process.signals == [signal.SIGTERM]


def test_a_subscribed_pod_never_seen_is_confirmed_by_one_list_and_then_gone(site: Site) -> None:
    site.runner.lists += [(0, pod_list(100), ""), (0, pod_list(130), "")]
    early = site.watch.subscribe("early")  # subscribed before the first list: that list decides
    eventually(lambda: early.latest().status is GONE)
    late = site.watch.subscribe("late")
    read = late.latest()
    assert read.status is UNAVAILABLE and "not seen" in read.error and not read.permanent
    site.clock.now += 6  # past confirm_after: the loop lists once to learn whether it exists
    assert eventually(lambda: late.latest().status is GONE)
    assert len(site.runner.list_calls) == 2
    site.streamer.process(2)


def test_a_pod_added_soon_after_subscribing_is_found_without_a_list(site: Site) -> None:
    site.runner.lists.append((0, pod_list(100), ""))
    warm = site.watch.subscribe("warm")
    eventually(lambda: warm.latest().status is GONE)  # the list ran
    sub = site.watch.subscribe("new")
    site.streamer.process(1).say(line("ADDED", pod("new", 101, "Pending")))
    assert eventually(lambda: sub.latest().status is FOUND)
    assert len(site.runner.list_calls) == 1


def test_copies_of_one_kubectl_share_one_watch_and_it_journals_through_the_sites(tmp_path: Path) -> None:
    site_kubectl = Kubectl(kubectl="/nonexistent/kubectl", namespace="ns1", cache_dir=str(tmp_path / "c"))
    job_a = site_kubectl.for_job(Journal(str(tmp_path / "a")))
    job_b = site_kubectl.for_job(Journal(str(tmp_path / "b")))
    watch = PodWatch.for_site(job_a, SELECTOR)
    assert PodWatch.for_site(job_b, SELECTOR) is watch
    assert watch.kubectl.journals == job_a.journals
    assert PodWatch.for_site(site_kubectl, SELECTOR) is watch
    assert watch.kubectl is site_kubectl  # the fewest journals: the site's
    assert PodWatch.for_site(job_b, SELECTOR, namespace="other") is not watch
    assert PodWatch.for_site(job_b, SELECTOR.replace("site-1", "site-2")) is not watch
    other = Kubectl(kubectl="/nonexistent/kubectl", namespace="ns1", cache_dir=str(tmp_path / "c"), context="x")
    assert PodWatch.for_site(other, SELECTOR) is not watch


def test_the_watch_journals_into_the_site_journal_only_not_the_first_jobs(tmp_path: Path) -> None:
    site_journal = Journal(str(tmp_path / "site"))
    site_kubectl = Kubectl(kubectl="/nonexistent/kubectl", namespace="ns2", journal=site_journal)
    job = site_kubectl.for_job(Journal(str(tmp_path / "job")))
    watch = PodWatch.for_site(job, SELECTOR)
    assert watch.kubectl.journals == (site_journal,)
    assert job.journals[0] is site_journal and len(job.journals) == 2  # the job's own Kubectl is untouched


def test_the_site_selector_comes_from_our_labels_only() -> None:
    labels = {
        "app.kubernetes.io/managed-by": "kubectl-launcher",
        "kubectl-launcher/site": "site-1-abc",
        "kubectl-launcher/job": "j1",
    }
    assert site_selector(labels) == SELECTOR
    assert site_selector({"kubectl-launcher/site": "site-1-abc"}) is None
    assert site_selector({"app.kubernetes.io/managed-by": "kubectl-launcher"}) is None


def events_list(*names: str) -> str:
    items = [
        {"kind": "Event", "type": "Warning", "reason": "FailedScheduling", "involvedObject": {"kind": "Pod", "name": n}}
        for n in names
    ]
    return json.dumps({"kind": "List", "items": items})


def test_one_events_read_per_interval_serves_every_pending_pod(site: Site) -> None:
    site.runner.lists.append((0, pod_list(100), ""))
    site.runner.events += [(0, events_list("a", "a", "b"), ""), (1, "", REFUSED), (1, "", REFUSED)]
    site.runner.events += [(1, "", REFUSED), (1, "", REFUSED)]  # the seam's retries of the second read
    a, b, c = (site.watch.subscribe(n) for n in "abc")
    assert [e["reason"] for e in a.events() or []] == ["FailedScheduling", "FailedScheduling"]
    assert len(b.events() or []) == 1 and c.events() == []
    events_calls = [call for call in site.runner.received if "events" in call.argv]
    assert len(events_calls) == 1
    argv = events_calls[0].argv
    assert argv[argv.index("--field-selector") + 1] == "involvedObject.kind=Pod,type=Warning"
    site.clock.now += 1.5
    assert a.events() is None and b.events() is None  # one failed read, shared
    assert site.watch.events.reads == 2


def test_a_hold_starts_the_watch_before_any_pod_and_a_pod_applied_then_is_found_without_a_list(site: Site) -> None:
    site.runner.lists.append((0, pod_list(100), ""))
    hold = site.watch.hold()  # a launch, before its apply
    process = site.streamer.process(1)
    assert eventually(lambda: len(site.runner.list_calls) == 1) and site.watch.running
    sub = site.watch.subscribe("new")  # once the pod exists: the list before it proves nothing
    process.say(line("ADDED", pod("new", 101, "Pending")))
    assert eventually(lambda: sub.latest().status is FOUND)
    hold.release()
    hold.release()  # idempotent
    assert site.watch.running and process.signals == []  # the subscriber keeps it
    sub.release()
    assert process.signals == [signal.SIGTERM] and not site.watch.running
    assert len(site.runner.list_calls) == 1


def test_releasing_the_last_hold_with_no_subscriber_stops_the_watch(site: Site) -> None:
    site.runner.lists.append((0, pod_list(100), ""))
    hold = site.watch.hold()
    process = site.streamer.process(1)
    eventually(lambda: len(site.runner.list_calls) == 1)
    hold.release()
    assert process.signals == [signal.SIGTERM] and not site.watch.running
