"""What a test's containers may not leave behind on the host: live processes in their groups, mounts."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence


def live_members(groups: set[int]) -> list[str]:
    """Processes (not zombies) whose process group is one of ours."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) in groups:
            found.append(entry)
    return found


def assert_nothing_left(markers: Sequence[str], groups: set[int]) -> None:
    """No mount mentioning our paths on the host, no live process in our containers' groups (polls briefly)."""
    deadline = time.monotonic() + 5
    while live_members(groups) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert live_members(groups) == []
    with open("/proc/self/mountinfo") as f:
        mountinfo = f.read()
    for marker in markers:
        assert marker not in mountinfo
