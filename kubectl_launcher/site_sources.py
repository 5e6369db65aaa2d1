"""What a launch plan reads from the site (domain/plan.PlanSources): nvflare's study runtime and study data
files, the startup kit, the launcher subclass's job module arguments."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nvflare.apis.fl_context import FLContext
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

from kubectl_launcher.objects.launch_secrets import startup_kit_files

if TYPE_CHECKING:
    from kubectl_launcher.launcher import K8sJobLauncher

__all__ = ["SiteSources"]


class SiteSources:
    """What a plan reads from the site (plan.PlanSources): study files, the startup kit, the subclass's args."""

    def __init__(self, launcher: K8sJobLauncher, fl_ctx: FLContext) -> None:
        self.launcher = launcher
        self.fl_ctx = fl_ctx

    def study_runtime(self, workspace_root: str, study: Any) -> Any:
        """nvflare 2.9's local/study_runtime.yaml entry for the study, or None without that file."""
        runtime_file = study_runtime_file_path(workspace_root)
        if not os.path.exists(runtime_file):
            return None
        legacy = {os.path.join(workspace_root, "local", "study_data.yaml")}
        if self.launcher.study_data_pvc_file_path:
            legacy.add(self.launcher.study_data_pvc_file_path)
        present = sorted(p for p in legacy if os.path.exists(p))
        if present:
            raise RuntimeError(
                f"study runtime file '{runtime_file}' cannot be combined with the legacy study data "
                f"file(s) {present}; migrate all studies to study_runtime.yaml and delete the v1 file."
            )
        runtime_map = load_study_runtime_file(runtime_file, launcher_mode="k8s", logger=self.launcher.logger)
        runtime = resolve_study_runtime(runtime_map, study, runtime_file, logger=self.launcher.logger)
        if runtime.pod_template is not None:
            raise RuntimeError(
                f"study '{study}' in '{runtime_file}' sets a pod_template; kubectl-launcher does not support "
                "study pod templates yet (container.image, datasets, env, secret_env and secret_mounts work)"
            )
        return runtime

    def study_data_mounts(self, study: Any) -> list[Any]:
        launcher = self.launcher
        path, logger = launcher.study_data_pvc_file_path, launcher.logger
        if not (should_mount_study_data(study) and path):
            return []
        # Read once per launcher, as upstream: the file is the site's, not the job's.
        if launcher.study_data_pvc_dict is None:
            launcher.study_data_pvc_dict = load_study_data_file(path, logger=logger)
        return list(resolve_study_dataset_mounts(launcher.study_data_pvc_dict, study, path, logger=logger))

    def module_args(self, job_id: str) -> dict[str, Any]:
        return self.launcher.get_module_args(job_id, self.fl_ctx)

    def startup_files(self, startup_dir: str) -> Mapping[str, str]:
        return startup_kit_files(startup_dir)
