"""Redaction that keeps journals replayable, with the real kubectl on the API double: a server job, whose
token is its job id (as NVFlare's server makes it), leaves journals that replay; a client job's token is
masked in the site journal, the job journal, a KubectlError's text and the log."""

from __future__ import annotations

import json
import sys
import textwrap
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from nvflare.apis.fl_context import FLContext
from nvflare.apis.job_launcher_spec import JobProcessArgs, JobReturnCode
from nvflare.apis.workspace import Workspace

from kubectl_launcher import ServerK8sJobLauncher, cli
from kubectl_launcher.cli.site import fl_context, job_process_args
from kubectl_launcher.domain.names import job_pod_name, uuid4_to_rfc1123
from kubectl_launcher.errors import KubectlError
from kubectl_launcher.kubectl.redact import REDACTED
from localkube import LocalCluster
from tests.integration.test_launcher_pods import IMAGE, SIGNATURE, SITE, SSID, TOKEN, Site, module_source

pytestmark = pytest.mark.integration

SERVER = "server"
SERVER_SIGNATURE = "server-signature-9d0e1f2a3b"
SERVER_SSID = "server-ssid-51c2"


@pytest.fixture
def cluster(local_cluster_factory: Callable[..., LocalCluster]) -> LocalCluster:
    made: LocalCluster = local_cluster_factory(capacity={"cpu": "2", "memory": "8Gi", "ephemeral-storage": "100Gi"})
    return made


SERVER_MODULE = textwrap.dedent(
    """\
    import os, sys
    args = sys.argv[1:]
    job_id = args[args.index("-n") + 1]
    with open(os.path.join(os.getcwd(), job_id, "ran.txt"), "w") as f:
        f.write("ran")
    """
)


def server_job(root: Path) -> tuple[str, str, FLContext]:
    """A deployed server job (module in its custom folder) and the FLContext NVFlare's server engine builds
    for it: the job's token is its job id."""
    job_id = str(uuid.uuid4())
    module = f"job_{job_id.replace('-', '_')}"
    (root / "startup").mkdir(parents=True)
    (root / "startup" / "fed_server.json").write_text("{}")
    (root / "startup" / "server.crt").write_text("CERT")
    (root / "local").mkdir()
    custom = root / job_id / f"app_{SERVER}" / "custom"
    custom.mkdir(parents=True)
    (custom / f"{module}.py").write_text(SERVER_MODULE)
    workspace = Workspace(str(root), SERVER)
    job_args = job_process_args(
        server=True, site=SERVER, job_id=job_id, workspace=workspace, root=str(root), exe_module=module
    )
    job_args.update(
        {
            JobProcessArgs.AUTH_TOKEN: ("-t", job_id),  # server_engine.py: "use the run_number as the auth token"
            JobProcessArgs.TOKEN_SIGNATURE: ("-ts", SERVER_SIGNATURE),
            JobProcessArgs.SSID: ("--ssid", SERVER_SSID),
            JobProcessArgs.PARENT_URL: ("-p", "tcp://localhost:1"),
        }
    )
    ctx = fl_context(SERVER, workspace, str(root), job_args, ["secure_train=true"])
    return job_id, module, ctx


def command_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line and not line.startswith("#")]


def test_a_server_jobs_journal_names_its_job_and_replays(
    cluster: LocalCluster, kubectl_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / SERVER
    job_id, _, ctx = server_job(root)
    pod = job_pod_name(uuid4_to_rfc1123(job_id), SERVER)
    launcher = ServerK8sJobLauncher(cluster.kubeconfig_path, kubectl=kubectl_path)
    meta = {"job_id": job_id, "launcher_spec": {"default": {"k8s": {"image": IMAGE, "python_path": sys.executable}}}}
    handle = launcher.launch_job(meta, ctx)
    handle.wait()
    assert handle.poll() == JobReturnCode.SUCCESS
    assert (root / job_id / "ran.txt").read_text() == "ran"

    job_journal = root / job_id / "kubectl-launcher" / "journal.sh"
    for journal in (job_journal, root / "kubectl-launcher" / "journal.sh"):
        text = "\n".join(command_lines(journal))
        assert REDACTED not in text, journal
        assert SERVER_SIGNATURE not in text and SERVER_SSID not in text, journal
    lines = command_lines(job_journal)
    assert any(f"get pod {pod}" in line or f"pod/{pod}" in line for line in lines)
    assert any(f"{root}/{job_id}/kubectl-launcher/manifest.json" in line for line in lines)

    assert cli.main(["replay", str(job_journal), "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines() == lines

    # For real, against the double: every command runs (none is held back for a masked value); results
    # may differ (the pod has ended since), the credential Secret's stdin cannot be rebuilt by design.
    cli.main(["replay", str(job_journal), "--keep-going", "--timeout", "20"])
    out = capsys.readouterr().out
    assert "contains a redacted value" not in out
    not_replayable = [line for line in out.splitlines() if "not replayable" in line]
    assert not_replayable == [], out
    handle.terminate()


def test_a_client_jobs_token_is_masked_everywhere(
    cluster: LocalCluster, kubectl_path: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    site = Site(tmp_path / SITE, cluster, module_source(0), kubectl_path)
    handle = site.launch()
    handle.wait()
    assert handle.poll() == JobReturnCode.SUCCESS
    assert handle.api_instance is not None
    # A command whose argv and kubectl's own message carry the token: the error's text masks it.
    with pytest.raises(KubectlError) as raised:
        handle.api_instance.run(["get", "secret", TOKEN, "--output", "json"])
    message = str(raised.value)
    assert TOKEN not in message and REDACTED in message
    assert site.job_id in message or "not found" in message.lower()
    texts = {
        "log": caplog.text,
        "error": f"{raised.value!r} {message} {raised.value.argv} {raised.value.stderr}",
        **{
            str(path): path.read_text(errors="replace")
            for folder in (site.root / "kubectl-launcher", site.root / site.job_id / "kubectl-launcher")
            for path in folder.iterdir()
            if path.is_file()
        },
    }
    for where, text in texts.items():
        for secret in (TOKEN, SIGNATURE, SSID):
            assert secret not in text, (where, secret)
    site_journal = [
        json.loads(line) for line in (site.root / "kubectl-launcher" / "journal.jsonl").read_text().splitlines()
    ]
    assert any(site.pod in json.dumps(entry["argv"]) for entry in site_journal)
