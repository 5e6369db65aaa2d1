"""The take-over starts with the site: at SYSTEM_START, off the event's thread (the parent accepts its
clients only once its start events return), and once per launcher."""

from __future__ import annotations

import threading
from pathlib import Path

from nvflare.apis.event_type import EventType

from tests.unit.test_launcher import FakeCluster, job_meta, make_ctx, make_launcher
from tests.unit.test_launcher import site as site

LISTING = ("get", "pods", "--selector")


def test_system_start_lists_the_sites_pods_off_the_events_thread_and_only_once(site: Path) -> None:
    cluster = FakeCluster()
    launcher = make_launcher(cluster, site)
    threads: list[str] = []
    answer = cluster.answer

    def record_thread(call):  # type: ignore[no-untyped-def]
        threads.append(threading.current_thread().name)
        return answer(call)

    cluster.answer = record_thread  # type: ignore[method-assign]
    before = set(threading.enumerate())
    launcher.handle_event(EventType.SYSTEM_START, make_ctx(site))
    for thread in set(threading.enumerate()) - before:
        thread.join(10)  # the take-over's thread: listing, then no orphan to adopt
    assert launcher.take_over is not None and launcher.take_over.orphans == []
    assert threading.main_thread().name not in threads
    launcher.launch_job(job_meta(), make_ctx(site))
    assert [c[:3] for c in cluster.calls].count(LISTING) == 1
