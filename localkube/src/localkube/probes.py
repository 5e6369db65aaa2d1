"""A container's exec ``livenessProbe`` as the kubelet's prober runs it (pkg/kubelet/prober), restartPolicy Never.

* the first probe ``initialDelaySeconds`` after the container started, then one every ``periodSeconds``
  (default 10); each runs the probe's command in the container (as ``kubectl exec`` does) and fails when it
  exits non-zero or outlives ``timeoutSeconds`` (default 1);
* each failure is a Warning event ``Unhealthy`` "Liveness probe failed: <output>" (stdout and stderr together,
  at most 10 KiB, as the exec prober reads them); a success resets the count;
* ``failureThreshold`` failures in a row (default 3) kill the container: a Normal event ``Killing``
  "Container <name> failed liveness probe" (a real kubelet adds ", will be restarted" only when the policy
  restarts it), SIGTERM, then SIGKILL after the probe's ``terminationGracePeriodSeconds`` or else the pod's
  (default 30). With restartPolicy Never the container stays terminated and the pod ends Failed.

Only exec probes: httpGet, tcpSocket and grpc ones are not run (a pod using them is never killed here).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

from localkube.events import EventRecorder
from localkube.podrecords import ContainerRecord
from localkube.resources import Obj
from localkube.runtime import ContainerRuntime, ContainerSpec, ContainerStartError

MAX_OUTPUT = 10 * 1024


async def run_once(runtime: ContainerRuntime, spec: ContainerSpec, argv: list[str], timeout: float) -> str | None:
    """One probe: None when it passed, else what the prober reports (its output, or the timeout)."""
    try:
        process = await runtime.exec(spec, argv)
    except ContainerStartError as e:
        return str(e)
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    process.stdin.close()
    try:
        out, err = await asyncio.wait_for(process.communicate(), max(timeout, 0.1))
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        return f"command {' '.join(argv)!r} timed out"
    if process.returncode == 0:
        return None
    return (out + err)[:MAX_OUTPUT].decode(errors="replace")


async def liveness(
    runtime: ContainerRuntime,
    events: EventRecorder,
    pod_obj: Obj,
    container: Obj,
    record: ContainerRecord,
    field_path: str,
) -> None:
    """Probe ``container`` until it ends; kill it after ``failureThreshold`` failures in a row."""

    def event(type_: str, reason: str, message: str) -> None:
        events.record(pod_obj, type_, reason, message, field_path=field_path)

    probe = container.get("livenessProbe") or {}
    command = (probe.get("exec") or {}).get("command")
    if not command or record.spec is None or record.running is None:
        return
    period = max(int(probe.get("periodSeconds") or 10), 1)
    timeout = max(int(probe.get("timeoutSeconds") or 1), 1)
    threshold = max(int(probe.get("failureThreshold") or 3), 1)
    grace = probe.get("terminationGracePeriodSeconds")
    if grace is None:
        grace = (pod_obj.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
    if await _ended(record, float(probe.get("initialDelaySeconds") or 0)):
        return
    failures = 0
    while True:
        failed = await run_once(runtime, record.spec, [str(a) for a in command], timeout)
        if record.done.is_set():
            return
        failures = failures + 1 if failed is not None else 0
        if failed is not None:
            event("Warning", "Unhealthy", f"Liveness probe failed: {failed}")
        if failures >= threshold:
            event("Normal", "Killing", f"Container {record.name} failed liveness probe")
            await record.running.kill(float(grace))
            return
        if await _ended(record, period):
            return


async def _ended(record: ContainerRecord, seconds: float) -> bool:
    """Wait ``seconds``; whether the container ended meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(record.done.wait(), seconds)
    return record.done.is_set()
