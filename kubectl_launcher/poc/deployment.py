"""An NVFlare POC deployment (server + 2 clients) kept entirely under one folder: prepare, configure, start, stop."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
        self._parents: dict[str, subprocess.Popen[bytes]] = {}
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

    def nvflare(self, *args: str, timeout: float, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the ``nvflare`` CLI of this venv, bounded by ``timeout``."""
        argv = [str(self.bin_dir / "nvflare"), *args]
        try:
            done = subprocess.run(
                argv,
                env=self.env(),
                cwd=self.root,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise DeploymentError(f"`nvflare {' '.join(args)}` did not finish within {timeout:.0f} s") from exc
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
        for site in SITES:
            site_dir = self.site_dir(site)
            console = (site_dir / "poc_console.log").open("ab")
            try:
                self._parents[site] = subprocess.Popen(
                    ["bash", str(site_dir / "startup" / "sub_start.sh"), "--once"],
                    cwd=site_dir,
                    env=self.env(),
                    stdin=subprocess.DEVNULL,
                    stdout=console,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            finally:
                console.close()
        deadline = started + timeout
        pending = set(CLIENTS)
        while pending:
            for site, proc in self._parents.items():
                if proc.poll() is not None:
                    raise DeploymentError(
                        f"the {site} parent exited (code {proc.returncode}) while starting; "
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

    def parent_pids(self) -> dict[str, int]:
        return {site: proc.pid for site, proc in self._parents.items()}

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
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        killed: list[int] = []
        for proc in self._parents.values():
            if _signal_group(proc.pid, signal.SIGKILL):
                killed.append(proc.pid)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
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


def _signal_group(pgid: int, sig: signal.Signals) -> bool:
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
