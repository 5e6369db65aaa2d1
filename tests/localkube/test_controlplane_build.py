"""The real control plane's build step, without building: the pins it reads, the per-user cache it keys by
version, and the loud error when Go is missing (never a quiet fallback to the double)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from localkube.controlplane import build


def test_the_pins_come_from_go_mod() -> None:
    assert build.pinned_versions() == {"kubernetes": "v1.37.2", "etcd": "v3.7.0"}
    go_mod = (build.GO_MODULE_DIR / "go.mod").read_text()
    for staging in ("k8s.io/api", "k8s.io/apiserver", "k8s.io/client-go", "k8s.io/kubectl"):
        assert f"\t{staging} => {staging} v0.37.2\n" in go_mod
    assert "\tk8s.io/kubernetes/cmd/kube-apiserver\n" in go_mod  # the tool directive


def test_the_cache_is_per_user_and_keyed_by_version(tmp_path: Path) -> None:
    assert build.cache_root({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "kubectl-launcher" / "controlplane"
    assert build.cache_root({"HOME": "/nonexistent"}).parts[-3:] == (".cache", "kubectl-launcher", "controlplane")
    assert build.cache_key().startswith("kubernetes-v1.37.2-etcd-v3.7.0-")


def test_a_cached_version_is_reused_without_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / build.cache_key()
    folder.mkdir()
    (folder / ".complete").write_text("done")
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    assert build.ensure_binaries(root=tmp_path)["kube-apiserver"] == str(folder / "kube-apiserver")


def test_missing_go_is_a_loud_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    with pytest.raises(build.BuildError, match=r"needs Go 1\.26 or newer on PATH .* \(go was not found\)"):
        build.ensure_binaries(root=tmp_path, progress=lambda _: None)
    assert not (tmp_path / build.cache_key()).exists()


#: Stands in for `go build -o DIR/ tool`: names two packages and leaves the four binaries in DIR.
FAKE_GO = """#!/bin/sh
while [ "$1" != "-o" ]; do shift; done
echo k8s.io/kubernetes/cmd/kube-apiserver; echo go.etcd.io/etcd/server/v3
for b in kube-apiserver kube-controller-manager kube-scheduler server; do : > "$2$b"; done
"""


def _pytest_run(tmp_path: Path, plane: str, *, go: bool = False) -> subprocess.CompletedProcess[str]:
    """A run of a one-test file on `plane` with an empty binary cache, and on PATH no Go or (`go`) a fake."""
    (tmp_path / "test_one.py").write_text(
        "import pathlib\n\n\n"
        "def test_needs_a_cluster(control_plane):\n"
        "    pathlib.Path('ran').write_text(control_plane)\n"
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if go:
        (bin_dir / "go").write_text(FAKE_GO)
        (bin_dir / "go").chmod(0o755)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "PATH": f"{bin_dir}:/usr/bin:/bin"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-W",
            "error",
            "--control-plane",
            plane,
            "test_one.py",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_real_run_builds_before_its_first_test_and_stops_loudly_without_go(tmp_path: Path) -> None:
    # Before the first test, not in it: a test's timeout would cut a build of minutes short.
    run = _pytest_run(tmp_path, "real")
    assert run.returncode == 2, run.stdout + run.stderr
    assert "--control-plane real: the real control plane needs Go 1.26 or newer on PATH" in run.stdout
    assert not (tmp_path / "ran").exists()


def test_a_run_on_the_double_builds_nothing(tmp_path: Path) -> None:
    run = _pytest_run(tmp_path, "double", go=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert (tmp_path / "ran").read_text() == "double"
    assert not (tmp_path / "cache").exists()


def test_a_real_run_builds_once_before_its_first_test_which_then_passes(tmp_path: Path) -> None:
    run = _pytest_run(tmp_path, "real", go=True)
    assert run.returncode == 0, run.stdout + run.stderr  # nothing of the build (its pipe) leaks into the test
    assert (tmp_path / "ran").read_text() == "real"
    assert "[controlplane] built in" in run.stderr
    assert (build.cache_root({"XDG_CACHE_HOME": str(tmp_path / "cache")}) / build.cache_key() / ".complete").exists()
