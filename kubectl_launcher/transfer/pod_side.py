"""The workspace transfer's side of the pod (pure): its settings, the init and keeper containers, their sh scripts.

`decorate_pod` adds to the pod (of upstream's main container, only a mount and a probe, below):

* ``kubectl-launcher-init``, an init container (the job's image by default: it has ``sh`` and
  ``tar``) mounting the workspace emptyDir, a small control emptyDir and the lease's downward-API
  volume. It waits until the
  launcher writes ``delivered`` in the control folder. It gives up (exit 1, so the pod fails by
  itself) after ``delivery_timeout`` seconds without word from the launcher, and exits 127 at
  once when the image has no ``tar``.
* ``kubectl-launcher-keeper``, a plain second container with the same mounts (workspace read-only).
  It keeps the workspace reachable after the job process exits, since kubectl refuses to exec
  into a completed pod. It ends when the launcher writes ``released``, or ``keep_timeout``
  seconds after the launcher's last word.

"Word from the launcher" is a lease: the ``kubectl-launcher/lease`` annotation, which the site's lease
(site_lease.py) rewrites on every pod the launcher follows, all of them in one ``kubectl annotate`` per
``lease_interval``. The kubelet shows the pod's annotations in a downward-API volume (``metadata.annotations``
as a file, refreshed on its pod sync), and the waiting script counts the seconds the lease line stays the
same, so pod and launcher clocks never need to agree (the ``lease`` file in the control folder, written by
an exec, counts as word too: the delivery's first one, and the only one for a pod without our labels).
When the word stops (the launcher died, or is cut off), the waiting script gives up and leaves ``lapsed``
in the control folder. The job container mounts the control folder read-only and carries an exec
``livenessProbe`` that fails, printing why, once ``lapsed`` is there: the kubelet stops the job (TERM,
KILL after the pod's grace period; an Unhealthy event "Liveness probe failed: no word from the launcher for
Ns ..." and a Killing one), and with restartPolicy Never the pod ends Failed. So a launcher that dies
leaves a pod that ends at most ``keep_timeout`` seconds (plus three probe periods and the grace) later,
whatever its job does: no pod holds a GPU for ever. Those two additions to the main container (a read-only
mount, a probe) are the only ones; upstream's fields stay as they are.

Alternatives considered. A native sidecar (an init container with ``restartPolicy: Always``) is
stopped by the kubelet as soon as the main container exits, which is exactly when it is needed.
``shareProcessNamespace`` would let the keeper signal the job process, but it changes the job's
PID 1 and shows the keeper the job's environment (Secret values included). Wrapping the job's command
(to watch the lease, or write an exit marker) would change upstream's command. ``activeDeadlineSeconds``
can only be shortened, never extended, so it cannot be a lease. One exec per pod per interval (the
first version) costs a kubectl process and a connection to the kubelet per job; one annotate serves
the whole site and needs no running container. The probe is what Kubernetes gives to stop a container
from outside it; it looks every lease interval or every 10 s, whichever is shorter, and not before
``keep_timeout``.

The launcher's side, which runs these scripts through the pod (objects/job_pod.py), is the rest of
this package: delivery.py, collection.py and lease.py, driven by workspace.py; the delivery's and the
collection's own scripts are in pod_scripts.py.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from kubectl_launcher.domain.pod_security import transfer_container_context
from kubectl_launcher.errors import ConfigError, KubectlError, TransferError

__all__ = [
    "ANNOTATION",
    "CONTROL_PATH",
    "CONTROL_VOLUME",
    "INIT_CONTAINER",
    "KEEPER_CONTAINER",
    "LAPSED_MARKER",
    "LEASE_ANNOTATION",
    "LEASE_FILE",
    "LEASE_PATH",
    "LEASE_VOLUME",
    "LOCAL_EXCLUDES",
    "PROBE_SCRIPT",
    "STAGE_PREFIX",
    "WAIT_SCRIPT",
    "TransferSettings",
    "container_state",
    "decorate_pod",
    "human_size",
    "init_container_failure",
    "lapse_probe",
    "lease_word",
    "script_command",
    "stage_path",
    "tool_missing_failure",
]

INIT_CONTAINER = "kubectl-launcher-init"
KEEPER_CONTAINER = "kubectl-launcher-keeper"
CONTROL_VOLUME = "kubectl-launcher-control"
CONTROL_PATH = "/kubectl-launcher"
#: The downward-API volume that shows the pod's annotations to the init container and the keeper.
LEASE_VOLUME = "kubectl-launcher-lease"
LEASE_PATH = "/kubectl-launcher-lease"
LEASE_FILE = f"{LEASE_PATH}/annotations"
#: The annotation the site's lease (site_lease.py) rewrites on every pod of the site at once.
LEASE_ANNOTATION = "kubectl-launcher/lease"
#: Left in the control folder by a waiting script that gave up; the job container's probe looks for it.
LAPSED_MARKER = "lapsed"
STAGE_PREFIX = ".kubectl-launcher-in-"
ANNOTATION = "kubectl-launcher/workspace-transfer"
#: What upstream's bundle never sends from local/ (study data belongs to the launcher, not the job).
LOCAL_EXCLUDES = ("study_data.yaml", "study_runtime.yaml")

# The scripts run under the job image's /bin/sh: POSIX only (dash, busybox ash, bash all do).
# Arguments come in as positional parameters, so no value is ever spliced into shell text.

#: $1 control dir, $2 looks per second (1 to 10), $3 marker, $4 seconds without word from the
#: launcher, $5 exit code then, $6 the downward-API file of the pod's annotations ("" for none). The word
#: is the control folder's ``lease`` (written by an exec) and the LEASE_ANNOTATION line of $6 (the site's
#: one annotate); only its changes count, so the pod's and the launcher's clocks never need to agree.
#: Giving up leaves LAPSED_MARKER, which the job container's liveness probe turns into its end.
#: More than one look a second needs a sleep that takes fractions (GNU, busybox); without one the
#: script falls back to one look a second.
#: Woken at once: it leaves its PID in ``<marker>.pid``, and whoever writes the marker sends it USR1
#: (pod_scripts.WAKE_WAITER), which ends the ``wait`` for its tick; so the job container starts the moment the
#: workspace is placed, not at the init container's next look. The marker holds its writer's PID:
#: this container ends only once that process is gone (at most ~2 s), as a container's end kills the
#: processes of its PID namespace, the launcher's exec among them, before its exit code is reported.
#: Its own PID comes from a child's $PPID: the kubelet turns "$$" into "$" in a container's command.
WAIT_SCRIPT = """\
trap 'exit 143' TERM INT
trap : USR1
ctl=$1 per=$2 marker=$3 bound=$4 code=$5 notes=$6
if ! command -v tar >/dev/null 2>&1; then
  echo "kubectl-launcher: this image has no tar; the workspace transfer needs it in the container" >&2
  exit 127
fi
sh -c 'echo "$PPID"' 2>/dev/null > "$ctl/$marker.pid" || :
tick=1
if [ "$per" -gt 1 ]; then tick=0.$((1000 / per)); sleep "$tick" 2>/dev/null || tick=1 per=1; fi
last= idle=-1 limit=$((bound * per))
while [ ! -e "$ctl/$marker" ]; do
  cur=
  { read -r cur < "$ctl/lease"; } 2>/dev/null || :
  if [ -n "$notes" ] && [ -r "$notes" ]; then
    while IFS= read -r line || [ -n "$line" ]; do
      case $line in kubectl-launcher/lease=*) cur="$cur ${line#*=}" ;; esac
    done 2>/dev/null < "$notes"
  fi
  if [ "$cur" != "$last" ]; then last=$cur idle=0; else idle=$((idle + 1)); fi
  if [ "$idle" -ge "$limit" ]; then
    why="no word from the launcher for ${bound}s: its lease lapsed"
    printf '%s\\n' "$why" 2>/dev/null > "$ctl/lapsed"
    echo "kubectl-launcher: $why; giving up waiting for $marker" >&2
    exit "$code"
  fi
  sleep "$tick" & wait $!
done
by=
{ read -r by < "$ctl/$marker"; } 2>/dev/null || :
case $by in *[!0-9]*) by= ;; esac
short=0.01 looks=200
sleep "$short" 2>/dev/null || short=1 looks=2
while [ -n "$by" ] && [ "$looks" -gt 0 ] && kill -0 "$by" 2>/dev/null; do
  sleep "$short"
  looks=$((looks - 1))
done
exit 0
"""

#: $1 the lapse marker. The job container's exec liveness probe: fails, printing why, once the keeper
#: gave up (the kubelet puts the output in the Unhealthy event, then stops the container).
PROBE_SCRIPT = """\
if [ -e "$1" ]; then cat "$1"; exit 1; fi
"""

#: Looks per second of the init container at the control folder. The delivery wakes it (pod_scripts.WAKE_WAITER),
#: so its looks count the lease and catch a wake that was lost (one sent between two waits); the
#: delivery is on every launch's critical path and the init container lives only seconds.
INIT_LOOKS_PER_SECOND = 5
#: The keeper lives as long as the job; nothing waits for it to notice the release (the launcher
#: reports the outcome at the release), so one look a second: 5 would cost ~0.5 % of a core per pod.
KEEPER_LOOKS_PER_SECOND = 1

#: Words in an init container's last message that say the image lacks sh or tar.
_TOOL_MISSING = ("executable file not found", ": not found", "no tar")


def _default_resources() -> dict[str, Any]:
    return {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}


@dataclass(frozen=True)
class TransferSettings:
    """How the transfer containers look and how long everything may take (seconds)."""

    image: str | None = None  # None: the job's own image
    image_pull_policy: str | None = None  # None: as the job's container
    resources: Mapping[str, Any] = field(default_factory=_default_resources)
    delivery_timeout: int = 1800  # the init container gives up after this long without word
    keep_timeout: int = 900  # the keeper ends this long after the launcher's last word
    lease_interval: float = 60.0
    attempts: int = 3  # a delivery or a collection is done whole at most this many times...
    retry_delay: float = 5.0  # ...with retry_delay x attempt seconds between two...
    transfer_timeout: float = 7200.0  # ...and all of them, pauses included, within this many seconds
    command_timeout: float = 3600.0  # one delivery or collection exec (shortened to what is left of transfer_timeout)
    verify_checksums: bool = True
    progress_interval: float = 5.0

    def __post_init__(self) -> None:
        for name in ("delivery_timeout", "keep_timeout"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 10:
                raise ConfigError(f"workspace_transfer.{name} must be a whole number of seconds >= 10, got {value!r}")
        # Three renewals per bound: one may fail, and a kubelet may show the next one late (docs/site-setup.md).
        if not 0 < self.lease_interval <= self.keep_timeout / 3:
            raise ConfigError(
                f"workspace_transfer.lease_interval must be positive and at most a third of keep_timeout "
                f"({self.keep_timeout}), got {self.lease_interval!r}"
            )
        if not isinstance(self.attempts, int) or self.attempts < 1:
            raise ConfigError(f"workspace_transfer.attempts must be 1 or more, got {self.attempts!r}")
        if isinstance(self.transfer_timeout, bool) or not isinstance(self.transfer_timeout, int | float):
            raise ConfigError(f"workspace_transfer.transfer_timeout must be a number, got {self.transfer_timeout!r}")
        if self.transfer_timeout <= 0:
            raise ConfigError(f"workspace_transfer.transfer_timeout must be positive, got {self.transfer_timeout!r}")
        for name in ("retry_delay", "command_timeout", "progress_interval"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"workspace_transfer.{name} must be a non-negative number, got {value!r}")
        if not isinstance(self.resources, Mapping):
            raise ConfigError(
                "workspace_transfer.resources must be a mapping like {'requests': {...}, 'limits': {...}}"
            )

    @property
    def renewal_interval(self) -> float:
        """Seconds between two renewals of the site's lease: lease_interval, shortened to a third of
        delivery_timeout, so that the init container too gets three words per bound."""
        return min(self.lease_interval, self.delivery_timeout / 3)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> TransferSettings:
        """Settings from a component's args; unknown keys raise ConfigError naming them."""
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown workspace_transfer setting(s) {unknown}; known: {sorted(known)}")
        return cls(**data)


def decorate_pod(pod: dict[str, Any], main_container: str, mount_path: str, settings: TransferSettings) -> str | None:
    """Add the init and keeper containers, the control volume and our annotation to ``pod`` (in place).

    Returns the transfer containers' image, or None when the pod carries them already. Upstream's
    fields of the main container are never changed.
    """
    spec = pod.setdefault("spec", {})
    containers = spec.get("containers") or []
    main = next((c for c in containers if c.get("name") == main_container), None)
    if main is None:
        raise ConfigError(f"the pod has no container named {main_container!r}")
    if any(c.get("name") == KEEPER_CONTAINER for c in containers):
        return None  # decorated already
    mount = next(
        (m for m in main.get("volumeMounts") or [] if (m.get("mountPath") or "").rstrip("/") == mount_path),
        None,
    )
    if mount is None:
        raise ConfigError(
            f"container {main_container!r} mounts no volume at workspace_mount_path {mount_path!r}; "
            "the workspace transfer copies into that volume"
        )
    image = settings.image or str(main.get("image") or "")

    def container(name: str, per: int, marker: str, bound: int, code: int, read_only: bool) -> dict[str, Any]:
        args = (CONTROL_PATH, str(per), marker, str(bound), str(code), LEASE_FILE)
        c: dict[str, Any] = {
            "name": name,
            "image": image,
            "command": ["sh", "-c", WAIT_SCRIPT, name, *args],
            "volumeMounts": [
                {"name": mount["name"], "mountPath": mount_path, "readOnly": read_only},
                {"name": CONTROL_VOLUME, "mountPath": CONTROL_PATH},
                {"name": LEASE_VOLUME, "mountPath": LEASE_PATH, "readOnly": True},
            ],
            "resources": copy.deepcopy(dict(settings.resources)),
            # the script's last words (e.g. "this image has no tar") become the status message
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "securityContext": transfer_container_context(main.get("securityContext")),
        }
        pull = settings.image_pull_policy or main.get("imagePullPolicy")
        if pull:
            c["imagePullPolicy"] = pull
        return c

    s = settings
    spec.setdefault("initContainers", []).append(
        container(INIT_CONTAINER, INIT_LOOKS_PER_SECOND, "delivered", s.delivery_timeout, 1, read_only=False)
    )
    containers.append(
        container(KEEPER_CONTAINER, KEEPER_LOOKS_PER_SECOND, "released", s.keep_timeout, 0, read_only=True)
    )
    spec["containers"] = containers
    main.setdefault("volumeMounts", []).append({"name": CONTROL_VOLUME, "mountPath": CONTROL_PATH, "readOnly": True})
    main["livenessProbe"] = lapse_probe(s)
    annotations_file = {"path": LEASE_FILE.rsplit("/", 1)[1], "fieldRef": {"fieldPath": "metadata.annotations"}}
    spec.setdefault("volumes", []).extend(
        [
            {"name": CONTROL_VOLUME, "emptyDir": {"sizeLimit": "1Mi"}},
            {"name": LEASE_VOLUME, "downwardAPI": {"items": [annotations_file]}},
        ]
    )
    meta = pod.setdefault("metadata", {})
    annotations = meta.get("annotations") or {}
    annotations[ANNOTATION] = f"kubectl-cp; delivery-timeout={s.delivery_timeout}s; keep-timeout={s.keep_timeout}s"
    meta["annotations"] = annotations
    return image


def lapse_probe(settings: TransferSettings) -> dict[str, Any]:
    """The job container's liveness probe: it fails once the keeper left LAPSED_MARKER, and the kubelet stops
    the job (TERM, KILL after the pod's grace period). Not before keep_timeout: the keeper cannot give up sooner.

    One look per lease interval or per 10 s, whichever is shorter; three failures in a row, so that one
    probe slowed past its timeout on a busy node never stops a job whose launcher is alive."""
    return {
        "exec": {"command": ["sh", "-c", PROBE_SCRIPT, "kubectl-launcher-probe", f"{CONTROL_PATH}/{LAPSED_MARKER}"]},
        "initialDelaySeconds": settings.keep_timeout,
        "periodSeconds": max(1, min(10, int(settings.lease_interval))),
        "timeoutSeconds": 5,
        "failureThreshold": 3,
    }


def lease_word(annotations: str) -> str | None:
    """The site lease's token in a downward-API ``metadata.annotations`` file (``key="value"`` lines, Go-quoted,
    the last without a newline), as WAIT_SCRIPT reads it; None when the pod carries none yet."""
    for line in annotations.split("\n"):
        key, sep, value = line.partition("=")
        if sep and key == LEASE_ANNOTATION:
            return value
    return None


def container_state(pod: Mapping[str, Any], key: str, name: str) -> dict[str, Any]:
    """The ``state`` of container ``name`` in ``status.<key>`` ({} when the pod does not report it yet)."""
    for cs in (pod.get("status") or {}).get(key) or []:
        if cs.get("name") == name:
            return dict(cs.get("state") or {})
    return {}


def human_size(n: float) -> str:
    """Bytes for a log line, in powers of 1000."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


def init_container_failure(terminated: Mapping[str, Any], image: str) -> TransferError | None:
    """Why the init container ended before the workspace was delivered; None for its own success (exit 0)."""
    code = terminated.get("exitCode")
    if code == 0:
        return None
    message = str(terminated.get("message") or terminated.get("reason") or "")
    if code == 127 or any(t in message.lower() for t in _TOOL_MISSING):
        return TransferError(
            f"image {image!r} cannot run the workspace transfer: it needs sh and tar in the container; "
            f"set workspace_transfer.image to an image that has them "
            f"[init container exit code {code}: {message.strip()[:300]}]"
        )
    return TransferError(
        f"the init container {INIT_CONTAINER} ended with exit code {code} before the workspace was delivered "
        f"({message.strip()[:300] or 'no message'})"
    )


def tool_missing_failure(error: KubectlError, image: str) -> TransferError | None:
    """A TransferError naming the image when a kubectl exec/cp failed for want of tar or sh, else None."""
    text = f"{error.stderr} {error}".lower()
    if error.returncode in (126, 127) or "executable file not found" in text:
        return TransferError(
            f"image {image!r} has no tar (or sh): the workspace transfer runs them in "
            f"the container; set workspace_transfer.image to an image that has them [{error}]"
        )
    return None


# The commands run in the pod's containers (objects/job_pod.py adds kubectl exec, the pod and its namespace).


def script_command(script: str, *args: str) -> tuple[str, ...]:
    """Run one of the scripts above; ``args`` become its $1, $2, ..."""
    return ("sh", "-c", script, "kubectl-launcher", *args)


def stage_path(mount_path: str, attempt: int) -> str:
    """The fresh folder in the pod that delivery attempt ``attempt`` copies to."""
    return f"{mount_path.rstrip('/')}/{STAGE_PREFIX}{attempt}"
