"""The demo's pod watch, fed kubectl's indented JSON by a scripted stream (no kubectl process)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from kubectl_launcher_demo.watch import PodSighting, PodWatcher, ServerLogGate

import kubectl_launcher.kubectl.stream as seam_stream
from kubectl_launcher.kubectl import Kubectl
from kubectl_launcher.kubectl.journal import Journal
from tests.support.scripted_streamer import ScriptedRun, ScriptedStreamer


def event(kind: str, name: str, phase: str, *, padding: int = 0) -> list[str]:
    # `padding` fields make the object as long as a real pod's (kubectl prints several hundred lines).
    pod = {
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"kubectl-launcher/site": "site-1"}},
        "spec": {"args": ["}\n{"]},  # braces in a string never end an object
        "status": {"phase": phase, **{f"field{i}": {"value": i} for i in range(padding)}},
    }
    return json.dumps({"type": kind, "object": pod}, indent=4).splitlines()


class CountingDecoder(json.JSONDecoder):
    calls = 0

    def raw_decode(self, s: str, idx: int = 0) -> tuple[Any, int]:
        CountingDecoder.calls += 1
        return super().raw_decode(s, idx)


def test_each_pod_event_is_decoded_once_by_the_seam_however_long_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The demo's own decoder tried the text so far at every line: ~40 ms of the demo process's GIL per
    # pod event, taken from the local API double that runs in the same process while launches wait on it.
    monkeypatch.setattr(seam_stream.json, "JSONDecoder", CountingDecoder)
    lines = event("ADDED", "a", "Pending", padding=300) + event("MODIFIED", "a", "Running", padding=300)
    assert len(lines) > 1800
    kubectl = Kubectl(
        kubectl="/nonexistent/kubectl",  # nothing may start it
        cache_dir=str(tmp_path / "cache"),
        journal=Journal(str(tmp_path / "j")),
        streamer=ScriptedStreamer([ScriptedRun(lines, until_stopped=True)]),
    )
    seen: list[str] = []
    both = threading.Event()

    def on_change(sighting: PodSighting, _previous: str) -> None:
        seen.append(sighting.phase)
        if len(seen) == 2:
            both.set()

    watcher = PodWatcher(kubectl, on_change)
    watcher.start()
    try:
        assert both.wait(10), seen
    finally:
        watcher.stop()
    assert seen == ["Pending", "Running"]
    assert watcher.history.phases["a"] == ["Pending", "Running"]
    assert CountingDecoder.calls == 2


def test_the_server_log_is_followed_once_every_sites_job_container_has_started() -> None:
    gate = ServerLogGate("server", ["server", "site-1", "site-2"])
    server = PodSighting("p-server", "server", "Running", main_container="c", main_state="running")
    assert gate.see(PodSighting("p-site-1", "site-1", "Pending", main_state="waiting")) is None
    assert gate.see(server) is None  # the clients still launch
    assert gate.see(PodSighting("p-site-1", "site-1", "Running", main_state="running")) is None
    assert gate.see(PodSighting("p-site-2", "site-2", "Running", main_state="running")) == server


def test_the_server_log_is_followed_when_the_server_job_ends_first() -> None:
    gate = ServerLogGate("server", ["server", "site-1", "site-2"])
    assert gate.see(PodSighting("p-server", "server", "Running", main_state="running")) is None
    ended = PodSighting("p-server", "server", "Failed", main_container="c", main_state="terminated")
    assert gate.see(ended) == ended
