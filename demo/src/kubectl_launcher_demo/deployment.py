"""An NVFlare POC deployment (server + 2 clients) kept entirely under one folder: prepare, configure, start, stop."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sh

SERVER = "server"
CLIENTS = ("site-1", "site-2")
SITES = (SERVER, *CLIENTS)
ADMIN = "admin@nvidia.com"
PROJECT = "example_project"
#: The port `nvflare poc prepare` writes; moved to a free one so two deployments can run side by side.
POC_DEFAULT_PORT = 8002

PROCESS_LAUNCHERS = {
    SERVER: "nvflare.app_common.job_launcher.server_process_launcher.ServerProcessJobLauncher",
    "client": "nvflare.app_common.job_launcher.client_process_launcher.ClientProcessJobLauncher",
}
K8S_LAUNCHERS = {
    SERVER: "kubectl_launcher.ServerK8sJobLauncher",
    "client": "kubectl_launcher.ClientK8sJobLauncher",
}
#: Component ids a site may carry for its job launcher; exactly one must remain after we rewrite.
LAUNCHER_IDS = ("process_launcher", "docker_launcher", "k8s_launcher")


class DeploymentError(RuntimeError):
    """The POC deployment could not be prepared, started or stopped as asked."""


@dataclass(frozen=True)
class Completed:
    """How a command that ran to its end through :func:`run_bounded` ended, and what it printed."""

    returncode: int  # negative: the signal that ended it
    stdout: str
    stderr: str


def sh_log_context(name: str) -> Callable[..., str]:
    """How sh's own log lines name a process we start: ``name`` and its pid, never its argv."""

    def log_msg(cmd: Any, call_args: Any, pid: int | None = None) -> str:
        return f"{name} pid {pid}" if pid else name

    return log_msg


def run_bounded(argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, timeout: float) -> Completed | None:
    """Run ``argv`` to its end through sh, stdout and stderr captured; None when ``timeout`` passed.

    As ``subprocess.run`` did: stdin is /dev/null, the child stays in our process group, and it is killed
    (SIGKILL) when the timeout passes or anything, Ctrl-C included, interrupts the wait.
    """
    command = sh.Command(argv[0], search_paths=env.get("PATH", os.defpath).split(os.pathsep))
    running: Any = None
    with open(os.devnull, "rb") as devnull:
        try:
            running = command(
                *argv[1:],
                _in=devnull,
                _env=dict(env),
                _cwd=str(cwd),
                _tty_in=False,
                _tty_out=False,
                _ok_code=list(range(256)),
                _timeout=timeout,
                _bg=True,
                _bg_exc=False,
                _log_msg=sh_log_context(Path(argv[0]).name),
            )
            try:
                running.wait()
            except sh.TimeoutException:
                return None  # sh killed it
            except sh.ErrorReturnCode:
                pass  # ended by a signal: the exit code says which
        except BaseException:
            if running is not None:
                try:
                    running.process.kill()
                except ProcessLookupError:
                    pass
            raise
    process = running.process
    return Completed(
        returncode=process.exit_code,
        stdout=process.stdout.decode("utf-8", "replace"),
        stderr=process.stderr.decode("utf-8", "replace"),
    )


@dataclass(frozen=True)
class K8sLauncherSettings:
    """What goes into each site's ``k8s_launcher`` component args (upstream's names plus our own)."""

    kubeconfig: str | None
    namespace: str = "default"
    default_python_path: str = "/usr/local/bin/python3"
    pending_timeout: int | None = 30
    extra_args: Mapping[str, Any] = field(default_factory=dict)

    def component(self, site: str) -> dict[str, Any]:
        args: dict[str, Any] = {
            "config_file_path": self.kubeconfig,
            "namespace": self.namespace,
            "default_python_path": self.default_python_path,
            "pending_timeout": self.pending_timeout,
        }
        args.update(self.extra_args)
        return {"id": "k8s_launcher", "path": K8S_LAUNCHERS[_role(site)], "args": args}


#: Node capacity the demo and e2e give the API double: three job pods each ask for upstream's 1Gi
#: of ephemeral storage, which the double's default node does not list.
DOUBLE_CAPACITY = {"cpu": "4", "memory": "16Gi", "ephemeral-storage": "20Gi"}


def _role(site: str) -> str:
    return SERVER if site == SERVER else "client"


def free_port() -> int:
    """A TCP port nothing listens on right now (the server binds 0.0.0.0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("0.0.0.0", 0))
        return int(sock.getsockname()[1])


class PocDeployment:
    """Server + 2 clients under ``root``: HOME and NVFLARE_POC_WORKSPACE point inside it.

    Parents are started directly with ``startup/sub_start.sh --once`` (no restart loop) in their own
    session, so that stopping kills each whole process group and nothing outlives :meth:`stop`.
    """

    def __init__(self, root: Path, *, python: str = sys.executable, port: int | None = None) -> None:
        self.root = root.resolve()
        self.python = python
        self.bin_dir = Path(python).parent
        self.home = self.root / "home"
        self.poc_workspace = self.root / "poc"
        self.prod_dir = self.poc_workspace / PROJECT / "prod_00"
        self.port = port or free_port()
        self._parents: dict[str, Any] = {}  # site -> sh's RunningCommand of its parent
        self._log_offsets: dict[str, int] = {}

    # ----------------------------------------------------------------- paths and environment
    def site_dir(self, site: str) -> Path:
        return self.prod_dir / site

    @property
    def admin_dir(self) -> Path:
        return self.prod_dir / ADMIN

    @property
    def jobs_storage(self) -> Path:
        return self.poc_workspace / "jobs-storage"

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of every NVFlare command and parent: nothing leaks to ~/.nvflare or /tmp/nvflare."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NVFLARE_", "NVFL_"))}
        env["HOME"] = str(self.home)
        env["NVFLARE_POC_WORKSPACE"] = str(self.poc_workspace)
        # sub_start.sh runs a bare `python3`; it must be this venv's, which also has kubectl_launcher.
        env["PATH"] = os.pathsep.join([str(self.bin_dir), env.get("PATH", "/usr/bin:/bin")])
        env["VIRTUAL_ENV"] = str(self.bin_dir.parent)
        env.pop("PYTHONHOME", None)
        env.update(extra or {})
        return env

    def nvflare(self, *args: str, timeout: float, check: bool = True) -> Completed:
        """Run the ``nvflare`` CLI of this venv, bounded by ``timeout``."""
        argv = [str(self.bin_dir / "nvflare"), *args]
        done = run_bounded(argv, env=self.env(), cwd=self.root, timeout=timeout)
        if done is None:
            raise DeploymentError(f"`nvflare {' '.join(args)}` did not finish within {timeout:.0f} s")
        if check and done.returncode != 0:
            tail = (done.stderr or done.stdout).strip()[-800:]
            raise DeploymentError(f"`nvflare {' '.join(args)}` failed (exit {done.returncode}): {tail}")
        return done

    # ----------------------------------------------------------------- prepare and configure
    def prepare(self) -> None:
        """``nvflare poc prepare -n 2 --force`` under root, then move the FL/admin port to ``self.port``."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.nvflare("poc", "prepare", "-n", str(len(CLIENTS)), "--force", timeout=120)
        for site in SITES:
            if not (self.site_dir(site) / "startup").is_dir():
                raise DeploymentError(f"nvflare poc prepare did not create {self.site_dir(site)}")
        self._move_port()

    def _move_port(self) -> None:
        # Certificates name hosts, not ports, so the port can change after provisioning.
        startup_files = [self.site_dir(SERVER) / "startup" / "fed_server.json"]
        startup_files += [self.site_dir(c) / "startup" / "fed_client.json" for c in CLIENTS]
        startup_files += sorted(self.prod_dir.glob("*@*/startup/fed_admin.json"))
        pattern = re.compile(rf"(?<![0-9]){POC_DEFAULT_PORT}(?![0-9])")
        for path in startup_files:
            text = path.read_text()
            path.write_text(pattern.sub(str(self.port), text))

    def _resources(self, site: str) -> tuple[Path, dict[str, Any]]:
        local = self.site_dir(site) / "local"
        source = local / "resources.json"
        if not source.is_file():
            source = local / "resources.json.default"
        return local / "resources.json", json.loads(source.read_text())

    def set_launcher(self, site: str, component: Mapping[str, Any]) -> None:
        """Rewrite the site's local/resources.json so that ``component`` is its one and only job launcher."""
        target, resources = self._resources(site)
        components = [c for c in resources.get("components", []) if c.get("id") not in LAUNCHER_IDS]
        components.append(dict(component))
        resources["components"] = components
        target.write_text(json.dumps(resources, indent=2) + "\n")

    def use_process_launcher(self) -> None:
        for site in SITES:
            self.set_launcher(site, {"id": "process_launcher", "path": PROCESS_LAUNCHERS[_role(site)], "args": {}})

    def use_k8s_launcher(self, settings: K8sLauncherSettings) -> None:
        for site in SITES:
            self.set_launcher(site, settings.component(site))

    def launcher_path(self, site: str) -> str:
        _, resources = self._resources(site)
        paths = [str(c.get("path")) for c in resources.get("components", []) if c.get("id") in LAUNCHER_IDS]
        if len(paths) != 1:
            raise DeploymentError(f"{site}: expected exactly one job launcher in resources.json, found {paths}")
        return paths[0]

    def set_internal_listener(self, host: str, port: int, site: str) -> None:
        """Pin the parent's internal CellNet listener (the ``-p`` URL job pods call back to) via comm_config.json.

        On the API double pods share the host network, so the POC default (127.0.0.1, ephemeral port)
        works. On a real cluster ``host`` must be an address the job pods can reach (a Service or node IP).
        """
        path = self.site_dir(site) / "local" / "comm_config.json"
        config: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
        config["internal"] = {
            "scheme": "tcp",
            "resources": {"host": host, "port": port, "connection_security": "clear"},
        }
        path.write_text(json.dumps(config, indent=2) + "\n")

    # ----------------------------------------------------------------- start and stop
    def start(self, *, timeout: float = 90.0, log: Any = None) -> float:
        """Start the three parents and wait until both clients are registered; returns the seconds it took."""
        started = time.monotonic()
        # A restart appends to the same log.txt: only registrations after this point count.
        self._log_offsets = {c: _size(self.site_dir(c) / "log.txt") for c in CLIENTS}
        env = self.env()
        bash = sh.Command("bash", search_paths=env.get("PATH", os.defpath).split(os.pathsep))
        for site in SITES:
            site_dir = self.site_dir(site)
            with (site_dir / "poc_console.log").open("ab") as console, open(os.devnull, "rb") as devnull:
                # sh hands the child its own copies of both descriptors.
                self._parents[site] = bash(
                    str(site_dir / "startup" / "sub_start.sh"),
                    "--once",
                    _cwd=str(site_dir),
                    _env=dict(env),
                    _in=devnull,
                    _out=console,
                    _err_to_out=True,
                    _tty_in=False,
                    _tty_out=False,
                    _ok_code=list(range(256)),
                    _bg=True,
                    _bg_exc=False,
                    _new_session=True,
                    _log_msg=sh_log_context(f"{site} parent"),
                )
        deadline = started + timeout
        pending = set(CLIENTS)
        while pending:
            for site, proc in self._parents.items():
                alive, returncode = proc.process.is_alive()
                if not alive:
                    raise DeploymentError(
                        f"the {site} parent exited (code {returncode}) while starting; "
                        f"see {self.site_dir(site) / 'poc_console.log'}"
                    )
            pending = {c for c in pending if not self.client_registered(c)}
            if not pending:
                break
            if time.monotonic() > deadline:
                raise DeploymentError(
                    f"clients {sorted(pending)} did not register with the server within {timeout:.0f} s; "
                    f"see {self.site_dir(SERVER) / 'log.txt'}"
                )
            time.sleep(0.5)
        return time.monotonic() - started

    def client_registered(self, client: str) -> bool:
        log = self.site_dir(client) / "log.txt"
        try:
            with log.open("r", errors="replace") as fh:
                fh.seek(self._log_offsets.get(client, 0))
                text = fh.read()
        except FileNotFoundError:
            return False
        return "Successfully registered client" in text or "register successfully" in text.lower()

    def stop(self, *, grace: float = 8.0) -> list[int]:
        """Stop every process of this deployment; returns the pids that had to be killed with SIGKILL.

        Each parent leads its own process group. Job processes of NVFlare's process launcher start
        their own sessions, so a final sweep also ends any process that carries this deployment's
        NVFLARE_POC_WORKSPACE (only ever processes this deployment started).
        """
        for proc in self._parents.values():
            _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self._parents.values():
            _wait(proc, max(0.1, deadline - time.monotonic()))
        killed: list[int] = []
        for proc in self._parents.values():
            if _signal_group(proc.pid, signal.SIGKILL):
                killed.append(proc.pid)
            _wait(proc, 5)
        self._parents.clear()
        for pid in self.leftover_processes():
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        return killed

    def leftover_processes(self) -> list[int]:
        """Pids of live processes this deployment started (directly or through its parents)."""
        return list(processes_under(f"NVFLARE_POC_WORKSPACE={self.poc_workspace}"))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _wait(proc: Any, timeout: float) -> None:
    """Wait up to ``timeout`` seconds for a parent (sh's RunningCommand) to end, however it ends."""
    try:
        proc.wait(timeout=timeout)
    except (sh.TimeoutException, sh.ErrorReturnCode):
        pass


def _signal_group(pgid: int, sig: signal.Signals) -> bool:
    # By the pid, not sh's signal_group: sh reaps the leader, and its group may outlive it.
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def processes_under(marker_env: str, *, exclude: Sequence[int] = ()) -> Iterator[int]:
    """Live pids (not zombies, not us) whose environment holds ``marker_env`` (``NAME=value``).

    The deployment gives every process it starts a unique NVFLARE_POC_WORKSPACE, which children
    inherit; matching on it finds exactly our processes, never a user's shell that happens to sit
    in the folder.
    """
    needle = marker_env.encode()
    skip = {os.getpid(), *exclude}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in skip:
            continue
        try:
            stat = (entry / "stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] == "Z":
                continue
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError):
            continue
        if needle in environ:
            yield int(entry.name)
