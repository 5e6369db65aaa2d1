"""The RBAC Role that README.md (and docs/real-cluster.md) asks a cluster admin for, checked by kube-apiserver's
own authorizer: a launcher job whose kubeconfig identity (a client certificate) is bound only to that Role runs
to success, and for each rule, what removing it breaks. (The whole NVFlare job with that identity:
tests/e2e with --control-plane real.)"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from nvflare.apis.job_launcher_spec import JobReturnCode

from kubectl_launcher import ClientK8sJobLauncher
from tests.integration.test_launcher_pods import Site, module_source
from tests.realcp.conftest import Kubectl
from tests.realcp.readme_role import ROOT, readme_role, role_list, yaml_role
from tests.support.kubectl_cli import run_kubectl

pytestmark = pytest.mark.real_control_plane

ROLE = readme_role()
RULES = ROLE["rules"]


def test_the_real_cluster_guide_asks_for_the_readmes_rules() -> None:
    assert yaml_role(ROOT / "docs" / "real-cluster.md")["rules"] == RULES


def bind(k: Kubectl, name: str, rules: list[dict[str, Any]]) -> None:
    # User `name` bound to `rules` only, in namespace default (the README's Role as written: tests/e2e)
    applied = k("apply", "-f", "-", stdin=json.dumps(role_list(name, "default", rules)))
    assert applied.returncode == 0, applied.stderr


def run_job(real_cluster: Any, kubectl: str, tmp_path: Path, user: str) -> tuple[int | None, str]:
    """One launcher job as `user`: its return code (None if launch_job raised) and what went wrong."""
    kubeconfig = real_cluster.identity_kubeconfig(user, str(tmp_path / f"{user}.kubeconfig"))
    site = Site(tmp_path / "site-1", real_cluster, module_source(0), kubectl)
    launcher = ClientK8sJobLauncher(kubeconfig, kubectl=kubectl, pending_timeout=30)
    try:
        handle = launcher.launch_job(site.meta(), site.ctx())
    except Exception as e:  # the launcher's own error, with kubectl's stderr excerpt
        return None, str(e)
    handle.wait()
    journal = site.root / site.job_id / "kubectl-launcher"
    text = " ".join(p.read_text(errors="replace") for p in journal.rglob("*") if p.is_file())
    return handle.poll(), text


def test_a_job_runs_with_only_the_readme_role(real_cluster: Any, k: Kubectl, kubectl_137: str, tmp_path: Path) -> None:
    bind(k, "launcher-all", RULES)
    code, why = run_job(real_cluster, kubectl_137, tmp_path, "launcher-all")
    assert code == JobReturnCode.SUCCESS, why


def test_websocket_exec_is_refused_without_get_on_pods_exec(
    real_cluster: Any, k: Kubectl, kubectl_137: str, tmp_path: Path
) -> None:
    only_create = [{**r, "verbs": ["create"]} if r["resources"] == ["pods/exec"] else r for r in RULES]
    bind(k, "launcher-exec-create", only_create)
    assert k("run", "target", "--image=busybox", "--restart=Never", "--", "sleep", "600").returncode == 0
    assert k("wait", "--for=condition=Ready", "pod/target", "--timeout=60s").returncode == 0
    kubeconfig = real_cluster.identity_kubeconfig("launcher-exec-create", str(tmp_path / "create-only.kubeconfig"))

    def as_user(*args: str) -> subprocess.CompletedProcess[str]:
        return run_kubectl(kubectl_137, real_cluster, *args, env={"KUBECONFIG": kubeconfig})

    assert as_user("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").stdout == "launcher-exec-create"
    # `can-i create pods/exec` would ask about a pod named "exec": the subresource needs --subresource
    assert as_user("auth", "can-i", "get", "pods", "--subresource=exec").stdout.strip() == "no"
    assert as_user("auth", "can-i", "create", "pods", "--subresource=exec").stdout.strip() == "yes"
    refused = as_user("exec", "target", "--", "true")
    # kubectl's WebSocket GET gets 403; its SPDY fallback reaches our node, which answers as a WebSocket-only server
    assert (refused.returncode, refused.stderr.strip()) == (
        1,
        "error: unable to upgrade connection: Upgrade request required",
    ), refused.stderr
    assert k("delete", "pod", "target", "--grace-period=1").returncode == 0


#: the rules a job that runs to success needs, and the step that breaks without each (kube-apiserver's Forbidden)
NEEDED = {"pods": "creating the job pod", "pods/exec": "delivering the workspace", "secrets": "the credential Secret"}
DIAGNOSIS_ONLY = ("pods/log", "events")  # read only to explain a pod that does not run


@pytest.mark.parametrize("resource", list(NEEDED))
def test_without_one_rule_of_the_role_the_job_fails(
    real_cluster: Any, k: Kubectl, kubectl_137: str, tmp_path: Path, resource: str
) -> None:
    user = f"launcher-without-{resource.replace('/', '-')}"
    bind(k, user, [r for r in RULES if r["resources"] != [resource]])
    code, why = run_job(real_cluster, kubectl_137, tmp_path, user)
    assert code != JobReturnCode.SUCCESS, f"the job succeeded without {resource} ({NEEDED[resource]})"
    assert f'User "{user}" cannot create resource "{resource.split("/")[0]}"' in why or "forbidden" in why, why[-2000:]


def test_a_job_that_runs_reads_neither_logs_nor_events(
    real_cluster: Any, k: Kubectl, kubectl_137: str, tmp_path: Path
) -> None:
    bind(k, "launcher-no-diagnosis", [r for r in RULES if r["resources"][0] not in DIAGNOSIS_ONLY])
    code, why = run_job(real_cluster, kubectl_137, tmp_path, "launcher-no-diagnosis")
    assert code == JobReturnCode.SUCCESS, why
