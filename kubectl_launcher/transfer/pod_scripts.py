"""The scripts the launcher runs in the pod through exec (pure): the lease word and the keeper's release,
one ``kubectl exec -i`` that extracts, verifies and places the workspace (DELIVER_SCRIPT), one ``kubectl
exec`` that prints the job folder's tar stream and its listing (COLLECT_SCRIPT), their commands, and the
recovery script left when a collection failed.

They run under the job image's /bin/sh: POSIX only (dash, busybox ash, bash all do), with ``tar`` and
``find``; ``sha256sum`` where the image has it. Every value comes in as a positional parameter, never
spliced into shell text. Both scripts say why they stopped on stdout as well as stderr, in a line that
starts ``kubectl-launcher:`` (`script_words`): the seam keeps only kubectl's own last words of stderr.
"""

from __future__ import annotations

from collections.abc import Sequence

from kubectl_launcher.transfer.pod_side import CONTROL_PATH, script_command

__all__ = [
    "BUNDLE_SUMS",
    "BUNDLE_TREE",
    "COLLECT_SCRIPT",
    "DAMAGED_EXIT",
    "DELIVER_SCRIPT",
    "LEASE_SCRIPT",
    "RELEASE_SCRIPT",
    "SYMLINK_EXIT",
    "WAKE_WAITER",
    "collect_command",
    "deliver_command",
    "recovery_script",
    "script_words",
]

#: Sourced by the scripts that write a marker (delivery, release), after it: $1 control dir, $2 marker.
WAKE_WAITER = """\
wake() { { read -r waiter < "$1/$2.pid" && kill -USR1 "$waiter"; } 2>/dev/null || :; }
"""

#: $1 control dir, $2 token.
LEASE_SCRIPT = """printf '%s\\n' "$2" > "$1/lease"\n"""
#: $1 control dir. The marker holds the writer's PID (see WAIT_SCRIPT).
RELEASE_SCRIPT = WAKE_WAITER + """echo $$ > "$1/released" && wake "$1" released\n"""

#: What every script that lists a folder shares: ``listing FLAG`` prints the current folder's "entries N",
#: then "sha256" and sha256sum lines (FLAG 1 and the image has sha256sum), or "bytes N".
_LISTING = """\
listing() {
  n=$(find . -exec printf '%.0sx' {} + | wc -c) || return 4
  printf 'entries %s\\n' $n
  if [ "$1" = 1 ] && command -v sha256sum >/dev/null 2>&1; then
    echo sha256
    find . -type f -exec sha256sum {} + || return 5
  else
    printf 'bytes %s\\n' $(find . -type f -exec cat {} + | wc -c)
  fi
}
"""

#: The names of the delivery stream's two members: the tree to place, and the sha256sum lines it must match.
BUNDLE_TREE = "tree"
BUNDLE_SUMS = "sha256"
#: Exit codes of the delivery script that another attempt may cure (the stream arrived damaged)...
DAMAGED_EXIT = 6
#: ...and of the collection script that it cannot: the job's folder is (below) a symlink.
SYMLINK_EXIT = 8

#: One exec -i delivers the workspace: a tar on stdin holding ``tree/`` and, when checked, ``sha256``.
#: (No variable is named "token": the journal masks "token=..." text, and a masked script does not replay.)
#: $1 workspace, $2 control dir, $3 lease word, $4 fresh staging folder, $5 entries sent, $6 bytes sent,
#: $7 "sha256" to check the sums member (when the image has sha256sum), anything else: the byte total
#: only; then the names to move into place. Forgets earlier attempts' staging folders, writes the lease,
#: extracts, verifies (nothing placed on a mismatch: exit 6), prints "entries N" and "bytes N" (and
#: "sha256 verified"), places, writes ``delivered`` (its PID) and wakes the init container. Prints
#: "delivered before" when it was, already.
DELIVER_SCRIPT = (
    WAKE_WAITER
    + """\
ws=$1 ctl=$2 word=$3 stage=$4 entries=$5 bytes=$6 check=$7
shift 7
if [ -e "$ctl/delivered" ]; then echo 'delivered before'; exit 0; fi
if ! command -v tar >/dev/null 2>&1; then
  echo "kubectl-launcher: this image has no tar; the workspace transfer needs it in the container" >&2
  exit 127
fi
rm -rf "$ws"/.kubectl-launcher-in-* && printf '%s\\n' "$word" > "$ctl/lease" || exit 3
damaged() {
  cd / && rm -rf "$stage"
  said="kubectl-launcher: the workspace arrived damaged, nothing was placed: $1"
  echo "$said" && echo "$said" >&2
  exit 6
}
mkdir "$stage" || exit 3
tar -x -o -f - -C "$stage" || damaged "tar could not read the stream"
cd "$stage/tree" || damaged "the stream holds no tree"
n=$(find . -exec printf '%.0sx' {} + | wc -c) || exit 4
[ "$n" -eq "$entries" ] || damaged "$n entries arrived, $entries were sent"
b=$(find . -type f -exec cat {} + | wc -c) || exit 4
[ "$b" -eq "$bytes" ] || damaged "$b bytes of files arrived, $bytes were sent"
if [ "$check" = sha256 ] && command -v sha256sum >/dev/null 2>&1; then
  if ! sha256sum -c "$stage/sha256" > "$stage/checked" 2>&1; then
    damaged "sha256 differs: $(grep -v ': OK$' "$stage/checked" | head -n 3 | tr '\\n' ' ')"
  fi
  echo 'sha256 verified'
fi
printf 'entries %s\\nbytes %s\\n' $n $b
cd "$ws" || exit 3
for name do
  if [ -e "$stage/tree/$name" ]; then
    rm -rf "./$name" && mv "$stage/tree/$name" "./$name" || exit 4
  fi
done
rm -rf "$stage" && echo $$ > "$ctl/delivered" && wake "$ctl" delivered
"""
)

#: One exec into the keeper collects the results: $1 workspace, $2 the job's folder below it, $3 "1" for
#: checksums. Refuses (exit 8) a folder that is, or lies below, a symlink: the results are exactly the
#: job's folder. Prints the folder's tar stream, then, after its end-of-archive, the folder's listing.
COLLECT_SCRIPT = (
    _LISTING
    + """\
p=$1
set -f
IFS=/
for part in $2; do
  [ -n "$part" ] || continue
  p=$p/$part
  if [ -L "$p" ]; then
    said="kubectl-launcher: refusing to collect $p: it is a symlink, not the job's folder"
    echo "$said" && echo "$said" >&2
    exit 8
  fi
done
unset IFS
set +f
cd "$p" || exit 3
tar cf - . || exit 4
listing "$3"
"""
)


def deliver_command(
    mount_path: str, token: str, stage: str, entries: int, total_bytes: int, sha256: bool, names: Sequence[str]
) -> tuple[str, ...]:
    """DELIVER_SCRIPT's command (run in the init container with the bundle's tar on stdin)."""
    check = "sha256" if sha256 else "bytes"
    return script_command(
        DELIVER_SCRIPT, mount_path, CONTROL_PATH, token, stage, str(entries), str(total_bytes), check, *names
    )


def collect_command(mount_path: str, job_dir: str, checksums: bool) -> tuple[str, ...]:
    """COLLECT_SCRIPT's command (run in the keeper): ``job_dir`` is the job's folder relative to the mount."""
    return script_command(COLLECT_SCRIPT, mount_path.rstrip("/"), job_dir, "1" if checksums else "0")


def script_words(stdout: bytes) -> str:
    """What DELIVER_SCRIPT or COLLECT_SCRIPT said about why it stopped (its ``kubectl-launcher:`` line), or ""."""
    for line in stdout.decode("utf-8", "replace").splitlines():
        if line.startswith("kubectl-launcher: "):
            return line[len("kubectl-launcher: ") :][:500]
    return ""


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
