"""The real control plane's build step, without building: the pins it reads, the per-user cache it keys by
version, and the loud error when Go is missing (never a quiet fallback to the double)."""

from __future__ import annotations

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
