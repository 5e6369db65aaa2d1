"""What of a site's workspace never goes into a pod: the files upstream's bundle leaves out of ``local/``
(study data and runtime settings, the pod templates they name) plus the site's own ``exclude`` list."""

from __future__ import annotations

import os
from collections.abc import Iterable

import yaml

from kubectl_launcher.transfer.pod_side import LOCAL_EXCLUDES


def local_excludes(site_workspace: str, extra: Iterable[str] = (), workspace_mount_path: str = "") -> frozenset[str]:
    """Paths under local/ that are not sent, as upstream's bundle leaves them out, plus ``extra``.

    ``extra`` entries may be absolute (under the site workspace or the mount path) or relative to
    the site workspace; anything outside local/ is ignored.
    """
    out = set(LOCAL_EXCLUDES)
    runtime = os.path.join(site_workspace, "local", "study_runtime.yaml")
    try:
        with open(runtime, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except (OSError, yaml.YAMLError):
        doc = None
    studies = doc.get("studies") if isinstance(doc, dict) else None
    for study in (studies or {}).values() if isinstance(studies, dict) else ():
        template = study.get("pod_template") if isinstance(study, dict) else None
        if isinstance(template, str) and template:
            extra = (*extra, f"local/{template}")
    roots = [os.path.abspath(site_workspace)] + ([workspace_mount_path.rstrip("/")] if workspace_mount_path else [])
    for path in extra:
        rel = path
        if os.path.isabs(path):
            rel = next((os.path.relpath(path, r) for r in roots if path.startswith(r + "/")), "")
        parts = [p for p in rel.replace(os.sep, "/").split("/") if p not in ("", ".")]
        if len(parts) > 1 and parts[0] == "local" and ".." not in parts:
            out.add("/".join(parts[1:]))
    return frozenset(out)
