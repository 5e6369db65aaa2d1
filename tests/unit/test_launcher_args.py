"""Job-process arguments for the pod: upstream's selection, parent paths moved into the workspace mount."""

from __future__ import annotations

import pytest
from nvflare.apis.job_launcher_spec import JobProcessArgs
from nvflare.app_opt.job_launcher.k8s_launcher import _job_args_dict
from nvflare.utils.job_launcher_utils import get_client_job_args, get_server_job_args

from kubectl_launcher.domain.nvflare_args import module_args, path_flags, path_in_pod, translate_paths

MOUNT = "/var/tmp/nvflare/workspace"
WS = "/home/me/poc/example_project/prod_00/site-1"

CLIENT_ARGS = {
    JobProcessArgs.EXE_MODULE: ("-m", "nvflare.private.fed.app.client.worker_process"),
    JobProcessArgs.JOB_ID: ("-n", "J1"),
    JobProcessArgs.CLIENT_NAME: ("-c", "site-1"),
    JobProcessArgs.AUTH_TOKEN: ("-t", "tok"),
    JobProcessArgs.TOKEN_SIGNATURE: ("-ts", "sig"),
    JobProcessArgs.SSID: ("-d", "ssid"),
    JobProcessArgs.WORKSPACE: ("-m", WS),
    JobProcessArgs.STARTUP_DIR: ("-w", f"{WS}/startup"),
    JobProcessArgs.PARENT_URL: ("-p", "tcp://localhost:1234"),
    JobProcessArgs.SCHEME: ("-scheme", "grpc"),
    JobProcessArgs.TARGET: ("-g", "server:8002"),
    JobProcessArgs.STARTUP_CONFIG_FILE: ("-s", "fed_client.json"),
    JobProcessArgs.OPTIONS: ("--set", " secure_train=true"),
    JobProcessArgs.PARENT_CONN_SEC: ("--parent_conn_sec", "clear"),
}
SERVER_ARGS = {
    JobProcessArgs.JOB_ID: ("-n", "J1"),
    JobProcessArgs.EXE_MODULE: ("-m", "nvflare.private.fed.app.server.runner_process"),
    JobProcessArgs.WORKSPACE: ("-m", WS),
    JobProcessArgs.STARTUP_CONFIG_FILE: ("-s", "fed_server.json"),
    JobProcessArgs.APP_ROOT: ("-r", f"{WS}/J1/app_server"),
    JobProcessArgs.AUTH_TOKEN: ("-t", "J1"),
    JobProcessArgs.TOKEN_SIGNATURE: ("-ts", "sig"),
    JobProcessArgs.PARENT_URL: ("-p", "tcp://localhost:1"),
    JobProcessArgs.ROOT_URL: ("-u", "grpc://server:8002"),
    JobProcessArgs.SERVICE_HOST: ("--host", "server"),
    JobProcessArgs.SERVICE_PORT: ("--port", "8002"),
    JobProcessArgs.SSID: ("--ssid", "ssid"),
    JobProcessArgs.OPTIONS: ("--set", " x=y"),
}


@pytest.mark.parametrize(
    ("job_args", "names"),
    [(CLIENT_ARGS, get_client_job_args(False, False)), (SERVER_ARGS, get_server_job_args(False, False))],
)
def test_module_args_equal_upstreams_and_carry_no_credentials(job_args: dict, names: list[str]) -> None:
    ours = module_args(job_args, names)
    assert ours == _job_args_dict(job_args, names)
    assert list(ours) == list(_job_args_dict(job_args, names))
    assert not {"-t", "-ts", "-d", "--ssid"} & set(ours)
    assert "tok" not in ours.values() and "sig" not in ours.values()


def test_client_paths_move_into_the_mount() -> None:
    args = module_args(CLIENT_ARGS, get_client_job_args(False, False))
    moved = translate_paths(args, path_flags(CLIENT_ARGS), WS, MOUNT)
    assert moved["-m"] == MOUNT
    assert moved["-w"] == f"{MOUNT}/startup"
    assert {k: v for k, v in moved.items() if k not in ("-m", "-w")} == {
        k: v for k, v in args.items() if k not in ("-m", "-w")
    }
    assert list(moved) == list(args)


def test_server_app_root_moves_into_the_mount() -> None:
    args = module_args(SERVER_ARGS, get_server_job_args(False, False))
    moved = translate_paths(args, path_flags(SERVER_ARGS), WS, MOUNT)
    assert moved["-m"] == MOUNT
    assert moved["-r"] == f"{MOUNT}/J1/app_server"
    assert moved["-s"] == "fed_server.json"


def test_a_workspace_already_at_the_mount_path_is_unchanged() -> None:
    args = module_args(CLIENT_ARGS, get_client_job_args(False, False))
    args["-m"], args["-w"] = MOUNT, f"{MOUNT}/startup"
    assert translate_paths(args, {"-m", "-w"}, MOUNT, MOUNT) == args


def test_a_path_outside_the_workspace_is_left_alone() -> None:
    assert translate_paths({"-w": "/etc/startup"}, {"-w"}, WS, MOUNT) == {"-w": "/etc/startup"}


def test_only_path_flags_move() -> None:
    assert translate_paths({"-n": WS}, {"-m"}, WS, MOUNT) == {"-n": WS}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (WS, MOUNT),
        (WS + "/", MOUNT),
        (f"{WS}/J1/app_site-1/custom", f"{MOUNT}/J1/app_site-1/custom"),
        (f"{WS}/../site-2/x", None),
        (f"{WS}-evil/x", None),
        ("/", None),
    ],
)
def test_path_in_pod(path: str, expected: str | None) -> None:
    assert path_in_pod(path, WS, MOUNT) == expected


def test_path_flags_of_client_and_server() -> None:
    assert path_flags(CLIENT_ARGS) == {"-m", "-w"}
    assert path_flags(SERVER_ARGS) == {"-m", "-r"}
