"""The workspace transfer driven through the kubectl seam by a scripted fake Runner that stands in for one pod."""

from __future__ import annotations

import copy
import io
import json
import logging
import os
import shutil
import subprocess
import tarfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from kubectl_launcher.errors import ConfigError, TransferError, UnsafeArchiveError
from kubectl_launcher.kubectl import CommandResult, Kubectl
from kubectl_launcher.kubectl.journal import Journal
from kubectl_launcher.objects.job_pod import JobPod
from kubectl_launcher.transfer import archive, background, excludes, pod_scripts, pod_side
from kubectl_launcher.transfer.pod_side import TransferSettings
from kubectl_launcher.transfer.workspace import WorkspaceTransfer
from tests.support.fake_runner import RunnerCall, ScriptedRunner
from tests.support.trees import snapshot as _snapshot

WMP = "/var/tmp/nvflare/workspace"
JOB = "3f1b6a2e-0c1d-4f7e-9a55-7d1e2c3b4a5f"
POD = "site-1-3f1b6a2e"


class Clock:
    """A fake monotonic clock; as `sleep`, it moves on by the seconds asked and notes them."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class FakePod(ScriptedRunner):
    """A Runner that plays one pod: its volumes are local folders; unexpected commands fail the test.

    The delivery and collection scripts are the real ones, run by the local ``sh`` on those folders (their
    pod paths mapped to them), so these tests exercise the scripts as well as the launcher's side.
    """

    takes_stdin_file = True  # the delivery's tar comes as a file

    def __init__(self, root: Path, clock: Clock | None = None) -> None:
        super().__init__()
        self.clock = clock
        #: kind -> seconds a command of that kind takes on `clock`; past its timeout it is killed, as the runner does
        self.takes: dict[str, float] = {}
        self.ws = root / "pod-ws"
        self.ctl = root / "pod-ctl"
        self.ws.mkdir()
        self.ctl.mkdir()
        self.calls: list[tuple[str, ...]] = []
        #: kind ("deliver", "collect", "lease", "release") -> results to give instead
        self.faults: dict[str, list[CommandResult]] = {}
        #: writes the collection's stream instead of the script (hostile archives)
        self.tar_override: Callable[[str], None] | None = None
        #: changes the delivery's stream before the script reads it (a stream damaged on the way)
        self.stream_override: Callable[[bytes], bytes] | None = None
        #: kind ("deliver", "collect") -> runs before the command; False: the pod's waiting script gave up meanwhile
        self.slow: dict[str, Callable[[], bool]] = {}
        #: a PATH for the scripts (an image without sha256sum); None: the test's own
        self.path: str | None = None

    def local(self, pod_path: str) -> Path:
        for prefix, base in ((pod_side.CONTROL_PATH, self.ctl), (WMP, self.ws)):
            if pod_path == prefix or pod_path.startswith(prefix + "/"):
                return base / pod_path[len(prefix) :].lstrip("/")
        raise AssertionError(f"path outside the pod's volumes: {pod_path}")

    def kinds(self) -> list[str]:
        return [self._kind(a) for a in self.calls]

    @staticmethod
    def _kind(args: Sequence[str]) -> str:
        assert args[0] == "exec" and args[2] == "--container", args
        body = args[args.index("--") + 1 :]
        assert body[:2] == ("sh", "-c") and body[3] == "kubectl-launcher", args
        for kind, text in (
            ("deliver", pod_scripts.DELIVER_SCRIPT),
            ("collect", pod_scripts.COLLECT_SCRIPT),
            ("lease", pod_scripts.LEASE_SCRIPT),
            ("release", pod_scripts.RELEASE_SCRIPT),
        ):
            if body[2] == text:
                return kind
        raise AssertionError(f"unexpected script: {body[2]!r}")

    @staticmethod
    def params(args: Sequence[str]) -> tuple[str, ...]:
        """The script's positional parameters ($1, $2, ...)."""
        return tuple(args[args.index("--") + 5 :])

    def answer(self, call: RunnerCall) -> CommandResult:
        argv, stdout_path = call.argv, call.stdout_path
        args = argv[argv.index("--request-timeout") + 2 :]
        self.calls.append(args)
        kind = self._kind(args)
        assert (call.stdin_file is not None) == (kind == "deliver") == ("--stdin" in args), args
        if kind in self.takes:
            assert self.clock is not None
            self.clock.now += min(self.takes[kind], call.timeout)
            if self.takes[kind] > call.timeout:
                return CommandResult(argv, None, "", "", timed_out=True)
        if kind in self.slow and not self.slow[kind]():
            gave_up = "error: Internal error occurred: container gave up: no word from the launcher"
            return CommandResult(argv, 1, "", gave_up)
        if self.faults.get(kind):
            result = self.faults[kind].pop(0)
            if stdout_path:
                Path(stdout_path).write_bytes(b"")
            return CommandResult(argv, result.returncode, "", result.stderr)
        return getattr(self, f"_{kind}")(call, self.params(args))

    def lasting(self, bound: int) -> Callable[[], bool]:
        """A command that lasts three times the waiting script's bound, counted as that script does.

        Like WAIT_SCRIPT, it looks at the lease file once per tick and gives up after ``bound`` ticks
        without a change. Ticks, not seconds: a loaded machine slows the ticks and the renewer alike.
        """

        def run() -> bool:
            lease = self.ctl / "lease"
            last, idle = None, 0
            for _ in range(3 * bound):
                time.sleep(0.01)
                current = lease.read_text() if lease.exists() else ""
                last, idle = (current, 0) if current != last else (last, idle + 1)
                if idle >= bound:
                    return False
            return True

        return run

    def _sh(self, call: RunnerCall, script: str, params: Sequence[str], stdin: bytes | None = None) -> CommandResult:
        env = {"PATH": self.path or os.environ["PATH"], "LC_ALL": "C"}
        with open(call.stdout_path or os.devnull, "wb") as out:
            done = subprocess.run(
                ["sh", "-c", script, "kubectl-launcher", *params],
                input=stdin,
                stdout=out,
                stderr=subprocess.PIPE,
                env=env,
                check=False,
                timeout=60,
            )
        stderr = done.stderr.decode()
        if done.returncode:  # what kubectl adds for a command that failed in the container
            stderr += f"command terminated with exit code {done.returncode}\n"
        return CommandResult(call.argv, done.returncode, "", stderr)

    def _deliver(self, call: RunnerCall, params: tuple[str, ...]) -> CommandResult:
        assert call.stdin_file is not None
        stream = call.stdin_file.read()
        if self.stream_override is not None:
            stream = self.stream_override(stream)
        mapped = (str(self.local(params[0])), str(self.local(params[1])), params[2], str(self.local(params[3])))
        return self._sh(call, pod_scripts.DELIVER_SCRIPT, mapped + params[4:], stream)

    def _collect(self, call: RunnerCall, params: tuple[str, ...]) -> CommandResult:
        assert call.stdout_path and params[0] == WMP and params[1] == JOB
        if self.tar_override is not None:
            self.tar_override(call.stdout_path)
            return CommandResult(call.argv, 0)
        return self._sh(call, pod_scripts.COLLECT_SCRIPT, (str(self.local(params[0])), *params[1:]))

    def _lease(self, call: RunnerCall, params: tuple[str, ...]) -> CommandResult:
        (self.local(params[0]) / "lease").write_text(params[1])
        return CommandResult(call.argv, 0)

    def _release(self, call: RunnerCall, params: tuple[str, ...]) -> CommandResult:
        (self.local(params[0]) / "released").touch()
        return CommandResult(call.argv, 0)


def _pod(
    init: str | None, main: str | None = None, keeper: str | None = None, phase: str = "Pending"
) -> dict[str, Any]:
    def st(name: str, state: str | None, code: int = 0) -> dict[str, Any]:
        body: dict[str, Any] = {} if state != "terminated" else {"exitCode": code}
        return {"name": name, "state": {state: body} if state else {"waiting": {"reason": "PodInitializing"}}}

    return {
        "metadata": {"name": POD, "namespace": "nvflare"},
        "status": {
            "phase": phase,
            "initContainerStatuses": [st(pod_side.INIT_CONTAINER, init)],
            "containerStatuses": [st("main", main), st(pod_side.KEEPER_CONTAINER, keeper)],
        },
    }


def _manifest() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": POD},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "main",
                    "image": "registry.example/nvflare-job:2.9",
                    "imagePullPolicy": "Always",
                    "securityContext": {"runAsNonRoot": True},
                    "volumeMounts": [
                        {"name": "workspace-job", "mountPath": WMP},
                        {"name": "startup-kit", "mountPath": f"{WMP}/startup"},
                    ],
                }
            ],
            "volumes": [{"name": "workspace-job", "emptyDir": {}}, {"name": "startup-kit", "secret": {}}],
        },
    }


@pytest.fixture
def site(tmp_path: Path) -> Path:
    ws = tmp_path / "site"
    (ws / "local/custom").mkdir(parents=True)
    (ws / "local/resources.json").write_text('{"components": []}')
    (ws / "local/study_data.yaml").write_text("not for the pod")
    (ws / JOB / "app_site-1/config").mkdir(parents=True)
    (ws / JOB / "app_site-1/config/config_fed_client.json").write_text("{}")
    (ws / JOB / "meta.json").write_text('{"name": "hello"}')
    (ws / JOB / "kubectl-launcher").mkdir()
    (ws / JOB / "kubectl-launcher/manifest.json").write_text("ours")
    (ws / "startup").mkdir()
    (ws / "startup/client.key").write_text("PRIVATE")
    return ws


@pytest.fixture
def pod(tmp_path: Path) -> FakePod:
    return FakePod(tmp_path)


#: advance() waits this long at most for the step it started: far more than any step here takes, so each
#: advance ends with its step picked up (a test of the contrary passes advance_wait=0).
STEP_DONE_WITHIN = 60.0


def _transfer(
    site: Path,
    clock: Callable[[], float],
    sleep: Callable[[float], None] = lambda _: None,
    advance_wait: float = STEP_DONE_WITHIN,
    **settings: Any,
) -> WorkspaceTransfer:
    s = TransferSettings(**{"retry_delay": 0, "progress_interval": 0, **settings})
    t = WorkspaceTransfer(str(site), JOB, WMP, s, clock=clock, sleep=sleep, advance_wait=advance_wait)
    t.decorate(_manifest(), "main")
    return t


def _kubectl(pod: FakePod) -> Kubectl:
    return Kubectl(namespace="nvflare", runner=pod, retries=0, sleep=lambda _: None)


def test_decorate_adds_init_and_keeper_and_leaves_the_main_container_as_it_was(site: Path) -> None:
    t = WorkspaceTransfer(str(site), JOB, WMP)
    manifest = _manifest()
    main_before = copy.deepcopy(manifest["spec"]["containers"][0])
    t.decorate(manifest, "main")
    spec = manifest["spec"]
    main = copy.deepcopy(spec["containers"][0])
    # the only two additions to upstream's main container: the lapse probe, and the control folder read-only
    assert main.pop("livenessProbe") == pod_side.lapse_probe(TransferSettings())
    assert main["volumeMounts"].pop() == {
        "name": pod_side.CONTROL_VOLUME,
        "mountPath": pod_side.CONTROL_PATH,
        "readOnly": True,
    }
    assert main == main_before
    init, keeper = spec["initContainers"][0], spec["containers"][1]
    assert (init["name"], keeper["name"]) == (pod_side.INIT_CONTAINER, pod_side.KEEPER_CONTAINER)
    for c in (init, keeper):
        assert c["image"] == "registry.example/nvflare-job:2.9"
        assert c["imagePullPolicy"] == "Always"
        assert c["securityContext"]["runAsNonRoot"] is True  # the job container's user; no privilege
        assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert c["command"][:3] == ["sh", "-c", pod_side.WAIT_SCRIPT]
        assert {m["mountPath"] for m in c["volumeMounts"]} == {WMP, pod_side.CONTROL_PATH, pod_side.LEASE_PATH}
    # looks per second, marker, bound, exit code, the annotations file: the init container looks often (a
    # launch waits for it), the keeper, which lives as long as the job, once a second
    assert init["command"][-5:] == ["5", "delivered", "1800", "1", pod_side.LEASE_FILE]
    assert keeper["command"][-5:] == ["1", "released", "900", "0", pod_side.LEASE_FILE]
    assert next(m for m in keeper["volumeMounts"] if m["mountPath"] == WMP)["readOnly"] is True
    assert {"name": pod_side.CONTROL_VOLUME, "emptyDir": {"sizeLimit": "1Mi"}} in spec["volumes"]
    annotations = {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}}
    assert {"name": pod_side.LEASE_VOLUME, "downwardAPI": {"items": [annotations]}} in spec["volumes"]
    decorated = copy.deepcopy(manifest)
    t.decorate(manifest, "main")
    assert manifest == decorated


def test_decorate_uses_the_configured_image_and_resources(site: Path) -> None:
    s = TransferSettings(image="busybox:1.36", resources={"requests": {"cpu": "1"}})
    manifest = _manifest()
    WorkspaceTransfer(str(site), JOB, WMP, s).decorate(manifest, "main")
    init = manifest["spec"]["initContainers"][0]
    assert (init["image"], init["resources"]) == ("busybox:1.36", {"requests": {"cpu": "1"}})


def test_decorate_refuses_a_pod_without_the_workspace_volume(site: Path) -> None:
    manifest = _manifest()
    manifest["spec"]["containers"][0]["volumeMounts"] = []
    with pytest.raises(ConfigError, match="workspace_mount_path"):
        WorkspaceTransfer(str(site), JOB, WMP).decorate(manifest, "main")


def test_whole_life_delivers_renews_the_lease_collects_then_releases(site: Path, pod: FakePod) -> None:
    clock = Clock()
    t = _transfer(site, clock, lease_interval=30)
    kubectl = _kubectl(pod)

    t.advance(kubectl, _pod(None))  # init still being created: nothing to do
    assert pod.calls == []
    t.advance(kubectl, _pod("running"))
    assert pod.kinds() == ["deliver"]
    assert t.delivered and (pod.ctl / "delivered").exists()
    assert (pod.ws / "local/resources.json").read_text() == '{"components": []}'
    assert not (pod.ws / "local/study_data.yaml").exists()
    assert not (pod.ws / JOB / "kubectl-launcher").exists()
    assert not (pod.ws / "startup").exists()
    assert (pod.ws / JOB / "meta.json").read_text() == '{"name": "hello"}'
    assert not list(pod.ws.glob(pod_side.STAGE_PREFIX + "*"))
    assert not (site / JOB / "kubectl-launcher/outbox").exists()

    pod.calls.clear()
    running = _pod("terminated", "running", "running", "Running")
    t.advance(kubectl, running)  # the delivery counts as the first lease: nothing due yet
    assert pod.calls == []
    t.advance(kubectl, running)
    clock.now += 31
    t.advance(kubectl, running)
    t.advance(kubectl, running)
    clock.now += 31
    t.advance(kubectl, running)
    assert pod.kinds() == ["lease", "lease"]
    assert not t.finished

    (pod.ws / JOB / "results").mkdir()
    (pod.ws / JOB / "results/model ü.bin").write_bytes(b"\x00weights" * 1000)
    (pod.ws / JOB / "results/empty").mkdir()
    (pod.ws / JOB / "meta.json").write_text("changed by the job")
    (pod.ws / JOB / "kubectl-launcher").mkdir()
    (pod.ws / JOB / "kubectl-launcher/manifest.json").write_text("the job's")
    pod.calls.clear()
    t.advance(kubectl, _pod("terminated", "terminated", "running", "Running"))
    assert t.finished and t.collected and t.error is None
    assert t.settle(STEP_DONE_WITHIN)  # the keeper's release runs after the outcome, on its own thread
    assert pod.kinds() == ["collect", "release"]
    assert (site / JOB / "results/model ü.bin").read_bytes() == b"\x00weights" * 1000
    assert (site / JOB / "results/empty").is_dir()
    assert (site / JOB / "meta.json").read_text() == "changed by the job"
    assert (site / JOB / "kubectl-launcher/manifest.json").read_text() == "ours"
    assert not (site / JOB / "kubectl-launcher/incoming").exists()
    assert (pod.ctl / "released").exists()
    pod.calls.clear()
    t.advance(kubectl, _pod("terminated", "terminated", "terminated", "Succeeded"))
    assert pod.calls == []


def test_the_outcome_does_not_wait_for_the_keepers_release(site: Path, pod: FakePod) -> None:
    t = _transfer(site, Clock())
    kubectl = _deliver(t, pod)
    (pod.ws / JOB / "result.bin").write_bytes(b"r" * 10)
    gate = Gate()
    pod.slow["release"] = gate
    ended = _pod("terminated", "terminated", "running", "Running")
    t.advance(kubectl, ended)
    # The results are in place and the look reports it while the release is still held in the pod.
    assert t.collected and t.finished and t.error is None
    assert (site / JOB / "result.bin").read_bytes() == b"r" * 10
    assert gate.entered.wait(10) and not t.settle(0)
    assert not (pod.ctl / "released").exists()
    t.advance(kubectl, ended)  # a later look starts nothing more
    assert pod.kinds() == ["collect", "release"]
    gate.open()
    assert t.settle(STEP_DONE_WITHIN) and (pod.ctl / "released").exists()


def test_a_failed_release_is_a_warning_not_a_failure(
    site: Path, pod: FakePod, caplog: pytest.LogCaptureFixture
) -> None:
    t = _transfer(site, Clock())
    kubectl = _deliver(t, pod)
    pod.faults["release"] = [CommandResult(("kubectl",), 1, "", "error: unable to upgrade connection: pod gone")]
    t.advance(kubectl, _pod("terminated", "terminated", "running", "Running"))
    assert t.settle(STEP_DONE_WITHIN)
    assert t.collected and t.error is None and not (pod.ctl / "released").exists()
    assert "results are in place, but the keeper of pod" in caplog.text and "was not released" in caplog.text


def test_a_failed_copy_is_retried_into_a_fresh_staging_folder(site: Path, pod: FakePod) -> None:
    t = _transfer(site, Clock())
    pod.faults["deliver"] = [CommandResult(("kubectl",), 1, "", "error: unexpected EOF")]
    t.advance(_kubectl(pod), _pod("running"))
    assert pod.kinds() == ["deliver", "deliver"]
    stages = [pod.params(a)[3] for a in pod.calls]
    assert stages == [f"{WMP}/{pod_side.STAGE_PREFIX}1", f"{WMP}/{pod_side.STAGE_PREFIX}2"]
    assert t.delivered


def test_a_pod_without_tar_is_reported_naming_the_image(site: Path, pod: FakePod) -> None:
    t = _transfer(site, Clock())
    no_tar = (
        'OCI runtime exec failed: exec failed: unable to start container process: exec: "tar": '
        "executable file not found in $PATH: unknown\ncommand terminated with exit code 126"
    )
    pod.faults["deliver"] = [CommandResult(("kubectl",), 126, "", no_tar)]
    with pytest.raises(TransferError, match=r"registry.example/nvflare-job:2.9.*has no tar"):
        t.advance(_kubectl(pod), _pod("running"))
    assert pod.kinds() == ["deliver"]  # not retried: it cannot get better


def test_an_init_container_that_found_no_tar_is_reported_naming_the_image(site: Path, pod: FakePod) -> None:
    t = _transfer(site, Clock())
    status = _pod("terminated", phase="Failed")
    status["status"]["initContainerStatuses"][0]["state"]["terminated"] = {
        "exitCode": 127,
        "message": "kubectl-launcher: this image has no tar; the workspace transfer needs it in the container",
    }
    with pytest.raises(TransferError, match=r"registry\.example/nvflare-job:2\.9"):
        t.advance(_kubectl(pod), status)
    assert t.finished and isinstance(t.error, TransferError)


def _deliver(t: WorkspaceTransfer, pod: FakePod) -> Kubectl:
    kubectl = _kubectl(pod)
    t.advance(kubectl, _pod("running"))
    pod.calls.clear()
    return kubectl


def test_a_collection_that_keeps_failing_keeps_the_pod_and_names_the_recovering_command(
    site: Path, pod: FakePod
) -> None:
    t = _transfer(site, Clock())
    kubectl = _deliver(t, pod)
    before = _snapshot(site)
    pod.faults["collect"] = [CommandResult(("kubectl",), 1, "", "error: unexpected EOF")] * 3
    with pytest.raises(TransferError) as err:
        t.advance(kubectl, _pod("terminated", "terminated", "running", "Running"))
    assert pod.kinds() == ["collect"] * 3  # no release: the keeper holds the results
    expected = f"kubectl --namespace nvflare --request-timeout 30s cp --container {pod_side.KEEPER_CONTAINER} "
    assert t.recovery_command is not None and t.recovery_command.startswith(expected)
    assert t.recovery_command in str(err.value)
    script = site / JOB / "kubectl-launcher/recover-results.sh"
    assert t.recovery_command in script.read_text()
    after = _snapshot(site)
    del after[f"{JOB}/kubectl-launcher/recover-results.sh"]
    assert after == before
    pod.calls.clear()
    t.advance(kubectl, _pod("terminated", "terminated", "running", "Running"))
    assert pod.calls == []  # no lease any more: the keeper ends by itself


def test_a_truncated_stream_is_retried_and_never_presented_as_complete(site: Path, pod: FakePod) -> None:
    t = _transfer(site, Clock())
    kubectl = _deliver(t, pod)
    (pod.ws / JOB / "big.bin").write_bytes(os.urandom(100_000))

    def cut_short(path: str) -> None:
        pod.tar_override = None
        with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tf:
            tf.add(pod.ws / JOB, arcname=".")
        data = Path(path).read_bytes()
        Path(path).write_bytes(data[: len(data) // 2])

    pod.tar_override = cut_short
    t.advance(kubectl, _pod("terminated", "terminated", "running", "Running"))
    assert t.settle(STEP_DONE_WITHIN)
    assert pod.kinds() == ["collect", "collect", "release"]
    assert (site / JOB / "big.bin").read_bytes() == (pod.ws / JOB / "big.bin").read_bytes()


@pytest.mark.parametrize(
    "member",
    [
        ("l", "passwd", "/etc/passwd"),
        ("f", "../escape", b"x"),
        ("f", "/abs-escape", b"x"),
        ("h", "pw", "/etc/passwd"),
        ("c", "null", b""),
    ],
)
def test_hostile_results_are_refused_and_nothing_outside_the_job_folder_changes(
    site: Path, pod: FakePod, member: tuple[str, str, bytes | str]
) -> None:
    t = _transfer(site, Clock())
    kubectl = _deliver(t, pod)
    sentinel = site.parent / "outside"
    sentinel.mkdir()
    (sentinel / "victim").write_text("untouched")
    before_job = _snapshot(site / JOB)
    before_all = _snapshot(site.parent)

    def hostile(path: str) -> None:
        with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tf:
            kind, name, data = member
            info = tarfile.TarInfo(name)
            body = None
            if kind == "f":
                assert isinstance(data, bytes)
                info.size, body = len(data), io.BytesIO(data)
            elif kind == "l":
                info.type, info.linkname = tarfile.SYMTYPE, str(data)
            elif kind == "h":
                info.type, info.linkname = tarfile.LNKTYPE, str(data)
            else:
                info.type = tarfile.CHRTYPE
            tf.addfile(info, body)

    pod.tar_override = hostile
    with pytest.raises(TransferError) as err:
        t.advance(kubectl, _pod("terminated", "terminated", "running", "Running"))
    assert isinstance(err.value.__cause__, UnsafeArchiveError)
    assert pod.kinds() == ["collect"]  # refused at once, not retried, pod kept
    after_job = _snapshot(site / JOB)
    del after_job["kubectl-launcher/recover-results.sh"]
    assert after_job == before_job
    after_all = {k: v for k, v in _snapshot(site.parent).items() if not k.startswith(f"site/{JOB}")}
    assert after_all == {k: v for k, v in before_all.items() if not k.startswith(f"site/{JOB}")}
    assert not Path("/abs-escape").exists()


def test_a_keeper_that_ended_before_collection_is_an_error(site: Path, pod: FakePod) -> None:
    t = _transfer(site, Clock())
    kubectl = _deliver(t, pod)
    with pytest.raises(TransferError, match="keeper"):
        t.advance(kubectl, _pod("terminated", "terminated", "terminated", "Failed"))
    assert pod.calls == []


def test_a_pod_that_fails_before_its_init_container_runs_has_nothing_to_collect(site: Path, pod: FakePod) -> None:
    t = _transfer(site, Clock())
    t.advance(_kubectl(pod), _pod(None, phase="Failed"))
    assert t.finished and t.error is None and pod.calls == []


def test_settings_are_checked_and_name_the_field() -> None:
    with pytest.raises(ConfigError, match="nonsense"):
        TransferSettings.from_mapping({"nonsense": 1})
    with pytest.raises(ConfigError, match="lease_interval"):
        TransferSettings(keep_timeout=30, lease_interval=20)
    with pytest.raises(ConfigError, match="keep_timeout"):
        TransferSettings(keep_timeout=2)
    s = TransferSettings.from_mapping({"image": "busybox", "keep_timeout": 60, "lease_interval": 10})
    assert (s.image, s.keep_timeout) == ("busybox", 60)


def test_local_excludes_follow_upstream_and_the_pod_templates_it_names(tmp_path: Path) -> None:
    (tmp_path / "local").mkdir()
    (tmp_path / "local/study_runtime.yaml").write_text("studies:\n  a:\n    pod_template: templates/a.yaml\n")
    got = excludes.local_excludes(
        str(tmp_path), [f"{WMP}/local/legacy.yaml", str(tmp_path / "local/other.yaml"), "/elsewhere/x"], WMP
    )
    assert got == {"study_data.yaml", "study_runtime.yaml", "templates/a.yaml", "legacy.yaml", "other.yaml"}


def test_a_long_transfer_logs_its_progress_in_bytes_and_rate(caplog: pytest.LogCaptureFixture) -> None:
    seen = threading.Event()
    sizes = iter([2_000_000, 4_000_000, 6_000_000] + [6_000_000] * 1000)

    def measure() -> int:
        size = next(sizes)
        if size >= 6_000_000:
            seen.set()
        return size

    clock = Clock()
    caplog.set_level(logging.INFO)
    log = logging.getLogger("test-progress")
    progress = background.Progress(log, "fetching", 0.01, clock, measure=measure)
    clock.now += 2
    with progress:
        assert seen.wait(10)
    lines = [r.getMessage() for r in caplog.records if r.name == "test-progress"]
    assert "fetching: 2.0 MB so far after 2s (1.0 MB/s)" in lines


def _lease_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "kubectl-launcher-lease"]


def test_a_copy_longer_than_the_delivery_bound_keeps_the_lease_alive_until_the_workspace_is_placed(
    site: Path, pod: FakePod, tmp_path: Path
) -> None:
    t = _transfer(site, Clock(), lease_interval=0.005, attempts=1)
    journal = Journal(str(tmp_path / "journal"))
    kubectl = Kubectl(namespace="nvflare", runner=pod, retries=0, sleep=lambda _: None, journal=journal)
    pod.slow["deliver"] = pod.lasting(bound=20)  # 20 ticks of 10 ms against renewals every 5 ms
    t.advance(kubectl, _pod("running"))
    assert t.delivered and (pod.ctl / "delivered").exists()
    kinds = pod.kinds()
    assert [k for k in kinds if k != "lease"] == ["deliver"]
    assert "lease" in kinds  # renewed while the one exec ran
    leases = [a for a in pod.calls if a[0] == "exec" and a[7] == pod_scripts.LEASE_SCRIPT]
    assert {a[3] for a in leases} == {pod_side.INIT_CONTAINER}
    assert len({a[10] for a in leases}) == len(leases)  # every renewal is a new word
    journaled = [json.loads(line) for line in Path(journal.jsonl_path).read_text().splitlines()]
    assert len(journaled) == len(pod.calls)  # the renewer's commands are journaled like any other
    assert sum(pod_scripts.LEASE_SCRIPT in r["argv"] for r in journaled) == len(leases)
    assert _lease_threads() == []


def test_a_collection_longer_than_the_keep_bound_keeps_the_keeper_until_release(site: Path, pod: FakePod) -> None:
    t = _transfer(site, Clock(), lease_interval=0.005, attempts=1)
    kubectl = _deliver(t, pod)
    (pod.ws / JOB / "result.bin").write_bytes(b"r" * 1000)
    pod.slow["collect"] = pod.lasting(bound=20)
    t.advance(kubectl, _pod("terminated", "terminated", "running", "Running"))
    assert t.collected and (site / JOB / "result.bin").read_bytes() == b"r" * 1000
    assert t.settle(STEP_DONE_WITHIN)
    kinds = pod.kinds()
    assert [k for k in kinds if k != "lease"] == ["collect", "release"] and kinds[-1] == "release"
    assert "lease" in kinds
    assert {a[3] for a in pod.calls if a[0] == "exec" and a[7] == pod_scripts.LEASE_SCRIPT} == {
        pod_side.KEEPER_CONTAINER
    }
    assert _lease_threads() == []


def test_a_failed_long_copy_stops_its_renewer_so_the_pod_can_end_by_itself(site: Path, pod: FakePod) -> None:
    t = _transfer(site, Clock(), lease_interval=0.005, attempts=1)
    kubectl = _kubectl(pod)
    pod.slow["deliver"] = lambda: False
    with pytest.raises(TransferError):
        t.advance(kubectl, _pod("running"))
    assert _lease_threads() == []
    renewals = pod.kinds().count("lease")
    t.advance(kubectl, _pod("running"))  # finished for good: nothing runs, nothing renews
    assert pod.kinds().count("lease") == renewals and _lease_threads() == []


def test_there_is_never_more_than_one_renewer() -> None:
    ticks: list[int] = []
    periodic = background.Periodic(lambda: ticks.append(1), 0.01, "kubectl-launcher-lease")
    periodic.start()
    periodic.start()
    assert len(_lease_threads()) == 1 and periodic.running
    periodic.stop()
    periodic.stop()
    assert _lease_threads() == [] and not periodic.running


def test_a_second_lease_renewer_for_one_transfer_is_refused(site: Path, pod: FakePod) -> None:
    t = _transfer(site, Clock())
    job_pod = JobPod(_kubectl(pod), POD)
    with t.lease.kept(job_pod, pod_side.INIT_CONTAINER, 10):
        with pytest.raises(RuntimeError, match="renewer"):
            with t.lease.kept(job_pod, pod_side.INIT_CONTAINER, 10):
                pass  # pragma: no cover
    assert _lease_threads() == []


def test_a_collection_under_transient_failures_runs_tar_at_most_attempts_times_with_the_launchers_retry_settings(
    site: Path, pod: FakePod
) -> None:
    """The launcher's Kubectl retries transient failures itself (retries=3 by default); inside a transfer step
    the seam must not retry again, or one collection would run tar (attempts x 4) times, each up to an hour."""
    slept: list[float] = []
    t = _transfer(site, Clock(), attempts=3)
    launcher_like = Kubectl(namespace="nvflare", runner=pod, sleep=slept.append)  # the launcher's defaults
    assert launcher_like.retry.retries == 3
    t.advance(launcher_like, _pod("running"))
    pod.calls.clear()
    refused = CommandResult(
        ("kubectl",), 1, "", "Unable to connect to the server: dial tcp 127.0.0.1:6443: connect: connection refused"
    )
    pod.faults["collect"] = [refused] * 12
    with pytest.raises(TransferError, match="after 3 attempts"):
        t.advance(launcher_like, _pod("terminated", "terminated", "running", "Running"))
    assert pod.kinds() == ["collect"] * 3
    assert slept == []  # the seam never backed off for a command inside a transfer step


_UNREACHABLE = "Unable to connect to the server: dial tcp 127.0.0.1:6443: connect: connection refused"


@pytest.mark.parametrize(
    "tar_takes, tar_timeouts, pauses, error",
    [
        # each tar fails after 3000 s: the third gets only what is left of the 7200 s and is killed at the deadline
        (3000.0, [3600.0, 3600.0, 1185.0], [5.0, 10.0], "after 3 attempts"),
        # each tar hangs: the second ends at the deadline, and no third starts
        (10_000.0, [3600.0, 3595.0], [5.0], "within 7200s"),
    ],
)
def test_a_failing_collection_with_the_launchers_retry_settings_runs_tar_a_bounded_number_of_times_within_the_deadline(
    site: Path, tmp_path: Path, tar_takes: float, tar_timeouts: list[float], pauses: list[float], error: str
) -> None:
    clock = Clock()
    pod = FakePod(tmp_path, clock)
    # as the launcher builds its Kubectl: the seam's default policy (3 retries, default backoff)
    launcher_like = Kubectl(namespace="nvflare", runner=pod, sleep=clock.sleep, clock=clock)
    assert (launcher_like.retry.retries, launcher_like.retry.backoff_first) == (3, 0.5)
    t = _transfer(site, clock, clock.sleep, retry_delay=5)  # attempts=3, 3600 s a command, 7200 s in all
    t.advance(launcher_like, _pod("running"))
    assert t.delivered
    pod.calls.clear()
    pod.received.clear()
    pod.takes["collect"] = tar_takes
    pod.faults["collect"] = [CommandResult(("kubectl",), 1, "", _UNREACHABLE)] * 12
    started = clock.now

    with pytest.raises(TransferError, match=error):
        t.advance(launcher_like, _pod("terminated", "terminated", "running", "Running"))

    assert [c.timeout for c in pod.received if pod_scripts.COLLECT_SCRIPT in c.argv] == tar_timeouts
    assert pod.kinds() == ["collect"] * len(tar_timeouts)  # no release: the keeper holds the results
    assert clock.slept == pauses  # the step's pauses only: the seam never retried a command inside it
    assert clock.now - started <= 7200


def test_a_redo_never_starts_a_pause_that_would_reach_the_deadline(site: Path, tmp_path: Path) -> None:
    clock = Clock()
    pod = FakePod(tmp_path, clock)
    kubectl = Kubectl(namespace="nvflare", runner=pod, sleep=clock.sleep, clock=clock)
    t = _transfer(site, clock, clock.sleep, retry_delay=100, transfer_timeout=150, attempts=5)
    pod.takes["deliver"] = 60.0
    pod.faults["deliver"] = [CommandResult(("kubectl",), 1, "", "error: unexpected EOF")] * 5
    with pytest.raises(TransferError, match=r"within 150s \(1 attempts\)"):
        t.advance(kubectl, _pod("running"))
    assert pod.kinds() == ["deliver"] and clock.slept == []


class Gate:
    """Holds a command until the test opens it; `entered` says the command is in flight."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self._open = threading.Event()

    def __call__(self) -> bool:
        self.entered.set()
        assert self._open.wait(30), "the test never opened the gate"
        return True

    def open(self) -> None:
        self._open.set()


def _advance_until(t: WorkspaceTransfer, kubectl: Kubectl, status: dict[str, Any], done: Callable[[], bool]) -> None:
    """Look again, as the handle does, until ``done()`` (at most a few hundred looks)."""
    for _ in range(1000):
        t.advance(kubectl, status)
        if done():
            return
        time.sleep(0.01)
    raise AssertionError("the transfer never got there")


def _collection_in_flight(
    site: Path, pod: FakePod, *, fault: str | None = None, attempts: int = 3
) -> tuple[WorkspaceTransfer, Kubectl, dict[str, Any], Gate]:
    """A delivered transfer (advance_wait=0) whose collection's tar is held at a gate; ``fault``: its stderr."""
    t = _transfer(site, Clock(), advance_wait=0, attempts=attempts)
    kubectl = _kubectl(pod)
    _advance_until(t, kubectl, _pod("running"), lambda: t.delivered)
    pod.calls.clear()
    gate = Gate()
    pod.slow["collect"] = gate
    if fault is not None:
        pod.faults["collect"] = [CommandResult(("kubectl",), 1, "", fault)]
    ended = _pod("terminated", "terminated", "running", "Running")
    t.advance(kubectl, ended)  # starts the collection and returns with the tar in flight
    assert gate.entered.wait(10)
    return t, kubectl, ended, gate


def test_advance_returns_while_a_long_collection_runs_and_a_later_look_picks_up_its_outcome(
    site: Path, pod: FakePod
) -> None:
    t, kubectl, ended, gate = _collection_in_flight(site, pod)
    looks = [threading.Thread(target=t.advance, args=(kubectl, ended)) for _ in range(4)]
    for look in looks:  # the handle's poll and wait look too, from their own threads
        look.start()
    for look in looks:
        look.join()
    t.advance(kubectl, ended)
    assert not t.collected and not t.finished
    assert pod.kinds() == ["collect"]  # one collection, however many looks

    gate.open()
    _advance_until(t, kubectl, ended, lambda: t.collected)
    assert t.finished and t.error is None
    assert t.settle(STEP_DONE_WITHIN)
    assert pod.kinds() == ["collect", "release"] and (pod.ctl / "released").exists()


def test_a_collection_that_failed_in_the_background_is_raised_once_from_a_later_look(site: Path, pod: FakePod) -> None:
    t, kubectl, ended, gate = _collection_in_flight(site, pod, fault="error: unexpected EOF", attempts=1)
    gate.open()
    with pytest.raises(TransferError, match="were not collected"):
        _advance_until(t, kubectl, ended, lambda: False)
    assert t.finished and isinstance(t.error, TransferError) and not t.collected
    t.advance(kubectl, ended)  # raised once: the handle has its EXCEPTION already
    assert (site / JOB / "kubectl-launcher/recover-results.sh").exists()


def test_close_stops_the_transfer_and_a_step_in_flight_leaves_no_recovery_note(site: Path, pod: FakePod) -> None:
    not_found = 'Error from server (NotFound): pods "x" not found'
    t, kubectl, ended, gate = _collection_in_flight(site, pod, fault=not_found, attempts=1)

    t.close()  # the handle terminated the job: its pod is being deleted
    assert t.finished
    gate.open()
    for step in [th for th in threading.enumerate() if th.name == "kubectl-launcher-transfer-collect"]:
        step.join(30)
    t.advance(kubectl, ended)  # nothing raised, nothing started
    assert t.error is None and not t.collected
    assert pod.kinds() == ["collect"]
    assert not (site / JOB / "kubectl-launcher/recover-results.sh").exists()


def test_a_delivery_runs_away_from_the_look_that_starts_it_and_a_later_look_takes_its_outcome(
    site: Path, pod: FakePod
) -> None:
    t = _transfer(site, Clock(), advance_wait=0)
    kubectl = _kubectl(pod)
    gate = Gate()
    pod.slow["deliver"] = gate
    t.advance(kubectl, _pod("running"))  # returns while the copy is held up
    assert gate.entered.wait(10)
    t.advance(kubectl, _pod("running"))  # a look while the step runs starts nothing new
    assert not t.delivered
    gate.open()
    _advance_until(t, kubectl, _pod("running"), lambda: t.delivered)
    assert pod.kinds() == ["deliver"]


# -- one exec each way: the delivery's and the collection's scripts, run by the local sh --


def _tools_without(tmp_path: Path, *missing: str) -> str:
    """A PATH of the tools the scripts use, less ``missing`` (an image without them)."""
    tools = tmp_path / "image-bin"
    tools.mkdir()
    for name in ("sh", "tar", "find", "wc", "cat", "rm", "mkdir", "mv", "grep", "head", "sha256sum", "printf"):
        found = shutil.which(name)
        if name not in missing and found:
            (tools / name).symlink_to(found)
    return str(tools)


def test_a_delivery_is_one_exec_that_streams_the_bundle_and_names_what_the_pod_must_check(
    site: Path, pod: FakePod
) -> None:
    streams: list[bytes] = []
    pod.stream_override = lambda data: streams.append(data) or data
    t = _transfer(site, Clock())
    t.advance(_kubectl(pod), _pod("running"))
    assert pod.kinds() == ["deliver"] and t.delivered
    (args,) = pod.calls
    assert args[:6] == ("exec", POD, "--container", pod_side.INIT_CONTAINER, "--stdin", "--")
    stage = f"{WMP}/{pod_side.STAGE_PREFIX}1"
    # ., local, local/custom, local/resources.json, JOB, app_site-1, config, config_fed_client.json, meta.json
    expected = (WMP, pod_side.CONTROL_PATH, "1", stage, "9", str(2 + len('{"components": []}') + 17), "sha256")
    assert pod.params(args) == (*expected, "local", JOB)
    with tarfile.open(fileobj=io.BytesIO(streams[0])) as tf:
        names = tf.getnames()
        sums = tf.extractfile("sha256").read().decode()  # type: ignore[union-attr]
    assert names[0] == "tree" and names[-1] == "sha256"
    assert all(n.startswith("tree") for n in names[:-1]) and not any("study_data" in n for n in names)
    assert f"./{JOB}/meta.json" in sums and sums.count("\n") == 3
    assert (pod.ws / JOB / "meta.json").read_text() == '{"name": "hello"}'
    assert not list(pod.ws.glob(pod_side.STAGE_PREFIX + "*")) and (pod.ctl / "lease").read_text() == "1\n"


def test_a_stream_damaged_on_the_way_is_refused_in_the_pod_places_nothing_and_the_delivery_is_redone(
    site: Path, pod: FakePod, caplog: pytest.LogCaptureFixture
) -> None:
    seen_before: list[list[str]] = []

    def damage_the_first(data: bytes) -> bytes:
        seen_before.append(sorted(p.name for p in pod.ws.iterdir()) + sorted(p.name for p in pod.ctl.iterdir()))
        if len(seen_before) == 1:
            assert data.count(b'"hello"') == 1
            return data.replace(b'"hello"', b'"hellx"')  # same size: only the checksum can tell
        return data

    pod.stream_override = damage_the_first
    t = _transfer(site, Clock())
    t.advance(_kubectl(pod), _pod("running"))
    assert pod.kinds() == ["deliver", "deliver"] and t.delivered
    assert seen_before[1] == ["lease"]  # the first attempt placed nothing and left no staging folder
    assert (pod.ws / JOB / "meta.json").read_text() == '{"name": "hello"}'
    warning = next(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "arrived damaged, nothing was placed: sha256 differs" in warning and "meta.json: FAILED" in warning


def test_an_image_without_sha256sum_gets_its_workspace_checked_by_entries_and_bytes(
    site: Path, pod: FakePod, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    pod.path = _tools_without(tmp_path, "sha256sum")
    t = _transfer(site, Clock())
    t.advance(_kubectl(pod), _pod("running"))
    assert pod.kinds() == ["deliver"] and t.delivered
    assert (pod.ws / "local/resources.json").read_text() == '{"components": []}'
    assert any("has no sha256sum" in r.getMessage() for r in caplog.records)


def test_without_checksums_the_bundle_carries_no_sums_and_a_cut_file_is_still_refused(site: Path, pod: FakePod) -> None:
    sizes: list[int] = []

    def cut_a_byte_the_first_time(data: bytes) -> bytes:
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            sizes.append(tf.getmember("sha256").size)
        if len(sizes) > 1:
            return data
        # rebuild the stream with one file a byte short: a valid tar whose byte total is wrong
        out = io.BytesIO()
        with tarfile.open(fileobj=io.BytesIO(data)) as src, tarfile.open(fileobj=out, mode="w") as dst:
            for m in src:
                body = src.extractfile(m).read() if m.isreg() else None  # type: ignore[union-attr]
                if body and m.name.endswith("meta.json"):
                    body, m.size = body[:-1], m.size - 1
                dst.addfile(m, io.BytesIO(body) if body is not None else None)
        return out.getvalue()

    pod.stream_override = cut_a_byte_the_first_time
    t = _transfer(site, Clock(), verify_checksums=False)
    t.advance(_kubectl(pod), _pod("running"))
    assert pod.kinds() == ["deliver", "deliver"] and t.delivered
    assert pod.params(pod.calls[0])[6] == "bytes" and sizes == [0, 0]
    assert (pod.ws / JOB / "meta.json").read_text() == '{"name": "hello"}'


def test_a_delivery_whose_answer_was_lost_is_not_placed_twice(site: Path, pod: FakePod) -> None:
    (pod.ctl / "delivered").touch()
    t = _transfer(site, Clock())
    t.advance(_kubectl(pod), _pod("running"))
    assert pod.kinds() == ["deliver"] and t.delivered and not (pod.ws / "local").exists()


def test_a_job_folder_replaced_by_a_symlink_is_refused_and_nothing_of_its_target_comes_back(
    site: Path, pod: FakePod
) -> None:
    t = _transfer(site, Clock())
    kubectl = _deliver(t, pod)
    other = pod.ws / "another job"
    other.mkdir()
    (other / "not yours.txt").write_text("another job's results")
    shutil.rmtree(pod.ws / JOB)
    (pod.ws / JOB).symlink_to(other)
    before = _snapshot(site)
    with pytest.raises(TransferError) as err:
        t.advance(kubectl, _pod("terminated", "terminated", "running", "Running"))
    assert isinstance(err.value.__cause__, UnsafeArchiveError)
    assert f"{JOB}: it is a symlink" in str(err.value) and "refused the results" in str(err.value)
    assert pod.kinds() == ["collect"]  # not redone: another try cannot make it better
    after = _snapshot(site)
    assert after.pop(f"{JOB}/kubectl-launcher/recover-results.sh")
    assert after == before


@pytest.mark.parametrize("job_dir", ["job", "outer/job"])
def test_the_collection_script_refuses_any_symlink_between_the_mount_and_the_job_folder(
    tmp_path: Path, job_dir: str
) -> None:
    ws, elsewhere = tmp_path / "ws", tmp_path / "elsewhere"
    (elsewhere / "job").mkdir(parents=True)
    (elsewhere / "job/x").write_text("x")
    ws.mkdir()
    (ws / job_dir.split("/")[0]).symlink_to(elsewhere if "/" in job_dir else elsewhere / "job")
    argv = pod_scripts.collect_command(str(ws) + "/", job_dir, True)
    done = subprocess.run(argv, capture_output=True, check=False)
    link = ws / job_dir.split("/")[0]
    said = f"kubectl-launcher: refusing to collect {link}: it is a symlink, not the job's folder\n"
    assert (done.returncode, done.stdout.decode(), done.stderr.decode()) == (pod_scripts.SYMLINK_EXIT, said, said)
    assert pod_scripts.script_words(done.stdout) == said[len("kubectl-launcher: ") : -1]


def test_the_collection_stream_is_the_tar_then_the_listing_and_is_checked_from_the_one_stream(
    tmp_path: Path,
) -> None:
    (tmp_path / "ws/job/results").mkdir(parents=True)
    (tmp_path / "ws/job/results/model.bin").write_bytes(b"w" * 5000)
    stream = tmp_path / "stream"
    with open(stream, "wb") as out:
        subprocess.run(pod_scripts.collect_command(str(tmp_path / "ws"), "job", True), stdout=out, check=True)
    tail = stream.read_bytes().rstrip(b"\n").rsplit(b"\0", 1)[1]
    assert tail.startswith(b"entries 3\nsha256\n")
    manifest = archive.check_results(str(stream), str(tmp_path / "tree"))
    assert manifest.total_bytes == 5000 and not stream.exists()


def test_an_image_without_tar_stops_the_one_delivery_exec_at_once_and_is_named(
    site: Path, pod: FakePod, tmp_path: Path
) -> None:
    pod.path = _tools_without(tmp_path, "tar")
    t = _transfer(site, Clock())
    with pytest.raises(TransferError, match=r"registry\.example/nvflare-job:2\.9.*has no tar"):
        t.advance(_kubectl(pod), _pod("running"))
    assert pod.kinds() == ["deliver"]  # exit 127: not redone, it cannot get better
    assert not (pod.ws / "local").exists() and not (pod.ctl / "delivered").exists()


def test_the_scripts_get_every_value_as_a_positional_parameter() -> None:
    assert pod_scripts.collect_command("/ws/", "job 1", False) == (
        "sh", "-c", pod_scripts.COLLECT_SCRIPT, "kubectl-launcher", "/ws", "job 1", "0"
    )  # fmt: skip
    deliver = pod_scripts.deliver_command("/ws", "7", "/ws/.kubectl-launcher-in-2", 9, 100, False, ("local", "job 1"))
    assert deliver[:4] == ("sh", "-c", pod_scripts.DELIVER_SCRIPT, "kubectl-launcher")
    assert deliver[4:] == (
        "/ws",
        pod_side.CONTROL_PATH,
        "7",
        "/ws/.kubectl-launcher-in-2",
        "9",
        "100",
        "bytes",
        "local",
        "job 1",
    )
    for script in (pod_scripts.COLLECT_SCRIPT, pod_scripts.DELIVER_SCRIPT):
        assert "job 1" not in script and "/ws" not in script
