"""One job pod as an object over the kubectl seam: it owns the pod's name and namespace.

In the spirit of kr8s's resource objects and Airflow's PodManager: callers ask the pod to read,
delete, exec or copy, and never compose argv, ``--namespace`` or ``except KubectlNotFound``
themselves. Where the caller only needs to know which, "not found" and "unavailable" are values
(`PodRead`, a bool, None); commands whose failure the caller handles (exec, cp, apply) raise the
seam's typed errors.

The namespace is held once, by the JobPod's own Kubectl: when the pod lives in another namespace
than the given Kubectl's, the JobPod works through a copy of it for that namespace (same journals,
redaction, cache and runner), so every command carries exactly one ``--namespace``.

Following: a JobPod given its site's `selector` (our labels: pod_watch.site_selector) reads itself and
its events from a subscription to the site's one pod watch, taken on the first read (after the pod
was applied) and released by `stop_following()` or `clean_up()`; `pause()` then waits for the pod to
change instead of sleeping. Without a selector every read is one `kubectl get pod`.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, cast, runtime_checkable

from kubectl_launcher.domain.job_tracker import PodRead, PodReadStatus, TransferView
from kubectl_launcher.domain.pod_status import Event, Pod, main_container_state
from kubectl_launcher.errors import KubectlError, KubectlNotFound, ProtocolError, TransferError
from kubectl_launcher.kubectl import CommandResult, Kubectl, commands
from kubectl_launcher.kubectl import purpose as tag
from kubectl_launcher.objects.launch_secrets import raise_if_validation
from kubectl_launcher.objects.pod_watch import PodWatch

__all__ = [
    "CREDENTIAL_RETIRE_DELAY",
    "JobPod",
    "PodFollower",
    "PodRead",
    "PodReadStatus",
    "Subscribe",
    "WakesOnStepEnd",
    "WorkspaceTransferSpec",
    "subscribe_to_site_watch",
]

Argv = tuple[str, ...]

_log = logging.getLogger("JobPod")
#: How long the first look at a followed pod waits for the site's watch to answer for it (its first
#: list), so that a launch does not begin with "cannot read the pod" (client-go's WaitForCacheSync).
FIRST_READ_WAIT = 5.0
#: How long after the job container started its credential Secret is deleted. Not at once: the look that
#: sees it start comes while the job process and the other sites' launches start on the same cores, and a
#: kubectl process there (~0.06 CPU-s) delayed every job process of the demo (~1 s of its submit->done).
#: The pod owns the Secret meanwhile (garbage collection's backstop); clean_up() does not wait for it.
CREDENTIAL_RETIRE_DELAY = 5.0


def in_namespace(kubectl: Kubectl, namespace: str) -> Kubectl:
    """`kubectl` itself when it works in `namespace`; otherwise a copy that does (shared journals)."""
    if kubectl.namespace == namespace:
        return kubectl
    clone = copy.copy(kubectl)
    clone.namespace = namespace
    return clone


class PodFollower(Protocol):
    """One pod followed through a watch (pod_watch.PodSubscription is one; tests give their own)."""

    def latest(self) -> PodRead: ...

    def wait_for_change(self, timeout: float) -> bool: ...

    def events(self) -> list[Event] | None: ...

    def wake(self) -> None: ...

    def release(self) -> None: ...


#: (kubectl, selector, pod name) -> the pod followed through its site's watch.
Subscribe = Callable[[Kubectl, str, str], PodFollower]


def subscribe_to_site_watch(kubectl: Kubectl, selector: str, name: str) -> PodFollower:
    """The pod followed through the one watch its site's pods share (every copy of `kubectl`)."""
    return PodWatch.for_site(kubectl, selector).subscribe(name)


def _not_answered(read: PodRead) -> bool:
    """The watch knows nothing of the pod yet: not listed, not seen, or down before it ever listed."""
    return read.status is PodReadStatus.UNAVAILABLE and not read.permanent and read.pod is None


class JobPod:
    """One pod, by name, in one namespace (default: the Kubectl's).

    `label` names the pod in log messages (e.g. "job J pod P (namespace N)"); `selector`: follow it
    through the site's watch (`subscribe` makes the subscription).
    """

    def __init__(
        self,
        kubectl: Kubectl,
        name: str,
        namespace: str | None = None,
        *,
        label: str | None = None,
        logger: logging.Logger | None = None,
        selector: str | None = None,
        subscribe: Subscribe = subscribe_to_site_watch,
    ) -> None:
        self.kubectl = kubectl if namespace is None else in_namespace(kubectl, namespace)
        self.name = name
        self.selector = selector
        self._subscribe = subscribe
        self._follow_lock = threading.Lock()
        self._follower: PodFollower | None = None
        self._followed = False  # a subscription was taken (and maybe released since)
        self.label = label or f"pod {name} (namespace {self.namespace})"
        self.logger = logger or _log
        self._cleanup_lock = threading.Lock()  # one clean-up at a time
        self._deleted = False
        self._secrets_tried: set[str] = set()
        self._retire_tried: set[str] = set()  # retire_credentials() started its one delete of these
        self._cleaning = threading.Event()  # clean_up() began: a retire that waits its delay goes now

    @property
    def namespace(self) -> str:
        return self.kubectl.namespace

    # -- following --

    @property
    def follows(self) -> bool:
        """Reads come from the site's watch (until stop_following)."""
        return self.selector is not None and (self._follower is not None or not self._followed)

    def _following(self) -> PodFollower | None:
        """The subscription, taken on the first call; None when not (or no longer) following."""
        with self._follow_lock:
            if self.selector is None or self._followed:
                return self._follower
            self._followed = True
            self._follower = follower = self._subscribe(self.kubectl, self.selector, self.name)
        deadline = time.monotonic() + FIRST_READ_WAIT
        while _not_answered(follower.latest()) and follower.wait_for_change(deadline - time.monotonic()):
            pass
        return follower

    def pause(self, seconds: float, sleep: Callable[[float], None]) -> None:
        """Wait before the next look: until the pod changes or `wake()` (at most `seconds`) when
        following, else `sleep(seconds)`."""
        follower = self._follower
        if follower is None:
            sleep(seconds)
        else:
            follower.wait_for_change(seconds)

    def wake(self) -> None:
        """End a pause() under way (the job ended, a transfer step finished); safe from any thread."""
        follower = self._follower
        if follower is not None:
            follower.wake()

    def stop_following(self) -> None:
        """Release the subscription (the last one of a site stops its watch). Idempotent; later reads
        are one `kubectl get` each."""
        with self._follow_lock:
            follower, self._follower, self._followed = self._follower, None, True
        if follower is not None:
            follower.wake()
            follower.release()

    # -- reading --

    def read(self) -> PodRead:
        """One look at the pod: from the site's watch when following (no process), else one get
        (retried by the seam's policy for transient failures only)."""
        follower = self._following()
        if follower is not None:
            return follower.latest()
        try:
            document = self.kubectl.get_json(commands.get_pod(self.name), expect_kind="Pod", purpose=tag.READ)
        except KubectlNotFound:
            return PodRead(PodReadStatus.GONE)
        except KubectlError as e:
            return PodRead(PodReadStatus.UNAVAILABLE, error=str(e), permanent=not e.transient, exception=e)
        except ProtocolError as e:
            return PodRead(PodReadStatus.UNAVAILABLE, error=str(e), exception=e)
        except Exception as e:  # a look must not raise; an unexpected failure is reported loudly
            self.logger.exception(f"unexpected error reading {self.label}")
            return PodRead(PodReadStatus.UNAVAILABLE, error=f"unexpected error: {e!r}", permanent=True, exception=e)
        if document is None:
            return PodRead(PodReadStatus.GONE)
        return PodRead(PodReadStatus.FOUND, cast(Pod, document))

    def events(self) -> list[Event] | None:
        """The pod's events (following: its Warning events, from the namespace's shared read), or None
        when they could not be read."""
        follower = self._follower
        if follower is not None:
            return follower.events()
        try:
            document = self.kubectl.get_json(commands.get_pod_events(self.name), purpose=tag.EVENTS)
        except (KubectlError, ProtocolError) as e:
            self.logger.warning(f"failed to query events for {self.label}: {e}")
            return None
        items = (document or {}).get("items")
        if not isinstance(items, list):
            return []
        return [cast(Event, item) for item in items if isinstance(item, dict)]

    def advance(self, transfer: WorkspaceTransferSpec | None, read: PodRead) -> TransferView | None:
        """Let the pod's workspace transfer take its next step after `read`, and say where it stands
        (Contract 7); None without a transfer."""
        if transfer is None:
            return None
        error: str | None = None
        if read.status is PodReadStatus.FOUND and read.pod is not None and not transfer.finished:
            try:
                transfer.advance(self.kubectl, cast(dict[str, Any], read.pod))
            except TransferError as e:
                error = str(e)
            except Exception:
                # A bug in the transfer must not end a job that may be fine; the next look tries again.
                self.logger.exception(f"unexpected error in the workspace transfer of {self.label}")
        return TransferView(transfer.finished, transfer.delivered, transfer.collected, error)

    # -- creating and deleting --

    def apply(self, manifest_path: str, validate: bool = True) -> dict[str, Any]:
        """Apply the pod's manifest file; the pod as the server returned it.

        Raises the seam's KubectlError (ConfigError when kubectl asks to turn validation off) or
        ProtocolError when kubectl printed no pod.
        """
        try:
            pod = self.kubectl.get_json(
                commands.apply_file(manifest_path, validate=validate), expect_kind="Pod", purpose=tag.APPLY
            )
        except KubectlError as e:
            raise_if_validation(e)
            raise
        if pod is None:
            raise ProtocolError(f"kubectl apply printed nothing for pod {self.name}")
        return pod

    def delete(self, grace_period: int = 1) -> bool:
        """Delete the pod (gone already counts as deleted); False, logged as an error, when kubectl failed."""
        args = self.delete_args(grace_period)
        try:
            self.kubectl.run(args, idempotent=True, purpose=tag.DELETE)
        except KubectlError as e:
            self.logger.error(f"failed to delete {self.label}: {e}")
            return False
        self.logger.info(f"deleted {self.label}: {self.describe(args)}")
        return True

    def delete_secret(self, name: str, *, what: str = "Secret") -> bool:
        """Delete a Secret of this pod's job, in its namespace; False, logged as a warning, when kubectl failed."""
        try:
            self.kubectl.run(self.delete_secret_args(name), idempotent=True, purpose=tag.DELETE)
        except KubectlError as e:
            self.logger.warning(f"failed to delete {what} {name} (namespace {self.namespace}): {e}")
            return False
        return True

    def retire_credentials(self, read: PodRead, container: str, secret: str | None, *, delay: float) -> None:
        """Delete the job's credential Secret `delay` seconds after `container` (the job's) has started:
        the kubelet put the token into the process's environment when it created the container, and
        nothing reads the Secret again (restartPolicy Never). Tried once here; a failure is logged and never
        fails the job — the Secret's ownerReference to the pod, and clean_up() (which tries again), remain
        the backstop.

        The delete runs on a thread of its own: the look that sees the job container start is the one a
        launch waits for (launch_job returns on it), and a kubectl process there cost every launch ~0.2 s.
        A clean_up() ends the thread's wait and deletes the Secret itself; one in flight finishes first
        (one lock), so nothing outlives the handle's clean-up."""
        if not secret or secret in self._secrets_tried or read.status is not PodReadStatus.FOUND:
            return
        state = main_container_state(read.pod, container) or {}
        if state.get("running") is None and state.get("terminated") is None:
            return
        with self._cleanup_lock:
            if secret in self._secrets_tried or secret in self._retire_tried:
                return
            self._retire_tried.add(secret)
        threading.Thread(
            target=self._retire, args=(secret, delay), name="kubectl-launcher-retire-credentials", daemon=True
        ).start()

    def _retire(self, secret: str, delay: float) -> None:
        if delay > 0:
            self._cleaning.wait(delay)
        with self._cleanup_lock:
            if secret in self._secrets_tried:
                return  # clean_up() came first and deleted it
            try:
                if self.delete_secret(secret, what="credential Secret"):
                    self._secrets_tried.add(secret)
                    self.logger.info(f"{self.label}: the job container has started; deleted its credential Secret")
            except Exception:  # a clean-up must not end a job that runs
                self.logger.exception(f"unexpected error deleting the credential Secret {secret} of {self.label}")

    def clean_up(self, *, delete_pod: bool, secret: str | None = None) -> None:
        """What a job leaves, removed once (safe from any thread): the pod when asked (a failed delete is
        retried by a later call) and the job's credential Secret (tried once; its ownerReference on
        the pod remains the backstop). The pod is no longer followed."""
        self._cleaning.set()
        self.stop_following()
        with self._cleanup_lock:
            if delete_pod and not self._deleted:
                self._deleted = self.delete()
            if secret and secret not in self._secrets_tried:
                self._secrets_tried.add(secret)
                self.delete_secret(secret, what="credential Secret")

    # -- inside the pod (errors raise: the caller decides what a failure means) --

    def exec(
        self,
        container: str,
        command: Sequence[str],
        *,
        stdin_path: str | None = None,
        stdout_path: str | None = None,
        timeout: float | None = None,
        total_timeout: float | None = None,
        idempotent: bool = False,
        purpose: str,
    ) -> CommandResult:
        """Run `command` in `container`; `stdin_path` streams a local file to it, `stdout_path` keeps its output."""
        return self.kubectl.run(
            self.exec_args(container, command, stdin=stdin_path is not None),
            stdin_path=stdin_path,
            stdout_path=stdout_path,
            timeout=timeout,
            total_timeout=total_timeout,
            idempotent=idempotent,
            purpose=purpose,
        )

    # -- the commands, for messages --

    def delete_args(self, grace_period: int = 1) -> Argv:
        return commands.delete_pod(self.name, grace_period=grace_period)

    def delete_secret_args(self, name: str) -> Argv:
        return commands.delete_secret(name)

    def exec_args(self, container: str, command: Sequence[str], *, stdin: bool = False) -> Argv:
        return ("exec", self.name, "--container", container, *(("--stdin",) if stdin else ()), "--", *command)

    def copy_out_args(self, remote: str, local: str, container: str) -> Argv:
        return ("cp", "--container", container, f"{self.name}:{remote}", local)

    def describe(self, args: Sequence[str]) -> str:
        """The full command line for pod-relative `args` (from the *_args methods), as a human pastes it:
        every global flag, shell-quoted, secrets redacted."""
        return self.kubectl.describe(self.kubectl.argv(args))


class WorkspaceTransferSpec(Protocol):
    """A job pod's workspace transfer as the handle drives it (docs/design.md, Contract 7)."""

    def decorate(self, pod: dict[str, Any], main_container: str) -> None: ...

    def advance(self, kubectl: Kubectl, pod: dict[str, Any]) -> None: ...

    @property
    def finished(self) -> bool: ...

    #: The workspace is in the pod, so the job container starts within moments: look again soon.
    delivered: bool
    #: The results are back and the keeper released, so the job container's exit code (already
    #: terminated) is the job's outcome without waiting for the pod's phase.
    collected: bool


@runtime_checkable
class WakesOnStepEnd(Protocol):
    """What a workspace transfer may add to Contract 7: the handle then looks again the moment a
    background step ends, instead of at its next interval (a step's end is no pod event)."""

    def on_step_end(self, callback: Callable[[], None]) -> None:
        """Call `callback()` (from any thread, without raising) each time a step ends, done or failed."""
