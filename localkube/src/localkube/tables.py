"""Server-side printing (`Accept: ...;as=Table;g=meta.k8s.io`) as kube-apiserver does it for pods, so a plain
`kubectl get pods` shows NAME READY STATUS RESTARTS AGE like on a real cluster; other kinds get NAME/AGE."""

from __future__ import annotations

import datetime
from typing import Any

from localkube.resources import Obj


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def _age(created: str | None) -> str:
    if not created:
        return "<unknown>"
    then = datetime.datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    seconds = int((datetime.datetime.now(datetime.UTC) - then).total_seconds())
    if seconds < 120:
        return f"{max(seconds, 0)}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    return f"{hours}h" if hours < 48 else f"{hours // 24}d"


def pod_status_text(pod: Obj) -> str:
    """The STATUS column, following kubectl's printPod rules for the cases a restartPolicy Never pod reaches."""
    status = pod.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Pending"
    init_statuses = status.get("initContainerStatuses") or []
    initializing = False
    for i, cs in enumerate(init_statuses):
        state = cs.get("state") or {}
        term = state.get("terminated")
        if term and term.get("exitCode") == 0:
            continue
        initializing = True
        if term:
            reason = "Init:" + (term.get("reason") or f"ExitCode:{term.get('exitCode')}")
        elif (state.get("waiting") or {}).get("reason") not in (None, "", "PodInitializing"):
            reason = "Init:" + state["waiting"]["reason"]
        else:
            reason = f"Init:{i}/{len(init_statuses)}"
        break
    if not initializing:
        running = False
        for cs in reversed(status.get("containerStatuses") or []):
            state = cs.get("state") or {}
            if (state.get("waiting") or {}).get("reason"):
                reason = state["waiting"]["reason"]
            elif state.get("terminated"):
                term = state["terminated"]
                reason = term.get("reason") or f"ExitCode:{term.get('exitCode')}"
            elif state.get("running") and cs.get("ready"):
                running = True
        if reason == "Completed" and running:
            reason = "Running"
    if pod["metadata"].get("deletionTimestamp"):
        reason = "Unknown" if status.get("reason") == "NodeLost" else "Terminating"
    return str(reason)


def table(resource: str, items: list[Obj], rv: str) -> Obj:
    columns: list[Obj] = [{"name": "Name", "type": "string", "format": "name", "description": "", "priority": 0}]
    if resource == "pods":
        columns += [
            {"name": "Ready", "type": "string", "format": "", "description": "", "priority": 0},
            {"name": "Status", "type": "string", "format": "", "description": "", "priority": 0},
            {"name": "Restarts", "type": "string", "format": "", "description": "", "priority": 0},
        ]
    columns.append({"name": "Age", "type": "string", "format": "", "description": "", "priority": 0})
    if resource == "pods":
        columns += [
            {"name": "IP", "type": "string", "format": "", "description": "", "priority": 1},
            {"name": "Node", "type": "string", "format": "", "description": "", "priority": 1},
        ]
    rows = []
    for obj in items:
        meta = obj["metadata"]
        cells: list[Any] = [meta["name"]]
        if resource == "pods":
            statuses = (obj.get("status") or {}).get("containerStatuses") or []
            ready = sum(1 for s in statuses if s.get("ready"))
            cells += [f"{ready}/{len(obj['spec'].get('containers') or [])}", pod_status_text(obj), "0"]
        cells.append(_age(meta.get("creationTimestamp")))
        if resource == "pods":
            cells += [(obj.get("status") or {}).get("podIP") or "<none>", obj["spec"].get("nodeName") or "<none>"]
        rows.append(
            {
                "cells": cells,
                "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta},
            }
        )
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv},
        "columnDefinitions": columns,
        "rows": rows,
    }
