"""Output for people and for programs: a plain table (bold header only on a terminal), JSON, YAML, colour.

Nothing decorative when stdout is not a terminal: no colour, no bold, no summary lines mixed into
machine output. The formatting functions are pure; `is_tty` is the one place that asks.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

import yaml

_RESET = "\033[0m"
_COLOURS = ("36", "33", "32", "35", "34", "31", "96", "93", "92", "95")
SEVERITY_COLOUR = {"ok": "32", "warn": "33", "error": "31"}


def is_tty(stream: TextIO) -> bool:
    """Colour and bold only on a terminal, and never with NO_COLOR set (no-color.org)."""
    try:
        return stream.isatty() and not os.environ.get("NO_COLOR")
    except (AttributeError, ValueError):
        return False


def paint(text: str, colour: str, enabled: bool) -> str:
    return f"\033[{colour}m{text}{_RESET}" if enabled and colour else text


def colour_for(key: str) -> str:
    """A stable colour per key (site/container), as stern gives each pod its own."""
    return _COLOURS[sum(key.encode()) % len(_COLOURS)]


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, bold: bool = False) -> str:
    """Columns padded to their widest cell, kubectl style (upper-case header, three spaces apart)."""
    cells = [[h.upper() for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["   ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in cells]
    if bold:
        lines[0] = paint(lines[0], "1", True)
    return "\n".join(lines) + "\n"


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def to_yaml(data: Any) -> str:
    return str(yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True))


def dump(data: Any, fmt: str) -> str:
    """Machine output: 'json' or 'yaml'."""
    return to_yaml(data) if fmt == "yaml" else to_json(data)


def age(created: str | None, now: datetime) -> str:
    """kubectl's short age ('45s', '12m', '3h', '5d') of an RFC 3339 timestamp; '<unknown>' without one."""
    seconds = elapsed(created, now)
    if seconds is None:
        return "<unknown>"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= 2 * size or (unit == "m" and seconds >= size):
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def elapsed(stamp: str | None, now: datetime) -> float | None:
    """Seconds from an RFC 3339 timestamp to now; None when there is none or it does not parse."""
    if not stamp:
        return None
    try:
        then = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    return max(0.0, (now - then).total_seconds())


def first_line(text: str, limit: int = 200) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def labels_of(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return ((obj.get("metadata") or {}).get("labels")) or {}
