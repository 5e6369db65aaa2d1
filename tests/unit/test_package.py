"""The package's front door: the NVFlare component and the handle load on first use, not on import."""

from __future__ import annotations

import pytest

import kubectl_launcher


def test_the_package_offers_the_launcher_and_the_handle_on_first_use() -> None:
    from kubectl_launcher.handle import K8sJobHandle
    from kubectl_launcher.launcher import K8sJobLauncher

    assert kubectl_launcher.K8sJobLauncher is K8sJobLauncher
    assert kubectl_launcher.K8sJobHandle is K8sJobHandle
    assert "Kubectl" in dir(kubectl_launcher)
    with pytest.raises(AttributeError):
        _ = kubectl_launcher.NoSuchThing  # type: ignore[attr-defined]
