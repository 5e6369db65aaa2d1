"""K8sJobHandles with our labels through the real kubectl on the local API double: they follow their
pods through their site's one pod watch. 50 handles on one list and one watch, a pod deleted behind our
back, a watch cut mid-job, an API outage, the launcher stopped and started again.

The handles' kubectl processes are counted by wrapping the real runner and streamer (as
test_pod_watch_localkube.py does); pods are created through a second Kubectl that is not counted.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from localkube.testing import wait_until

from kubectl_launcher.domain.names import managed_labels
from kubectl_launcher.domain.pod_status import JobState
from kubectl_launcher.handle import K8sJobHandle
from kubectl_launcher.kubectl import Kubectl
from kubectl_launcher.kubectl.journal import Journal
from kubectl_launcher.objects.pod_watch import PodWatch, site_selector
from tests.integration.test_pod_watch_localkube import (
    CountingRunner,
    CountingStreamer,
    Processes,
    kubectl_children,
    selector_requests,
)

pytestmark = pytest.mark.integration

SITE = "site-1"
OUTAGE = 60.0  # seconds the API refuses connections, as issue 10 asks (the watch's own tests use 5 s)


@dataclass
class Site:
    cluster: Any
    kubectl: Kubectl  # the site's: counted, journaled in the site journal
    maker: Kubectl  # creates the pods: not counted
    processes: Processes
    gates: Path  # a pod waiting for gates/<name> exits once it appears

    def handle(self, name: str, **kwargs: Any) -> K8sJobHandle:
        job_config = {
            "name": name,
            "image": "local/sh:1",
            "container_name": "job",
            "command": "unused",
            "labels": managed_labels(SITE, name),
        }
        return K8sJobHandle(name, self.kubectl, job_config, python_path="/bin/sh", **kwargs)

    def start(self, name: str, script: str | None = None, **kwargs: Any) -> K8sJobHandle:
        """The pod as the launcher builds it (through the handle), running `script` (default: wait for
        its gate, then exit 0), created; then the handle, as launch_job returns it."""
        handle = self.handle(name, **kwargs)
        manifest = handle.get_manifest()
        gate = self.gates / name
        run = script or f"while [ ! -e {gate} ]; do sleep 0.1; done"
        manifest["spec"]["containers"][0]["args"] = ["-c", run]
        manifest["spec"]["terminationGracePeriodSeconds"] = 0
        self.maker.run(
            ("create", "--filename", "-", "--output", "name", "--validate=false"), stdin=json.dumps(manifest)
        )
        return handle

    def open_gate(self, name: str) -> None:
        (self.gates / name).touch()

    def watch(self) -> PodWatch:
        selector = site_selector(managed_labels(SITE, "any"))
        assert selector is not None
        return PodWatch.for_site(self.kubectl, selector)

    def requests(self, *, watch: bool) -> int:
        """How many pod lists (watch=False) or pod watches (watch=True) of our selector the double served."""
        return len(selector_requests(self.cluster, watch=watch))

    def open_watches(self) -> int:
        return int(self.cluster.call(lambda store: len(store.watchers)))

    def journal(self) -> list[dict[str, Any]]:
        path = Path(self.kubectl.journals[0].jsonl_path)
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def waiting(handle: K8sJobHandle) -> threading.Thread:
    thread = threading.Thread(target=handle.wait, daemon=True)
    thread.start()
    return thread


def running(handle: K8sJobHandle) -> bool:
    return handle.enter_states([JobState.RUNNING])


@pytest.fixture
def site(local_cluster: Any, kubectl_path: str, tmp_path: Path, gates: Path) -> Iterator[Site]:
    processes = Processes()
    common = {
        "kubeconfig": local_cluster.kubeconfig_path,
        "kubectl": kubectl_path,
        "cache_dir": local_cluster.cache_dir,
    }
    kubectl = Kubectl(
        **common,
        journal=Journal(str(tmp_path / "site")),
        runner=CountingRunner(processes),
        streamer=CountingStreamer(processes),
    )
    yield Site(local_cluster, kubectl, Kubectl(**common), processes, gates)
    assert processes.running == 0 and kubectl_children() == []


def test_fifty_handles_follow_their_pods_through_one_list_and_one_watch(site: Site) -> None:
    names = [f"job-{i:02d}" for i in range(50)]
    handles = {
        n: site.start(n, f"while [ ! -e {site.gates / n} ]; do sleep 0.1; done; exit {i % 2}")
        for i, n in enumerate(names)
    }
    # Every handle follows its pod before any pod may end: a handle lets go of the watch when its job
    # ends, and the last one to let go stops it, so a job ending before the next handle's first look
    # would start a second list and watch (as it did on the real control plane, where pods start slower).
    assert all(running(h) for h in handles.values())
    threads = [waiting(h) for h in handles.values()]
    for name in names:
        site.open_gate(name)
    for thread in threads:
        thread.join(180)
    assert not any(t.is_alive() for t in threads)
    assert {n: h.poll() for n, h in handles.items()} == {n: (0 if i % 2 == 0 else 9) for i, n in enumerate(names)}
    assert site.requests(watch=False) == 1 and site.processes.watches == 1  # the site's, for all fifty
    assert not site.watch().running and kubectl_children() == []  # the last handle's end stopped it
    purposes = {e["purpose"] for e in site.journal() if "--raw" in e["argv"]}
    assert purposes == {"watch"}


@pytest.mark.double_only
def test_a_pod_deleted_behind_our_back_is_terminated(site: Site) -> None:
    handle = site.start("doomed")
    assert running(handle)
    thread = waiting(handle)
    site.cluster.call(lambda store: store.delete("pods", "default", "doomed", grace=0))
    thread.join(60)
    assert not thread.is_alive()
    assert handle.terminal_state is JobState.TERMINATED and handle.poll() == 9
    assert site.requests(watch=False) == 1 and site.processes.watches == 1


@pytest.mark.double_only
def test_a_watch_cut_during_a_job_is_resumed_and_the_job_keeps_its_state(site: Site) -> None:
    handle = site.start("steady")
    assert running(handle)
    assert wait_until(lambda: site.open_watches() == 1, timeout=30)  # the list answered; the watch is open
    site.cluster.faults.cut_watches()
    assert wait_until(lambda: site.processes.watches == 2, timeout=30)
    assert handle.poll() == 127 and handle.terminal_state is None  # still running, nothing invented
    site.open_gate("steady")
    handle.wait()
    assert handle.poll() == 0
    assert site.requests(watch=False) == 1  # resumed from the last resourceVersion: no list


@pytest.mark.double_only
def test_a_resource_version_compacted_away_relists_and_every_job_keeps_its_state(site: Site) -> None:
    handles = {n: site.start(n) for n in ("first", "second")}
    assert all(running(h) for h in handles.values())
    assert wait_until(lambda: site.open_watches() == 1, timeout=30)
    site.maker.run(("run", "not-ours", "--image", "local/sh:1", "--restart", "Never", "--", "sleep", "3600"))
    site.cluster.call(lambda store: store.compact())  # our watch's resourceVersion is gone
    site.cluster.faults.cut_watches()
    # The resumed watch is told 410 Gone: one list again, then a watch from that list.
    assert wait_until(lambda: site.requests(watch=False) == 2 and site.open_watches() == 1, timeout=30)
    assert [h.poll() for h in handles.values()] == [127, 127]
    site.open_gate("first")
    handles["first"].wait()
    site.cluster.call(lambda store: store.delete("pods", "default", "second", grace=0))
    handles["second"].wait()
    assert [h.poll() for h in handles.values()] == [0, 9]
    assert [h.terminal_state for h in handles.values()] == [JobState.SUCCEEDED, JobState.TERMINATED]
    assert site.requests(watch=False) == 2 and site.processes.most == 1
    site.maker.run(("delete", "pod", "not-ours", "--wait=false"))


@pytest.mark.double_only
def test_an_api_refusing_connections_for_a_while_fails_no_job(site: Site) -> None:
    handles = {n: site.start(n) for n in ("a", "b", "c")}
    assert all(running(h) for h in handles.values())
    assert wait_until(lambda: site.open_watches() == 1, timeout=30)
    site.cluster.faults.refuse_connections(OUTAGE)
    site.cluster.faults.cut_watches()  # a closed listener keeps open connections: end ours too
    assert wait_until(lambda: site.processes.watches >= 2, timeout=30)
    down_since = site.processes.lists
    for _ in range(int(OUTAGE / 10) - 1):  # looked at through the outage, every 10 s
        threading.Event().wait(10)
        assert [h.poll() for h in handles.values()] == [127, 127, 127]  # unknown while down, never failed
        assert all(h.terminal_state is None for h in handles.values())
    assert wait_until(lambda: site.open_watches() == 1, timeout=OUTAGE + 60)
    # One kubectl at a time for the whole site, never one per job: the backoff (0.25 s doubling to at
    # most 2 s, jittered) lists at most about once a second for three jobs as for one.
    assert site.processes.most == 1
    assert site.processes.lists - down_since <= 2 + int(OUTAGE)
    for name in handles:
        site.open_gate(name)
    for handle in handles.values():
        handle.wait()
    assert [h.poll() for h in handles.values()] == [0, 0, 0]
    assert all(h.terminal_state is JobState.SUCCEEDED for h in handles.values())


@pytest.mark.double_only
def test_a_stopped_launcher_leaves_no_kubectl_and_a_new_handle_starts_a_new_watch(site: Site) -> None:
    first = [site.start(n) for n in ("one", "two")]
    assert all(running(h) for h in first)
    assert wait_until(lambda: site.open_watches() == 1, timeout=30)  # the list answered; the watch is open
    assert len(kubectl_children()) == 1  # the site's watch, nothing else
    for handle in first:
        handle.terminate()  # what the launcher's shutdown does to the jobs it still runs
    assert not site.watch().running and kubectl_children() == []
    again = site.start("three")
    assert running(again)
    assert wait_until(lambda: site.processes.watches == 2, timeout=30)  # the list answers first
    assert site.requests(watch=False) == 2 and site.processes.watches == 2
    site.open_gate("three")
    again.wait()
    assert again.poll() == 0 and kubectl_children() == []
