"""One pod watch per site: every handle of a site follows its pod through one long-running kubectl.

`PodWatch.for_site(kubectl, selector)` is shared by every handle built on the same Kubectl (its
`for_job` copies included) for the same namespace and selector. It runs an informer in the manner
of client-go's reflector, through kubectl:

* list: `kubectl get --raw /api/v1/namespaces/NS/pods?labelSelector=...` - the PodList and its
  resourceVersion (`get pods -o json` prints a List whose resourceVersion is empty);
* watch from it: `kubectl get --raw ...&watch=true&resourceVersion=RV&allowWatchBookmarks=true
  &timeoutSeconds=T` - one JSON event per line, one HTTP request per process, no discovery.
  `kubectl get pods --watch` cannot resume (it has no resourceVersion flag: every start is a new
  list whose end it does not mark, so a deletion missed in between could never be noticed);
* kubectl exiting 0 (the server closed the watch, e.g. after `timeoutSeconds`, 5-10 min) -> watch
  again from the last resourceVersion seen, no list; an ERROR 410 / "too old resource version"
  -> list again; any other end -> list again and reconcile (pods missing from the list are gone).

While no list succeeds (API down, credentials refused), subscribers read "unavailable" with the
error and whether it was a refusal, and the last pod seen - never a false "gone". Reconnection
waits a capped exponential backoff with jitter, for the whole site: one thread, so at most one
kubectl process at a time for the watch. The informer starts with the first subscription (or a
launch's `hold()`, taken just before its apply) and stops (its kubectl too) when the last one is
released, and at interpreter exit.
"""

from __future__ import annotations

import atexit
import logging
import random
import threading
import time
import urllib.parse
import weakref
from collections.abc import Callable, Mapping
from functools import partial

from kubectl_launcher.domain.names import MANAGED_BY, MANAGED_BY_LABEL, SITE_LABEL
from kubectl_launcher.domain.pod_cache import PodCache, PodRead, reconnect_delay
from kubectl_launcher.domain.pod_status import Event
from kubectl_launcher.kubectl import Kubectl
from kubectl_launcher.objects.pod_events import DEFAULT_EVENTS_INTERVAL, EventsCache
from kubectl_launcher.objects.pod_informer import Informer, InformerSettings
from kubectl_launcher.objects.site_scope import SiteObjects

__all__ = [
    "PodSubscription",
    "PodWatch",
    "WatchHold",
    "list_args",
    "site_selector",
    "watch_args",
]

_log = logging.getLogger(__name__)
_STOPPED = "the site's pod watch was stopped"


def site_selector(labels: Mapping[str, str]) -> str | None:
    """The watch's selector for a pod carrying our labels (design contract 4); None: not one of ours."""
    site = labels.get(SITE_LABEL)
    if labels.get(MANAGED_BY_LABEL) != MANAGED_BY or not site:
        return None
    return f"{MANAGED_BY_LABEL}={MANAGED_BY},{SITE_LABEL}={site}"


def _pods_path(namespace: str, query: Mapping[str, str]) -> str:
    return f"/api/v1/namespaces/{urllib.parse.quote(namespace)}/pods?{urllib.parse.urlencode(query)}"


def list_args(namespace: str, selector: str) -> tuple[str, ...]:
    """The site's pods as the API's PodList (with the resourceVersion a watch starts from)."""
    return ("get", "--raw", _pods_path(namespace, {"labelSelector": selector}))


def watch_args(namespace: str, selector: str, resource_version: str, timeout_seconds: int) -> tuple[str, ...]:
    """The site's pods' changes after `resource_version`, for `timeout_seconds` (the server then closes it)."""
    query = {
        "labelSelector": selector,
        "watch": "true",
        "resourceVersion": resource_version,
        "allowWatchBookmarks": "true",
        "timeoutSeconds": str(timeout_seconds),
    }
    return ("get", "--raw", _pods_path(namespace, query))


class PodSubscription:
    """One subscriber's view of one pod: `latest()`, `wait_for_change(timeout)`, `events()`, `release()`.

    Dropping it unreleased releases it when it is garbage collected.
    """

    def __init__(self, watch: PodWatch, informer: Informer, name: str) -> None:
        self.name = name
        self._informer = informer
        self._events = watch.events
        self._waiter = informer.add_waiter(name)
        self._release = weakref.finalize(self, watch._release, informer, partial(informer.remove_waiter, self._waiter))

    def latest(self) -> PodRead:
        """The pod as the watch last saw it: FOUND (pod JSON), GONE, or UNAVAILABLE (error, permanent)."""
        return self._informer.read(self._waiter)

    def wait_for_change(self, timeout: float) -> bool:
        """Block until latest() would answer differently from its last call (True), or `timeout` s (False)."""
        return self._informer.wait(self._waiter, timeout)

    def events(self) -> list[Event] | None:
        """The pod's Warning events (shared namespace-wide read, at most one per interval); None: unreadable."""
        return self._events.events_for(self.name)

    def wake(self) -> None:
        """Make a wait_for_change under way (or the next one) return True at once: news from elsewhere
        (the job ended, a transfer step finished). latest() answers as before."""
        self._informer.poke(self._waiter)

    def release(self) -> None:
        """This subscriber is done; the last one to release stops the watch's kubectl. Idempotent."""
        self._release()

    @property
    def released(self) -> bool:
        return not self._release.alive


class WatchHold:
    """The site's watch kept running with no pod followed (PodWatch.hold); `release()` is idempotent, and
    dropping it unreleased releases it when it is garbage collected."""

    def __init__(self, watch: PodWatch, informer: Informer) -> None:
        self._release = weakref.finalize(
            self, watch._release, informer, partial(informer.remove_hold, informer.add_hold())
        )

    def release(self) -> None:
        self._release()


class PodWatch:
    """The watch of one site's pods (one namespace, one selector) shared by all its subscribers."""

    _sites: SiteObjects[PodWatch] = SiteObjects()

    def __init__(
        self,
        kubectl: Kubectl,
        selector: str,
        *,
        namespace: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        pause: Callable[[float], object] | None = None,
        rng: Callable[[], float] = random.random,
        backoff_first: float = 0.5,
        backoff_cap: float = 30.0,
        watch_timeout: float = 300.0,
        confirm_after: float = 5.0,
        healthy_after: float = 10.0,
        events_interval: float = DEFAULT_EVENTS_INTERVAL,
    ) -> None:
        """`pause(seconds)` waits between reconnection attempts (default: a wait that stop() cuts short);
        `rng()` in [0, 1) draws the jitter and the watch's lifetime (`watch_timeout` to twice that);
        `confirm_after`: a subscribed pod unseen that long triggers one list to tell whether it exists;
        `healthy_after`: a watch that lived that long (or saw an event) resets the backoff."""
        self.kubectl = kubectl
        self.selector = selector
        self.namespace = namespace or kubectl.namespace
        self._clock = clock
        self._pause = pause
        self._rng = rng
        self._backoff = (backoff_first, backoff_cap)
        self._settings = InformerSettings(watch_timeout, confirm_after, healthy_after)
        self.events = EventsCache(kubectl, self.namespace, interval=events_interval, clock=clock)
        self._lock = threading.Lock()
        self._informer: Informer | None = None
        self._previous: Informer | None = None
        self.informers_started = 0

    @classmethod
    def for_site(cls, kubectl: Kubectl, selector: str, *, namespace: str | None = None) -> PodWatch:
        """The site's shared watch for `selector` (see site_selector) in `namespace` (default: kubectl's).

        Copies of one Kubectl (`for_job`) share it. The watch serves every job of the site, so it journals
        into the site's journal only: a Kubectl is built with one journal (the site's) and `for_job` adds
        the job's after it, so the watch keeps the first; and the fewest journals of any Kubectl seen.
        """
        return cls._sites.get(
            kubectl,
            selector,
            namespace,
            lambda site, ns: cls(site, selector, namespace=ns),
            found=lambda watch, site: watch._prefer(site),
        )

    def _prefer(self, kubectl: Kubectl) -> None:
        mine, theirs = self.kubectl.journals, kubectl.journals
        if len(theirs) < len(mine) and all(a is b for a, b in zip(theirs, mine, strict=False)):
            self.kubectl = kubectl

    @property
    def running(self) -> bool:
        with self._lock:
            return self._informer is not None

    def subscribe(self, pod_name: str) -> PodSubscription:
        """Follow one pod (subscribe once it was created: a list begun later proves absence).

        The first subscription (or hold) starts the watch's thread and kubectl."""
        with self._lock:
            informer, start = self._informer_locked()
            subscription = PodSubscription(self, informer, pod_name)
        if start:
            informer.start()
        return subscription

    def hold(self) -> WatchHold:
        """Start the watch now (if it is not running) and keep it running, following no pod, until the
        hold is released: a launch holds it from before its apply until its handle has subscribed, so the
        site's list runs beside the launch's first commands instead of after its apply."""
        with self._lock:
            informer, start = self._informer_locked()
            hold = WatchHold(self, informer)
        if start:
            informer.start()
        return hold

    def _informer_locked(self) -> tuple[Informer, bool]:
        """Called with the lock held: the running informer, made when there is none; and whether the caller
        must start it (after registering its interest, still under the lock)."""
        informer = self._informer
        if informer is None:
            informer = self._informer = Informer(
                self._settings,
                kubectl=lambda: self.kubectl,
                list_args=list_args(self.namespace, self.selector),
                watch_args=lambda rv, timeout: watch_args(self.namespace, self.selector, rv, timeout),
                cache=PodCache(),
                clock=self._clock,
                pause=self._pause,
                delay=lambda failures: reconnect_delay(
                    failures, self._rng(), first=self._backoff[0], cap=self._backoff[1]
                ),
                lifetime=lambda: int(self._settings.watch_timeout * (1 + self._rng())),
                after=self._previous,
            )
            self.informers_started += 1
            return informer, True
        return informer, False

    def _release(self, informer: Informer, remove: Callable[[], bool]) -> None:
        """One subscriber or hold lets go (`remove()`: True when none is left); the last stops the kubectl."""
        with self._lock:
            unwanted = remove() and informer is self._informer
            if unwanted:
                self._informer, self._previous = None, informer
        if unwanted:
            informer.stop(_STOPPED)

    def stop(self) -> None:
        """Stop the watch's kubectl now (subscribers read unavailable); a later subscription starts anew."""
        with self._lock:
            informer, self._informer = self._informer, None
            if informer is not None:
                self._previous = informer
        if informer is not None:
            informer.stop(_STOPPED)

    @classmethod
    def stop_all(cls) -> None:
        """Stop every site's watch (run at interpreter exit: no kubectl outlives us)."""
        for watch in cls._sites.all():
            try:
                watch.stop()
            except Exception:  # at exit, one failure must not keep the others running
                _log.exception("stopping the pod watch of %s failed", watch.selector)


atexit.register(PodWatch.stop_all)
