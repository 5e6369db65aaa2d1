"""A site's launcher as its resources.json configures it, and the launch it would make of a job, offline.

`render` and `doctor` both use this: the launcher is built from the site's own arguments (its
constructor's checks name the field), and a launch is planned with the launcher's own `plan()` and the
handle's own manifest code, so what is shown is what `launch_job` applies. Nothing here reaches the
cluster. The values the parent process only knows at launch time (its cell's URLs, the job's tokens)
are placeholders; tokens only ever land in the credential Secret, whose data is shown redacted.
"""

from __future__ import annotations

import json
import os
from argparse import Namespace
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nvflare.apis.fl_constant import FLContextKey, ReservedKey, WorkspaceConstants
from nvflare.apis.fl_context import FLContext
from nvflare.apis.job_launcher_spec import JobProcessArgs
from nvflare.apis.workspace import Workspace

from kubectl_launcher.domain.manifest import build_secret_manifest
from kubectl_launcher.domain.names import JOB_LABEL
from kubectl_launcher.domain.plan import LaunchPlan
from kubectl_launcher.errors import ConfigError
from kubectl_launcher.handle import K8sJobHandle
from kubectl_launcher.launcher import ClientK8sJobLauncher, K8sJobLauncher, ServerK8sJobLauncher

LAUNCHER_PATHS: Mapping[str, type[K8sJobLauncher]] = {
    "kubectl_launcher.ClientK8sJobLauncher": ClientK8sJobLauncher,
    "kubectl_launcher.launcher.ClientK8sJobLauncher": ClientK8sJobLauncher,
    "kubectl_launcher.ServerK8sJobLauncher": ServerK8sJobLauncher,
    "kubectl_launcher.launcher.ServerK8sJobLauncher": ServerK8sJobLauncher,
}
#: The job id shown when neither meta.json nor --job-id gives one (NVFlare assigns it at submission).
PLACEHOLDER_JOB_ID = "00000000-0000-4000-8000-000000000000"
#: Where the site's workspace is assumed to be when none is given (it only shows in translated paths).
PLACEHOLDER_WORKSPACE = "/var/tmp/nvflare/site"
REDACTED = "<redacted>"
CLIENT_MODULE = "nvflare.private.fed.app.client.worker_process"
SERVER_MODULE = "nvflare.private.fed.app.server.runner_process"


@dataclass(frozen=True)
class SiteSettings:
    """The launcher component of a site: its class and arguments, and where they were read."""

    launcher_class: type[K8sJobLauncher]
    args: Mapping[str, Any]
    source: str  # the resources.json path, or "defaults"

    @property
    def is_server(self) -> bool:
        return issubclass(self.launcher_class, ServerK8sJobLauncher)


def default_settings(*, server: bool = False, namespace: str | None = None) -> SiteSettings:
    args: dict[str, Any] = {"config_file_path": None}
    if namespace is not None:
        args["namespace"] = namespace
    return SiteSettings(ServerK8sJobLauncher if server else ClientK8sJobLauncher, args, "defaults")


def read_json(path: str) -> Any:
    """A JSON file's content; ConfigError naming the file when it cannot be read or parsed."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"{path} is not JSON: {exc}") from None


def read_resources(path: str) -> SiteSettings:
    """The kubectl-launcher component of a resources.json; ConfigError naming what is wrong."""
    doc = read_json(path)
    components = doc.get("components") if isinstance(doc, dict) else None
    if not isinstance(components, list):
        raise ConfigError(f"{path} has no 'components' list")
    found = [c for c in components if isinstance(c, dict) and c.get("path") in LAUNCHER_PATHS]
    if not found:
        known = ", ".join(sorted({p for p in LAUNCHER_PATHS if p.count(".") == 1}))
        raise ConfigError(f"{path}: no component with path {known}; see README, 'Using it at a site'")
    if len(found) > 1:
        ids = ", ".join(str(c.get("id")) for c in found)
        raise ConfigError(f"{path}: {len(found)} kubectl-launcher components ({ids}); a site has exactly one launcher")
    component = found[0]
    args = component.get("args", {})
    if not isinstance(args, dict):
        raise ConfigError(f"{path}: components[id={component.get('id')!r}].args must be an object")
    return SiteSettings(LAUNCHER_PATHS[component["path"]], args, path)


def make_launcher(settings: SiteSettings) -> K8sJobLauncher:
    """The launcher the site would construct; its own checks, with the field named, as ConfigError."""
    where = f"{settings.source}: " if settings.source != "defaults" else ""
    args = dict(settings.args)
    args.setdefault("config_file_path", None)
    try:
        return settings.launcher_class(**args)
    except TypeError as exc:  # an argument the launcher does not have
        raise ConfigError(f"{where}launcher args: {exc}".replace("__init__() ", "")) from None
    except (ValueError, ConfigError) as exc:
        raise ConfigError(f"{where}launcher args: {exc}") from None


@dataclass(frozen=True)
class RenderedLaunch:
    plan: LaunchPlan
    pod: dict[str, Any]
    secrets: list[dict[str, Any]]  # data redacted

    def objects(self) -> list[dict[str, Any]]:
        """In the order of the launch's one server-side apply: startup-kit Secret, job's Secret, pod."""
        return [*self.secrets, self.pod]


class _Paths:
    """NVFlare's workspace layout, for a site whose workspace is not on this machine."""

    def __init__(self, root: str, site: str) -> None:
        self.root, self.site = root, site

    def get_run_dir(self, job_id: str) -> str:
        return os.path.join(self.root, WorkspaceConstants.WORKSPACE_PREFIX + job_id)

    def get_app_custom_dir(self, job_id: str) -> str:
        app = os.path.join(self.get_run_dir(job_id), WorkspaceConstants.APP_PREFIX + self.site)
        return os.path.join(app, WorkspaceConstants.CUSTOM_FOLDER_NAME)

    def get_startup_kit_dir(self) -> str:
        return os.path.join(self.root, WorkspaceConstants.STARTUP_FOLDER_NAME)


def _workspace(root: str, site: str) -> Any:
    try:
        return Workspace(root, site)
    except (ValueError, RuntimeError):  # not a real site workspace here: its layout is enough
        return _Paths(root, site)


def job_process_args(
    *, server: bool, site: str, job_id: str, workspace: Any, root: str, exe_module: str | None = None
) -> dict[str, tuple[str, str]]:
    """JOB_PROCESS_ARGS as NVFlare's client executor / server engine builds them, with placeholders for
    what only the running parent knows (its URLs, the job's tokens)."""
    credentials = {
        JobProcessArgs.AUTH_TOKEN: ("-t", REDACTED),
        JobProcessArgs.TOKEN_SIGNATURE: ("-ts", REDACTED),
    }
    if server:
        return {
            JobProcessArgs.JOB_ID: ("-n", job_id),
            JobProcessArgs.EXE_MODULE: ("-m", exe_module or SERVER_MODULE),
            JobProcessArgs.WORKSPACE: ("-m", root),
            JobProcessArgs.STARTUP_CONFIG_FILE: ("-s", "fed_server.json"),
            JobProcessArgs.APP_ROOT: ("-r", os.path.join(workspace.get_run_dir(job_id), "app_server")),
            **credentials,
            JobProcessArgs.PARENT_URL: ("-p", "<parent-url>"),
            JobProcessArgs.ROOT_URL: ("-u", "<root-url>"),
            JobProcessArgs.SERVICE_HOST: ("--host", "<service-host>"),
            JobProcessArgs.SERVICE_PORT: ("--port", "<service-port>"),
            JobProcessArgs.SSID: ("--ssid", REDACTED),
        }
    return {
        JobProcessArgs.EXE_MODULE: ("-m", exe_module or CLIENT_MODULE),
        JobProcessArgs.JOB_ID: ("-n", job_id),
        JobProcessArgs.CLIENT_NAME: ("-c", site),
        **credentials,
        JobProcessArgs.SSID: ("-d", REDACTED),
        JobProcessArgs.WORKSPACE: ("-m", root),
        JobProcessArgs.STARTUP_DIR: ("-w", workspace.get_startup_kit_dir()),
        JobProcessArgs.PARENT_URL: ("-p", "<parent-url>"),
        JobProcessArgs.SCHEME: ("-scheme", "grpc"),
        JobProcessArgs.TARGET: ("-g", "<server-target>"),
        JobProcessArgs.STARTUP_CONFIG_FILE: ("-s", "fed_client.json"),
    }


def fl_context(site: str, workspace: Any, root: str, job_args: Mapping[str, Any], set_list: Sequence[str]) -> FLContext:
    ctx = FLContext()
    ctx.set_prop(ReservedKey.IDENTITY_NAME, site, private=False, sticky=False)
    for key, value in {
        FLContextKey.WORKSPACE_OBJECT: workspace,
        FLContextKey.ARGS: Namespace(workspace=root, set=list(set_list) or None),
        FLContextKey.JOB_PROCESS_ARGS: dict(job_args),
    }.items():
        ctx.set_prop(key, value, private=True, sticky=False)
    return ctx


def _redacted_secret(name: str, namespace: str, keys: Sequence[str], labels: Mapping[str, str]) -> dict[str, Any]:
    secret = build_secret_manifest(name, namespace, {}, labels)
    secret["data"] = dict.fromkeys(keys, REDACTED)
    return secret


def render_launch(
    launcher: K8sJobLauncher,
    job_meta: Mapping[str, Any],
    *,
    site: str,
    server: bool,
    site_workspace: str | None = None,
    set_list: Sequence[str] = (),
    exe_module: str | None = None,
) -> RenderedLaunch:
    """What `launcher.launch_job(job_meta, ...)` would apply at `site`; plan errors (RuntimeError,
    ValueError) name the field, as the launch would."""
    root = os.path.abspath(site_workspace) if site_workspace else PLACEHOLDER_WORKSPACE
    workspace = _workspace(root, site)
    job_id = str(job_meta.get("job_id") or PLACEHOLDER_JOB_ID)
    meta = {**job_meta, "job_id": job_id}
    job_args = job_process_args(
        server=server, site=site, job_id=job_id, workspace=workspace, root=root, exe_module=exe_module
    )
    plan = launcher.plan(meta, fl_context(site, workspace, root, job_args, set_list))
    # The same construction Launch.run does before it writes manifest.json (no kubectl: manifest only).
    handle = K8sJobHandle(
        plan.job_id,
        None,
        dict(plan.job_config),
        namespace=launcher.namespace,
        pending_timeout=plan.pending_timeout,
        python_path=plan.python_path,
        workspace_transfer=launcher.make_workspace_transfer(plan),
        pod_name=plan.pod_name,
        credential_secret_name=plan.credential_secret_name,
    )
    site_labels = {k: v for k, v in plan.labels.items() if k != JOB_LABEL}
    secrets = [
        _redacted_secret(plan.startup_secret_name, launcher.namespace, list(plan.startup_files), site_labels),
        _redacted_secret(plan.credential_secret_name, launcher.namespace, list(plan.credential_env), plan.labels),
    ]
    return RenderedLaunch(plan, handle.get_manifest(), secrets)
