"""A folder's whole content as a dict, to compare a tree before and after (what changed, byte for byte)."""

from __future__ import annotations

import os
from pathlib import Path

#: relative path -> ("d", None) | ("l", link target) | ("f", bytes)
Snapshot = dict[str, tuple[str, bytes | str | None]]


def snapshot(root: Path) -> Snapshot:
    """Every entry under ``root``: folders, symlinks (not followed) with their targets, files with their bytes."""
    out: Snapshot = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = ("l", os.readlink(p))
            elif p.is_dir():
                out[rel] = ("d", None)
            else:
                out[rel] = ("f", p.read_bytes())
    return out
