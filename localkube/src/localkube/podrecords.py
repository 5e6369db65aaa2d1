"""What the kubelet keeps per pod and per container while it runs them."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from localkube.podstatus import PodStatus
from localkube.runtime import ContainerSpec, RunningContainer

log = logging.getLogger("localkube.kubelet")


class PodGone(Exception):
    """The pod was deleted, or its node was lost: the worker stops reporting."""


@dataclass
class ContainerRecord:
    name: str
    log_path: str
    spec: ContainerSpec | None = None
    running: RunningContainer | None = None
    started: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class PodRecord:
    uid: str
    namespace: str
    name: str
    pod_dir: str
    status: PodStatus
    containers: dict[str, ContainerRecord] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    bound: bool = False
    finished: bool = False
    deleting: bool = False
    lost: bool = False


def log_task_errors(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s failed", task.get_name(), exc_info=task.exception())
