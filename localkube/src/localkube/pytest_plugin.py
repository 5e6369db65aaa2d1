"""pytest plugin (entry point `pytest11`): `--control-plane double|real|both` chooses what the clusters of a run
are — the double (default), the real control plane, or each test once on both — and the `control_plane`
fixture carries the choice to the cluster fixtures. Tests marked `double_only` (faults, the double's own
store) or `real_control_plane` are deselected where they cannot run, and named in a summary section."""

from __future__ import annotations

import os

import pytest

CHOICES = ("double", "real", "both")
ENV = "LOCALKUBE_CONTROL_PLANE"
_DESELECTED = pytest.StashKey[list[str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("localkube").addoption(
        "--control-plane",
        choices=CHOICES,
        default=os.environ.get(ENV, "double"),
        help=f"the clusters tests run on: double (default; ${ENV} overrides), real (kube-apiserver, etcd, "
        "scheduler, controller-manager; built with Go on first use), or both",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "double_only: needs the local API double itself (faults, its store); not run on the real one"
    )
    config.addinivalue_line(
        "markers", "real_control_plane: needs the real control plane; runs with --control-plane real or both"
    )


def planes_for(config: pytest.Config, node: pytest.Item | None = None) -> list[str]:
    chosen = str(config.getoption("--control-plane"))
    planes = ["double", "real"] if chosen == "both" else [chosen]
    if node is not None and node.get_closest_marker("double_only"):
        planes = [p for p in planes if p == "double"]
    if node is not None and node.get_closest_marker("real_control_plane"):
        planes = [p for p in planes if p == "real"]
    return planes


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "control_plane" not in metafunc.fixturenames:
        return
    planes = planes_for(metafunc.config, metafunc.definition)
    if len(planes) > 1:
        metafunc.parametrize("control_plane", planes, indirect=True)


@pytest.fixture
def control_plane(request: pytest.FixtureRequest) -> str:
    """ "double" or "real": what this test's clusters are."""
    param = getattr(request, "param", None)
    if param is not None:
        return str(param)
    planes = planes_for(request.config, request.node if isinstance(request.node, pytest.Item) else None)
    return planes[0] if planes else "double"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    dropped = [i for i in items if not planes_for(config, i)]
    if not dropped:
        return
    gone = {id(i) for i in dropped}
    items[:] = [i for i in items if id(i) not in gone]
    config.hook.pytest_deselected(items=dropped)
    config.stash[_DESELECTED] = [i.nodeid for i in dropped]


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build the real control plane's binaries (minutes, once per version) before the first test, not inside
    it: a test's timeout would cut the build short and fail that test for it."""
    real = [
        i
        for i in session.items
        if "control_plane" in getattr(i, "fixturenames", ()) and "real" in planes_for(session.config, i)
    ]
    if not real:
        return
    from localkube.controlplane import build

    try:
        build.ensure_binaries()
    except build.BuildError as e:
        pytest.exit(f"--control-plane {session.config.getoption('--control-plane')}: {e}", returncode=2)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    nodeids = config.stash.get(_DESELECTED, [])
    if not nodeids:
        return
    chosen = config.getoption("--control-plane")
    terminalreporter.section(f"--control-plane {chosen}: deselected {len(nodeids)} test(s) for the other one", sep="-")
    for nodeid in nodeids:
        terminalreporter.line(nodeid)
