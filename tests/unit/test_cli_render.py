"""render offline (no kubeconfig, no kubectl), its errors naming the field; the parser as kubectl's plugin."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from kubectl_launcher import cli
from kubectl_launcher.cli.site import read_resources

META = {"job_id": "4d3c2b1a-0000-4000-8000-000000000001", "launcher_spec": {"default": {"k8s": {"image": "img:1"}}}}


@pytest.fixture
def no_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No kubeconfig anywhere and no kubectl on PATH: render must not need either."""
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))


def job_folder(tmp_path: Path, meta: dict[str, object]) -> str:
    folder = tmp_path / "job"
    folder.mkdir(exist_ok=True)
    (folder / "meta.json").write_text(json.dumps(meta))
    return str(folder)


@pytest.mark.usefixtures("no_cluster")
def test_render_needs_no_cluster_and_redacts_secret_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["render", job_folder(tmp_path, META), "--site", "site-1"]) == 0
    listing = yaml.safe_load(capsys.readouterr().out)
    kinds = [item["kind"] for item in listing["items"]]
    assert kinds == ["Secret", "Secret", "Pod"]
    pod = listing["items"][2]
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["kubectl-launcher-init"]
    assert pod["spec"]["containers"][0]["image"] == "img:1"
    assert all(v == "<redacted>" for s in listing["items"][:2] for v in s["data"].values())


@pytest.mark.usefixtures("no_cluster")
def test_render_names_the_field_a_job_lacks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["render", job_folder(tmp_path, {"job_id": "j"}), "--site", "site-1"]) == 2
    assert "launcher_spec['site-1']['k8s']['image']" in capsys.readouterr().err


@pytest.mark.usefixtures("no_cluster")
def test_render_names_a_bad_launcher_argument(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    resources = tmp_path / "resources.json"
    component = {"id": "k8s", "path": "kubectl_launcher.ClientK8sJobLauncher", "args": {"poll_interval": -1}}
    resources.write_text(json.dumps({"components": [component]}))
    assert cli.main(["render", job_folder(tmp_path, META), "--site", "s", "--resources", str(resources)]) == 2
    assert "poll_interval" in capsys.readouterr().err
    component["args"] = {"no_such_arg": 1}
    resources.write_text(json.dumps({"components": [component]}))
    assert cli.main(["render", job_folder(tmp_path, META), "--site", "s", "--resources", str(resources)]) == 2
    assert "no_such_arg" in capsys.readouterr().err


def test_resources_without_our_launcher_say_which_path_to_use(tmp_path: Path) -> None:
    path = tmp_path / "resources.json"
    path.write_text(
        json.dumps({"components": [{"id": "x", "path": "nvflare.app_common.job_launcher.ProcessJobLauncher"}]})
    )
    with pytest.raises(ValueError, match=r"kubectl_launcher\.ClientK8sJobLauncher"):
        read_resources(str(path))


def test_the_plugin_says_kubectl_nvflare_in_its_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.plugin_main(["status", "--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("usage: kubectl nvflare status")


def test_every_command_is_there_and_a_bare_call_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    parser = cli.build_parser()
    help_text = parser.format_help()
    for name in ("doctor", "render", "status", "logs", "terminate", "cleanup", "replay", "local-cluster"):
        assert name in help_text
    assert cli.main([]) == 2
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["logs", "j", "--since", "10"])
    assert exit_info.value.code == 2


def test_cluster_commands_say_where_their_journal_is() -> None:
    sub = cli.build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name in ("doctor", "status", "logs", "terminate", "cleanup"):
        assert "XDG_STATE_HOME" in sub[name].format_help()
    assert "take-over" in sub["terminate"].format_help() or "later issue" in sub["terminate"].format_help()
