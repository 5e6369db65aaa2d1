"""What the demo and the e2e test read back after a job: launcher artifacts, results, failures, kubectl counts."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

from kubectl_launcher.domain.names import LAUNCHER_DIR
from kubectl_launcher_demo.deployment import SITES, PocDeployment
from kubectl_launcher_demo.watch import MANAGED_SELECTOR


def _job_launcher_dir(dep: PocDeployment, site: str, job_id: str) -> Path | None:
    """The per-job ``kubectl-launcher/`` folder (design contract 3).

    The server parent zips its ``<job_id>/`` folder into the job store when the job ends, so for
    the server the folder may only survive in the unpacked results.
    """
    for base in (dep.site_dir(site) / job_id, dep.root / "results" / job_id):
        if site != "server" and base.parent.name == "results":
            continue
        candidate = base / LAUNCHER_DIR
        if candidate.is_dir():
            return candidate
    return None


def job_artifacts(dep: PocDeployment, job_id: str) -> tuple[dict[str, Path], dict[str, Path]]:
    """Per site: the job pod's manifest and the job's journal (only those that exist)."""
    manifests: dict[str, Path] = {}
    journals: dict[str, Path] = {}
    for site in SITES:
        folder = _job_launcher_dir(dep, site, job_id)
        if folder is None:
            continue
        if (folder / "manifest.json").is_file():
            manifests[site] = folder / "manifest.json"
        if (folder / "journal.sh").is_file():
            journals[site] = folder / "journal.sh"
    return manifests, journals


def site_journal(dep: PocDeployment, site: str) -> Path:
    """Every kubectl command the site's launcher ran (all jobs, plus its startup Secret)."""
    return dep.site_dir(site) / LAUNCHER_DIR / "journal.jsonl"


def journal_entries(path: Path) -> list[dict[str, object]]:
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines if line.strip()]


def count_kubectl_processes(dep: PocDeployment, job_id: str) -> tuple[int, dict[str, int]]:
    """kubectl processes the launchers started, counted from their site journals (one JSON line each)."""
    per_site = {site: len(journal_entries(site_journal(dep, site))) for site in SITES}
    return sum(per_site.values()), per_site


def site_results(dep: PocDeployment, job_id: str) -> list[tuple[str, Path, int]]:
    """For each client: its ``<job_id>/`` folder and how many files came back into it."""
    found = []
    for site in SITES:
        folder = dep.site_dir(site) / job_id
        if folder.is_dir():
            files = [p for p in folder.rglob("*") if p.is_file() and LAUNCHER_DIR not in p.parts]
            found.append((site, folder, len(files)))
    return found


def failure_lines(dep: PocDeployment, job_id: str, *, limit: int = 6) -> list[str]:
    """The most telling error lines of the job at each site (client tracebacks, launcher errors)."""
    lines: list[str] = []
    for site in SITES:
        for name in ("error_log.txt", "log.txt"):
            path = dep.site_dir(site) / job_id / name
            if not path.is_file():
                continue
            hits = [
                line.strip()
                for line in path.read_text(errors="replace").splitlines()
                if ("Error" in line or "EXCEPTION" in line or "failed" in line) and "DEBUG" not in line
            ]
            lines += [f"{site}: {hit[:300]}" for hit in hits[:2]]
            break
        parent_log = dep.site_dir(site) / "log.txt"
        if parent_log.is_file():
            for line in parent_log.read_text(errors="replace").splitlines():
                if job_id in line and any(w in line for w in ("ERROR", "EXCEPTION", "WARNING", "Traceback")):
                    lines.append(f"{site}: {line.strip()[:300]}")
    return lines[: limit * len(SITES)]


#: NVFlare's job process exit codes (nvflare.fuel.common.exit_codes.ProcessExitCode and JobReturnCode).
RETURN_CODE_NAMES = {
    0: "SUCCESS",
    1: "EXECUTION_ERROR",
    9: "ABORTED",
    101: "EXCEPTION",
    102: "UNSAFE_COMPONENT",
    103: "CONFIG_ERROR",
    104: "INFRASTRUCTURE_ERROR",
    127: "UNKNOWN",
}
STARTUP_FAILURE_RE = re.compile(r"pod startup failure: (\S+)")


def return_code_name(rc: int | None) -> str:
    if rc is None:
        return "not reported"
    return f"{rc} ({RETURN_CODE_NAMES.get(rc, 'error')})"


def startup_failures(dep: PocDeployment, job_id: str) -> dict[str, str]:
    """Per site, the reason the launcher gave up on a job pod that never started (ErrImagePull, ...)."""
    found: dict[str, str] = {}
    for site in SITES:
        path = dep.site_dir(site) / "log.txt"
        if not path.is_file():
            continue
        for line in path.read_text(errors="replace").splitlines():
            match = STARTUP_FAILURE_RE.search(line)
            if match and job_id in line:
                found.setdefault(site, match.group(1))
    return found


def default_parent_host() -> str:
    """This machine's outbound address: a guess at what job pods can reach (override with --parent-host)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # TEST-NET: nothing is sent, it only picks a route
            return str(sock.getsockname()[0])
        except OSError:
            return socket.gethostname()


def delete_leftover_pods(kubeconfig: str | None, namespace: str, kubectl: str) -> list[str]:
    """Real cluster: remove any pod or Secret we labelled that a failed run left behind."""
    from kubectl_launcher.kubectl import Kubectl

    client = Kubectl(kubeconfig, namespace=namespace, kubectl=kubectl)
    result = client.run(
        ("delete", "pods,secrets", "--selector", MANAGED_SELECTOR, "--ignore-not-found", "--wait=false"),
        check=False,
    )
    if result.returncode != 0:
        return [f"warning: could not delete leftover pods: {result.stderr.strip()[-300:]}"]
    deleted = [line for line in result.stdout.splitlines() if line.strip()]
    return [f"removed leftover {line}" for line in deleted]


__all__ = [
    "count_kubectl_processes",
    "default_parent_host",
    "delete_leftover_pods",
    "failure_lines",
    "job_artifacts",
    "journal_entries",
    "return_code_name",
    "site_journal",
    "site_results",
    "startup_failures",
]
