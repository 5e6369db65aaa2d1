"""The keeper's and the init container's lease, seen from the launcher: a token written into the pod's
control folder. The waiting scripts (pod_side.py) give up when no new token comes within their bound, so a
launcher that dies, or is cut off, leaves a pod that ends by itself. Renewed on the handle's looks while
the keeper runs, and from a background thread while a long copy holds those looks up."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator

from kubectl_launcher.errors import KubectlError
from kubectl_launcher.kubectl import Kubectl
from kubectl_launcher.kubectl.purpose import LEASE
from kubectl_launcher.transfer.background import Periodic
from kubectl_launcher.transfer.pod_side import (
    CONTROL_PATH,
    KEEPER_CONTAINER,
    LEASE_SCRIPT,
    TransferSettings,
    exec_script_argv,
)


class Lease:
    """One job pod's lease: fresh tokens, renewal when due, and at most one renewer thread at a time."""

    def __init__(self, settings: TransferSettings, clock: Callable[[], float], log: logging.Logger) -> None:
        self.settings = settings
        self._clock = clock
        self.log = log
        #: when the keeper's lease was last renewed (None: never; inf: no more renewals, the pod is left to end)
        self.renewed_at: float | None = None
        self._token = 0
        self._token_lock = threading.Lock()  # the renewer thread takes tokens too
        self._renewer: Periodic | None = None

    def next_token(self) -> str:
        with self._token_lock:
            self._token += 1
            return str(self._token)

    def refresh(self, kubectl: Kubectl, pod: str) -> None:
        """Renew the keeper's lease when an interval has passed since the last renewal."""
        now = self._clock()
        if self.renewed_at is not None and now - self.renewed_at < self.settings.lease_interval:
            return
        self.renewed_at = now
        self.renew(kubectl, pod, KEEPER_CONTAINER, self.settings.keep_timeout, idempotent=True, timeout=60)

    def renew(
        self, kubectl: Kubectl, pod: str, container: str, bound: int, *, idempotent: bool, timeout: float
    ) -> None:
        try:
            kubectl.run(
                exec_script_argv(pod, container, LEASE_SCRIPT, CONTROL_PATH, self.next_token()),
                idempotent=idempotent,
                timeout=timeout,
                purpose=LEASE,
            )
        except KubectlError as e:
            self.log.warning(
                "could not renew the lease of %s in pod %s (it lapses after %ds): %s", container, pod, bound, e
            )

    @contextlib.contextmanager
    def kept(self, kubectl: Kubectl, pod: str, container: str, bound: int) -> Iterator[Periodic]:
        """Renew the lease from a background thread while a long copy holds up advance().

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
            lambda: self.renew(kubectl, pod, container, bound, idempotent=False, timeout=timeout),
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
