"""A launch's plan (pure): job meta, the parent's context and the launcher's settings → every object it creates.

`plan_launch` validates in upstream's order and with upstream's error texts, so a job that upstream
refuses is refused here with the same words, before anything exists in the cluster. What it has to
read from the site (study files, the startup kit's folder, the subclass's module args) comes in
through `PlanSources`; this module itself reads nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from nvflare.apis.fl_constant import FLContextKey, JobConstants
from nvflare.apis.job_def import JobMetaKey
from nvflare.apis.job_launcher_spec import JobProcessArgs
from nvflare.utils.job_launcher_utils import get_credential_env, get_job_launcher_spec, get_portable_resource_spec

from kubectl_launcher.domain import validate
from kubectl_launcher.domain.names import (
    LAUNCHER_DIR,
    credential_secret_name,
    job_pod_name,
    managed_labels,
    site_name_to_rfc1123,
    uuid4_to_rfc1123,
)
from kubectl_launcher.domain.nvflare_args import path_flags, path_in_pod, pod_resources, pod_volumes, translate_paths

__all__ = [
    "MANIFEST_FILE",
    "LaunchPlan",
    "PlanContext",
    "PlanDefaults",
    "PlanSources",
    "normalize_pending_timeout",
    "plan_launch",
]

#: The job pod's manifest, as applied, in the job's own folder (names.LAUNCHER_DIR, Contract 3).
MANIFEST_FILE = "manifest.json"
NVFLARE_JOB_ID_ANNOTATION = "kubectl-launcher/nvflare-job-id"
SITE_ANNOTATION = "kubectl-launcher/nvflare-site"


@dataclass(frozen=True)
class LaunchPlan:
    """Everything a launch will create, decided before anything is created."""

    site_name: str
    raw_job_id: str
    job_id: str
    pod_name: str
    workspace_root: str
    job_dir: str
    job_config: Mapping[str, Any]
    python_path: str
    pending_timeout: float | None
    labels: Mapping[str, str]
    startup_secret_name: str
    startup_files: Mapping[str, str]
    credential_secret_name: str
    credential_env: Mapping[str, str] = field(repr=False)

    @property
    def manifest_path(self) -> str:
        return os.path.join(self.job_dir, MANIFEST_FILE)


@dataclass(frozen=True)
class PlanDefaults:
    """The launcher's settings a plan starts from; a job's launcher_spec may override some of them."""

    pending_timeout: float | None
    ephemeral_storage: str
    python_path: str
    workspace_mount_path: str
    working_dir: str
    image_pull_secrets: Sequence[str] = ()
    security_context: Mapping[str, Any] | None = None
    container_security_context: Mapping[str, Any] | None = None


class WorkspacePaths(Protocol):
    """The part of nvflare's Workspace a plan uses: where a job's folders are in the parent."""

    def get_app_custom_dir(self, job_id: str) -> str: ...

    def get_run_dir(self, job_id: str) -> str: ...

    def get_startup_kit_dir(self) -> str: ...


@dataclass(frozen=True)
class PlanContext:
    """What the parent's FLContext holds for a launch (None where the context lacks it)."""

    site_name: str
    workspace: WorkspacePaths | None
    args: Any  # the parent's argparse namespace: .workspace, .set
    job_args: Mapping[str, Any] | None  # JOB_PROCESS_ARGS


class PlanSources(Protocol):
    """What a plan reads from the site, asked for only at the point upstream reads it."""

    def study_runtime(self, workspace_root: str, study: Any) -> Any:
        """nvflare's StudyRuntime for the study, or None when the site has no study_runtime.yaml."""
        ...

    def study_data_mounts(self, study: Any) -> list[Any]:
        """The legacy study_data.yaml's dataset mounts for the study ([] when it has none)."""
        ...

    def module_args(self, job_id: str) -> dict[str, Any]:
        """``{flag: value}`` the job module gets, as the parent's paths."""
        ...

    def startup_files(self, startup_dir: str) -> Mapping[str, str]:
        """``{file name: path}`` of the startup kit files the job pod reads."""
        ...


def normalize_pending_timeout(value: object, field_name: str = "pending_timeout") -> float | int | None:
    """None, or a non-negative number of seconds; anything else is a ValueError (upstream's text).

    The one definition of the rule: the plan applies it to a job's launcher_spec (or the launcher's
    default); the launcher's and the handle's constructors check their own argument with it.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{field_name} must be a non-negative number of seconds or None")
    return value


def _k8s_field(site_name: str, key: str) -> str:
    return f"launcher_spec['{site_name}']['k8s']['{key}']"


def _check_quantities(site_name: str, k8s_spec: Mapping[str, Any], portable: Mapping[str, Any]) -> None:
    for key in ("cpu", "memory", "cpu_request", "memory_request"):
        if k8s_spec.get(key):
            validate.quantity(k8s_spec[key], _k8s_field(site_name, key))
    for key in ("num_of_cpus", "memory"):
        if key in portable:
            validate.quantity(portable[key], f"resource_spec['{site_name}']['{key}']")


def plan_launch(
    job_meta: Mapping[str, Any], context: PlanContext, defaults: PlanDefaults, sources: PlanSources
) -> LaunchPlan:
    """Validate job meta and context and decide every object of the launch; raises before any change."""
    site_name = context.site_name
    raw_job_id = job_meta.get(JobConstants.JOB_ID)
    if not raw_job_id:
        raise RuntimeError(f"missing {JobConstants.JOB_ID} in job_meta")
    job_id = uuid4_to_rfc1123(raw_job_id)
    pod_name = validate.pod_name(job_pod_name(job_id, site_name), raw_job_id)
    workspace_obj = context.workspace
    if workspace_obj is None:
        raise RuntimeError(f"missing {FLContextKey.WORKSPACE_OBJECT} in FLContext")
    app_custom_folder = workspace_obj.get_app_custom_dir(raw_job_id)
    args = context.args
    if args is None:
        raise RuntimeError(f"missing {FLContextKey.ARGS} in FLContext")
    workspace_root = args.workspace
    mount_path = defaults.workspace_mount_path

    k8s_spec = get_job_launcher_spec(job_meta, site_name, "k8s")
    portable_spec = get_portable_resource_spec(job_meta, site_name)
    pending_timeout = k8s_spec["pending_timeout"] if "pending_timeout" in k8s_spec else defaults.pending_timeout
    try:
        pending_timeout = normalize_pending_timeout(pending_timeout, _k8s_field(site_name, "pending_timeout"))
    except ValueError as e:
        raise RuntimeError(str(e)) from e
    image = k8s_spec.get("image")
    ephemeral = k8s_spec.get("ephemeral_storage")
    if ephemeral is None:
        ephemeral = defaults.ephemeral_storage
    if not isinstance(ephemeral, str) or not ephemeral:
        raise RuntimeError(f"{_k8s_field(site_name, 'ephemeral_storage')} must be a non-empty string")
    validate.quantity(ephemeral, _k8s_field(site_name, "ephemeral_storage"))
    study = job_meta.get(JobMetaKey.STUDY.value)
    runtime = sources.study_runtime(workspace_root, study)
    if not image and runtime is not None:
        image = runtime.container_image
    if not image:
        raise RuntimeError(
            f"K8sJobLauncher is configured for site '{site_name}' but no job image "
            f"was specified in meta.json for this site. "
            f"Set launcher_spec['{site_name}']['k8s']['image'] (preferred), "
            f"launcher_spec['default']['k8s']['image'] (shared default), "
            f"resource_spec['{site_name}']['k8s']['image'] (legacy), "
            f"or studies.<study>.container.image in local/study_runtime.yaml (site default)."
        )
    validate.image(image, f"the job image ({_k8s_field(site_name, 'image')} or its fallbacks)")
    data_mounts = list(runtime.datasets) if runtime is not None else sources.study_data_mounts(study)
    gpu_field = _k8s_field(site_name, "num_of_gpus") if "num_of_gpus" in k8s_spec else "resource_spec num_of_gpus"
    gpus = validate.gpu_count(k8s_spec.get("num_of_gpus", portable_spec.get("num_of_gpus", 0)), gpu_field)
    _check_quantities(site_name, k8s_spec, portable_spec)

    job_args = context.job_args
    if not job_args:
        raise RuntimeError(f"missing {FLContextKey.JOB_PROCESS_ARGS} in FLContext")
    exe_module = job_args.get(JobProcessArgs.EXE_MODULE)
    if not exe_module:
        raise RuntimeError(f"missing {JobProcessArgs.EXE_MODULE} in {FLContextKey.JOB_PROCESS_ARGS}")
    env: dict[str, Any] = dict(runtime.env) if runtime is not None else {}
    if app_custom_folder:
        in_pod = path_in_pod(app_custom_folder, workspace_root, mount_path)
        if in_pod is None:
            raise RuntimeError(f"custom folder {app_custom_folder} is not under workspace {workspace_root}")
        env["PYTHONPATH"] = in_pod
    python_path = k8s_spec.get("python_path", defaults.python_path)
    if not isinstance(python_path, str) or not python_path:
        raise RuntimeError(f"{_k8s_field(site_name, 'python_path')} must be a non-empty string")

    startup_secret = f"nvflare-startup-{site_name_to_rfc1123(site_name)}"
    credential_secret = credential_secret_name(pod_name)
    credential_env = get_credential_env(job_args)
    volumes, mounts = pod_volumes(
        mount_path, ephemeral, startup_secret, data_mounts, runtime.secret_mounts if runtime is not None else ()
    )
    args_in_pod = translate_paths(sources.module_args(job_id), path_flags(job_args), workspace_root, mount_path)
    labels = managed_labels(site_name, raw_job_id)
    job_config: dict[str, Any] = {
        "name": pod_name,
        "image": image,
        "container_name": f"container-{job_id}",
        "command": exe_module[1],
        "volume_mount_list": mounts,
        "volume_list": volumes,
        "module_args": args_in_pod,
        "env": env,
        "resources": pod_resources(k8s_spec, portable_spec, ephemeral, gpus),
        "labels": labels,
        "annotations": {NVFLARE_JOB_ID_ANNOTATION: str(raw_job_id), SITE_ANNOTATION: site_name},
        "working_dir": defaults.working_dir,
    }
    secret_env = [{"name": name, "source": credential_secret, "key": name} for name in credential_env]
    if runtime is not None:
        secret_env += [{"name": ref.name, "source": ref.source, "key": ref.key} for ref in runtime.secret_env]
    if secret_env:
        job_config["secret_env"] = secret_env
    if defaults.image_pull_secrets:
        job_config["image_pull_secrets"] = defaults.image_pull_secrets
    if getattr(args, "set", None) is not None:
        job_config["set_list"] = args.set
    if validate.security_context(defaults.security_context, "the launcher's security_context argument"):
        job_config["security_context"] = defaults.security_context
    where = "the launcher's container_security_context argument"
    if validate.container_security_context(defaults.container_security_context, where):
        job_config["container_security_context"] = defaults.container_security_context
    return LaunchPlan(
        site_name=site_name,
        raw_job_id=raw_job_id,
        job_id=job_id,
        pod_name=pod_name,
        workspace_root=workspace_root,
        job_dir=validate.path_length(
            os.path.join(workspace_obj.get_run_dir(raw_job_id), LAUNCHER_DIR), f"the job folder of job {raw_job_id!r}"
        ),
        job_config=job_config,
        python_path=python_path,
        pending_timeout=pending_timeout,
        labels=labels,
        startup_secret_name=startup_secret,
        startup_files=sources.startup_files(workspace_obj.get_startup_kit_dir()),
        credential_secret_name=credential_secret,
        credential_env=credential_env,
    )
