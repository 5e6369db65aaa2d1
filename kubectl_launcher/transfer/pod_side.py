"""The workspace transfer's side of the pod (pure): its settings, the init and keeper containers, their sh scripts.

`decorate_pod` adds to the pod (upstream's main container is left as it is):

* ``kubectl-launcher-init``, an init container (the job's image by default: it has ``sh`` and
  ``tar``) mounting the workspace emptyDir and a small control emptyDir. It waits until the
  launcher writes ``delivered`` in the control folder. It gives up (exit 1, so the pod fails by
  itself) after ``delivery_timeout`` seconds without word from the launcher, and exits 127 at
  once when the image has no ``tar``.
* ``kubectl-launcher-keeper``, a plain second container with the same mounts (workspace read-only).
  It keeps the workspace reachable after the job process exits, since kubectl refuses to exec
  into a completed pod. It ends when the launcher writes ``released``, or ``keep_timeout``
  seconds after the launcher's last word.

"Word from the launcher" is a lease: while it lives, the launcher rewrites ``lease`` in the control
folder every ``lease_interval`` seconds (one small ``kubectl exec``), also while a long copy runs.
The waiting script counts the seconds the content stays the same, so pod and launcher clocks never
need to agree. A launcher that
dies therefore leaves a pod that ends at most ``keep_timeout`` seconds later, or when the job ends
if that is later: no pod holds a GPU for ever.

Alternatives considered. A native sidecar (an init container with ``restartPolicy: Always``) is
stopped by the kubelet as soon as the main container exits, which is exactly when it is needed.
``shareProcessNamespace`` would let the keeper see the job process end, but it changes the job's
PID 1, shows the keeper the job's environment (Secret values included) and is not needed once the
lease exists. Wrapping the job's command to write an exit marker would change upstream's fields
of the main container. The lease costs one exec per interval and works on any cluster.

The launcher's side, which runs these scripts through the pod (objects/job_pod.py), is the rest of
this package: delivery.py, collection.py and lease.py, driven by workspace.py.
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
    "LEASE_SCRIPT",
    "LIST_SCRIPT",
    "LOCAL_EXCLUDES",
    "PLACE_SCRIPT",
    "PREPARE_SCRIPT",
    "RELEASE_SCRIPT",
    "STAGE_PREFIX",
    "WAIT_SCRIPT",
    "TransferSettings",
    "container_state",
    "decorate_pod",
    "human_size",
    "init_container_failure",
    "recovery_script",
    "script_command",
    "stage_path",
    "tar_out_command",
    "tool_missing_failure",
]

INIT_CONTAINER = "kubectl-launcher-init"
KEEPER_CONTAINER = "kubectl-launcher-keeper"
CONTROL_VOLUME = "kubectl-launcher-control"
CONTROL_PATH = "/kubectl-launcher"
STAGE_PREFIX = ".kubectl-launcher-in-"
ANNOTATION = "kubectl-launcher/workspace-transfer"
#: What upstream's bundle never sends from local/ (study data belongs to the launcher, not the job).
LOCAL_EXCLUDES = ("study_data.yaml", "study_runtime.yaml")

# The scripts run under the job image's /bin/sh: POSIX only (dash, busybox ash, bash all do).
# Arguments come in as positional parameters, so no value is ever spliced into shell text.

#: $1 control dir, $2 looks per second (1 to 10), $3 marker, $4 seconds without word from the
#: launcher, $5 exit code then. More than one look a second needs a sleep that takes fractions
#: (GNU, busybox); without one the script falls back to one look a second.
WAIT_SCRIPT = """\
trap 'exit 143' TERM INT
ctl=$1 per=$2 marker=$3 bound=$4 code=$5
if ! command -v tar >/dev/null 2>&1; then
  echo "kubectl-launcher: this image has no tar; kubectl cp needs it in the container" >&2
  exit 127
fi
tick=1
if [ "$per" -gt 1 ]; then tick=0.$((1000 / per)); sleep "$tick" 2>/dev/null || tick=1 per=1; fi
last= idle=-1 limit=$((bound * per))
while [ ! -e "$ctl/$marker" ]; do
  cur=
  { read -r cur < "$ctl/lease"; } 2>/dev/null || :
  if [ "$cur" != "$last" ]; then last=$cur idle=0; else idle=$((idle + 1)); fi
  if [ "$idle" -ge "$limit" ]; then
    echo "kubectl-launcher: no word from the launcher for ${bound}s; giving up waiting for $marker" >&2
    exit "$code"
  fi
  sleep "$tick"
done
"""

#: Looks per second of the init container at the control folder: the job container starts as soon
#: as it notices the delivery, which is on every launch's critical path (at one look a second the
#: demo's launches waited 0.5 s on average, up to 1 s, for it), and it lives only seconds.
INIT_LOOKS_PER_SECOND = 5
#: The keeper lives as long as the job; nothing waits for it to notice the release (the launcher
#: reports the outcome at the release), so one look a second: 5 would cost ~0.5 % of a core per pod.
KEEPER_LOOKS_PER_SECOND = 1

#: $1 folder, $2 "1" for checksums. Prints "entries N", then "sha256" and sha256sum lines, or "bytes N".
LIST_SCRIPT = """\
cd "$1" || exit 3
n=$(find . -exec printf '%.0sx' {} + | wc -c) || exit 4
printf 'entries %s\\n' $n
if [ "$2" = 1 ] && command -v sha256sum >/dev/null 2>&1; then
  echo sha256
  find . -type f -exec sha256sum {} + || exit 5
else
  printf 'bytes %s\\n' $(find . -type f -exec cat {} + | wc -c)
fi
"""

#: $1 workspace, $2 control dir, $3 lease token: forget earlier attempts' staging folders.
PREPARE_SCRIPT = """\
rm -rf "$1"/.kubectl-launcher-in-* && printf '%s\\n' "$3" > "$2/lease"
"""

#: $1 workspace, $2 staging folder, $3 control dir, then the names to move into place.
PLACE_SCRIPT = """\
ws=$1 stage=$2 ctl=$3
shift 3
[ -e "$ctl/delivered" ] && exit 0
cd "$ws" || exit 3
for name do
  if [ -e "$stage/$name" ]; then
    rm -rf "./$name" && mv "$stage/$name" "./$name" || exit 4
  fi
done
rm -rf "$stage" && : > "$ctl/delivered"
"""

#: $1 control dir, $2 token.
LEASE_SCRIPT = """printf '%s\\n' "$2" > "$1/lease"\n"""
#: $1 control dir.
RELEASE_SCRIPT = """: > "$1/released"\n"""

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
    command_timeout: float = 3600.0  # one kubectl cp / tar (shortened to what is left of transfer_timeout)
    verify_checksums: bool = True
    progress_interval: float = 5.0

    def __post_init__(self) -> None:
        for name in ("delivery_timeout", "keep_timeout"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 10:
                raise ConfigError(f"workspace_transfer.{name} must be a whole number of seconds >= 10, got {value!r}")
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
        c: dict[str, Any] = {
            "name": name,
            "image": image,
            "command": ["sh", "-c", WAIT_SCRIPT, name, CONTROL_PATH, str(per), marker, str(bound), str(code)],
            "volumeMounts": [
                {"name": mount["name"], "mountPath": mount_path, "readOnly": read_only},
                {"name": CONTROL_VOLUME, "mountPath": CONTROL_PATH},
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
    spec.setdefault("volumes", []).append({"name": CONTROL_VOLUME, "emptyDir": {"sizeLimit": "1Mi"}})
    meta = pod.setdefault("metadata", {})
    annotations = meta.get("annotations") or {}
    annotations[ANNOTATION] = f"kubectl-cp; delivery-timeout={s.delivery_timeout}s; keep-timeout={s.keep_timeout}s"
    meta["annotations"] = annotations
    return image


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
            f"image {image!r} cannot run the workspace transfer: it needs sh and tar "
            f"(kubectl cp runs tar in the container); set workspace_transfer.image to an image that has them "
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
            f"image {image!r} has no tar (or sh): kubectl cp and the workspace transfer run them in "
            f"the container; set workspace_transfer.image to an image that has them [{error}]"
        )
    return None


# The commands run in the pod's containers (objects/job_pod.py adds kubectl exec, the pod and its namespace).


def script_command(script: str, *args: str) -> tuple[str, ...]:
    """Run one of the scripts above; ``args`` become its $1, $2, ..."""
    return ("sh", "-c", script, "kubectl-launcher", *args)


def tar_out_command(folder: str) -> tuple[str, ...]:
    """``folder`` as a tar stream on stdout (run in the keeper)."""
    return ("tar", "cf", "-", "-C", folder, ".")


def stage_path(mount_path: str, attempt: int) -> str:
    """The fresh folder in the pod that delivery attempt ``attempt`` copies to."""
    return f"{mount_path.rstrip('/')}/{STAGE_PREFIX}{attempt}"


def recovery_script(job_id: str, pod: str, reason: str, keep_timeout: int, fetch: str, release: str) -> str:
    """The shell script left next to the job when its results could not be collected."""
    return (
        f"#!/bin/sh\n# Results of job {job_id} could not be collected: {_one_line(reason)}\n"
        f"# Pod {pod} keeps them for about {keep_timeout}s after the launcher gave up.\n"
        f"# Fetch them (kubectl cp skips symlinks), check them, then release the pod:\n"
        f"set -e\n{fetch}\n# {release}\n"
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]
