"""launch_job with the real kubectl on the API double: a real FLContext, a job pod running a tiny module."""

from __future__ import annotations

import base64
import importlib.abc
import importlib.machinery
import json
import subprocess
import sys
import textwrap
import time
import uuid
from argparse import Namespace
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from nvflare.apis.fl_constant import FLContextKey, ReservedKey
from nvflare.apis.fl_context import FLContext
from nvflare.apis.job_launcher_spec import JobProcessArgs, JobReturnCode
from nvflare.apis.workspace import Workspace

from kubectl_launcher import ClientK8sJobLauncher, JobState, K8sJobHandle
from kubectl_launcher.domain.names import credential_secret_name, job_pod_name, uuid4_to_rfc1123
from localkube import LocalCluster

pytestmark = pytest.mark.integration

SITE = "site-1"
IMAGE = "localhost/kubectl-launcher-test/python:3.11"
TOKEN = "integration-token-5d1c0f7e"
SIGNATURE = "integration-signature-77aa"
SSID = "integration-ssid-0042"


class _NoKubernetes(importlib.abc.MetaPathFinder):
    """Any import of the kubernetes client fails: everything here must work without it."""

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name == "kubernetes" or name.startswith("kubernetes."):
            raise ImportError(f"{name} must not be imported by kubectl-launcher")
        return None


@pytest.fixture(autouse=True)
def no_kubernetes_client() -> Iterator[None]:
    blocker = _NoKubernetes()
    sys.meta_path.insert(0, blocker)
    try:
        yield
    finally:
        sys.meta_path.remove(blocker)


@pytest.fixture
def cluster(local_cluster_factory: Callable[..., LocalCluster]) -> LocalCluster:
    # Upstream's pod always requests ephemeral storage; the double's node must offer some.
    made: LocalCluster = local_cluster_factory(capacity={"cpu": "2", "memory": "8Gi", "ephemeral-storage": "100Gi"})
    return made


@pytest.fixture
def make_site(cluster: LocalCluster, kubectl_path: str, tmp_path: Path) -> Callable[[str], Site]:
    return lambda source: Site(tmp_path / SITE, cluster, source, kubectl_path)


def module_source(exit_code: int, sleep: float = 0.0, gate: Path | None = None) -> str:
    """A job module: records its args in the job folder of the pod's workspace, then exits (after `sleep`
    seconds, and once `gate` exists if one is given)."""
    return textwrap.dedent(
        f"""\
        import json, os, sys, time
        args = sys.argv[1:]
        workspace, job_id = args[args.index("-m") + 1], args[args.index("-n") + 1]
        record = {{
            "args": args,
            "cwd": os.getcwd(),
            "env": sorted(k for k in os.environ if k.startswith("NVFLARE_JOB_")),
            "token_ok": os.environ.get("NVFLARE_JOB_AUTH_TOKEN") == {TOKEN!r},
        }}
        with open(os.path.join(workspace, job_id, "ran.json"), "w") as f:
            json.dump(record, f)
        time.sleep({sleep})
        while {gate is not None} and not os.path.exists({str(gate)!r}):
            time.sleep(0.1)
        sys.exit({exit_code})
        """
    )


class Site:
    """A client site's workspace with one deployed job whose custom folder holds the job module."""

    def __init__(self, root: Path, cluster: LocalCluster, source: str, kubectl: str) -> None:
        self.root = root
        self.cluster = cluster
        self.kubectl = kubectl
        self.job_id = str(uuid.uuid4())
        self.pod = job_pod_name(uuid4_to_rfc1123(self.job_id), SITE)
        startup = root / "startup"
        if not startup.exists():  # a second job at the same site keeps the site's files
            startup.mkdir(parents=True)
            (startup / "client.crt").write_text("CERT")
            (startup / "client.key").write_text("KEY")
            (startup / "fed_client.json").write_text("{}")
            (root / "local").mkdir()
        module = f"job_{self.job_id.replace('-', '_')}"
        custom = root / self.job_id / f"app_{SITE}" / "custom"
        custom.mkdir(parents=True)
        (custom / f"{module}.py").write_text(source)
        self.module = module

    def ctx(self) -> FLContext:
        ctx = FLContext()
        ctx.set_prop(ReservedKey.IDENTITY_NAME, SITE, private=False, sticky=False)
        job_args = {
            JobProcessArgs.EXE_MODULE: ("-m", self.module),
            JobProcessArgs.JOB_ID: ("-n", self.job_id),
            JobProcessArgs.CLIENT_NAME: ("-c", SITE),
            JobProcessArgs.AUTH_TOKEN: ("-t", TOKEN),
            JobProcessArgs.TOKEN_SIGNATURE: ("-ts", SIGNATURE),
            JobProcessArgs.SSID: ("-d", SSID),
            JobProcessArgs.WORKSPACE: ("-m", str(self.root)),
            JobProcessArgs.STARTUP_DIR: ("-w", str(self.root / "startup")),
            JobProcessArgs.PARENT_URL: ("-p", "tcp://localhost:1"),
            JobProcessArgs.SCHEME: ("-scheme", "grpc"),
            JobProcessArgs.TARGET: ("-g", "server:8002"),
            JobProcessArgs.STARTUP_CONFIG_FILE: ("-s", "fed_client.json"),
        }
        for key, value in {
            FLContextKey.WORKSPACE_OBJECT: Workspace(str(self.root), SITE),
            FLContextKey.ARGS: Namespace(workspace=str(self.root), set=["secure_train=true"]),
            FLContextKey.JOB_PROCESS_ARGS: job_args,
        }.items():
            ctx.set_prop(key, value, private=True, sticky=False)
        return ctx

    def meta(self, **k8s: Any) -> dict[str, Any]:
        spec = {"image": IMAGE, "python_path": sys.executable, **k8s}
        return {"job_id": self.job_id, "launcher_spec": {"default": {"k8s": spec}}}

    def launcher(self, **kw: Any) -> ClientK8sJobLauncher:
        kw.setdefault("kubectl", self.kubectl)
        return ClientK8sJobLauncher(self.cluster.kubeconfig_path, **kw)

    def launch(self, launcher: ClientK8sJobLauncher | None = None, **k8s: Any) -> K8sJobHandle:
        return (launcher or self.launcher()).launch_job(self.meta(**k8s), self.ctx())

    def ran(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.root / self.job_id / "ran.json").read_text())
        return data

    def objects(self) -> tuple[Any, Any]:
        return self.cluster.get("pods", self.pod), self.cluster.get("secrets", credential_secret_name(self.pod))


def wait_gone(site: Site, seconds: float = 30.0) -> tuple[Any, Any]:
    """The pod and credential Secret, once both are gone or `seconds` passed (deletion is asynchronous)."""
    deadline = time.monotonic() + seconds
    found = site.objects()
    while any(found) and time.monotonic() < deadline:
        time.sleep(0.2)
        found = site.objects()
    return found


@pytest.mark.parametrize(
    ("exit_code", "expected"),
    [(0, JobReturnCode.SUCCESS), (1, JobReturnCode.ABORTED), (101, JobReturnCode.EXCEPTION)],
)
def test_job_pod_exit_code_becomes_the_return_code(
    make_site: Callable[[str], Site], exit_code: int, expected: int
) -> None:
    site = make_site(module_source(exit_code))
    handle = site.launch()
    handle.wait()
    assert handle.poll() == expected
    # The module ran in the pod with the workspace delivered, paths moved into the mount, credentials
    # from the Secret; its results came back to the parent's job folder.
    ran = site.ran()
    mount = "/var/tmp/nvflare/workspace"
    assert ran["args"][:2] == ["-m", mount]
    assert ran["args"][ran["args"].index("-w") + 1] == f"{mount}/startup"
    assert ran["cwd"] == mount
    assert ran["env"] == ["NVFLARE_JOB_AUTH_TOKEN", "NVFLARE_JOB_SSID", "NVFLARE_JOB_TOKEN_SIGNATURE"]
    assert ran["token_ok"] is True
    assert site.objects()[1] is None  # the credential Secret ends with the job
    manifest = json.loads((site.root / site.job_id / "kubectl-launcher" / "manifest.json").read_text())
    assert manifest["metadata"]["name"] == site.pod
    for path in (site.root / site.job_id / "kubectl-launcher").iterdir():
        if path.is_file():
            text = path.read_text(errors="replace")
            assert TOKEN not in text and SIGNATURE not in text and SSID not in text, path


@pytest.mark.double_only
def test_unpullable_image_fails_the_launch_with_exception(make_site: Callable[[str], Site]) -> None:
    site = make_site(module_source(0))
    image = f"localhost/missing/{uuid.uuid4().hex}:1"
    site.cluster.faults.make_unpullable(image)
    handle = site.launch(image=image)
    assert handle.poll() == JobReturnCode.EXCEPTION
    assert wait_gone(site) == (None, None)


def test_insufficient_cpu_fails_after_pending_timeout(make_site: Callable[[str], Site]) -> None:
    site = make_site(module_source(0))
    handle = site.launch(cpu="64", pending_timeout=2)
    assert handle.terminal_state == JobState.TERMINATED
    assert handle.poll() == JobReturnCode.EXCEPTION
    assert wait_gone(site) == (None, None)


def test_terminate_removes_the_pod_and_the_credential_secret(make_site: Callable[[str], Site]) -> None:
    site = make_site(module_source(0, sleep=300))
    handle = site.launch()
    # The credential Secret may be gone already (deleted once the job container started; its
    # ownerReference is checked in test_relaunch_localkube's pending case).
    assert site.objects()[0] is not None
    handle.terminate()
    assert handle.poll() == JobReturnCode.ABORTED
    assert wait_gone(site) == (None, None)


def test_a_launch_without_workspace_transfer_runs_a_plain_upstream_shaped_pod(make_site: Callable[[str], Site]) -> None:
    # Nothing is delivered, so the job module cannot be imported: the pod fails on its own.
    site = make_site(module_source(0))
    handle = site.launch(site.launcher(workspace_transfer=False))
    handle.wait()
    assert handle.poll() == JobReturnCode.ABORTED
    manifest = json.loads((site.root / site.job_id / "kubectl-launcher" / "manifest.json").read_text())
    assert "initContainers" not in manifest["spec"] and len(manifest["spec"]["containers"]) == 1


def test_kubectl_launcher_imports_without_the_kubernetes_client() -> None:
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] == 'kubernetes': raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import kubectl_launcher, kubectl_launcher.launcher, kubectl_launcher.handle\n"
        "assert 'kubernetes' not in sys.modules\n"
        "print(kubectl_launcher.ClientK8sJobLauncher(None).namespace)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "default"


def test_the_next_job_replaces_the_sites_startup_secret(make_site: Callable[[str], Site]) -> None:
    first = make_site(module_source(0))
    launcher = first.launcher()
    first.launch(launcher).wait()
    (first.root / "startup" / "client.crt").write_text("RENEWED")
    second = Site(first.root, first.cluster, module_source(0), first.kubectl)
    handle = launcher.launch_job(second.meta(), second.ctx())
    handle.wait()
    assert handle.poll() == JobReturnCode.SUCCESS
    startup = first.cluster.get("secrets", "nvflare-startup-site-1-f505dccd")
    assert startup is not None
    assert base64.b64decode(startup["data"]["client.crt"]) == b"RENEWED"
    assert "last-applied-configuration" not in json.dumps(startup["metadata"])  # server-side: no data copy
    journal = [
        json.loads(line) for line in (first.root / "kubectl-launcher" / "journal.jsonl").read_text().splitlines()
    ]
    applies = [e for e in journal if e["purpose"] == "apply"]
    assert len(applies) == 2 and all("--server-side" in e["argv"] for e in applies)
    assert [e["purpose"] for e in journal].count("setup") == 2  # kubectl version, current context: first launch only
    assert "credential Secret is not replayable" in applies[1]["stdin"]["description"]


def test_a_startup_secret_not_ours_refuses_the_launch_before_anything_is_created(
    make_site: Callable[[str], Site],
) -> None:
    site = make_site(module_source(0))
    foreign = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "nvflare-startup-site-1-f505dccd"}}
    site.cluster.create("secrets", {**foreign, "data": {"x": base64.b64encode(b"theirs").decode()}})
    with pytest.raises(RuntimeError, match="not created by kubectl-launcher"):
        site.launch()
    assert site.objects() == (None, None)
    kept = site.cluster.get("secrets", "nvflare-startup-site-1-f505dccd")
    assert kept is not None and base64.b64decode(kept["data"]["x"]) == b"theirs"


@pytest.mark.double_only
def test_a_failed_apply_removes_only_what_the_launch_made(make_site: Callable[[str], Site]) -> None:
    # The server refuses the pod: the Secrets before it in the same apply were made, the credential one
    # is removed again, the site's startup-kit Secret stays.
    site = make_site(module_source(0))
    pod_path = f"/api/v1/namespaces/default/pods/{site.pod}"
    site.cluster.faults.api_errors(403, times=1, paths=(pod_path,), verbs=("patch",))
    handle = site.launch(site.launcher(workspace_transfer=False))
    assert handle.poll() == JobReturnCode.EXCEPTION
    assert wait_gone(site) == (None, None)
    assert site.cluster.get("secrets", "nvflare-startup-site-1-f505dccd") is not None


def test_a_pod_already_there_is_left_alone_and_the_job_fails(make_site: Callable[[str], Site]) -> None:
    site = make_site(module_source(0))
    squatter = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": site.pod, "labels": {"app": "someone-else"}},
        "spec": {
            "containers": [
                {"name": "c", "image": IMAGE, "command": [sys.executable, "-c", "import time; time.sleep(60)"]}
            ]
        },
    }
    site.cluster.create("pods", squatter)
    handle = site.launch()
    assert handle.poll() == JobReturnCode.EXCEPTION
    pod, secret = site.objects()
    assert pod is not None and pod["metadata"]["labels"] == {"app": "someone-else"}
    assert secret is None
