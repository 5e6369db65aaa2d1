"""The control plane's binaries, built from the pinned Go modules beside this file (go.mod's `tool` lines) on
first use and cached per user by version: `${XDG_CACHE_HOME:-~/.cache}/kubectl-launcher/controlplane/<version>/`.
Later runs reuse them; a missing Go is a loud BuildError, never a quiet fallback to the double."""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

GO_MODULE_DIR = Path(__file__).resolve().parent
#: what `go build tool` names each binary -> the name we keep it under
BINARIES = {
    "kube-apiserver": "kube-apiserver",
    "kube-controller-manager": "kube-controller-manager",
    "kube-scheduler": "kube-scheduler",
    "server": "etcd",  # go.etcd.io/etcd/server/v3
}
Progress = Callable[[str], None]


class BuildError(RuntimeError):
    """The binaries could not be built: the message says what to install or what go said."""


def pinned_versions(go_mod: str | None = None) -> dict[str, str]:
    text = go_mod if go_mod is not None else (GO_MODULE_DIR / "go.mod").read_text()
    found = dict(re.findall(r"^\s*(k8s\.io/kubernetes|go\.etcd\.io/etcd/server/v3) (v\S+)(?:\s*//.*)?$", text, re.M))
    return {"kubernetes": found["k8s.io/kubernetes"], "etcd": found["go.etcd.io/etcd/server/v3"]}


def ldflags(kubernetes: str) -> str:
    """Stripped binaries that say their version: without the -X lines (set by Kubernetes' own build scripts)
    kube-apiserver answers /version with "v0.0.0-master+$Format:%H$", which kubectl before 1.36 cannot parse
    ("could not parse pre-release/metadata"): `kubectl version`, and every set-up check built on it, fails."""
    major, minor = kubernetes.lstrip("v").split(".")[:2]
    pkg = "k8s.io/component-base/version"
    return (
        f"-s -w -X {pkg}.gitVersion={kubernetes} -X {pkg}.gitMajor={major} -X {pkg}.gitMinor={minor} "
        f"-X {pkg}.gitTreeState=clean"
    )


def cache_key() -> str:
    """`kubernetes-v1.37.2-etcd-v3.7.0-<hash of go.mod, go.sum and the link flags>`: a change builds anew."""
    v = pinned_versions()
    digest = hashlib.sha256((GO_MODULE_DIR / "go.mod").read_bytes() + (GO_MODULE_DIR / "go.sum").read_bytes())
    digest.update(ldflags(v["kubernetes"]).encode())
    return f"kubernetes-{v['kubernetes']}-etcd-{v['etcd']}-{digest.hexdigest()[:10]}"


def cache_root(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "kubectl-launcher" / "controlplane"


def binary_paths(folder: Path) -> dict[str, str]:
    return {name: str(folder / name) for name in BINARIES.values()}


def _stderr_progress(message: str) -> None:
    print(f"[controlplane] {message}", file=sys.stderr, flush=True)


def ensure_binaries(progress: Progress | None = None, *, root: Path | None = None) -> dict[str, str]:
    """The four binaries' paths, building them first if this version is not cached yet (minutes, once)."""
    say = progress or _stderr_progress
    folder = (root or cache_root()) / cache_key()
    done = folder / ".complete"
    if done.exists():
        return binary_paths(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(str(folder) + ".lock", "w") as lock:  # two test runs at once build it once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            _build(folder, say)
    return binary_paths(folder)


def find_go() -> str:
    go = shutil.which("go")
    if go is None:
        raise BuildError(
            "the real control plane needs Go 1.26 or newer on PATH to build kube-apiserver, kube-controller-manager, "
            f"kube-scheduler and etcd from {GO_MODULE_DIR / 'go.mod'} (go was not found). Install Go "
            "(https://go.dev/doc/install) and run again, or use --control-plane double."
        )
    return go


def _build(folder: Path, say: Progress) -> None:
    go = find_go()
    versions = pinned_versions()
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    env = {**os.environ, "GOFLAGS": "-mod=readonly", "GOWORK": "off", "GOTOOLCHAIN": "local", "CGO_ENABLED": "0"}
    argv = [
        go,
        "build",
        "-v",
        "-trimpath",
        f"-ldflags={ldflags(versions['kubernetes'])}",
        "-o",
        str(staging) + os.sep,
        "tool",
    ]
    say(
        f"building kube-apiserver, kube-controller-manager, kube-scheduler ({versions['kubernetes']}) and etcd "
        f"({versions['etcd']}) into {folder} — first use only; about 6 minutes on 2 cores (module cache warm)"
    )
    started = time.monotonic()
    tail: list[str] = []
    try:
        with subprocess.Popen(
            argv, cwd=GO_MODULE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as proc:  # closes the pipe: a test run that builds first must not leak it into its first test
            assert proc.stdout is not None
            count = 0
            last_report = started
            for line in proc.stdout:  # -v prints each package as it is compiled
                count += 1
                tail = [*tail[-29:], line.rstrip()]
                if time.monotonic() - last_report >= 15:
                    last_report = time.monotonic()
                    say(f"  {int(last_report - started)}s: {count} packages compiled (now {line.strip()})")
            code = proc.wait()
        if code != 0:
            raise BuildError(f"`{' '.join(argv)}` (in {GO_MODULE_DIR}) exited {code}:\n" + "\n".join(tail))
        for built, kept in BINARIES.items():
            if not (staging / built).is_file():
                raise BuildError(f"go build did not produce {built} in {staging}")
            os.replace(staging / built, staging / kept)
        (staging / ".complete").write_text(f"{versions}\nbuilt in {time.monotonic() - started:.0f}s\n")
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    say(f"built in {time.monotonic() - started:.0f}s")
