"""The NVFlare job launcher component: `launch_job` turns job meta into a plan, then runs it through kubectl."""

from __future__ import annotations

import logging
import os
import shlex
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nvflare.apis.event_type import EventType
from nvflare.apis.fl_constant import FLContextKey, JobConstants
from nvflare.apis.fl_context import FLContext
from nvflare.apis.job_def import JobMetaKey
from nvflare.apis.job_launcher_spec import JobLauncherSpec, JobProcessArgs, JobReturnCode, add_launcher
from nvflare.app_opt.job_launcher.study_data import (
    load_study_data_file,
    resolve_study_dataset_mounts,
    should_mount_study_data,
)
from nvflare.app_opt.job_launcher.study_runtime import (
    load_study_runtime_file,
    resolve_study_runtime,
    study_runtime_file_path,
)
from nvflare.utils.job_launcher_utils import (
    get_client_job_args,
    get_credential_env,
    get_job_launcher_spec,
    get_portable_resource_spec,
    get_server_job_args,
)

from . import commands
from .errors import ConfigError, KubectlAlreadyExists, KubectlError, KubectlNotFound, ProtocolError
from .handle import K8sJobHandle, normalize_pending_timeout
from .journal import Journal
from .kubectl import Kubectl, StdinRecord
from .manifest import build_secret_manifest, normalize_image_pull_secrets, owner_reference, to_json
from .names import (
    JOB_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    credential_secret_name,
    job_pod_name,
    managed_labels,
    site_name_to_rfc1123,
    uuid4_to_rfc1123,
)
from .nvflare_args import module_args, path_flags, path_in_pod, pod_resources, pod_volumes, translate_paths
from .pod_status import JobState
from .transfer import TransferSettings, WorkspaceTransfer

__all__ = ["ClientK8sJobLauncher", "K8sJobLauncher", "ServerK8sJobLauncher"]

DEFAULT_NAMESPACE = "default"
DEFAULT_PENDING_TIMEOUT = 120
DEFAULT_PYTHON_PATH = "/usr/local/bin/python"
WORKSPACE_MOUNT_PATH = "/var/tmp/nvflare/workspace"
DEFAULT_EPHEMERAL_STORAGE = "1Gi"
#: Our folder in the site workspace and in each job's folder (Contract 3).
LAUNCHER_DIR = "kubectl-launcher"
MANIFEST_FILE = "manifest.json"
# What the job pod reads from startup/ at run time; the rest (scripts, readme) stays out of the Secret.
_STARTUP_KEEP_SUFFIXES = (".crt", ".key", ".pem", ".json")
_NVFLARE_JOB_ID_ANNOTATION = "kubectl-launcher/nvflare-job-id"
_SITE_ANNOTATION = "kubectl-launcher/nvflare-site"


def startup_kit_files(startup_dir: str) -> dict[str, str]:
    """``{file name: path}`` of the startup kit's top-level .crt/.key/.pem/.json files, sorted."""
    if not os.path.isdir(startup_dir):
        return {}
    files = {}
    for name in sorted(os.listdir(startup_dir)):
        path = os.path.join(startup_dir, name)
        if name.endswith(_STARTUP_KEEP_SUFFIXES) and os.path.isfile(path):
            files[name] = path
    return files


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


class K8sJobLauncher(JobLauncherSpec):  # type: ignore[misc]
    """Runs each NVFlare job as a Kubernetes pod, through the kubectl binary.

    The positional arguments, their defaults and their checks are upstream's
    (``nvflare.app_opt.job_launcher.k8s_launcher.K8sJobLauncher``); ``config_file_path`` is the
    kubeconfig given to kubectl (None or "": kubectl's own default, in a pod the service account).
    The keyword-only arguments are ours; their defaults keep a site's upstream resources.json working.
    """

    def __init__(
        self,
        config_file_path: str | None,
        study_data_pvc_file_path: str | None = None,
        timeout: float | None = None,
        namespace: str = DEFAULT_NAMESPACE,
        pending_timeout: float | None = DEFAULT_PENDING_TIMEOUT,
        python_path: str | None = None,
        security_context: dict[str, Any] | None = None,
        ephemeral_storage: str = DEFAULT_EPHEMERAL_STORAGE,
        default_python_path: str | None = None,
        workspace_mount_path: str = WORKSPACE_MOUNT_PATH,
        image_pull_secrets: list[str] | None = None,
        *,
        kubectl: str = "kubectl",
        context: str | None = None,
        kubectl_validate: bool = True,
        request_timeout: float = 30.0,
        command_timeout: float = 60.0,
        journal_dir: str | None = None,
        working_dir: str | None = None,
        workspace_transfer: bool | Mapping[str, Any] | None = True,
        runner: Callable[..., Any] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        super().__init__()
        self.logger = logging.getLogger(self.__class__.__name__)
        self.config_file_path = config_file_path
        if study_data_pvc_file_path is not None and (
            not isinstance(study_data_pvc_file_path, str) or not study_data_pvc_file_path
        ):
            raise ValueError("study_data_pvc_file_path must be a non-empty string or None")
        self.study_data_pvc_file_path = study_data_pvc_file_path
        self.timeout = timeout
        self.namespace = namespace
        self.pending_timeout = normalize_pending_timeout(pending_timeout)
        chosen = default_python_path if default_python_path is not None else python_path
        self.default_python_path = DEFAULT_PYTHON_PATH if chosen is None else chosen
        if not isinstance(self.default_python_path, str) or not self.default_python_path:
            raise ValueError("default_python_path must be a non-empty string")
        self.security_context = security_context
        if not isinstance(ephemeral_storage, str) or not ephemeral_storage:
            raise ValueError("ephemeral_storage must be a non-empty string")
        self.ephemeral_storage = ephemeral_storage
        if not isinstance(workspace_mount_path, str) or not workspace_mount_path:
            raise ValueError("workspace_mount_path must be a non-empty string")
        self.workspace_mount_path = workspace_mount_path
        self.image_pull_secrets = normalize_image_pull_secrets(image_pull_secrets)

        if not isinstance(kubectl, str) or not kubectl:
            raise ConfigError("kubectl must be the kubectl binary's name or path")
        self.kubectl = kubectl
        self.context = context or None
        self.kubectl_validate = bool(kubectl_validate)
        self.request_timeout = request_timeout
        self.command_timeout = command_timeout
        self.journal_dir = journal_dir or None
        if working_dir is not None and (not isinstance(working_dir, str) or not working_dir.startswith("/")):
            raise ConfigError("working_dir must be an absolute path in the job container, or None")
        # NVFlare's job process walks its cwd looking for comm_config: keep it small and fixed.
        self.working_dir = working_dir or workspace_mount_path
        # The pod's workspace is an emptyDir: without the transfer the job process finds nothing in it.
        if workspace_transfer is None or workspace_transfer is False:
            self.transfer_settings: TransferSettings | None = None
        elif workspace_transfer is True:
            self.transfer_settings = TransferSettings()
        elif isinstance(workspace_transfer, Mapping):
            self.transfer_settings = TransferSettings.from_mapping(workspace_transfer)
        else:
            raise ConfigError("workspace_transfer must be true, false or a mapping of transfer settings")
        # Test seams: what starts kubectl, and how the retry backoff waits.
        self._runner = runner
        self._sleep = sleep
        self.study_data_pvc_dict: dict[str, Any] | None = None
        self._kubectl: Kubectl | None = None
        self._setup_checked = False
        self._lock = threading.Lock()

    # ---- NVFlare wiring -------------------------------------------------------------------------

    def handle_event(self, event_type: str, fl_ctx: FLContext) -> None:
        if event_type == EventType.BEFORE_JOB_LAUNCH:
            add_launcher(self, fl_ctx)

    def get_module_args(self, job_id: str, fl_ctx: FLContext) -> dict[str, Any]:
        """``{flag: value}`` the job module gets (subclasses pick the names, as upstream)."""
        raise NotImplementedError

    def launch_job(self, job_meta: dict[str, Any], fl_ctx: FLContext) -> K8sJobHandle:
        plan = self.plan(job_meta, fl_ctx)
        kubectl = self._site_kubectl(plan.workspace_root)
        return _Launch(self, plan, kubectl).run()

    # ---- planning (no side effects beyond reading site files) -------------------------------------

    def plan(self, job_meta: Mapping[str, Any], fl_ctx: FLContext) -> LaunchPlan:
        """Validate job meta and context and decide every object of the launch; raises before any change."""
        site_name = fl_ctx.get_identity_name()
        raw_job_id = job_meta.get(JobConstants.JOB_ID)
        if not raw_job_id:
            raise RuntimeError(f"missing {JobConstants.JOB_ID} in job_meta")
        job_id = uuid4_to_rfc1123(raw_job_id)
        pod_name = job_pod_name(job_id, site_name)
        workspace_obj = fl_ctx.get_prop(FLContextKey.WORKSPACE_OBJECT)
        if workspace_obj is None:
            raise RuntimeError(f"missing {FLContextKey.WORKSPACE_OBJECT} in FLContext")
        app_custom_folder = workspace_obj.get_app_custom_dir(raw_job_id)
        args = fl_ctx.get_prop(FLContextKey.ARGS)
        if args is None:
            raise RuntimeError(f"missing {FLContextKey.ARGS} in FLContext")
        workspace_root = args.workspace

        k8s_spec = get_job_launcher_spec(job_meta, site_name, "k8s")
        portable_spec = get_portable_resource_spec(job_meta, site_name)
        pending_timeout = k8s_spec["pending_timeout"] if "pending_timeout" in k8s_spec else self.pending_timeout
        try:
            pending_timeout = normalize_pending_timeout(
                pending_timeout, f"launcher_spec['{site_name}']['k8s']['pending_timeout']"
            )
        except ValueError as e:
            raise RuntimeError(str(e)) from e
        image = k8s_spec.get("image")
        ephemeral = k8s_spec.get("ephemeral_storage")
        if ephemeral is None:
            ephemeral = self.ephemeral_storage
        if not isinstance(ephemeral, str) or not ephemeral:
            raise RuntimeError(f"launcher_spec['{site_name}']['k8s']['ephemeral_storage'] must be a non-empty string")
        study = job_meta.get(JobMetaKey.STUDY.value)
        runtime = self._study_runtime(workspace_root, study)
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
        if runtime is not None:
            data_mounts = list(runtime.datasets)
        elif should_mount_study_data(study) and self.study_data_pvc_file_path:
            if self.study_data_pvc_dict is None:
                self.study_data_pvc_dict = load_study_data_file(self.study_data_pvc_file_path, logger=self.logger)
            data_mounts = resolve_study_dataset_mounts(
                self.study_data_pvc_dict, study, self.study_data_pvc_file_path, logger=self.logger
            )
        else:
            data_mounts = []
        gpus = k8s_spec.get("num_of_gpus", portable_spec.get("num_of_gpus", 0))

        job_args = fl_ctx.get_prop(FLContextKey.JOB_PROCESS_ARGS)
        if not job_args:
            raise RuntimeError(f"missing {FLContextKey.JOB_PROCESS_ARGS} in FLContext")
        exe_module = job_args.get(JobProcessArgs.EXE_MODULE)
        if not exe_module:
            raise RuntimeError(f"missing {JobProcessArgs.EXE_MODULE} in {FLContextKey.JOB_PROCESS_ARGS}")
        env: dict[str, Any] = dict(runtime.env) if runtime is not None else {}
        if app_custom_folder:
            in_pod = path_in_pod(app_custom_folder, workspace_root, self.workspace_mount_path)
            if in_pod is None:
                raise RuntimeError(f"custom folder {app_custom_folder} is not under workspace {workspace_root}")
            env["PYTHONPATH"] = in_pod
        python_path = k8s_spec.get("python_path", self.default_python_path)
        if not isinstance(python_path, str) or not python_path:
            raise RuntimeError(f"launcher_spec['{site_name}']['k8s']['python_path'] must be a non-empty string")

        startup_secret = f"nvflare-startup-{site_name_to_rfc1123(site_name)}"
        credential_secret = credential_secret_name(pod_name)
        credential_env = get_credential_env(job_args)
        volumes, mounts = pod_volumes(
            self.workspace_mount_path,
            ephemeral,
            startup_secret,
            data_mounts,
            runtime.secret_mounts if runtime is not None else (),
        )
        args_in_pod = translate_paths(
            self.get_module_args(job_id, fl_ctx), path_flags(job_args), workspace_root, self.workspace_mount_path
        )
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
            "annotations": {_NVFLARE_JOB_ID_ANNOTATION: str(raw_job_id), _SITE_ANNOTATION: site_name},
            "working_dir": self.working_dir,
        }
        secret_env = [{"name": name, "source": credential_secret, "key": name} for name in credential_env]
        if runtime is not None:
            secret_env += [{"name": ref.name, "source": ref.source, "key": ref.key} for ref in runtime.secret_env]
        if secret_env:
            job_config["secret_env"] = secret_env
        if self.image_pull_secrets:
            job_config["image_pull_secrets"] = self.image_pull_secrets
        if getattr(args, "set", None) is not None:
            job_config["set_list"] = args.set
        if self.security_context:
            job_config["security_context"] = self.security_context
        return LaunchPlan(
            site_name=site_name,
            raw_job_id=raw_job_id,
            job_id=job_id,
            pod_name=pod_name,
            workspace_root=workspace_root,
            job_dir=os.path.join(workspace_obj.get_run_dir(raw_job_id), LAUNCHER_DIR),
            job_config=job_config,
            python_path=python_path,
            pending_timeout=pending_timeout,
            labels=labels,
            startup_secret_name=startup_secret,
            startup_files=startup_kit_files(workspace_obj.get_startup_kit_dir()),
            credential_secret_name=credential_secret,
            credential_env=credential_env,
        )

    def _study_runtime(self, workspace_root: str, study: str | None) -> Any:
        """nvflare 2.9's local/study_runtime.yaml entry for the study, or None without that file."""
        runtime_file = study_runtime_file_path(workspace_root)
        if not os.path.exists(runtime_file):
            return None
        legacy = {os.path.join(workspace_root, "local", "study_data.yaml")}
        if self.study_data_pvc_file_path:
            legacy.add(self.study_data_pvc_file_path)
        present = sorted(p for p in legacy if os.path.exists(p))
        if present:
            raise RuntimeError(
                f"study runtime file '{runtime_file}' cannot be combined with the legacy study data "
                f"file(s) {present}; migrate all studies to study_runtime.yaml and delete the v1 file."
            )
        runtime_map = load_study_runtime_file(runtime_file, launcher_mode="k8s", logger=self.logger)
        runtime = resolve_study_runtime(runtime_map, study, runtime_file, logger=self.logger)
        if runtime.pod_template is not None:
            raise RuntimeError(
                f"study '{study}' in '{runtime_file}' sets a pod_template; kubectl-launcher does not support "
                "study pod templates yet (container.image, datasets, env, secret_env and secret_mounts work)"
            )
        return runtime

    # ---- kubectl ---------------------------------------------------------------------------------

    def _site_kubectl(self, workspace_root: str) -> Kubectl:
        """The launcher's Kubectl (journal in <ws>/kubectl-launcher/); its setup is checked on first use."""
        with self._lock:
            if self._kubectl is None:
                journal = Journal(self.journal_dir or os.path.join(workspace_root, LAUNCHER_DIR), "journal")
                self._kubectl = Kubectl(
                    self.config_file_path or None,
                    self.context,
                    self.namespace,
                    self.kubectl,
                    request_timeout=self.request_timeout,
                    command_timeout=self.command_timeout,
                    journal=journal,
                    runner=self._runner,
                    sleep=self._sleep or time.sleep,
                )
            if not self._setup_checked:
                self._kubectl.check_setup()
                self._setup_checked = True
            return self._kubectl

    def make_workspace_transfer(self, plan: LaunchPlan) -> WorkspaceTransfer | None:
        """The per-job workspace transfer (Contract 7), or None when the pod gets no workspace."""
        if self.transfer_settings is None:
            return None
        return WorkspaceTransfer(
            plan.workspace_root,
            plan.raw_job_id,
            self.workspace_mount_path,
            self.transfer_settings,
            exclude=(self.study_data_pvc_file_path,) if self.study_data_pvc_file_path else (),
            logger=self.logger,
        )


class _Launch:
    """One launch: creates the Secrets and the pod in order, and undoes all of it when a step fails."""

    def __init__(self, launcher: K8sJobLauncher, plan: LaunchPlan, site_kubectl: Kubectl) -> None:
        self.launcher = launcher
        self.plan = plan
        self.logger = launcher.logger
        journal = Journal(plan.job_dir, "journal")
        for value in plan.credential_env.values():
            journal.redact(value)
        self.kubectl = site_kubectl.for_job(journal)
        self.validate = launcher.kubectl_validate
        # (kind, name) of what this launch created, in creation order; the startup Secret is the site's.
        self.created: list[tuple[str, str]] = []

    def run(self) -> K8sJobHandle:
        plan = self.plan
        handle: K8sJobHandle | None = None
        try:
            self._ensure_startup_secret()
            self._create_credential_secret()
            transfer = self.launcher.make_workspace_transfer(plan)
            handle = K8sJobHandle(
                plan.job_id,
                self.kubectl,
                dict(plan.job_config),
                namespace=self.launcher.namespace,
                timeout=self.launcher.timeout,
                pending_timeout=plan.pending_timeout,
                python_path=plan.python_path,
                workspace_transfer=transfer,
                workspace_job_id=plan.raw_job_id,
                pod_name=plan.pod_name,
                credential_secret_name=plan.credential_secret_name,
            )
            self._write_manifest(handle.get_manifest())
            self._check_pod_absent()
            pod = self._apply_pod()
            self._own_credential_secret(pod)
        except BaseException as e:
            self._clean_up()
            if handle is None or not isinstance(e, Exception):
                raise
            self.logger.error(f"failed to launch job {plan.job_id}: {e}")
            handle.terminal_state = JobState.TERMINATED
            handle.terminal_return_code = JobReturnCode.EXCEPTION
            return handle
        self.logger.info(
            f"launched job {plan.raw_job_id} as pod {plan.pod_name} in namespace {self.launcher.namespace} "
            f"(manifest {plan.manifest_path})"
        )
        try:
            entered = handle.enter_states([JobState.RUNNING])
        except BaseException:
            handle.terminate()
            raise
        if not entered:
            self.logger.warning(f"unable to enter running phase {plan.job_id}")
        return handle

    # -- Secrets --

    def _ensure_startup_secret(self) -> None:
        plan = self.plan
        data = {}
        for key, path in plan.startup_files.items():
            with open(path, "rb") as f:
                data[key] = f.read()
        site_labels = {k: v for k, v in plan.labels.items() if k != JOB_LABEL}
        body = build_secret_manifest(plan.startup_secret_name, self.launcher.namespace, data, site_labels)
        record = StdinRecord(
            f"Secret {plan.startup_secret_name} with the startup kit's {', '.join(data) or 'no files'} "
            "(contents withheld)",
            # The offline kubectl line that rebuilds the same data from the files (labels aside).
            rebuild_argv=(
                self.kubectl.kubectl,
                *commands.secret_generic_dry_run(plan.startup_secret_name, plan.startup_files),
            ),
        )
        self._create_or_replace_secret(plan.startup_secret_name, body, record, site_labels, adopt=False)

    def _create_credential_secret(self) -> None:
        plan = self.plan
        data = {key: value.encode() for key, value in plan.credential_env.items()}
        body = build_secret_manifest(plan.credential_secret_name, self.launcher.namespace, data, plan.labels)
        record = StdinRecord(
            f"Secret {plan.credential_secret_name} with the job's {', '.join(data) or 'no credentials'} "
            "(values withheld; they exist only in the parent process)"
        )
        self._create_or_replace_secret(plan.credential_secret_name, body, record, plan.labels, adopt=True)

    def _create_or_replace_secret(
        self, name: str, body: Mapping[str, Any], record: StdinRecord, labels: Mapping[str, str], *, adopt: bool
    ) -> None:
        """Create through stdin; an existing Secret is replaced only when our labels say it is ours.

        ``adopt``: record the Secret as this launch's, so a failed launch deletes it.
        """
        stdin = to_json(body).encode()
        if adopt:
            # Before the create: a create whose reply was lost may still have made it.
            self.created.append(("secret", name))
        try:
            self.kubectl.run(
                commands.create_secret_from_stdin(validate=self.validate), stdin=stdin, stdin_record=record
            )
            return
        except KubectlAlreadyExists:
            pass
        except KubectlError as e:
            _raise_if_validation(e)
            raise
        if not self._is_ours("secret", name, labels):
            if adopt:
                self.created.remove(("secret", name))
            raise RuntimeError(
                f"Secret {name} exists in namespace {self.launcher.namespace} and was not created by "
                f"kubectl-launcher for this site; remove it ({self._shell(commands.delete_secret(name))}) "
                "or use another namespace"
            )
        try:
            self.kubectl.run(
                commands.replace_secret_from_stdin(validate=self.validate),
                stdin=stdin,
                stdin_record=record,
                idempotent=True,
            )
        except KubectlNotFound:
            # Deleted between our create and replace (garbage collection of an old job's Secret).
            self.kubectl.run(
                commands.create_secret_from_stdin(validate=self.validate), stdin=stdin, stdin_record=record
            )

    def _is_ours(self, kind: str, name: str, labels: Mapping[str, str]) -> bool:
        metadata = self.kubectl.get_json(commands.get_metadata(kind, name))
        found = (metadata or {}).get("labels") or {}
        return all(found.get(key) == value for key, value in labels.items())

    def _own_credential_secret(self, pod: Mapping[str, Any]) -> None:
        name = self.plan.credential_secret_name
        try:
            owner = owner_reference(pod)
            self.kubectl.run(commands.patch_owner("secret", name, owner), idempotent=True)
        except (KubectlError, ValueError) as e:
            self.logger.warning(
                f"failed to set ownerReference on Secret {name}: {e}; "
                "it will be deleted when the job handle reaches a terminal state"
            )

    # -- the pod --

    def _write_manifest(self, pod: Mapping[str, Any]) -> None:
        path = self.plan.manifest_path
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        partial = f"{path}.partial"
        with open(partial, "w", encoding="utf-8") as f:
            f.write(to_json(pod))
        os.replace(partial, path)

    def _check_pod_absent(self) -> None:
        """A job pod is created once: an existing one is never patched into this launch's spec."""
        name = self.plan.pod_name
        existing = self.kubectl.get_json(commands.get_pod(name), expect_kind="Pod")
        if existing is None:
            return
        labels = (existing.get("metadata") or {}).get("labels") or {}
        whose = (
            "an earlier launch of this job at this site"
            if all(labels.get(k) == v for k, v in self.plan.labels.items())
            else "someone else"
            if labels.get(MANAGED_BY_LABEL) != MANAGED_BY
            else "another kubectl-launcher job"
        )
        raise RuntimeError(
            f"pod {name} already exists in namespace {self.launcher.namespace} (created by {whose}); "
            f"it was left as it is. Remove it with: {self._shell(commands.delete_pod(name))}"
        )

    def _apply_pod(self) -> dict[str, Any]:
        name = self.plan.pod_name
        # Recorded before the apply: an apply that failed after the server created the pod leaves one.
        self.created.append(("pod", name))
        try:
            pod = self.kubectl.get_json(
                commands.apply_file(self.plan.manifest_path, validate=self.validate), expect_kind="Pod"
            )
        except KubectlError as e:
            _raise_if_validation(e)
            raise
        if pod is None:
            raise ProtocolError(f"kubectl apply printed nothing for pod {name}")
        return pod

    # -- cleanup --

    def _clean_up(self) -> None:
        """Delete what this launch created, newest first (the pod before the Secret it reads)."""
        for kind, name in reversed(self.created):
            argv = commands.delete_pod(name) if kind == "pod" else commands.delete(kind, name)
            try:
                self.kubectl.run(argv, idempotent=True)
            except Exception as e:
                self.logger.warning(
                    f"could not remove {kind} {name} after a failed launch ({e}); remove it with: {self._shell(argv)}"
                )
        self.created.clear()

    def _shell(self, argv: tuple[str, ...]) -> str:
        return shlex.join([self.launcher.kubectl, "--namespace", self.launcher.namespace, *argv])


def _raise_if_validation(error: KubectlError) -> None:
    """kubectl's "turn validation off" advice, pointed at the launcher setting that does it."""
    if "--validate=false" in (error.stderr or ""):
        raise ConfigError(
            f"{error} — this API server offers no OpenAPI schema for kubectl to validate against; "
            'set "kubectl_validate": false in the launcher\'s args in resources.json'
        ) from error


class ClientK8sJobLauncher(K8sJobLauncher):
    """The launcher of a client site (NVFlare's worker_process)."""

    def get_module_args(self, job_id: str, fl_ctx: FLContext) -> dict[str, Any]:
        job_args = fl_ctx.get_prop(FLContextKey.JOB_PROCESS_ARGS)
        if not job_args:
            raise RuntimeError(f"missing {FLContextKey.JOB_PROCESS_ARGS} in FLContext")
        return module_args(job_args, get_client_job_args(False, False))


class ServerK8sJobLauncher(K8sJobLauncher):
    """The launcher of the server (NVFlare's runner_process)."""

    def get_module_args(self, job_id: str, fl_ctx: FLContext) -> dict[str, Any]:
        job_args = fl_ctx.get_prop(FLContextKey.JOB_PROCESS_ARGS)
        if not job_args:
            raise RuntimeError(f"missing {FLContextKey.JOB_PROCESS_ARGS} in FLContext")
        return module_args(job_args, get_server_job_args(False, False))
