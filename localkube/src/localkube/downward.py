"""Plain ``downwardAPI`` volumes as the kubelet writes them, and their refresh when the pod's metadata changes.

What a real kubelet does (pkg/volume/downwardapi with the AtomicWriter of pkg/volume/util):

* each item's file holds one field: ``metadata.name``, ``metadata.namespace``, ``metadata.uid``, one label or
  annotation (``metadata.annotations['key']``), or all of them as ``key="value"`` lines sorted by key, the value
  quoted as Go's ``%q`` does, the last line without a newline (fieldpath.FormatMap);
* the files live in a hidden folder ``..<timestamp>``; ``..data`` is a symlink to it and each item's path a
  symlink through ``..data``. An update writes a new hidden folder, points a fresh symlink at it and renames
  that over ``..data`` (one atomic rename), then removes the old folder: a reader sees the old content or the
  new one, never half of each;
* the content is refreshed while the pod runs when its labels or annotations change (a real kubelet does it
  on its pod sync, up to a minute or two later; this one does it as soon as the change is stored).

``resourceFieldRef`` items read "0": the double sets no limits a container could read back.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Mapping

from localkube.projected import field_text
from localkube.resources import Obj

DATA = "..data"


def render(pod: Obj, volume: Obj) -> dict[str, bytes]:
    """Relative path -> content of one ``downwardAPI`` volume for ``pod`` as it is now."""
    files: dict[str, bytes] = {}
    for item in volume.get("items") or []:
        if "fieldRef" in item:
            files[item["path"]] = field_text(pod, item["fieldRef"]["fieldPath"]).encode()
        else:
            files[item["path"]] = b"0"
    return files


def current(target: str) -> dict[str, bytes] | None:
    """What the volume at ``target`` shows now (None: never written)."""
    data = os.path.join(target, DATA)
    if not os.path.islink(data):
        return None
    out: dict[str, bytes] = {}
    for dirpath, _, names in os.walk(data + "/"):
        for name in names:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, data)] = f.read()
    return out


def write(target: str, files: Mapping[str, bytes], mode: int = 0o644) -> bool:
    """Show ``files`` in ``target`` through one atomic ``..data`` swap; False when they are shown already."""
    if current(target) == dict(files):
        return False
    os.makedirs(target, exist_ok=True)
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime()) + f"{time.time_ns() % 10**9:09d}"
    fresh = os.path.join(target, stamp)
    os.mkdir(fresh, 0o755)
    for rel, content in files.items():
        path = os.path.join(fresh, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(content)
        os.chmod(path, mode)
    data = os.path.join(target, DATA)
    old = os.readlink(data) if os.path.islink(data) else None
    link = os.path.join(target, "..data_tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(link)
    os.symlink(stamp, link)
    os.rename(link, data)  # the one atomic step: readers move from the old folder to the new one here
    for rel in files:
        top = rel.split("/", 1)[0]
        visible = os.path.join(target, top)
        if not os.path.lexists(visible):
            os.symlink(os.path.join(DATA, top), visible)
    if old is not None and old != stamp:
        shutil.rmtree(os.path.join(target, old), ignore_errors=True)
    return True


def refresh(pod_dir: str, pod: Obj) -> list[str]:
    """Rewrite the pod's downwardAPI volumes (those set up already) that no longer match it; their names."""
    changed = []
    for vol in (pod.get("spec") or {}).get("volumes") or []:
        if "downwardAPI" not in vol:
            continue
        target = os.path.join(pod_dir, "volumes", vol["name"])
        if not os.path.islink(os.path.join(target, DATA)):
            continue  # not set up yet: the kubelet's own set-up writes it from the pod it reads then
        source = vol["downwardAPI"]
        if write(target, render(pod, source), int(source.get("defaultMode", 0o644))):
            changed.append(vol["name"])
    return changed
