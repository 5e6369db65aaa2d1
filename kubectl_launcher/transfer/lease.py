"""The keeper's and the init container's lease, seen from the launcher: a token written into the pod's
control folder. The waiting scripts (pod_side.py) give up when no new token comes within their bound, so a
launcher that dies, or is cut off, leaves a pod that ends by itself. Renewed when due on the handle's
looks while the keeper runs (workspace.py runs the renewal off the handle's thread), and from a second
background thread around a long copy, which runs for longer than a waiting script's bound."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator

from kubectl_launcher.errors import KubectlError
from kubectl_launcher.kubectl.purpose import LEASE
from kubectl_launcher.objects.job_pod import JobPod
from kubectl_launcher.transfer.background import Periodic
from kubectl_launcher.transfer.pod_side import (
    CONTROL_PATH,
    KEEPER_CONTAINER,
    LEASE_SCRIPT,
    TransferSettings,
    script_command,
)


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

    def next_token(self) -> str:
        with self._token_lock:
            self._token += 1
            return str(self._token)

    def renewed_now(self) -> None:
        """Count a renewal from now (the delivery's last word counts as the keeper's first lease)."""
        self._renewed_at = self._clock()

    def lapse(self) -> None:
        """Renew no more, from any thread: the keeper ends ``keep_timeout`` seconds after the last word."""
        self._lapsed.set()

    @property
    def lapsed(self) -> bool:
        return self._lapsed.is_set()

    def due(self) -> bool:
        """Whether the keeper's lease is due for renewal (a lease_interval since the last one)."""
        if self.lapsed:
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
