"""`render` prints what `launch_job` applies: the same inputs through both, compared on the double."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kubectl_launcher import cli
from kubectl_launcher.domain.names import credential_secret_name
from tests.integration import test_launcher_pods
from tests.integration.test_launcher_pods import SITE, Site, module_source

pytestmark = pytest.mark.integration

# The launch tests' fixtures: a cluster with ephemeral storage, and a site workspace with one job.
cluster = test_launcher_pods.cluster
make_site = test_launcher_pods.make_site

# What only the running parent knows: its cell's URL and the server's address (render shows placeholders).
PARENT_RUNTIME_FLAGS = ("-p", "-g")


def _without_parent_runtime(pod: dict[str, Any]) -> dict[str, Any]:
    pod = json.loads(json.dumps(pod))
    for container in pod["spec"]["containers"]:
        args = container.get("args", [])
        for i, arg in enumerate(args[:-1]):
            if arg in PARENT_RUNTIME_FLAGS:
                args[i + 1] = "<parent runtime>"
    return pod


def test_render_matches_the_pod_launch_job_applied(
    make_site: Callable[[str], Site], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = make_site(module_source(0))
    args = {"config_file_path": site.cluster.kubeconfig_path, "kubectl": site.kubectl}
    component = {"id": "k8s_launcher", "path": "kubectl_launcher.ClientK8sJobLauncher", "args": args}
    (site.root / "local" / "resources.json").write_text(json.dumps({"components": [component]}))
    job_folder = tmp_path / "job"
    job_folder.mkdir()
    (job_folder / "meta.json").write_text(json.dumps(site.meta()))

    handle = site.launch(site.launcher(**{k: v for k, v in args.items() if k != "config_file_path"}))
    handle.wait()
    applied = json.loads((site.root / site.job_id / "kubectl-launcher" / "manifest.json").read_text())

    code = cli.main(
        [
            "render", str(job_folder), "--site", SITE, "--resources", str(site.root / "local" / "resources.json"),
            "--set", "secure_train=true", "--exe-module", site.module, "-o", "json",
        ]
    )  # fmt: skip
    assert code == 0
    items = json.loads(capsys.readouterr().out)["items"]
    kinds = [(o["kind"], o["metadata"]["name"]) for o in items]
    startup, credential, pod = items
    assert kinds[1] == ("Secret", credential_secret_name(site.pod))
    assert _without_parent_runtime(pod) == _without_parent_runtime(applied)
    # The site's startup-kit Secret stays after the job: same name, labels and keys as rendered, data hidden.
    live = site.cluster.get("secrets", startup["metadata"]["name"])
    assert live is not None
    assert live["metadata"]["labels"] == startup["metadata"]["labels"]
    assert sorted(live["data"]) == sorted(startup["data"])
    assert set(startup["data"].values()) == {"<redacted>"}
    assert set(credential["data"].values()) == {"<redacted>"}
