"""Which e2e tests run where: all of them on the local API double, minus the double-only ones on a real cluster.

The target is a real cluster only when KUBECTL_LAUNCHER_E2E_KUBECONFIG is set (scripts/e2e-real-cluster).
Otherwise `--control-plane double|real|both` (localkube's pytest plugin) says what the local cluster is: the
double, or the real kube-apiserver with our node — there the sites launch as an identity bound only to the
README's Role — or the whole job once on each (`e2e_plane`, one job per module and plane).
Tests that inspect the double itself are marked ``double_only``; tests that only mean something on a real
cluster are marked ``real_cluster``. The other kind is deselected — counted in pytest's summary line and
named in a section of its own — never skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from kubectl_launcher_demo.target import RealCluster
from localkube.pytest_plugin import planes_for

from tests.support.cluster_fixtures import *  # noqa: F403

HERE = Path(__file__).parent
_DESELECTED = pytest.StashKey[tuple[str, list[str]]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "double_only: inspects the local API double itself; deselected when KUBECTL_LAUNCHER_E2E_KUBECONFIG "
        "points the e2e flow at a real cluster",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "e2e_plane" not in metafunc.fixturenames:
        return
    # --control-plane both: the module's job once on each plane, each test on the planes it can run on (a
    # double_only test only on the double: it shares that plane's job with the others)
    if metafunc.config.getoption("--control-plane") == "both":
        planes = planes_for(metafunc.config, metafunc.definition)
        metafunc.parametrize("e2e_plane", planes, indirect=True, scope="module")


@pytest.fixture(scope="module")
def e2e_plane(request: pytest.FixtureRequest) -> str:
    """ "double" or "real": the local cluster this module's job runs on (unused on a real cluster)."""
    param = getattr(request, "param", None)
    if param is not None:
        return str(param)
    planes = planes_for(request.config)
    return planes[0] if planes else "double"


def _target() -> RealCluster | None:
    try:
        return RealCluster.from_env(os.environ)
    except ValueError as exc:
        raise pytest.UsageError(f"e2e target: {exc}") from exc


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    real = _target()
    unwanted = "double_only" if real else "real_cluster"
    # This hook sees the whole session's items; only ours are selected here.
    dropped = [i for i in items if i.path.is_relative_to(HERE) and i.get_closest_marker(unwanted)]
    if not dropped:
        return
    gone = {id(i) for i in dropped}
    items[:] = [i for i in items if id(i) not in gone]
    config.hook.pytest_deselected(items=dropped)
    where = f"a real cluster ({real.describe()})" if real else "the local API double"
    config.stash[_DESELECTED] = (f"e2e on {where}: deselected {unwanted}", [i.nodeid for i in dropped])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if _DESELECTED not in config.stash:
        return
    title, nodeids = config.stash[_DESELECTED]
    terminalreporter.section(title, sep="-")
    for nodeid in nodeids:
        terminalreporter.line(nodeid)
