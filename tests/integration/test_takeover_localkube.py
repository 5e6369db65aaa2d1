"""The take-over, with the real kubectl on the API double: a launcher killed with SIGKILL while its job
runs leaves a pod; the site's next launcher follows it to its end, collects its results into the job's
workspace, deletes the pod and the job's Secret, and says so in the site journal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from localkube.testing import wait_until
from nvflare.apis.job_launcher_spec import JobReturnCode

from kubectl_launcher.domain.names import credential_secret_name
from localkube import LocalCluster
from tests.integration.test_launcher_pods import SITE, Site, module_source
from tests.integration.test_relaunch_localkube import identities, writes_since

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

# The parent of the first launch: it launches the job, says so, and waits to be killed.
CHILD = textwrap.dedent(
    """\
    import sys, time, types
    from pathlib import Path
    from tests.integration.test_launcher_pods import Site
    root, job_id, module, kubectl, kubeconfig = sys.argv[1:]
    site = Site.__new__(Site)
    site.root, site.job_id, site.module, site.kubectl = Path(root), job_id, module, kubectl
    site.cluster = types.SimpleNamespace(kubeconfig_path=kubeconfig)
    handle = site.launch()
    print("launched", handle.poll(), flush=True)
    time.sleep(600)
    """
)


@pytest.fixture
def cluster(local_cluster_factory: Callable[..., LocalCluster]) -> LocalCluster:
    made: LocalCluster = local_cluster_factory(capacity={"cpu": "2", "memory": "8Gi", "ephemeral-storage": "100Gi"})
    return made


def children_of(pid: int) -> list[int]:
    """Processes whose parent is `pid` (the kubectl a launcher started runs in a session of its own)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


#: The gate file (in the `gates` folder) whose appearance ends the killed launch's job.
JOB_ENDS = "job-ends"


@pytest.fixture
def killed_launch(cluster: LocalCluster, kubectl_path: str, tmp_path: Path, gates: Path) -> Iterator[Site]:
    """A job launched by a child process that was then killed with SIGKILL while the job runs; the job runs
    until the test creates gates/JOB_ENDS (a fixed sleep was too short on the real control plane, where a
    relaunch's refusal took longer than the job)."""
    site = Site(tmp_path / SITE, cluster, module_source(0, gate=gates / JOB_ENDS), kubectl_path)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(site.root), site.job_id, site.module, kubectl_path, cluster.kubeconfig_path],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    strays: list[int] = []
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.startswith("launched"), line
        strays = children_of(child.pid)  # its pod watch's kubectl would outlive it
        child.send_signal(signal.SIGKILL)
        child.wait(30)
        yield site
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(30)
        if child.stdout is not None:
            child.stdout.close()
        for pid in strays:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_a_new_launcher_takes_over_the_running_job_a_killed_one_left(killed_launch: Site, gates: Path) -> None:
    site = killed_launch
    pod, _ = site.objects()
    assert pod is not None and pod["status"]["phase"] == "Running"
    assert not (site.root / site.job_id / "ran.json").exists()  # the results are still in the pod

    launcher = site.launcher()
    takeover = launcher.take_over_orphans(str(site.root), SITE)
    assert [o.pod_name for o in takeover.orphans] == [site.pod]
    (gates / JOB_ENDS).touch()
    assert takeover.join(120)

    assert site.ran()["token_ok"] is True  # the job's results, in the job's workspace
    wait_until(lambda: site.objects() == (None, None), timeout=30)
    assert site.cluster.get("secrets", credential_secret_name(site.pod)) is None
    outcome = takeover.outcomes[site.pod]
    assert "ended SUCCEEDED" in outcome and "results collected" in outcome
    notes = [
        json.loads(line)["note"]
        for line in (site.root / "kubectl-launcher" / "journal.jsonl").read_text().splitlines()
        if '"note"' in line
    ]
    assert any("has no launcher; following it to its end" in n and site.pod in n for n in notes)
    assert any("ended SUCCEEDED" in n and "pod and credential Secret deleted" in n for n in notes), notes
    # Once is enough: a later launch of this launcher does not take over again.
    assert launcher.take_over_orphans(str(site.root), SITE) is takeover


def test_the_site_may_ask_for_running_orphans_to_be_terminated(killed_launch: Site) -> None:
    site = killed_launch
    takeover = site.launcher(running_orphans="terminate").take_over_orphans(str(site.root), SITE)
    assert takeover.join(60)
    assert "terminated" in takeover.outcomes[site.pod]
    wait_until(lambda: site.objects() == (None, None), timeout=30)
    notes = (site.root / "kubectl-launcher" / "journal.sh").read_text()
    assert f"terminating pod {site.pod}" in notes


def test_a_relaunch_while_the_taken_over_pod_runs_is_refused_and_changes_nothing(
    killed_launch: Site, gates: Path
) -> None:
    site = killed_launch
    launcher = site.launcher()
    takeover = launcher.take_over_orphans(str(site.root), SITE)
    # The killed launch may have died before it deleted the job's credential Secret (deleted once the job
    # container runs); the take-over's handle then deletes it. That write is the take-over's, not the
    # relaunch's (on the real control plane it landed inside the window counted below).
    wait_until(lambda: site.cluster.get("secrets", credential_secret_name(site.pod)) is None, timeout=30)
    before = identities(site.cluster)
    count = len(site.cluster.requests)
    handle = site.launch(launcher)
    assert handle.poll() == JobReturnCode.EXCEPTION
    # The refused relaunch neither replaced the pod nor wrote a Secret (the job still runs: the take-over
    # deletes nothing yet).
    assert writes_since(site.cluster, count) == []
    assert identities(site.cluster) == before
    (gates / JOB_ENDS).touch()
    assert takeover.join(120)
    assert "ended SUCCEEDED" in takeover.outcomes[site.pod]
    assert site.ran()["token_ok"] is True
