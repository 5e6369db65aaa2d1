"""The site-wide pod watch's pure state: lists and events in, found / gone / unavailable out."""

from __future__ import annotations

from typing import Any

import pytest

from kubectl_launcher.domain.pod_cache import (
    NOT_LISTED,
    PodCache,
    PodRead,
    PodReadStatus,
    WatchEvent,
    parse_watch_event,
    reconnect_delay,
)

FOUND, GONE, UNAVAILABLE = PodReadStatus.FOUND, PodReadStatus.GONE, PodReadStatus.UNAVAILABLE


def pod(name: str, rv: int, phase: str = "Running") -> dict[str, Any]:
    return {"kind": "Pod", "metadata": {"name": name, "resourceVersion": str(rv)}, "status": {"phase": phase}}


def event(kind: str, name: str, rv: int, phase: str = "Running") -> WatchEvent:
    return parse_watch_event({"type": kind, "object": pod(name, rv, phase)})


def listed(cache: PodCache, *pods: dict[str, Any], rv: str = "100") -> set[str]:
    return cache.finish_list(cache.begin_list(), pods, rv)


def test_before_the_first_list_every_pod_reads_unavailable_not_gone() -> None:
    cache = PodCache()
    cache.subscribe("a", now=0.0)
    assert cache.read("a") == PodRead(UNAVAILABLE, None, NOT_LISTED, False)


def test_a_list_finds_the_listed_pods_and_proves_the_absence_of_pods_subscribed_before_it() -> None:
    cache = PodCache()
    cache.subscribe("a", now=0.0)
    cache.subscribe("b", now=0.0)
    changed = listed(cache, pod("a", 5))
    assert changed == {"a", "b"}
    assert cache.read("a") == PodRead(FOUND, pod("a", 5))
    assert cache.read("b").status is GONE
    assert cache.resource_version == "100"


def test_a_pod_subscribed_after_the_list_and_not_seen_yet_is_unavailable_until_a_later_list() -> None:
    cache = PodCache()
    listed(cache)
    cache.subscribe("late", now=10.0)
    read = cache.read("late")
    assert read.status is UNAVAILABLE and not read.permanent and "not seen" in read.error
    assert not cache.unconfirmed(now=12.0, after=5.0)
    assert cache.unconfirmed(now=15.0, after=5.0)
    assert listed(cache) == {"late"}
    assert cache.read("late").status is GONE
    assert not cache.unconfirmed(now=30.0, after=5.0)


def test_the_added_event_of_a_subscribed_pod_makes_it_found_and_needs_no_confirmation() -> None:
    cache = PodCache()
    listed(cache)
    cache.subscribe("new", now=10.0)
    assert cache.apply(event("ADDED", "new", 101, "Pending")) == {"new"}
    assert cache.read("new").status is FOUND
    assert not cache.unconfirmed(now=100.0, after=5.0)


def test_a_deleted_event_makes_the_pod_gone_and_the_tombstone_leaves_with_the_last_subscriber() -> None:
    cache = PodCache()
    cache.subscribe("a", now=0.0)
    listed(cache, pod("a", 5))
    assert cache.apply(event("DELETED", "a", 6)) == {"a"}
    assert cache.read("a").status is GONE
    assert cache.resource_version == "6"
    assert cache.unsubscribe("a") is True
    assert cache.read("a").status is UNAVAILABLE  # nobody asked to remember it


def test_a_fresh_list_reconciles_pods_deleted_while_nobody_watched() -> None:
    cache = PodCache()
    cache.subscribe("a", now=0.0)
    cache.subscribe("b", now=0.0)
    listed(cache, pod("a", 5), pod("b", 6))
    assert listed(cache, pod("b", 6), rv="200") == {"a"}  # b unchanged: nobody is woken for it
    assert cache.read("a").status is GONE
    assert cache.read("b") == PodRead(FOUND, pod("b", 6))


def test_an_update_with_the_same_resource_version_changes_nothing() -> None:
    cache = PodCache()
    cache.subscribe("a", now=0.0)
    listed(cache, pod("a", 5))
    assert cache.apply(event("MODIFIED", "a", 5)) == set()
    assert cache.apply(event("MODIFIED", "a", 7, "Succeeded")) == {"a"}


def test_events_of_pods_nobody_follows_are_cached_without_waking_anyone() -> None:
    cache = PodCache()
    listed(cache)
    assert cache.apply(event("ADDED", "other", 101)) == set()
    cache.subscribe("other", now=0.0)
    assert cache.read("other").status is FOUND


def test_an_outage_keeps_the_last_pod_and_says_whether_the_server_refused() -> None:
    cache = PodCache()
    cache.subscribe("a", now=0.0)
    cache.subscribe("gone", now=0.0)
    listed(cache, pod("a", 5))
    assert cache.mark_unavailable("connection refused", False) == {"a"}  # "gone" stays gone
    assert cache.read("a") == PodRead(UNAVAILABLE, pod("a", 5), "connection refused", False)
    assert cache.read("gone").status is GONE
    assert cache.mark_unavailable("Forbidden", True) == {"a"}
    assert cache.read("a").permanent
    assert listed(cache, pod("a", 5)) == {"a"}
    assert cache.read("a").status is FOUND


def test_no_confirmation_is_asked_while_the_watch_is_down() -> None:
    cache = PodCache()
    listed(cache)
    cache.subscribe("x", now=0.0)
    cache.mark_unavailable("down", False)
    assert not cache.unconfirmed(now=100.0, after=5.0)


@pytest.mark.parametrize(
    "document, expected",
    [
        (
            {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}},
            WatchEvent("ERROR", expired=True, message="too old (code 410)"),
        ),
        (
            {"type": "ERROR", "object": {"kind": "Status", "code": 500, "message": "boom"}},
            WatchEvent("ERROR", expired=False, message="boom (code 500)"),
        ),
        (
            {"type": "BOOKMARK", "object": {"kind": "Pod", "metadata": {"resourceVersion": "77"}}},
            WatchEvent("BOOKMARK", resource_version="77"),
        ),
    ],
)
def test_watch_errors_and_bookmarks_are_read(document: dict[str, Any], expected: WatchEvent) -> None:
    assert parse_watch_event(document) == expected


@pytest.mark.parametrize(
    "document",
    [
        {"kind": "PodList"},
        {"type": "ADDED", "object": {"kind": "Secret", "metadata": {"name": "s"}}},
        {"type": "ADDED", "object": {"kind": "Pod", "metadata": {}}},
        {"type": "SOMETHING", "object": {}},
    ],
)
def test_what_is_not_a_pod_watch_event_is_refused(document: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        parse_watch_event(document)


def test_a_bookmark_moves_the_resource_version_only() -> None:
    cache = PodCache()
    listed(cache)
    assert cache.apply(WatchEvent("BOOKMARK", resource_version="150")) == set()
    assert cache.resource_version == "150"


@pytest.mark.parametrize(
    "failures, jitter, delay",
    [
        (0, 0.9, 0.0),
        (1, 0.0, 0.25),
        (1, 1.0, 0.5),
        (2, 0.0, 0.5),
        (3, 0.5, 1.5),
        (6, 1.0, 16.0),
        (7, 0.0, 15.0),  # capped at 30 s: half of it with no jitter
        (7, 1.0, 30.0),
        (50, 1.0, 30.0),
    ],
)
def test_reconnection_backs_off_exponentially_with_jitter_up_to_the_cap(
    failures: int, jitter: float, delay: float
) -> None:
    assert reconnect_delay(failures, jitter, first=0.5, cap=30.0) == pytest.approx(delay)
