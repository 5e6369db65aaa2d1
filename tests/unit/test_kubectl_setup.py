"""check_setup's checks that need no kubectl: nothing configured, kubeconfig missing, kubectl missing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from kubectl_launcher import errors
from kubectl_launcher.kubectl import Kubectl


def test_nothing_configured_at_all_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(errors.ConfigError, match="no Kubernetes configuration at all"):
        Kubectl(kubectl=sys.executable).check_setup()


def test_kubeconfig_env_pointing_nowhere_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(errors.ConfigError, match=r"KUBECONFIG file .*missing.* does not exist"):
        Kubectl(kubectl=sys.executable).check_setup()


def test_kubectl_missing_from_path_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(errors.ConfigError, match="'kubectl' not found or not executable"):
        Kubectl().check_setup()


def test_without_kubeconfig_the_child_gets_the_parents_kubeconfig_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", "/a:/b")
    assert Kubectl().env()["KUBECONFIG"] == "/a:/b"
    monkeypatch.delenv("KUBECONFIG")
    assert "KUBECONFIG" not in Kubectl().env()


def test_a_command_that_ends_by_itself_runs_without_go_collections_below_a_limit_and_a_watch_keeps_gos_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GOGC", raising=False)
    monkeypatch.delenv("GOMEMLIMIT", raising=False)
    short, watch = Kubectl().env(ends_by_itself=True), Kubectl().env()
    assert (short["GOGC"], short["GOMEMLIMIT"]) == ("off", "128MiB")
    assert "GOGC" not in watch and "GOMEMLIMIT" not in watch
    monkeypatch.setenv("GOGC", "50")  # the operator's own setting wins, for every command
    assert Kubectl().env(ends_by_itself=True)["GOGC"] == Kubectl().env()["GOGC"] == "50"
