"""Kubernetes names and labels for what the launcher creates: RFC 1123 pod, volume and Secret names."""

from __future__ import annotations

import hashlib
import re

__all__ = [
    "JOB_LABEL",
    "MANAGED_BY",
    "MANAGED_BY_LABEL",
    "SITE_LABEL",
    "credential_secret_name",
    "job_pod_name",
    "managed_labels",
    "site_name_to_rfc1123",
    "study_dataset_volume_name",
    "uuid4_to_rfc1123",
]

#: The launcher's own folder, in a job's workspace (manifest, journal) and in the site's (the site journal):
#: never sent into a pod, never written over by results.
LAUNCHER_DIR = "kubectl-launcher"

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "kubectl-launcher"
SITE_LABEL = "kubectl-launcher/site"
JOB_LABEL = "kubectl-launcher/job"

# Upstream's names must come out byte for byte the same (server and client pods of one job share a
# namespace, and operators already know the names), so the rules below mirror nvflare 2.9 exactly.
_NOT_LABEL_CHAR = re.compile(r"[^a-z0-9-]")
_LABEL_MAX = 63
_DNS_SUBDOMAIN_MAX = 253
_DIGEST_LEN = 8
_POD_SITE_SUFFIX_MAX = 20


def _label_chars(text: str) -> str:
    # str.lower() can turn one character into several (e.g. "İ" -> "i̇"); filtering after lowering
    # keeps whatever ASCII survives, as upstream does.
    return _NOT_LABEL_CHAR.sub("", text.lower())


def uuid4_to_rfc1123(uuid_str: str) -> str:
    """A job id as an RFC 1123 label: lower case, [a-z0-9-] only, a letter first, at most 63 chars."""
    name = _label_chars(uuid_str)
    if name[:1].isdigit():
        name = "j" + name
    return name[:_LABEL_MAX].rstrip("-")


def site_name_to_rfc1123(site_name: str, max_length: int = 47) -> str:
    """A site name as a label of at most ``max_length`` chars, made unique by a hash of the raw name."""
    digest = hashlib.sha256(site_name.encode("utf-8")).hexdigest()[:_DIGEST_LEN]
    head = _label_chars(site_name).strip("-") or "site"
    if head[0].isdigit():
        head = "s" + head
    head = head[: max_length - _DIGEST_LEN - 1].rstrip("-") or "site"
    return f"{head}-{digest}"


def job_pod_name(job_id: str, site_name: str) -> str:
    """The job's pod name at one site; ``job_id`` is already sanitised by `uuid4_to_rfc1123`."""
    site_suffix = site_name_to_rfc1123(site_name, max_length=_POD_SITE_SUFFIX_MAX)
    job_prefix = job_id[: _LABEL_MAX - len(site_suffix) - 1].rstrip("-")
    return f"{job_prefix}-{site_suffix}"


def study_dataset_volume_name(study: str, dataset: str) -> str:
    """The pod volume name for one study dataset's PVC."""
    return site_name_to_rfc1123(f"data-{study}-{dataset}", max_length=_LABEL_MAX)


def credential_secret_name(pod_name: str) -> str:
    """The per-job Secret holding the job's credentials (nvflare 2.9's ``nvflare-cred-<pod>``)."""
    # A pod name is at most 63 chars, so this stays far below the 253-char Secret name limit; the cut
    # only matters for a caller that passes something longer.
    return f"nvflare-cred-{pod_name}"[:_DNS_SUBDOMAIN_MAX].rstrip("-.")


def _label_value(text: str) -> str:
    # Label values: at most 63 chars of [A-Za-z0-9_.-], beginning and ending alphanumeric.
    value = re.sub(r"[^A-Za-z0-9_.-]", "", text)[:_LABEL_MAX]
    return value.strip("-_.")


def managed_labels(site_name: str, job_id: str) -> dict[str, str]:
    """Labels on everything the launcher creates, so it can be listed, checked for ownership and cleaned."""
    return {
        MANAGED_BY_LABEL: MANAGED_BY,
        SITE_LABEL: site_name_to_rfc1123(site_name),
        JOB_LABEL: _label_value(uuid4_to_rfc1123(job_id)),
    }
