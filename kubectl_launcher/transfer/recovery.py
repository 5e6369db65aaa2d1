"""When results cannot be collected: the pod is left to its keeper for ``keep_timeout`` seconds, and the
operator is told how to fetch them by hand, in the log and in
``<ws>/<job_id>/kubectl-launcher/recover-results.sh``."""

from __future__ import annotations

import logging
import os

from kubectl_launcher.errors import TransferError
from kubectl_launcher.transfer.pod_side import recovery_script


def report(
    own_dir: str, job_id: str, pod: str, reason: str, keep_timeout: int, fetch: str, release: str, log: logging.Logger
) -> TransferError:
    """Write recover-results.sh (fetch, then release the keeper), log the fetch command, return the error."""
    script = os.path.join(own_dir, "recover-results.sh")
    try:
        os.makedirs(own_dir, exist_ok=True)
        with open(script, "w", encoding="utf-8") as f:
            f.write(recovery_script(job_id, pod, reason, keep_timeout, fetch, release))
        os.chmod(script, 0o700)
    except OSError as e:
        log.warning("could not write %s: %s", script, e)
    log.error(
        "results of job %s were not collected: %s. Pod %s is kept for about %ds; fetch them by hand with: %s",
        job_id,
        reason,
        pod,
        keep_timeout,
        fetch,
    )
    return TransferError(
        f"results of job {job_id} were not collected: {reason}; "
        f"pod {pod} is kept for about {keep_timeout}s, fetch them with: {fetch}"
    )
