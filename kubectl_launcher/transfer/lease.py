"""The keeper's and the init container's lease, seen from the launcher. The waiting scripts (pod_side.py)
give up when no new word comes within their bound, so a launcher that dies, or is cut off, leaves a pod that
ends by itself (its job stopped by the liveness probe).

A pod with our labels (site and job, as every launch's) joins its site's lease (site_lease.py) on the first
look at it: one ``kubectl annotate`` renews every such pod of the site per interval, during long copies too,
and the membership ends when the job needs no more word (`lapse`). A pod without them (a handle built by hand)
gets the first version's word: one ``kubectl exec`` writing a token into its control folder when due, on the
handle's looks while the keeper runs (workspace.py runs it off the handle's thread), and from a second
background thread around a long copy, which runs for longer than a waiting script's bound."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from kubectl_launcher.domain.names import JOB_LABEL
from kubectl_launcher.errors import KubectlError
from kubectl_launcher.kubectl import Kubectl
from kubectl_launcher.kubectl.purpose import LEASE
from kubectl_launcher.objects.job_pod import JobPod
from kubectl_launcher.objects.pod_watch import site_selector
from kubectl_launcher.transfer.background import Periodic
from kubectl_launcher.transfer.pod_scripts import LEASE_SCRIPT
from kubectl_launcher.transfer.pod_side import CONTROL_PATH, KEEPER_CONTAINER, TransferSettings, script_command
from kubectl_launcher.transfer.site_lease import Membership, SiteLease


class Lease:
    """One job pod's lease: fresh tokens, renewal when due, and at most one renewer thread at a time."""

    def __init__(self, settings: TransferSettings, clock: Callable[[], float], log: logging.Logger) -> None:
        self.settings = settings
        self._clock = clock
        self.log = log
        self._renewed_at: float | None = None  # the keeper's last renewal (None: never)
        self._lapsed = threading.Event()  # no more renewals: the pod is left to end by itself
        self._token = 0
        self._token_lock = threading.Lock()  # the renewer thread takes tokens too
        self._renewer: Periodic | None = None
        self._member: Membership | None = None
        self._member_lock = threading.Lock()

    def attach(self, kubectl: Kubectl, pod: Mapping[str, Any]) -> bool:
        """Join the site's lease when ``pod`` carries our labels (once; never after lapse); whether the site
        renews it now.

        From then on due() is never true and kept() starts no thread: the site renews the pod."""
        labels = (pod.get("metadata") or {}).get("labels") or {}
        selector, job = site_selector(labels), labels.get(JOB_LABEL)
        with self._member_lock:
            if self._member is None and selector and job and not self.lapsed:
                self._member = SiteLease.for_site(kubectl, selector).join(job, self.settings.renewal_interval)
            return self._member is not None and not self._member.released

    @property
    def site_leased(self) -> bool:
        return self._member is not None

    def next_token(self) -> str:
        with self._token_lock:
            self._token += 1
            return str(self._token)

    def renewed_now(self) -> None:
        """Count a renewal from now (the delivery's last word counts as the keeper's first lease)."""
        self._renewed_at = self._clock()

    def lapse(self) -> None:
        """Renew no more, from any thread: the keeper ends ``keep_timeout`` seconds after the last word, and
        the job with it if it still runs (the site's next annotate leaves this pod out)."""
        self._lapsed.set()
        with self._member_lock:
            if self._member is not None:
                self._member.release()

    @property
    def lapsed(self) -> bool:
        return self._lapsed.is_set()

    def due(self) -> bool:
        """Whether the keeper's lease is due for renewal (a lease_interval since the last one)."""
        if self.lapsed or self.site_leased:
            return False
        return self._renewed_at is None or self._clock() - self._renewed_at >= self.settings.lease_interval

    def refresh(self, pod: JobPod) -> None:
        """Renew the keeper's lease now (the caller asked due())."""
        self._renewed_at = self._clock()
        self.renew(pod, KEEPER_CONTAINER, self.settings.keep_timeout, idempotent=True, timeout=60)

    def renew(self, pod: JobPod, container: str, bound: int, *, idempotent: bool, timeout: float) -> None:
        """Write a new token; a failure is logged (the next renewal may succeed before the bound)."""
        if self.lapsed:
            return
        try:
            pod.exec(
                container,
                script_command(LEASE_SCRIPT, CONTROL_PATH, self.next_token()),
                idempotent=idempotent,
                timeout=timeout,
                total_timeout=timeout,  # retries included: the next renewal is due soon
                purpose=LEASE,
            )
        except KubectlError as e:
            self.log.warning(
                "could not renew the lease of %s in pod %s (it lapses after %ds): %s", container, pod.name, bound, e
            )

    @contextlib.contextmanager
    def kept(self, pod: JobPod, container: str, bound: int) -> Iterator[Periodic]:
        """Renew the lease from a background thread while a long copy runs.

        Without it, a copy longer than ``bound`` (the waiting script's seconds without a new lease)
        would see the container give up mid-copy. The thread renews at least three times per bound
        and is stopped (joined) on the way out; a launcher that dies takes it along, so the pod
        still ends by itself. One renewer per transfer: a second one is a bug.
        """
        if self._renewer is not None:
            raise RuntimeError("a lease renewer is running already for this transfer")
        if self.site_leased:
            # the site's lease renews this pod meanwhile: an inert renewer (interval 0 never starts a thread)
            # keeps the callers' start/stop
            self._renewer = Periodic(lambda: None, 0, "kubectl-launcher-lease")
            try:
                yield self._renewer
            finally:
                self._renewer = None
            return
        interval = min(self.settings.lease_interval, bound / 3)
        timeout = min(60.0, max(10.0, interval))  # stop() waits for a renewal in flight
        renewer = Periodic(
            lambda: self.renew(pod, container, bound, idempotent=False, timeout=timeout),
            interval,
            "kubectl-launcher-lease",
        )
        self._renewer = renewer
        try:
            renewer.start()
            yield renewer
        finally:
            renewer.stop()
            self._renewer = None
