"""launch_job with a real FLContext and a scripted kubectl runner: commands, files, errors and cleanup."""

from __future__ import annotations

import base64
import copy
import json
import os
import shlex
import threading
import time
import urllib.parse
from argparse import Namespace
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from nvflare.apis.event_type import EventType
from nvflare.apis.fl_constant import FLContextKey, ReservedKey
from nvflare.apis.fl_context import FLContext
from nvflare.apis.job_launcher_spec import JobProcessArgs, JobReturnCode
from nvflare.apis.workspace import Workspace

from kubectl_launcher import ClientK8sJobLauncher, K8sJobLauncher, ServerK8sJobLauncher
from kubectl_launcher.domain.names import study_dataset_volume_name
from kubectl_launcher.domain.pod_status import JobState
from kubectl_launcher.errors import ConfigError, KubectlForbidden
from kubectl_launcher.kubectl import CommandResult, commands
from kubectl_launcher.transfer import pod_side
from tests.support.fake_runner import RunnerCall, ScriptedRunner
from tests.support.scripted_streamer import ScriptedProcess, ScriptedRun

SITE = "site-1"
JOB = "550e8400-e29b-41d4-a716-446655440000"
POD = "j550e8400-e29b-41d4-a716-446655440000-site-1-f505dccd"
CRED = f"nvflare-cred-{POD}"
STARTUP = "nvflare-startup-site-1-f505dccd"
TOKEN = "tok-3f9a1c77e2d54b0c"
SIGNATURE = "sig-a8d7e6c5b4a39281"
SSID = "ssid-11223344556677"
KEY_BYTES = b"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"
GLOBAL_WITH_VALUE = {"--kubeconfig", "--context", "--namespace", "--request-timeout"}
#: The site's pod watch listing our pods (then watching from the list, a stream nobody closes).
WATCH_LIST = "get --raw /api/v1/namespaces/nvflare/pods?labelSelector="
WATCH_STREAM = "get --raw /api/v1/namespaces/nvflare/pods?labelSelector=...&watch=true"


def strip_globals(argv: Sequence[str]) -> tuple[str, ...]:
    out: list[str] = []
    skip = False
    for arg in argv[1:]:
        if skip:
            skip = False
        elif arg in GLOBAL_WITH_VALUE:
            skip = True
        else:
            out.append(arg)
    return tuple(out)


class FakeCluster(ScriptedRunner):
    """A scripted kubectl: keeps pods and Secrets of one namespace in memory, answers what the launcher
    and the handle ask, and fails the test on any command it was not written for."""

    def __init__(self) -> None:
        super().__init__()
        self.pods: dict[str, dict[str, Any]] = {}
        self.secrets: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, ...]] = []
        self.streams: list[tuple[str, ...]] = []
        self.stdins: list[bytes] = []
        self.fail: Callable[[tuple[str, ...]], CommandResult | None] = lambda args: None
        self.phase_after_apply = "Running"
        self._uid = 0
        self._watching: list[Callable[[str], object]] = []  # the open watch streams' line sinks
        self._events: list[tuple[int, str]] = []  # (resourceVersion, watch event line) of every pod applied
        self._events_lock = threading.Lock()

    def answer(self, call: RunnerCall) -> CommandResult:
        args = strip_globals(call.argv)
        self.calls.append(args)
        if call.stdin is not None:
            self.stdins.append(call.stdin)
        failure = self.fail(args)
        if failure is not None:
            return CommandResult(call.argv, failure.returncode, failure.stdout, failure.stderr)
        rc, out, err = self._answer(args, call.stdin)
        return CommandResult(call.argv, rc, out, err, started_at=time.time())

    def stream(self, argv: Sequence[str], **callbacks: Any) -> ScriptedProcess:
        """The pod watch's stream, open until the watch stops it: as an API server's, it starts with the pods
        applied after its resourceVersion, then has each pod applied while it is open."""
        args = strip_globals(argv)
        self.streams.append(args)
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(args[2]).query)
        since = int(query["resourceVersion"][0])
        with self._events_lock:
            missed = [line for rv, line in self._events if rv > since]
            self._watching.append(callbacks["on_line"])
        run = ScriptedRun(lines=missed, until_stopped=True)
        return ScriptedProcess(run, callbacks["on_line"], callbacks["on_stderr"])

    def _answer(self, args: tuple[str, ...], stdin: bytes | None) -> tuple[int, str, str]:
        verb = args[0]
        if args[:2] == ("version", "--client"):
            return 0, json.dumps({"clientVersion": {"major": "1", "minor": "32"}}), ""
        if args[:2] == ("config", "current-context"):
            return 0, "local\n", ""
        if verb in ("create", "replace") and args[1:3] == ("--filename", "-"):
            assert stdin is not None
            obj = json.loads(stdin)
            store = self._store(obj["kind"])
            name = obj["metadata"]["name"]
            if verb == "create" and name in store:
                return 1, "", f'Error from server (AlreadyExists): secrets "{name}" already exists'
            if verb == "replace" and name not in store:
                return 1, "", f'Error from server (NotFound): secrets "{name}" not found'
            store[name] = obj
            return 0, f"secret/{name}\n", ""
        if args[:2] == ("get", "--raw"):  # the site's pod watch: its list (the watch is stream())
            with self._events_lock:
                items, rv = list(self.pods.values()), str(len(self._events) + 1)
            return 0, json.dumps({"kind": "PodList", "metadata": {"resourceVersion": rv}, "items": items}), ""
        if args[:3] == ("get", "pods", "--selector"):  # the take-over's listing of the site's pods
            items = list(self.pods.values())
            return 0, json.dumps({"kind": "PodList", "items": items}), ""
        if verb == "get" and "/" in args[1]:  # metadata of several objects, one line each
            lines = []
            for ref in args[1 : args.index("--ignore-not-found")]:
                kind, name = ref.split("/")
                obj = self._store(kind.capitalize()).get(name)
                if obj is not None:
                    lines.append(f"{obj['kind']}\t{json.dumps(obj['metadata'])}\n")
            return 0, "".join(lines), ""
        if verb == "apply":
            return self._apply(args, stdin)
        if verb == "get" and args[1] in ("pod", "secret") and args[-1].startswith("jsonpath="):
            obj = self._store(args[1].capitalize()).get(args[2])
            return 0, json.dumps(obj["metadata"]) if obj else "", ""
        if verb == "get" and args[1] == "pod":
            pod = self.pods.get(args[2])
            return 0, json.dumps(pod) if pod else "", ""
        if verb == "get" and args[1] == "events":
            return 0, json.dumps({"kind": "List", "items": []}), ""
        if verb == "patch" and args[1] == "secret":
            if args[2] not in self.secrets:
                return 1, "", f'Error from server (NotFound): secrets "{args[2]}" not found'
            patch = json.loads(args[args.index("--patch") + 1])
            self.secrets[args[2]]["metadata"].update(patch["metadata"])
            return 0, f"secret/{args[2]}\n", ""
        if verb == "delete":
            self._store(args[1].capitalize()).pop(args[2], None)
            return 0, "", ""
        self.reject(f"unexpected kubectl command: {args}")

    def _apply(self, args: tuple[str, ...], stdin: bytes | None) -> tuple[int, str, str]:
        """Server-side apply of the files in order ("-": stdin, a List); prints each object's metadata."""
        assert args[1:3] == ("--server-side", "--field-manager=kubectl-launcher"), args
        objects: list[dict[str, Any]] = []
        for i, arg in enumerate(args):
            if arg != "--filename":
                continue
            if args[i + 1] == "-":
                assert stdin is not None
                text, decoder, at = stdin.decode(), json.JSONDecoder(), 0
                while text[at:].strip():  # a stream of JSON objects, as kubectl reads one
                    body, end = decoder.raw_decode(text, at + len(text[at:]) - len(text[at:].lstrip()))
                    objects.append(body)
                    at = end
            else:
                with open(args[i + 1], encoding="utf-8") as f:
                    objects.append(json.load(f))
        lines = []
        for obj in objects:
            store = self._store(obj["kind"])
            name = obj["metadata"]["name"]
            old = store.get(name)
            if obj["kind"] == "Pod":
                self._uid += 1
                obj["metadata"]["uid"] = f"uid-{self._uid}"
                obj["status"] = {"phase": self.phase_after_apply}
                with self._events_lock:
                    rv = len(self._events) + 2  # the first list says "1"
                    obj["metadata"]["resourceVersion"] = str(rv)
                    event = json.dumps({"type": "ADDED" if old is None else "MODIFIED", "object": obj})
                    self._events.append((rv, event))
                    for on_line in self._watching:
                        on_line(event)
            elif old is not None and "ownerReferences" in old["metadata"]:
                obj["metadata"]["ownerReferences"] = old["metadata"]["ownerReferences"]
            store[name] = obj
            lines.append(f"{obj['kind']}\t{json.dumps(obj['metadata'])}\n")
        return 0, "".join(lines), ""

    def _store(self, kind: str) -> dict[str, dict[str, Any]]:
        return {"Pod": self.pods, "Secret": self.secrets}[kind]

    def verbs(self) -> list[str]:
        """Each command as `verb kind-or-flag` for sequence assertions, setup commands left out."""
        shown = []
        for args in self.calls:
            if args[0] in ("version", "config") or args[:3] == ("get", "pods", "--selector"):  # setup, take-over
                continue
            if args[:2] == ("get", "--raw"):
                shown.append(WATCH_STREAM if "watch=true" in args[2] else WATCH_LIST)
            elif args[0] == "apply":
                files = [args[i + 1] for i, a in enumerate(args) if a == "--filename"]
                shown.append(f"apply --server-side {' '.join(files)}")
            else:
                shown.append(" ".join(a for a in args[:3] if not a.startswith("--output")))
        return shown


def rejected(reason: str, message: str = "no") -> CommandResult:
    return CommandResult((), 1, "", f"Error from server ({reason}): {message}")


def unavailable() -> CommandResult:
    return CommandResult((), 1, "", "Unable to connect to the server: dial tcp 10.0.0.1:6443: i/o timeout")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "poc" / SITE
    startup = root / "startup"
    (startup / "sub").mkdir(parents=True)
    (startup / "client.crt").write_bytes(b"CERT")
    (startup / "client.key").write_bytes(KEY_BYTES)
    (startup / "rootCA.pem").write_bytes(b"ROOTCA")
    (startup / "fed_client.json").write_text("{}")
    (startup / "start.sh").write_text("#!/bin/sh\n")
    (startup / "readme.txt").write_text("hi")
    (startup / "sub" / "other.key").write_bytes(b"NOT-SENT")
    (root / "local").mkdir()
    (root / JOB / f"app_{SITE}" / "custom").mkdir(parents=True)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    return root


def client_job_args(root: Path) -> dict[str, tuple[str, str]]:
    return {
        JobProcessArgs.EXE_MODULE: ("-m", "nvflare.private.fed.app.client.worker_process"),
        JobProcessArgs.JOB_ID: ("-n", JOB),
        JobProcessArgs.CLIENT_NAME: ("-c", SITE),
        JobProcessArgs.AUTH_TOKEN: ("-t", TOKEN),
        JobProcessArgs.TOKEN_SIGNATURE: ("-ts", SIGNATURE),
        JobProcessArgs.SSID: ("-d", SSID),
        JobProcessArgs.WORKSPACE: ("-m", str(root)),
        JobProcessArgs.STARTUP_DIR: ("-w", str(root / "startup")),
        JobProcessArgs.PARENT_URL: ("-p", "tcp://parent:41234"),
        JobProcessArgs.SCHEME: ("-scheme", "grpc"),
        JobProcessArgs.TARGET: ("-g", "server:8002"),
        JobProcessArgs.STARTUP_CONFIG_FILE: ("-s", "fed_client.json"),
        JobProcessArgs.OPTIONS: ("--set", " secure_train=true config_folder=config print_conf=True"),
        JobProcessArgs.PARENT_CONN_SEC: ("--parent_conn_sec", "clear"),
    }


def make_ctx(root: Path, *, job_args: dict[str, Any] | None = None, drop: str | None = None) -> FLContext:
    ctx = FLContext()
    ctx.set_prop(ReservedKey.IDENTITY_NAME, SITE, private=False, sticky=False)
    props = {
        FLContextKey.WORKSPACE_OBJECT: Workspace(str(root), SITE),
        FLContextKey.ARGS: Namespace(
            workspace=str(root), set=["secure_train=true", "config_folder=config", "print_conf=True"]
        ),
        FLContextKey.JOB_PROCESS_ARGS: client_job_args(root) if job_args is None else job_args,
    }
    for key, value in props.items():
        if key != drop:
            ctx.set_prop(key, value, private=True, sticky=False)
    return ctx


def job_meta(**k8s: Any) -> dict[str, Any]:
    return {"job_id": JOB, "launcher_spec": {"default": {"k8s": {"image": "nvflare/job:2.9", **k8s}}}}


def make_launcher(
    cluster: FakeCluster, root: Path, cls: type[K8sJobLauncher] = ClientK8sJobLauncher, **kw: Any
) -> K8sJobLauncher:
    kw.setdefault("workspace_transfer", False)
    kw.setdefault("streamer", cluster.stream)
    return cls(str(root.parent.parent / "kubeconfig"), namespace="nvflare", runner=cluster, sleep=lambda s: None, **kw)


# ---- a launch that works ------------------------------------------------------------------------


def test_a_launch_is_one_check_one_apply_of_secrets_and_pod_and_the_owner_patch(site: Path) -> None:
    cluster = FakeCluster()
    handle = make_launcher(cluster, site).launch_job(job_meta(), make_ctx(site))

    manifest_path = site / JOB / "kubectl-launcher" / "manifest.json"
    verbs = cluster.verbs()
    assert [v for v in verbs if v not in (WATCH_LIST, WATCH_STREAM)] == [
        f"get pod/{POD} secret/{STARTUP}",  # one read: pod absent, both Secrets absent or ours
        f"apply --server-side - {manifest_path}",  # the Secrets on stdin first, then the pod
        f"patch secret {CRED}",  # owned by the pod (needs its uid), while the pod starts
    ]
    # The handle sees Running through the site's pod watch, whose list starts once the check passed, beside
    # the apply (its order with the apply and the patch is the threads').
    assert verbs.count(WATCH_LIST) == 1 and verbs.index(WATCH_LIST) > 0
    apply = next(c for c in cluster.calls if c[0] == "apply")
    assert apply == commands.apply_server_side("-", str(manifest_path), force_conflicts=True)
    assert handle.poll() == JobReturnCode.UNKNOWN  # running
    assert set(cluster.secrets) == {STARTUP, CRED}
    assert cluster.secrets[CRED]["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Pod", "name": POD, "uid": "uid-1"}
    ]


def test_manifest_file_is_the_applied_pod_with_paths_in_the_mount_and_no_credentials(site: Path) -> None:
    cluster = FakeCluster()
    make_launcher(cluster, site).launch_job(job_meta(cpu="2", memory="4Gi"), make_ctx(site))

    text = (site / JOB / "kubectl-launcher" / "manifest.json").read_text()
    pod = json.loads(text)
    main = pod["spec"]["containers"][0]
    mount = "/var/tmp/nvflare/workspace"
    assert pod["metadata"]["name"] == POD
    assert pod["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "kubectl-launcher",
        "kubectl-launcher/site": "site-1-f505dccd",
        "kubectl-launcher/job": "j550e8400-e29b-41d4-a716-446655440000",
    }
    assert main["name"] == "container-j550e8400-e29b-41d4-a716-446655440000"
    assert main["image"] == "nvflare/job:2.9"
    assert main["command"] == ["/usr/local/bin/python"]
    assert main["workingDir"] == mount
    args = main["args"]
    assert args[:3] == ["-u", "-m", "nvflare.private.fed.app.client.worker_process"]
    assert args[args.index("-w") + 1] == f"{mount}/startup"
    assert args[3:5] == ["-m", mount]
    assert args[-4:] == ["--set", "secure_train=true", "config_folder=config", "print_conf=True"]
    assert {"-t", "-ts", "-d"}.isdisjoint(args)
    assert main["env"] == [
        {"name": "PYTHONPATH", "value": f"{mount}/{JOB}/app_{SITE}/custom"},
        *(
            {"name": n, "valueFrom": {"secretKeyRef": {"name": CRED, "key": n}}}
            for n in ("NVFLARE_JOB_AUTH_TOKEN", "NVFLARE_JOB_TOKEN_SIGNATURE", "NVFLARE_JOB_SSID")
        ),
    ]
    assert main["resources"] == {
        "requests": {"ephemeral-storage": "1Gi", "cpu": "2", "memory": "4Gi"},
        "limits": {"ephemeral-storage": "1Gi", "cpu": "2", "memory": "4Gi"},
    }
    assert pod["spec"]["volumes"] == [
        {"name": "workspace-job", "emptyDir": {"sizeLimit": "1Gi"}},
        {"name": "startup-kit", "secret": {"secretName": STARTUP}},
    ]
    assert "NVFL_WORKSPACE_OWNER_FQCN" not in text
    for secret in (TOKEN, SIGNATURE, SSID):
        assert secret not in text
    assert cluster.pods[POD]["spec"] == pod["spec"]


def test_startup_secret_carries_only_top_level_crt_key_pem_json_through_stdin(site: Path) -> None:
    cluster = FakeCluster()
    make_launcher(cluster, site).launch_job(job_meta(), make_ctx(site))
    secret = cluster.secrets[STARTUP]
    assert secret["type"] == "Opaque"
    assert {k: base64.b64decode(v) for k, v in secret["data"].items()} == {
        "client.crt": b"CERT",
        "client.key": KEY_BYTES,
        "fed_client.json": b"{}",
        "rootCA.pem": b"ROOTCA",
    }
    assert secret["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "kubectl-launcher",
        "kubectl-launcher/site": "site-1-f505dccd",
    }
    cred = cluster.secrets[CRED]
    assert {k: base64.b64decode(v).decode() for k, v in cred["data"].items()} == {
        "NVFLARE_JOB_AUTH_TOKEN": TOKEN,
        "NVFLARE_JOB_TOKEN_SIGNATURE": SIGNATURE,
        "NVFLARE_JOB_SSID": SSID,
    }
    assert cred["metadata"]["labels"]["kubectl-launcher/job"] == "j550e8400-e29b-41d4-a716-446655440000"


def test_no_token_or_key_reaches_argv_journal_or_any_file_we_wrote(site: Path) -> None:
    cluster = FakeCluster()
    make_launcher(cluster, site).launch_job(job_meta(), make_ctx(site))
    secrets = [TOKEN, SIGNATURE, SSID, base64.b64encode(KEY_BYTES).decode()]
    for args in cluster.calls:
        assert not any(s in " ".join(args) for s in secrets)
    written = [site / "kubectl-launcher", site / JOB / "kubectl-launcher"]
    files = [p for d in written for p in d.iterdir()]
    assert {p.name for p in files} >= {"journal.sh", "journal.jsonl", "manifest.json"}
    for path in files:
        data = path.read_bytes()
        assert KEY_BYTES not in data and b"MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" not in data
        for s in secrets:
            assert s.encode() not in data, path


def test_journals_record_every_command_and_the_rebuild_line_of_the_startup_secret(site: Path) -> None:
    cluster = FakeCluster()
    make_launcher(cluster, site).launch_job(job_meta(), make_ctx(site))
    job_lines = (site / JOB / "kubectl-launcher" / "journal.jsonl").read_text().splitlines()
    site_lines = (site / "kubectl-launcher" / "journal.jsonl").read_text().splitlines()
    assert len(job_lines) == 3  # the launch; the handle reads through the site's pod watch
    site_entries = [json.loads(line) for line in site_lines]
    # plus the setup check and the take-over's listing of the site's pods
    assert len([e for e in site_entries if e["purpose"] != "watch"]) == 3 + 2 + 1
    assert next(e["argv"][-2] for e in site_entries if e["purpose"] == "watch") == "--raw"  # the watch's list
    setup = site_entries[:2]
    assert [e["purpose"] for e in setup] == ["setup", "setup"]
    apply = json.loads(job_lines[1])
    assert apply["purpose"] == "apply"
    assert apply["env"]["KUBECACHEDIR"] == str(site / "kubectl-launcher" / "kube-cache")
    assert apply["stdin"]["rebuild_argv"][:5] == ["kubectl", "create", "secret", "generic", STARTUP]
    assert f"--from-file=client.key={site}/startup/client.key" in apply["stdin"]["rebuild_argv"]
    assert "credential Secret is not replayable" in apply["stdin"]["description"]


def test_setup_is_checked_once_and_construction_runs_nothing(site: Path) -> None:
    cluster = FakeCluster()
    launcher = make_launcher(cluster, site)
    assert cluster.calls == []
    launcher.launch_job(job_meta(), make_ctx(site))
    cluster.pods.clear()
    launcher.launch_job(job_meta(), make_ctx(site))
    assert [c for c in cluster.calls if c[0] == "version"] == [("version", "--client", "--output", "json")]


def test_an_existing_startup_secret_of_ours_is_applied_over_with_todays_files(site: Path) -> None:
    cluster = FakeCluster()
    launcher = make_launcher(cluster, site)
    launcher.launch_job(job_meta(), make_ctx(site))
    cluster.pods.clear()
    cluster.secrets.pop(CRED)
    cluster.calls.clear()
    (site / "startup" / "client.crt").write_bytes(b"NEW-CERT")
    launcher.launch_job(job_meta(), make_ctx(site))
    launch = [v.split(" ")[0] for v in cluster.verbs() if v not in (WATCH_LIST, WATCH_STREAM)]
    assert launch == ["get", "apply", "patch"]
    assert base64.b64decode(cluster.secrets[STARTUP]["data"]["client.crt"]) == b"NEW-CERT"


def test_a_startup_secret_not_ours_is_left_alone_and_the_launch_refused(site: Path) -> None:
    cluster = FakeCluster()
    cluster.secrets[STARTUP] = {"kind": "Secret", "metadata": {"name": STARTUP}, "data": {}}
    with pytest.raises(RuntimeError, match=f"Secret {STARTUP} exists .* not created by kubectl-launcher"):
        make_launcher(cluster, site).launch_job(job_meta(), make_ctx(site))
    assert [v.split(" ")[0] for v in cluster.verbs()] == ["get"]  # the check, nothing else
    assert cluster.secrets[STARTUP]["data"] == {} and not cluster.pods


def test_a_credential_secret_not_ours_is_left_alone_and_the_launch_refused(site: Path) -> None:
    cluster = FakeCluster()
    cluster.secrets[CRED] = {"kind": "Secret", "metadata": {"name": CRED, "labels": {"x": "y"}}, "data": {}}
    with pytest.raises(RuntimeError, match=f"Secret {CRED} exists .* not created by kubectl-launcher"):
        make_launcher(cluster, site).launch_job(job_meta(), make_ctx(site))
    assert [v.split(" ")[0] for v in cluster.verbs()] == ["get"]
    assert set(cluster.secrets) == {CRED} and not cluster.pods


def test_workspace_translation_lets_a_server_parent_live_anywhere(site: Path) -> None:
    cluster = FakeCluster()
    root = site
    job_args = {
        JobProcessArgs.JOB_ID: ("-n", JOB),
        JobProcessArgs.EXE_MODULE: ("-m", "nvflare.private.fed.app.server.runner_process"),
        JobProcessArgs.WORKSPACE: ("-m", str(root)),
        JobProcessArgs.STARTUP_CONFIG_FILE: ("-s", "fed_server.json"),
        JobProcessArgs.APP_ROOT: ("-r", str(root / JOB / "app_server")),
        JobProcessArgs.AUTH_TOKEN: ("-t", JOB),
        JobProcessArgs.TOKEN_SIGNATURE: ("-ts", SIGNATURE),
        JobProcessArgs.PARENT_URL: ("-p", "tcp://parent:1"),
        JobProcessArgs.ROOT_URL: ("-u", "grpc://server:8002"),
        JobProcessArgs.SERVICE_HOST: ("--host", "server"),
        JobProcessArgs.SERVICE_PORT: ("--port", "8002"),
        JobProcessArgs.SSID: ("--ssid", SSID),
    }
    launcher = make_launcher(cluster, root, ServerK8sJobLauncher, workspace_mount_path="/ws")
    launcher.launch_job(job_meta(), make_ctx(root, job_args=job_args))
    args = cluster.pods[POD]["spec"]["containers"][0]["args"]
    assert args[3:] == [
        "-m",
        "/ws",
        "-s",
        "fed_server.json",
        "-r",
        f"/ws/{JOB}/app_server",
        "-n",
        JOB,
        "-p",
        "tcp://parent:1",
        "-u",
        "grpc://server:8002",
        "--host",
        "server",
        "--port",
        "8002",
        "--set",
        "secure_train=true",
        "config_folder=config",
        "print_conf=True",
    ]


def test_workspace_transfer_adds_its_containers_and_leaves_the_main_one_as_upstream(site: Path) -> None:
    plain, moved = FakeCluster(), FakeCluster()
    make_launcher(plain, site).launch_job(job_meta(), make_ctx(site))
    make_launcher(moved, site, workspace_transfer={"keep_timeout": 600}).launch_job(job_meta(), make_ctx(site))
    with_transfer = moved.pods[POD]["spec"]
    without = plain.pods[POD]["spec"]
    main = copy.deepcopy(with_transfer["containers"][0])
    # allowed differences, and only these: the lease's liveness probe and the control folder, read-only
    assert main.pop("livenessProbe")["exec"]["command"][:3] == ["sh", "-c", pod_side.PROBE_SCRIPT]
    assert main["volumeMounts"].pop() == {
        "name": "kubectl-launcher-control",
        "mountPath": "/kubectl-launcher",
        "readOnly": True,
    }
    assert main == without["containers"][0]
    assert "initContainers" not in without and len(without["containers"]) == 1
    assert [c["name"] for c in with_transfer["initContainers"]] == ["kubectl-launcher-init"]
    assert [c["name"] for c in with_transfer["containers"][1:]] == ["kubectl-launcher-keeper"]


def test_workspace_transfer_is_on_by_default_and_its_settings_are_checked_at_construction() -> None:
    assert ClientK8sJobLauncher(None).transfer_settings is not None
    assert ClientK8sJobLauncher(None, workspace_transfer=False).transfer_settings is None
    with pytest.raises(ConfigError, match="unknown workspace_transfer setting"):
        ClientK8sJobLauncher(None, workspace_transfer={"keep_timout": 60})


def test_handle_event_registers_the_launcher_before_a_job_launch(site: Path) -> None:
    launcher = make_launcher(FakeCluster(), site)
    ctx = FLContext()
    launcher.handle_event(EventType.BEFORE_JOB_LAUNCH, ctx)
    launcher.handle_event(EventType.AFTER_JOB_LAUNCH, ctx)
    assert ctx.get_prop(FLContextKey.JOB_LAUNCHER) == [launcher]


def test_resources_gpus_pull_secrets_security_context_and_study_data(site: Path, tmp_path: Path) -> None:
    study_file = tmp_path / "study_data.yaml"
    study_file.write_text(
        "cancer:\n  train:\n    source: pvc-train\n    mode: ro\n  out:\n    source: pvc-out\n    mode: rw\n"
    )
    cluster = FakeCluster()
    launcher = make_launcher(
        cluster,
        site,
        study_data_pvc_file_path=str(study_file),
        image_pull_secrets=["regcred"],
        security_context={"runAsNonRoot": True},
        ephemeral_storage="5Gi",
    )
    meta = job_meta(cpu="4", cpu_request="1", memory="8Gi", num_of_gpus=2, ephemeral_storage="9Gi")
    meta["study"] = "cancer"
    launcher.launch_job(meta, make_ctx(site))
    pod = cluster.pods[POD]
    main = pod["spec"]["containers"][0]
    assert main["resources"] == {
        "requests": {"ephemeral-storage": "9Gi", "cpu": "1", "memory": "8Gi", "nvidia.com/gpu": 2},
        "limits": {"ephemeral-storage": "9Gi", "cpu": "4", "memory": "8Gi", "nvidia.com/gpu": 2},
    }
    assert pod["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["spec"]["securityContext"] == {"runAsNonRoot": True}
    train, out = study_dataset_volume_name("cancer", "train"), study_dataset_volume_name("cancer", "out")
    assert pod["spec"]["volumes"][2:] == [
        {"name": train, "persistentVolumeClaim": {"claimName": "pvc-train"}},
        {"name": out, "persistentVolumeClaim": {"claimName": "pvc-out"}},
    ]
    assert main["volumeMounts"][2:] == [
        {"name": train, "mountPath": "/data/cancer/train", "readOnly": True},
        {"name": out, "mountPath": "/data/cancer/out", "readOnly": False},
    ]


def test_portable_num_of_cpus_and_memory_set_requests_and_limits(site: Path) -> None:
    cluster = FakeCluster()
    meta = {
        "job_id": JOB,
        "launcher_spec": {SITE: {"k8s": {"image": "img"}}},
        "resource_spec": {"@default": {"num_of_cpus": 2, "memory": "3Gi"}, SITE: {"num_of_gpus": 1}},
    }
    make_launcher(cluster, site).launch_job(meta, make_ctx(site))
    assert cluster.pods[POD]["spec"]["containers"][0]["resources"] == {
        "requests": {"ephemeral-storage": "1Gi", "cpu": "2", "memory": "3Gi", "nvidia.com/gpu": 1},
        "limits": {"ephemeral-storage": "1Gi", "cpu": "2", "memory": "3Gi", "nvidia.com/gpu": 1},
    }


def test_python_path_and_pending_timeout_per_job(site: Path) -> None:
    cluster = FakeCluster()
    launcher = make_launcher(cluster, site, default_python_path="/opt/py/bin/python")
    handle = launcher.launch_job(job_meta(python_path="/venv/bin/python", pending_timeout=5), make_ctx(site))
    assert cluster.pods[POD]["spec"]["containers"][0]["command"] == ["/venv/bin/python"]
    assert handle.pending_timeout == 5


# ---- what upstream refuses, with upstream's words ------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pending_timeout": -1}, "pending_timeout must be a non-negative number of seconds or None"),
        ({"pending_timeout": True}, "pending_timeout must be a non-negative number of seconds or None"),
        ({"pending_timeout": "5"}, "pending_timeout must be a non-negative number of seconds or None"),
        ({"default_python_path": ""}, "default_python_path must be a non-empty string"),
        ({"python_path": 3}, "default_python_path must be a non-empty string"),
        ({"ephemeral_storage": ""}, "ephemeral_storage must be a non-empty string"),
        ({"ephemeral_storage": 5}, "ephemeral_storage must be a non-empty string"),
        ({"workspace_mount_path": ""}, "workspace_mount_path must be a non-empty string"),
        ({"image_pull_secrets": "regcred"}, "image_pull_secrets must be a list of Kubernetes Secret names"),
        ({"image_pull_secrets": [""]}, "image_pull_secrets entries must be non-empty strings"),
        ({"study_data_pvc_file_path": ""}, "study_data_pvc_file_path must be a non-empty string or None"),
    ],
)
def test_constructor_refuses_bad_settings_as_upstream(kwargs: dict[str, Any], message: str) -> None:
    from nvflare.app_opt.job_launcher.k8s_launcher import ClientK8sJobLauncher as Upstream

    with pytest.raises(ValueError) as ours:
        ClientK8sJobLauncher("kubeconfig", **kwargs)
    with pytest.raises(ValueError) as theirs:
        Upstream("kubeconfig", **kwargs)
    assert str(ours.value) == str(theirs.value) == message


def test_the_poll_interval_is_a_launcher_argument_handed_to_each_handle(site: Path) -> None:
    assert ClientK8sJobLauncher(None).poll_interval == 1.0  # upstream's POLL_INTERVAL
    handle = make_launcher(FakeCluster(), site, poll_interval=0.25).launch_job(job_meta(), make_ctx(site))
    assert handle.poll_interval == 0.25


@pytest.mark.parametrize("bad", [0, -1.0, "1", True])
def test_a_bad_poll_interval_is_a_config_error_naming_it(bad: object) -> None:
    with pytest.raises(ConfigError, match="poll_interval must be a positive number of seconds"):
        ClientK8sJobLauncher(None, poll_interval=bad)


@pytest.mark.parametrize("bad", [-1.0, "5", True, None])
def test_a_bad_credential_retire_delay_is_a_config_error_naming_it(bad: object) -> None:
    with pytest.raises(ConfigError, match="credential_retire_delay must be a non-negative number of seconds"):
        ClientK8sJobLauncher(None, credential_retire_delay=bad)
    assert ClientK8sJobLauncher(None, credential_retire_delay=0).credential_retire_delay == 0.0  # at once


def test_constructor_defaults_are_upstreams() -> None:
    launcher = ClientK8sJobLauncher(None)
    assert (launcher.namespace, launcher.pending_timeout, launcher.timeout) == ("default", 120, None)
    assert launcher.default_python_path == "/usr/local/bin/python"
    assert (launcher.ephemeral_storage, launcher.workspace_mount_path) == ("1Gi", "/var/tmp/nvflare/workspace")
    assert launcher.image_pull_secrets == [] and launcher.study_data_pvc_file_path is None
    assert ClientK8sJobLauncher(None, python_path="/a").default_python_path == "/a"
    assert ClientK8sJobLauncher(None, python_path="/a", default_python_path="/b").default_python_path == "/b"


IMAGE_ERROR = (
    "K8sJobLauncher is configured for site 'site-1' but no job image was specified in meta.json for this "
    "site. Set launcher_spec['site-1']['k8s']['image'] (preferred), launcher_spec['default']['k8s']['image'] "
    "(shared default), resource_spec['site-1']['k8s']['image'] (legacy), or studies.<study>.container.image "
    "in local/study_runtime.yaml (site default)."
)


@pytest.mark.parametrize(
    ("meta", "drop", "message"),
    [
        ({}, None, "missing job_id in job_meta"),
        (job_meta(), FLContextKey.WORKSPACE_OBJECT, "missing __workspace_object__ in FLContext"),
        (job_meta(), FLContextKey.ARGS, "missing __args__ in FLContext"),
        (job_meta(), FLContextKey.JOB_PROCESS_ARGS, "missing __job_process_args__ in FLContext"),
        ({"job_id": JOB}, None, IMAGE_ERROR),
        (
            job_meta(pending_timeout=-3),
            None,
            "launcher_spec['site-1']['k8s']['pending_timeout'] must be a non-negative number of seconds or None",
        ),
        (
            job_meta(ephemeral_storage=""),
            None,
            "launcher_spec['site-1']['k8s']['ephemeral_storage'] must be a non-empty string",
        ),
        (job_meta(python_path=None), None, "launcher_spec['site-1']['k8s']['python_path'] must be a non-empty string"),
        (job_meta(python_path=""), None, "launcher_spec['site-1']['k8s']['python_path'] must be a non-empty string"),
    ],
)
def test_bad_job_meta_or_context_raises_upstreams_message_before_any_kubectl(
    site: Path, meta: dict[str, Any], drop: str | None, message: str
) -> None:
    cluster = FakeCluster()
    with pytest.raises(RuntimeError) as error:
        make_launcher(cluster, site).launch_job(meta, make_ctx(site, drop=drop))
    assert str(error.value) == message
    assert cluster.calls == []


def test_missing_exe_module_is_refused(site: Path) -> None:
    job_args = client_job_args(site)
    del job_args[JobProcessArgs.EXE_MODULE]
    with pytest.raises(RuntimeError, match=r"^missing exe_module in __job_process_args__$"):
        make_launcher(FakeCluster(), site).launch_job(job_meta(), make_ctx(site, job_args=job_args))


def test_custom_folder_outside_the_workspace_is_refused(site: Path, tmp_path: Path) -> None:
    ctx = make_ctx(site)
    ctx.set_prop(
        FLContextKey.ARGS, Namespace(workspace=str(tmp_path / "elsewhere"), set=[]), private=True, sticky=False
    )
    with pytest.raises(RuntimeError) as error:
        make_launcher(FakeCluster(), site).launch_job(job_meta(), ctx)
    custom = site / JOB / f"app_{SITE}" / "custom"
    assert str(error.value) == f"custom folder {custom} is not under workspace {tmp_path / 'elsewhere'}"


def test_a_bad_study_data_file_raises_upstreams_value_error(site: Path, tmp_path: Path) -> None:
    bad = tmp_path / "study_data.yaml"
    bad.write_text("cancer:\n  train:\n    source: pvc\n    mode: rx\n")
    meta = {**job_meta(), "study": "cancer"}
    with pytest.raises(ValueError, match="must set mode to 'ro' or 'rw'"):
        make_launcher(FakeCluster(), site, study_data_pvc_file_path=str(bad)).launch_job(meta, make_ctx(site))


def test_a_kubectl_setup_problem_is_a_config_error_and_creates_nothing(site: Path) -> None:
    cluster = FakeCluster()
    launcher = ClientK8sJobLauncher(str(site / "no-such-kubeconfig"), runner=cluster)
    with pytest.raises(ConfigError, match="does not exist"):
        launcher.launch_job(job_meta(), make_ctx(site))
    assert cluster.calls == []


# ---- a failure at any step leaves nothing behind ---------------------------------------------------


def nth(verb: str, n: int, result: Callable[[], CommandResult]) -> Callable[[tuple[str, ...]], CommandResult | None]:
    seen = {"count": 0}

    def fail(args: tuple[str, ...]) -> CommandResult | None:
        if " ".join(args).startswith(verb):
            seen["count"] += 1
            if seen["count"] == n:
                return result()
        return None

    return fail


FAILURES = {
    # step: (failure, raises, commands that clean up)
    "the check before the apply": (nth("get pod/", 1, lambda: rejected("Forbidden")), KubectlForbidden, []),
    "the check before the apply, connection lost": (lambda a: unavailable() if a[0] == "get" else None, Exception, []),
    "apply": (
        nth("apply", 1, lambda: rejected("Invalid", 'The Pod "x" is invalid')),
        None,
        [f"delete pod {POD}", f"delete secret {CRED}"],
    ),
    "apply, reply lost after the pod was made": (
        lambda args: unavailable() if args[0] == "apply" else None,
        None,
        [f"delete pod {POD}", f"delete secret {CRED}"],
    ),
}


@pytest.mark.parametrize("step", list(FAILURES))
def test_a_failure_at_any_step_leaves_nothing_behind(site: Path, step: str) -> None:
    failure, raises, cleanup = FAILURES[step]
    cluster = FakeCluster()
    cluster.fail = failure
    launcher = make_launcher(cluster, site)
    if raises is not None:
        with pytest.raises(raises):
            launcher.launch_job(job_meta(), make_ctx(site))
    else:
        handle = launcher.launch_job(job_meta(), make_ctx(site))
        assert handle.terminal_state == JobState.TERMINATED
        assert handle.poll() == JobReturnCode.EXCEPTION
    deletes = [v for v in cluster.verbs() if v.startswith("delete")]
    assert deletes == cleanup
    assert cluster.pods == {}
    assert set(cluster.secrets) <= {STARTUP}


def test_an_existing_pod_is_never_patched_nor_deleted(site: Path) -> None:
    cluster = FakeCluster()
    stranger = {"kind": "Pod", "metadata": {"name": POD, "labels": {}}, "status": {"phase": "Running"}}
    cluster.pods[POD] = stranger
    handle = make_launcher(cluster, site).launch_job(job_meta(), make_ctx(site))
    assert handle.poll() == JobReturnCode.EXCEPTION
    assert cluster.pods == {POD: stranger}
    assert "apply" not in " ".join(cluster.verbs())
    assert [v for v in cluster.verbs() if v.startswith("delete")] == []  # nothing of this launch was made


def _pasteable(command: str, root: Path) -> tuple[str, ...]:
    """The kubectl sub-command of a command shown to a human, after checking it carries the site's flags."""
    argv = shlex.split(command)
    assert argv[0] == "kubectl"
    flags = dict(zip(argv[1:7:2], argv[2:7:2], strict=True))
    assert flags["--kubeconfig"] == str(root.parent.parent / "kubeconfig")
    assert flags["--namespace"] == "nvflare" and "--request-timeout" in flags
    return strip_globals(argv)


def test_an_existing_pod_is_reported_with_the_pasteable_command_that_removes_it(
    site: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cluster = FakeCluster()
    cluster.pods[POD] = {"kind": "Pod", "metadata": {"name": POD, "labels": {}}, "status": {"phase": "Running"}}
    make_launcher(cluster, site).launch_job(job_meta(), make_ctx(site))
    message = next(r.getMessage() for r in caplog.records if "already exists" in r.getMessage())
    assert _pasteable(message.split("Remove it with: ", 1)[1], site) == commands.delete_pod(POD)


def test_a_startup_secret_not_ours_names_the_pasteable_command_that_removes_it(site: Path) -> None:
    cluster = FakeCluster()
    cluster.secrets[STARTUP] = {"kind": "Secret", "metadata": {"name": STARTUP}, "data": {}}
    with pytest.raises(RuntimeError) as error:
        make_launcher(cluster, site).launch_job(job_meta(), make_ctx(site))
    shown = str(error.value).split("remove it (", 1)[1].rsplit(") or use another namespace", 1)[0]
    assert _pasteable(shown, site) == commands.delete_secret(STARTUP)


def test_an_unwritable_job_folder_fails_the_launch_before_anything_is_created(site: Path) -> None:
    cluster = FakeCluster()
    (site / JOB / "kubectl-launcher").mkdir(parents=True)
    (site / JOB / "kubectl-launcher" / "manifest.json.partial").mkdir()  # cannot be opened as a file
    handle = make_launcher(cluster, site).launch_job(job_meta(), make_ctx(site))
    assert handle.poll() == JobReturnCode.EXCEPTION
    assert cluster.secrets == {} and cluster.pods == {}
    assert [v.split(" ")[0] for v in cluster.verbs()] == ["get"]


def test_owner_patch_failure_is_only_a_warning(site: Path, caplog: pytest.LogCaptureFixture) -> None:
    cluster = FakeCluster()
    cluster.fail = nth("patch secret", 1, lambda: rejected("Forbidden"))
    handle = make_launcher(cluster, site).launch_job(job_meta(), make_ctx(site))
    assert handle.poll() == JobReturnCode.UNKNOWN
    assert POD in cluster.pods and CRED in cluster.secrets
    assert "failed to set ownerReference on Secret" in caplog.text


def test_interrupted_wait_for_running_terminates_the_job(site: Path) -> None:
    cluster = FakeCluster()
    cluster.phase_after_apply = "Pending"  # the handle asks for the pod's events, on its own thread
    cluster.fail = nth("get events", 1, lambda: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        make_launcher(cluster, site).launch_job(job_meta(), make_ctx(site))
    assert cluster.pods == {}
    assert set(cluster.secrets) == {STARTUP}


def test_a_pod_that_never_runs_within_timeout_is_terminated_with_exception(site: Path) -> None:
    cluster = FakeCluster()
    cluster.phase_after_apply = "Pending"
    handle = make_launcher(cluster, site, timeout=0).launch_job(job_meta(), make_ctx(site))
    assert handle.poll() == JobReturnCode.EXCEPTION
    assert cluster.pods == {} and set(cluster.secrets) == {STARTUP}


def test_validation_advice_points_at_the_launcher_setting(site: Path, caplog: pytest.LogCaptureFixture) -> None:
    cluster = FakeCluster()
    advice = (
        'error: error validating "m.json": error validating data: failed to download openapi: the server '
        "could not find the requested resource; if you choose to ignore these errors, turn validation off "
        "with --validate=false"
    )
    cluster.fail = lambda args: CommandResult((), 1, "", advice) if args[0] == "apply" else None
    handle = make_launcher(cluster, site).launch_job(job_meta(), make_ctx(site))
    assert handle.poll() == JobReturnCode.EXCEPTION
    assert '"kubectl_validate": false' in caplog.text


def test_kubectl_validate_false_turns_validation_off_for_every_write(site: Path) -> None:
    cluster = FakeCluster()
    make_launcher(cluster, site, kubectl_validate=False).launch_job(job_meta(), make_ctx(site))
    writes = [c for c in cluster.calls if c[0] in ("create", "replace", "apply")]
    assert writes and all(c[-1] == "--validate=false" for c in writes)


def test_credentials_never_leave_for_the_journal_even_when_a_command_fails(site: Path) -> None:
    cluster = FakeCluster()
    cluster.fail = nth("apply", 1, lambda: rejected("Invalid"))
    make_launcher(cluster, site).launch_job(job_meta(), make_ctx(site))
    for path in (site / JOB / "kubectl-launcher").iterdir():
        text = path.read_text()
        assert TOKEN not in text and SIGNATURE not in text and SSID not in text
    assert os.stat(site / JOB / "kubectl-launcher" / "journal.jsonl").st_mode & 0o077 == 0
