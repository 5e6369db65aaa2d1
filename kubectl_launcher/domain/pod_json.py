"""The pod and event JSON we read, as `kubectl get -o json` prints it (all optional: a real server omits
empty fields)."""

from __future__ import annotations

from typing import Any, TypedDict

__all__ = [
    "ContainerState",
    "ContainerStateTerminated",
    "ContainerStateWaiting",
    "ContainerStatus",
    "Event",
    "EventSeries",
    "ObjectMeta",
    "Pod",
    "PodCondition",
    "PodSpec",
    "PodStatus",
]


class ObjectMeta(TypedDict, total=False):
    name: str
    namespace: str
    uid: str
    creationTimestamp: str
    labels: dict[str, str]


class ContainerStateWaiting(TypedDict, total=False):
    reason: str
    message: str


class ContainerStateTerminated(TypedDict, total=False):
    exitCode: int
    reason: str
    message: str
    signal: int


class ContainerState(TypedDict, total=False):
    waiting: ContainerStateWaiting
    running: dict[str, Any]
    terminated: ContainerStateTerminated


class ContainerStatus(TypedDict, total=False):
    name: str
    state: ContainerState
    ready: bool
    restartCount: int


class PodCondition(TypedDict, total=False):
    type: str
    status: str
    reason: str
    message: str


class PodStatus(TypedDict, total=False):
    phase: str
    reason: str
    message: str
    conditions: list[PodCondition]
    containerStatuses: list[ContainerStatus]
    initContainerStatuses: list[ContainerStatus]


class PodSpec(TypedDict, total=False):
    nodeName: str
    containers: list[dict[str, Any]]


class Pod(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: PodSpec
    status: PodStatus


class EventSeries(TypedDict, total=False):
    count: int
    lastObservedTime: str


class Event(TypedDict, total=False):
    metadata: ObjectMeta
    type: str
    reason: str
    message: str
    eventTime: str | None
    series: EventSeries
    lastTimestamp: str | None
    firstTimestamp: str | None
