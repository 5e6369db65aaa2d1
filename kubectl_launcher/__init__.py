"""kubectl-launcher: NVFlare jobs as Kubernetes pods, driven by the kubectl binary."""

from .handle import K8sJobHandle
from .kubectl import Kubectl
from .launcher import ClientK8sJobLauncher, K8sJobLauncher, ServerK8sJobLauncher
from .names import job_pod_name, site_name_to_rfc1123, study_dataset_volume_name, uuid4_to_rfc1123
from .pod_status import JobState, PodPhase

__all__ = [
    "ClientK8sJobLauncher",
    "JobState",
    "K8sJobHandle",
    "K8sJobLauncher",
    "Kubectl",
    "PodPhase",
    "ServerK8sJobLauncher",
    "job_pod_name",
    "site_name_to_rfc1123",
    "study_dataset_volume_name",
    "uuid4_to_rfc1123",
]
