"""One federated job through a running POC deployment: build, submit, follow, collect — shared by demo and e2e."""

from __future__ import annotations

import io
import json
import re
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubectl_launcher_demo.deployment import CLIENTS, SERVER, DeploymentError, PocDeployment, run_bounded
from kubectl_launcher_demo.job import JobSpec
from kubectl_launcher_demo.watch import RoundTracker

Say = Callable[[str], None]
JOB_ID_RE = re.compile(r"job_id:\s*([0-9a-fA-F-]{36})")
CLIENT_RC_RE = re.compile(r"run \(([0-9a-f-]{36})\): child worker process finished with RC (-?\d+)")
COMPLETED = "FINISHED:COMPLETED"


class JobFailed(RuntimeError):
    """The job did not finish as COMPLETED (or did not finish in time)."""


@dataclass
class JobOutcome:
    """What happened to one job, as the demo prints it and the e2e test asserts it."""

    job_id: str
    status: str
    wall_time: float  # submit start -> the server's job store says FINISHED
    finished_at: float = 0.0  # epoch seconds the FINISHED status was first seen
    rounds: list[int] = field(default_factory=list)
    client_rcs: dict[str, int | None] = field(default_factory=dict)
    result_dir: Path | None = None
    final_model: list[list[float]] | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == COMPLETED and all(rc == 0 for rc in self.client_rcs.values())


def build_job(dep: PocDeployment, spec: JobSpec, *, timeout: float = 120.0) -> Path:
    """Export the job in a child python (the recipe's imports and files stay out of this process)."""
    out_dir = dep.root / "jobs"
    argv = [dep.python, "-m", "kubectl_launcher_demo.job", str(out_dir), *spec.cli_args()]
    done = run_bounded(argv, env=dep.env(), cwd=dep.root, timeout=timeout)
    if done is None:
        raise DeploymentError(f"building the job did not finish within {timeout:.0f} s")
    if done.returncode != 0:
        raise DeploymentError(f"building the job failed: {done.stderr.strip()[-800:]}")
    return Path(json.loads(done.stdout.strip().splitlines()[-1])["job_dir"])


def submit(dep: PocDeployment, job_dir: Path, *, timeout: float = 90.0) -> str:
    done = dep.nvflare("job", "submit", "-j", str(job_dir), "--startup-kit", str(dep.admin_dir), timeout=timeout)
    match = JOB_ID_RE.search(done.stdout)
    if not match:
        raise DeploymentError(f"`nvflare job submit` printed no job id: {done.stdout.strip()[-500:]}")
    return match.group(1)


def read_meta(dep: PocDeployment, job_id: str) -> dict[str, Any]:
    """The server's own record of the job, straight from its job store (no admin login per poll)."""
    try:
        data: dict[str, Any] = json.loads((dep.jobs_storage / job_id / "meta").read_bytes())
        return data
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def client_return_codes(dep: PocDeployment, job_id: str) -> dict[str, int | None]:
    """Each client parent's "child worker process finished with RC n" for this job (None: not yet)."""
    rcs: dict[str, int | None] = {}
    for client in CLIENTS:
        rcs[client] = None
        try:
            text = (dep.site_dir(client) / "log.txt").read_text(errors="replace")
        except FileNotFoundError:
            continue
        for found_id, rc in CLIENT_RC_RE.findall(text):
            if found_id == job_id:
                rcs[client] = int(rc)
    return rcs


def collect_results(dep: PocDeployment, job_id: str, *, timeout: float = 30.0) -> Path | None:
    """Unpack the job's server workspace from the job store into ``<root>/results/<job_id>``."""
    archive = dep.jobs_storage / job_id / "workspace"
    deadline = time.monotonic() + timeout
    while not archive.is_file():
        if time.monotonic() > deadline:
            return None
        time.sleep(0.5)
    target = dep.root / "results" / job_id
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(archive.read_bytes())) as zf:
        for member in zf.namelist():
            path = (target / member).resolve()
            if not str(path).startswith(str(target.resolve())):
                raise DeploymentError(f"job store archive member escapes its folder: {member}")
        zf.extractall(target)
    return target


def load_final_model(result_dir: Path) -> list[list[float]] | None:
    model = result_dir / "models" / "server.npy"
    if not model.is_file():
        return None
    import numpy as np  # NVFlare's dependency; imported late so the rest of the package does not need it

    value: list[list[float]] = np.load(model, allow_pickle=False).tolist()
    return value


def load_metrics(result_dir: Path) -> list[dict[str, Any]]:
    path = result_dir / "metrics" / "round_metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_job(
    dep: PocDeployment,
    spec: JobSpec,
    *,
    say: Say = print,
    timeout: float = 300.0,
    on_tick: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
    rounds: RoundTracker | None = None,
) -> JobOutcome:
    """Build and submit ``spec``, follow it until the server records a final status, collect the results.

    Every wait is bounded: ``timeout`` covers submit to final status. ``on_tick(job_id)`` runs about
    twice a second while the job runs. ``rounds`` may be shared with a follower of the server job's
    pod log (rounds it already printed are not printed again).
    """
    job_dir = build_job(dep, spec)
    say(f"job folder: {job_dir}")
    started = time.monotonic()
    job_id = submit(dep, job_dir)
    say(f"submitted job {job_id}")
    rounds = rounds if rounds is not None else RoundTracker()
    server_log = dep.site_dir(SERVER) / job_id / "log.txt"
    deadline = started + timeout
    status = ""
    while True:
        meta = read_meta(dep, job_id)
        status = str(meta.get("status", ""))
        for r in rounds.follow_file(server_log):
            say(f"round {r} started (server)")
        if on_tick is not None:
            on_tick(job_id)
        if status.startswith("FINISHED"):
            break
        if time.monotonic() > deadline or (stop is not None and stop.is_set()):
            wall = time.monotonic() - started
            raise JobFailed(f"job {job_id} is still {status or 'SUBMITTED'} after {wall:.0f} s; giving up")
        time.sleep(0.5)
    wall_time = time.monotonic() - started
    outcome = JobOutcome(job_id=job_id, status=status, wall_time=wall_time, finished_at=time.time(), meta=meta)
    # A job that never ran may have no workspace archive at all: do not wait long for it.
    outcome.result_dir = collect_results(dep, job_id, timeout=30.0 if status == COMPLETED else 5.0)
    if outcome.result_dir is not None:
        # The job store's copy of the server log is complete, whichever launcher ran the server job.
        server_job_log = outcome.result_dir / "log.txt"
        if server_job_log.is_file():
            for r in rounds.feed(server_job_log.read_text(errors="replace")):
                say(f"round {r} started (server)")
        outcome.final_model = load_final_model(outcome.result_dir)
        outcome.metrics = load_metrics(outcome.result_dir)
    outcome.rounds = sorted(rounds.rounds_seen)
    # A client parent logs its child's return code a moment after the server records the status.
    rc_deadline = time.monotonic() + 15
    while True:
        outcome.client_rcs = client_return_codes(dep, job_id)
        if all(rc is not None for rc in outcome.client_rcs.values()) or time.monotonic() > rc_deadline:
            break
        time.sleep(0.5)
    return outcome
