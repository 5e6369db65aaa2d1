"""One lease for the whole site: every job pod the launcher follows is renewed by one ``kubectl annotate``
per interval, whatever the number of jobs.

`SiteLease.for_site(kubectl, selector)` is shared by every job of a site built on the same Kubectl (its
`for_job` copies included) for the same namespace and site selector (objects/pod_watch.py `site_selector`),
as the site's pod watch is. A job joins with its job label once its pod exists (`join`, from lease.py) and
leaves when it needs no more word: its results are in, its transfer closed, its lease given up on purpose
(`Membership.release`, also when the membership is garbage collected). Every ``lease_interval`` (the
shortest of the members') one thread runs::

    kubectl annotate pods --selector 'MANAGED_BY,SITE,kubectl-launcher/job in (JOB1,JOB2,...)' \\
        kubectl-launcher/lease=TOKEN --overwrite --output name

with a new TOKEN each time. The pods read it through their downward-API volume (pod_side.py). The selector
names the members' jobs rather than the whole site, so that a pod this launcher stopped renewing (its
results collected, or left to end by itself) and a pod of another launcher of the site (one that died and was
restarted) get no word from it: they end when their lease lapses. A pod of a member that is gone is simply not
matched.

The thread starts with the first member and ends with the last one, and at interpreter exit; a daemon thread,
it dies with the launcher's process, which is what the pods' leases rely on. It runs off every caller's thread;
the command is idempotent and goes through the seam's retry policy (kubectl/retry.py), its attempts within
one interval; a failure is logged, never raised into a job (three renewals fit in every bound, and the next
one may get through).
"""

from __future__ import annotations

import atexit
import itertools
import logging
import secrets
import threading
import weakref
from collections.abc import Callable, Iterable

from kubectl_launcher.domain.names import JOB_LABEL
from kubectl_launcher.errors import KubectlError
from kubectl_launcher.kubectl import Kubectl
from kubectl_launcher.kubectl.commands import annotate_selected
from kubectl_launcher.kubectl.purpose import LEASE
from kubectl_launcher.objects.site_scope import SiteObjects
from kubectl_launcher.transfer.pod_side import LEASE_ANNOTATION

__all__ = ["JOBS_PER_COMMAND", "Membership", "SiteLease", "lease_selector"]

_log = logging.getLogger(__name__)
#: kubectl's words when the selector matched no pod (every member's pod is gone): nothing to renew.
_NONE_MATCHED = "no objects passed to annotate"
#: Jobs named by one annotate's selector: ~40 bytes a job keeps its URL near 4 KB, under what API servers
#: and the proxies before them accept (8 KB is a common limit); a bigger site takes one command per 100.
JOBS_PER_COMMAND = 100


def lease_selector(site_selector: str, jobs: Iterable[str]) -> str:
    """The site's selector narrowed to ``jobs`` (job label values, RFC 1123: nothing to quote)."""
    return f"{site_selector},{JOB_LABEL} in ({','.join(sorted(set(jobs)))})"


class Membership:
    """One job's place in its site's lease; `release()` (idempotent, also on garbage collection) ends it."""

    def __init__(self, lease: SiteLease, job: str, interval: float) -> None:
        self.lease = lease
        self.job = job
        self.interval = interval
        self._release = weakref.finalize(self, lease._leave, self._key)

    @property
    def _key(self) -> int:
        return id(self)

    def release(self) -> None:
        self._release()

    @property
    def released(self) -> bool:
        return not self._release.alive


class SiteLease:
    """The lease of one site's pods (one namespace, one selector), renewed for all of its members at once."""

    _sites: SiteObjects[SiteLease] = SiteObjects()

    def __init__(
        self,
        kubectl: Kubectl,
        selector: str,
        *,
        namespace: str | None = None,
        wait: Callable[[threading.Event, float], bool] | None = None,
        token_prefix: str | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        """`wait(stop, seconds)` pauses between renewals and returns True when stopped (default:
        ``stop.wait``); `token_prefix` starts every token (default: random, so that a restarted launcher
        never writes the token its predecessor wrote last)."""
        self.kubectl = kubectl
        self.selector = selector
        self.namespace = namespace or kubectl.namespace
        self._wait = wait or (lambda stop, seconds: stop.wait(seconds))
        self._prefix = token_prefix if token_prefix is not None else secrets.token_hex(4)
        self._tokens = itertools.count(1)
        self.log = log or _log
        self._lock = threading.Lock()
        self._members: dict[int, tuple[str, float]] = {}
        self._running: tuple[threading.Thread, threading.Event] | None = None
        self.renewals = 0  # annotate commands that succeeded
        self.threads_started = 0

    @classmethod
    def for_site(cls, kubectl: Kubectl, selector: str, *, namespace: str | None = None) -> SiteLease:
        """The site's shared lease. Like the site's pod watch, it journals into the site's journal only (the
        first of a `for_job` copy's journals): it serves every job, none of them alone."""
        return cls._sites.get(kubectl, selector, namespace, lambda site, ns: cls(site, selector, namespace=ns))

    @property
    def running(self) -> bool:
        with self._lock:
            return self._running is not None

    def jobs(self) -> list[str]:
        """The job labels renewed now."""
        with self._lock:
            return sorted({job for job, _ in self._members.values()})

    def join(self, job: str, interval: float) -> Membership:
        """Renew the pod of ``job`` (its job label) every ``interval`` seconds at most, from now on."""
        if interval <= 0:
            raise ValueError(f"a lease interval must be positive, got {interval}")
        member = Membership(self, job, interval)
        with self._lock:
            self._members[member._key] = (job, interval)
            if self._running is None:
                stop = threading.Event()
                thread = threading.Thread(
                    target=self._loop, args=(stop,), name="kubectl-launcher-site-lease", daemon=True
                )
                self._running = (thread, stop)
                self.threads_started += 1
                thread.start()
        return member

    def _leave(self, key: int) -> None:
        with self._lock:
            self._members.pop(key, None)
            if self._members or self._running is None:
                return
            running, self._running = self._running, None
        running[1].set()  # the thread ends after the renewal in flight, if any; nobody waits for it

    def stop(self, *, wait: bool = False) -> None:
        """Renew nothing more until the next join (at interpreter exit; a test's dead launcher). A renewal in
        flight ends by itself (its own deadline); `wait=True` waits for it."""
        with self._lock:
            running, self._running = self._running, None
            self._members.clear()
        if running is not None:
            running[1].set()
            if wait and running[0] is not threading.current_thread():
                running[0].join()

    @classmethod
    def stop_all(cls) -> None:
        for lease in cls._sites.all():
            lease.stop()

    def _interval(self) -> float | None:
        with self._lock:
            return min((interval for _, interval in self._members.values()), default=None)

    def _loop(self, stop: threading.Event) -> None:
        while True:
            interval = self._interval()
            if interval is None or self._wait(stop, interval) or stop.is_set():
                return
            try:
                self.renew(interval)
            except Exception:  # the thread must outlive any surprise: every job's lease hangs on it
                self.log.exception("the site's lease renewal failed unexpectedly")

    def renew(self, interval: float) -> bool:
        """One annotate of every member's pod now (one per JOBS_PER_COMMAND jobs); False (logged) when one
        failed."""
        jobs = self.jobs()
        token = f"{self._prefix}-{next(self._tokens)}"
        timeout = min(60.0, max(10.0, interval))
        renewed = True
        for start in range(0, len(jobs), JOBS_PER_COMMAND):
            chunk = jobs[start : start + JOBS_PER_COMMAND]
            argv = annotate_selected("pods", lease_selector(self.selector, chunk), LEASE_ANNOTATION, token)
            try:
                self.kubectl.run(
                    argv, idempotent=True, timeout=timeout, total_timeout=max(timeout, interval), purpose=LEASE
                )
            except KubectlError as e:
                if _NONE_MATCHED in str(e):
                    continue
                self.log.warning(
                    "could not renew the lease of %d of the site's job pods (tried again next time): %s", len(chunk), e
                )
                renewed = False
                continue
            self.renewals += 1
        return renewed


atexit.register(SiteLease.stop_all)
