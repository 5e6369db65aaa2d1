"""The NVFlare job launcher component: `launch_job` turns job meta into a plan, then runs it through kubectl."""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from nvflare.apis.event_type import EventType
from nvflare.apis.fl_constant import FLContextKey
from nvflare.apis.fl_context import FLContext
from nvflare.apis.job_launcher_spec import JobLauncherSpec, add_launcher
from nvflare.utils.job_launcher_utils import get_client_job_args, get_server_job_args

from kubectl_launcher.domain.job_tracker import POLL_INTERVAL, positive_seconds
from kubectl_launcher.domain.manifest import normalize_image_pull_secrets
from kubectl_launcher.domain.names import LAUNCHER_DIR
from kubectl_launcher.domain.nvflare_args import module_args
from kubectl_launcher.domain.plan import LaunchPlan, PlanContext, PlanDefaults, normalize_pending_timeout, plan_launch
from kubectl_launcher.domain.takeover import FOLLOW, RUNNING_ORPHAN_CHOICES
from kubectl_launcher.errors import ConfigError
from kubectl_launcher.handle import DEFAULT_NAMESPACE, DEFAULT_PENDING_TIMEOUT, DEFAULT_PYTHON_PATH, K8sJobHandle
from kubectl_launcher.kubectl import Kubectl
from kubectl_launcher.kubectl.journal import Journal
from kubectl_launcher.launch import Launch
from kubectl_launcher.objects.job_pod import CREDENTIAL_RETIRE_DELAY
from kubectl_launcher.site_sources import SiteSources
from kubectl_launcher.takeover import TakeOver
from kubectl_launcher.transfer.pod_side import TransferSettings
from kubectl_launcher.transfer.workspace import WorkspaceTransfer

__all__ = ["ClientK8sJobLauncher", "K8sJobLauncher", "ServerK8sJobLauncher"]

WORKSPACE_MOUNT_PATH = "/var/tmp/nvflare/workspace"
#: (namespace, pod name) -> the live handle that follows it, for every launcher of this process: a
#: take-over leaves these alone (another process's handles it cannot see; docs/site-setup.md).
_LIVE: weakref.WeakValueDictionary[tuple[str, str], K8sJobHandle] = weakref.WeakValueDictionary()
DEFAULT_EPHEMERAL_STORAGE = "1Gi"


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
        container_security_context: dict[str, Any] | None = None,
        workspace_transfer: bool | Mapping[str, Any] | None = True,
        poll_interval: float = POLL_INTERVAL,
        credential_retire_delay: float = CREDENTIAL_RETIRE_DELAY,
        running_orphans: str = FOLLOW,
        runner: Callable[..., Any] | None = None,
        sleep: Callable[[float], None] | None = None,
        streamer: Callable[..., Any] | None = None,
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
        self.container_security_context = container_security_context  # ours: the job container's own
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
        # Seconds between two looks at a job pod (Airflow's startup_check_interval_seconds).
        self.poll_interval = positive_seconds(poll_interval, "poll_interval")
        # Seconds from the job container's start to the deletion of its credential Secret (job_pod.py).
        self.credential_retire_delay = positive_seconds(credential_retire_delay, "credential_retire_delay", zero=True)
        # What the take-over does with a pod of this site still running without its launcher (takeover.py).
        if running_orphans not in RUNNING_ORPHAN_CHOICES:
            raise ConfigError(f"running_orphans must be one of {list(RUNNING_ORPHAN_CHOICES)}, got {running_orphans!r}")
        self.running_orphans = running_orphans
        self.take_over: TakeOver | None = None  # the first use's take-over of what an earlier launcher left
        # Test seams: what starts kubectl (and the site's pod watch), and how the retry backoff waits.
        self._runner, self._streamer = runner, streamer
        self._sleep = sleep
        self.study_data_pvc_dict: dict[str, Any] | None = None
        self._kubectl: Kubectl | None = None
        self._setup_checked = False
        self._lock = threading.Lock()

    # ---- NVFlare wiring -------------------------------------------------------------------------

    def handle_event(self, event_type: str, fl_ctx: FLContext) -> None:
        if event_type == EventType.BEFORE_JOB_LAUNCH:
            add_launcher(self, fl_ctx)
        elif event_type == EventType.SYSTEM_START:
            workspace = getattr(fl_ctx.get_prop(FLContextKey.ARGS), "workspace", None)
            if workspace:
                # Off the event's thread: the parent accepts its clients only once its start events return.
                site = fl_ctx.get_identity_name()
                threading.Thread(target=self._take_over_at_start, args=(workspace, site), daemon=True).start()

    def get_module_args(self, job_id: str, fl_ctx: FLContext) -> dict[str, Any]:
        """``{flag: value}`` the job module gets (subclasses pick the names, as upstream)."""
        raise NotImplementedError

    def launch_job(self, job_meta: dict[str, Any], fl_ctx: FLContext) -> K8sJobHandle:
        plan = self.plan(job_meta, fl_ctx)
        kubectl = self._site_kubectl(plan.workspace_root)
        self.take_over_orphans(plan.workspace_root, plan.site_name)
        return Launch(self, plan, kubectl).run()

    # ---- the take-over (takeover.py) ------------------------------------------------------------------

    def _take_over_at_start(self, workspace_root: str, site_name: str) -> None:
        try:
            self.take_over_orphans(workspace_root, site_name)
        except Exception as e:  # the site runs even when the cluster cannot be reached now
            self.logger.warning(f"take-over at start failed: {e}; it is tried again at the first launch")

    def take_over_orphans(self, workspace_root: str, site_name: str) -> TakeOver:
        """On first use: adopt the pods of this site that an earlier launcher left (once per launcher)."""
        kubectl = self._site_kubectl(workspace_root)
        with self._lock:
            if self.take_over is None:
                self.take_over = TakeOver(
                    kubectl,
                    workspace_root,
                    site_name,
                    self,
                    followed=[name for (namespace, name) in list(_LIVE) if namespace == kubectl.namespace],
                    running_orphans=self.running_orphans,
                    logger=self.logger,
                ).start()
            return self.take_over

    def job_handle(
        self,
        job_id: str,
        kubectl: Kubectl | None,
        job_config: Mapping[str, Any],
        *,
        pending_timeout: float | None,
        python_path: str,
        workspace_transfer: WorkspaceTransfer | None,
        pod_name: str,
        credential_secret_name: str,
    ) -> K8sJobHandle:
        """The handle of one job pod with this launcher's settings (a launch's, and a take-over's); one with
        kubectl is the pod's live handle in this process, which no take-over adopts."""
        handle = K8sJobHandle(
            job_id,
            kubectl,
            dict(job_config),
            namespace=kubectl.namespace if kubectl is not None else self.namespace,
            timeout=self.timeout,
            pending_timeout=pending_timeout,
            python_path=python_path,
            workspace_transfer=workspace_transfer,
            pod_name=pod_name,
            credential_secret_name=credential_secret_name,
            retire_credentials=self.credential_retire_delay,
            poll_interval=self.poll_interval,
        )
        if kubectl is not None:
            _LIVE[(kubectl.namespace, pod_name)] = handle
        return handle

    # ---- planning (no side effects beyond reading site files) -------------------------------------

    def plan(self, job_meta: Mapping[str, Any], fl_ctx: FLContext) -> LaunchPlan:
        """Validate job meta and context and decide every object of the launch; raises before any change."""
        context = PlanContext(
            site_name=fl_ctx.get_identity_name(),
            workspace=fl_ctx.get_prop(FLContextKey.WORKSPACE_OBJECT),
            args=fl_ctx.get_prop(FLContextKey.ARGS),
            job_args=fl_ctx.get_prop(FLContextKey.JOB_PROCESS_ARGS),
        )
        defaults = PlanDefaults(
            pending_timeout=self.pending_timeout,
            ephemeral_storage=self.ephemeral_storage,
            python_path=self.default_python_path,
            workspace_mount_path=self.workspace_mount_path,
            working_dir=self.working_dir,
            image_pull_secrets=self.image_pull_secrets,
            security_context=self.security_context,
            container_security_context=self.container_security_context,
        )
        return plan_launch(job_meta, context, defaults, SiteSources(self, fl_ctx))

    # ---- kubectl ---------------------------------------------------------------------------------

    def _site_kubectl(self, workspace_root: str) -> Kubectl:
        """The launcher's Kubectl (journal in <ws>/kubectl-launcher/); its setup is checked on first use."""
        with self._lock:
            if self._kubectl is None:
                own_dir = self.journal_dir or os.path.join(workspace_root, LAUNCHER_DIR)
                journal = Journal(own_dir, "journal")
                self._kubectl = Kubectl(
                    self.config_file_path or None,
                    self.context,
                    self.namespace,
                    self.kubectl,
                    request_timeout=self.request_timeout,
                    command_timeout=self.command_timeout,
                    journal=journal,
                    # kubectl's discovery cache beside the journal: it outlives a parent killed mid-job
                    # (a temporary folder would leak into /tmp), and the journal's pasted lines keep
                    # pointing at a folder that exists.
                    cache_dir=os.path.join(own_dir, "kube-cache"),
                    runner=self._runner,
                    streamer=self._streamer,
                    sleep=self._sleep or time.sleep,
                )
            if not self._setup_checked:
                self._kubectl.check_setup()  # once per site launcher, journaled as purpose "setup"
                self._setup_checked = True
            return self._kubectl

    def make_workspace_transfer(self, plan: LaunchPlan) -> WorkspaceTransfer | None:
        """The per-job workspace transfer (Contract 7), or None when the pod gets no workspace."""
        return self.workspace_transfer_for(plan.workspace_root, plan.raw_job_id)

    def workspace_transfer_for(self, workspace_root: str, raw_job_id: str) -> WorkspaceTransfer | None:
        """The workspace transfer of NVFlare job `raw_job_id` at the site whose workspace is `workspace_root`."""
        if self.transfer_settings is None:
            return None
        return WorkspaceTransfer(
            workspace_root,
            raw_job_id,
            self.workspace_mount_path,
            self.transfer_settings,
            exclude=(self.study_data_pvc_file_path,) if self.study_data_pvc_file_path else (),
            logger=self.logger,
        )


def _module_args(fl_ctx: FLContext, names: Iterable[str]) -> dict[str, Any]:
    job_args = fl_ctx.get_prop(FLContextKey.JOB_PROCESS_ARGS)
    if not job_args:
        raise RuntimeError(f"missing {FLContextKey.JOB_PROCESS_ARGS} in FLContext")
    return module_args(job_args, names)


class ClientK8sJobLauncher(K8sJobLauncher):
    """The launcher of a client site (NVFlare's worker_process)."""

    def get_module_args(self, job_id: str, fl_ctx: FLContext) -> dict[str, Any]:
        return _module_args(fl_ctx, get_client_job_args(False, False))


class ServerK8sJobLauncher(K8sJobLauncher):
    """The launcher of the server (NVFlare's runner_process)."""

    def get_module_args(self, job_id: str, fl_ctx: FLContext) -> dict[str, Any]:
        return _module_args(fl_ctx, get_server_job_args(False, False))
