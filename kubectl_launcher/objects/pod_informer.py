"""The thread behind a PodWatch: list, watch, resume, back off - one kubectl at a time - and wake subscribers.

It feeds domain/pod_cache.PodCache (pure state) and notifies, for each pod whose read changed, the
subscribers of that pod only (one Condition each, on one lock), so a subscriber's
`wait_for_change` returns within moments of the event that concerns it.
"""

from __future__ import annotations

import enum
import json
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from kubectl_launcher.domain.pod_cache import PodCache, PodRead, parse_watch_event
from kubectl_launcher.errors import KubectlError, ProtocolError
from kubectl_launcher.kubectl import Kubectl, KubectlStream
from kubectl_launcher.kubectl.purpose import WATCH

__all__ = ["Informer", "InformerSettings"]

_log = logging.getLogger(__name__)
#: Seconds between two looks at the stop flag and at unconfirmed subscriptions while a watch is quiet.
_TICK = 0.5
#: How long stop() waits for the thread (a list under way ends by its own deadline, starting nothing).
_JOIN = 10.0
_EXPIRED_WORDS = ("Expired", "Gone")


@dataclass(frozen=True)
class InformerSettings:
    watch_timeout: float  # a watch's lifetime asked of the server (from this to twice this, seconds)
    confirm_after: float  # a subscribed pod unseen this long: list once to learn whether it exists
    healthy_after: float  # a watch that lived this long (or saw an event) resets the backoff


class _End(enum.Enum):
    CLOSED = "closed"  # exit code 0: the server closed the watch; resume from the last resourceVersion
    RELIST = "relist"  # 410 Expired, or a subscribed pod to confirm: list again
    FAILED = "failed"  # anything else: list again (after a backoff unless it had been healthy)
    STOPPED = "stopped"


@dataclass(eq=False)
class _Waiter:
    name: str
    cond: threading.Condition
    version: int = 0
    seen: int = -1


@dataclass(frozen=True)
class _Outcome:
    end: _End
    healthy: bool = False
    error: str = ""
    permanent: bool = False


@dataclass(eq=False)
class Informer:
    settings: InformerSettings
    kubectl: Callable[[], Kubectl]
    list_args: tuple[str, ...]
    watch_args: Callable[[str, int], tuple[str, ...]]
    cache: PodCache
    clock: Callable[[], float]
    pause: Callable[[float], object] | None
    delay: Callable[[int], float]  # failures in a row -> seconds to wait
    lifetime: Callable[[], int]  # the next watch's timeoutSeconds
    after: Informer | None = None  # the previous informer of the same watch: its kubectl ends first
    lists: int = 0  # lists sent, watches started: what the tests and the benchmark count
    watches: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _waiters: dict[str, set[_Waiter]] = field(default_factory=dict)
    _holds: set[object] = field(default_factory=set)  # PodWatch.hold(): running, no pod followed
    _stopping: threading.Event = field(default_factory=threading.Event)
    _stream: KubectlStream | None = None
    _thread: threading.Thread | None = None
    _failures: int = 0  # failures in a row: the backoff's step

    # -- subscribers --

    def add_waiter(self, name: str) -> _Waiter:
        with self._lock:
            waiter = _Waiter(name, threading.Condition(self._lock))
            self._waiters.setdefault(name, set()).add(waiter)
            self.cache.subscribe(name, self.clock())
            return waiter

    def remove_waiter(self, waiter: object) -> bool:
        """True when nobody is subscribed (or holds the watch) any more."""
        assert isinstance(waiter, _Waiter)
        with self._lock:
            waiters = self._waiters.get(waiter.name, set())
            if waiter in waiters:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[waiter.name]
                self.cache.unsubscribe(waiter.name)
            return not self._waiters and not self._holds

    def add_hold(self) -> object:
        """Keep the informer running with no pod followed; `remove_hold` gives it back."""
        hold = object()
        with self._lock:
            self._holds.add(hold)
        return hold

    def remove_hold(self, hold: object) -> bool:
        """True when nobody is subscribed (or holds the watch) any more."""
        with self._lock:
            self._holds.discard(hold)
            return not self._waiters and not self._holds

    def read(self, waiter: _Waiter) -> PodRead:
        with self._lock:
            waiter.seen = waiter.version
            return self.cache.read(waiter.name)

    def wait(self, waiter: _Waiter, timeout: float) -> bool:
        with self._lock:
            return waiter.cond.wait_for(lambda: waiter.version != waiter.seen, max(0.0, timeout))

    def poke(self, waiter: _Waiter) -> None:
        """Wake this subscriber's wait_for_change as if its pod had changed (its owner has news of its own)."""
        with self._lock:
            waiter.version += 1
            waiter.cond.notify_all()

    def _notify(self, names: Iterable[str]) -> None:
        """Called with the lock held."""
        for name in names:
            for waiter in self._waiters.get(name, ()):
                waiter.version += 1
                waiter.cond.notify_all()

    # -- lifecycle --

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="kubectl-launcher-pod-watch", daemon=True)
        self._thread.start()

    def stop(self, reason: str) -> None:
        with self._lock:
            self._stopping.set()
            stream = self._stream
        if stream is not None:
            stream.stop()
        with self._lock:
            self._notify(self.cache.mark_unavailable(reason, False))
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(_JOIN)

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _wait(self, seconds: float) -> None:
        if seconds <= 0:
            return
        if self.pause is not None:
            self.pause(seconds)
        else:
            self._stopping.wait(seconds)

    # -- the loop --

    def _run(self) -> None:
        if self.after is not None:
            self.after.join()  # at most one kubectl process at a time for this watch
            self.after = None
        self._failures = 0
        relist = True
        while not self._stopping.is_set():
            try:
                relist = self._step(relist)
            except Exception as e:  # a bug must not leave subscribers reading a frozen cache
                _log.exception("the pod watch failed unexpectedly; listing again")
                self._failures += 1
                self._unavailable(_Outcome(_End.FAILED, error=f"the pod watch failed unexpectedly: {e!r}"))
                self._wait(self.delay(self._failures))
                relist = True

    def _step(self, relist: bool) -> bool:
        """One list (when asked) and one watch; whether the next step must list again."""
        if relist:
            failed = self._list()
            if failed is not None:
                self._failures += 1
                self._unavailable(failed)
                self._wait(self.delay(self._failures))
                return True
        outcome = self._follow()
        if outcome.end is _End.STOPPED:
            return False
        self._failures = 0 if outcome.healthy else self._failures + 1
        if outcome.end is _End.FAILED:
            _log.warning("the pod watch ended (failure %d in a row); listing again: %s", self._failures, outcome.error)
            if self._failures:
                self._unavailable(outcome)
        self._wait(self.delay(self._failures))
        return outcome.end is not _End.CLOSED

    def _unavailable(self, outcome: _Outcome) -> None:
        with self._lock:
            if not self._stopping.is_set():
                self._notify(self.cache.mark_unavailable(outcome.error, outcome.permanent))

    def _list(self) -> _Outcome | None:
        """One list through kubectl; None when the cache was replaced, else why it failed."""
        with self._lock:
            token = self.cache.begin_list()
        self.lists += 1
        kubectl = self.kubectl()
        try:
            # Not retried by the seam: this loop's backoff is the retry, for the whole site.
            result = kubectl.run(self.list_args, purpose=WATCH)
            document = json.loads(result.stdout)
            if not isinstance(document, dict) or document.get("kind") != "PodList":
                raise ProtocolError(f"not a PodList: {kubectl.describe(result.argv)}")
            items = document.get("items") or []
            rv = str((document.get("metadata") or {}).get("resourceVersion") or "")
            if not isinstance(items, list) or not rv:
                raise ProtocolError(f"a PodList without items or resourceVersion: {kubectl.describe(result.argv)}")
        except KubectlError as e:
            return _Outcome(_End.FAILED, error=str(e), permanent=not e.transient)
        except (ProtocolError, ValueError) as e:
            return _Outcome(_End.FAILED, error=f"the pod list is not usable: {e}")
        with self._lock:
            self._notify(self.cache.finish_list(token, [i for i in items if isinstance(i, dict)], rv))
        return None

    def _follow(self) -> _Outcome:
        """One watch process, from the cache's resourceVersion until it ends or must be ended."""
        with self._lock:
            resource_version = self.cache.resource_version
        kubectl = self.kubectl()
        stream = kubectl.stream(
            self.watch_args(resource_version, self.lifetime()), request_timeout=0, purpose=WATCH, grace=2.0
        )
        self.watches += 1
        with self._lock:
            self._stream = stream
            stopping = self._stopping.is_set()
        if stopping:
            stream.stop()
        started, events = self.clock(), 0
        try:
            early = self._read_events(stream)
            events = early[1]
            if early[0] is not None:
                stream.stop()
                return self._with_health(early[0], started, events)
        finally:
            with self._lock:
                self._stream = None
        stream.wait()
        if self._stopping.is_set():
            return _Outcome(_End.STOPPED)
        if stream.returncode == 0:
            return self._with_health(_Outcome(_End.CLOSED), started, events)
        error = stream.error
        if error is not None and (error.reason in _EXPIRED_WORDS or "too old resource version" in str(error)):
            return self._with_health(_Outcome(_End.RELIST, error=str(error)), started, events)
        words = str(error) if error is not None else f"kubectl ended with code {stream.returncode}"
        permanent = error is not None and not error.transient
        return self._with_health(_Outcome(_End.FAILED, error=words, permanent=permanent), started, events)

    def _read_events(self, stream: KubectlStream) -> tuple[_Outcome | None, int]:
        """Feed the cache until the stream ends (None) or must be ended (the outcome); and the event count."""
        events = 0
        while True:
            for line in stream.read(_TICK):
                if not line.strip():
                    continue
                try:
                    document = json.loads(line)
                    if not isinstance(document, dict):
                        raise ValueError("not a JSON object")
                    event = parse_watch_event(document)
                except ValueError as e:
                    return _Outcome(
                        _End.FAILED, error=f"the pod watch printed something else than an event: {e}"
                    ), events
                if event.type == "ERROR":
                    end = _End.RELIST if event.expired else _End.FAILED
                    return _Outcome(end, error=f"the pod watch was told: {event.message}"), events
                events += 1
                with self._lock:
                    self._notify(self.cache.apply(event))
            if stream.ended:
                return None, events
            if self._stopping.is_set():
                return _Outcome(_End.STOPPED), events
            with self._lock:
                confirm = self.cache.unconfirmed(self.clock(), self.settings.confirm_after)
            if confirm:
                return _Outcome(_End.RELIST, healthy=True), events

    def _with_health(self, outcome: _Outcome, started: float, events: int) -> _Outcome:
        if outcome.end is _End.STOPPED:
            return outcome
        healthy = outcome.healthy or events > 0 or self.clock() - started >= self.settings.healthy_after
        return _Outcome(outcome.end, healthy, outcome.error, outcome.permanent)
