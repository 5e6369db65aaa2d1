"""What the API's failures do to a launch and its transfer, through the real kubectl on the double (issue 11,
item 7): the API failing the delivery's exec, the API down while the job ends, the API failing the
collection's exec, and the site's watch cut while a launch waits for its pod. Each job ends as it would
have without the fault, with its results home and nothing left behind.

The faults are the double's (a real API server cannot host them): double_only.
"""

from __future__ import annotations

import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from localkube.testing import wait_until
from nvflare.apis.job_launcher_spec import JobReturnCode

from kubectl_launcher import JobState, K8sJobHandle
from kubectl_launcher.domain.names import credential_secret_name
from kubectl_launcher.kubectl import purpose
from kubectl_launcher.transfer.pod_side import INIT_CONTAINER
from tests.integration.test_launcher_pods import Site
from tests.integration.test_launcher_pods import cluster as cluster  # the fixtures, shared
from tests.integration.test_launcher_pods import make_site as make_site
from tests.support.journals import recorded_commands

pytestmark = [pytest.mark.integration, pytest.mark.double_only]

OUTAGE = 5.0  # seconds
#: Three tries of a step, 3 s and then 6 s apart: a fault of a few seconds costs one or two of them.
TRANSFER = {"retry_delay": 3.0, "attempts": 3}


def gated_module(gate: Path) -> str:
    """A job module that writes a result, then waits for `gate` to appear, then exits 0."""
    return textwrap.dedent(
        f"""\
        import os, sys, time
        args = sys.argv[1:]
        workspace, job_id = args[args.index("-m") + 1], args[args.index("-n") + 1]
        with open(os.path.join(workspace, job_id, "result.txt"), "w") as f:
            f.write("the job's result")
        while not os.path.exists({str(gate)!r}):
            time.sleep(0.1)
        """
    )


def container_state(site: Site, container: str, *, init: bool = False) -> dict[str, Any]:
    pod = site.cluster.get("pods", site.pod) or {}
    key = "initContainerStatuses" if init else "containerStatuses"
    for status in (pod.get("status") or {}).get(key) or []:
        if status.get("name") == container:
            return dict(status.get("state") or {})
    return {}


def exec_path(site: Site) -> str:
    return f"/api/v1/namespaces/default/pods/{site.pod}/exec"


def commands_of(site: Site, kind: str) -> list[Any]:
    journal = site.root / site.job_id / "kubectl-launcher" / "journal.jsonl"
    return [e for e in recorded_commands(str(journal)) if e.data.get("purpose") == kind]


def in_background(work: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(work()), daemon=True)
    thread.start()
    return thread, out


def fail_exec_once(site: Site, condition: Callable[[], object]) -> threading.Thread:
    """From a thread: as soon as `condition()` holds, the API answers 503 to the pod's exec for 4 s."""

    def fault() -> None:
        wait_until(condition, timeout=60, interval=0.02)
        site.cluster.faults.api_errors(503, seconds=4.0, paths=[exec_path(site)])

    return in_background(fault)[0]


def redone_then_done(site: Site, kind: str) -> None:
    """The step's commands: one failed at least, the last one succeeded."""
    runs = commands_of(site, kind)
    assert runs and runs[-1].data["returncode"] == 0 and any(e.data["returncode"] != 0 for e in runs), runs


def finished_with_results(site: Site, handle: K8sJobHandle) -> None:
    handle.wait()
    assert handle.poll() == JobReturnCode.SUCCESS and handle.terminal_state is JobState.SUCCEEDED
    assert (site.root / site.job_id / "result.txt").read_text() == "the job's result"
    assert site.cluster.get("secrets", credential_secret_name(site.pod)) is None


def running_gated_job(make_site: Callable[[str], Site], gates: Path) -> tuple[Site, K8sJobHandle, Path, str]:
    """A launched job whose process runs until its gate appears: the site, the handle (RUNNING), the gate and
    the job container's name."""
    gate = gates / "go"
    site = make_site(gated_module(gate))
    handle = site.launch(site.launcher(workspace_transfer=TRANSFER))
    assert handle.enter_states([JobState.RUNNING])
    return site, handle, gate, handle.get_manifest()["spec"]["containers"][0]["name"]


def test_the_api_failing_the_deliverys_exec_redoes_the_delivery_and_the_job_runs(
    make_site: Callable[[str], Site], gates: Path
) -> None:
    gate = gates / "go"
    site = make_site(gated_module(gate))
    launcher = site.launcher(workspace_transfer=TRANSFER)
    faulting = fail_exec_once(site, lambda: "running" in container_state(site, INIT_CONTAINER, init=True))
    handle = site.launch(launcher)
    faulting.join(5)
    assert handle.terminal_state is None, "the launch failed instead of redoing the delivery"
    gate.touch()
    finished_with_results(site, handle)
    redone_then_done(site, purpose.DELIVER)


def test_a_job_that_ends_while_the_api_is_down_is_collected_once_it_is_back(
    make_site: Callable[[str], Site], gates: Path
) -> None:
    site, handle, gate, main = running_gated_job(make_site, gates)
    site.cluster.faults.refuse_connections(OUTAGE)
    site.cluster.faults.cut_watches()  # a closed listener keeps open connections: end ours too
    gate.touch()
    wait_until(lambda: "terminated" in container_state(site, main), timeout=30)
    assert handle.terminal_state is None  # the handle cannot know yet: it invents nothing
    finished_with_results(site, handle)
    assert len(commands_of(site, purpose.COLLECT)) >= 1


def test_the_api_failing_the_collections_exec_redoes_the_collection_and_nothing_is_lost(
    make_site: Callable[[str], Site], gates: Path
) -> None:
    site, handle, gate, main = running_gated_job(make_site, gates)
    faulting = fail_exec_once(site, lambda: "terminated" in container_state(site, main))
    gate.touch()
    faulting.join(60)
    finished_with_results(site, handle)
    redone_then_done(site, purpose.COLLECT)


def test_the_sites_watch_cut_while_a_launch_waits_for_its_pod_changes_nothing(
    make_site: Callable[[str], Site], gates: Path
) -> None:
    gate = gates / "go"
    site = make_site(gated_module(gate))
    site.cluster.faults.schedule_delay = 2.0  # the pod stays Pending a while: the launch is waiting
    launching, launched = in_background(lambda: site.launch(site.launcher(workspace_transfer=TRANSFER)))
    wait_until(lambda: site.cluster.get("pods", site.pod), timeout=60, interval=0.02)
    wait_until(lambda: site.cluster.call(lambda store: len(store.watchers)) >= 1, timeout=30)
    site.cluster.faults.cut_watches()
    launching.join(60)
    assert not launching.is_alive() and launched, "launch_job did not return"
    handle = launched[0]
    assert handle.terminal_state is None  # running: the cut watch was resumed, the launch saw its pod start
    gate.touch()
    finished_with_results(site, handle)
