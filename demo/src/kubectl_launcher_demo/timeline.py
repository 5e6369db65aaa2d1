"""Where a job's time went, per site: the launcher's journals, the pod watch and NVFlare's own logs on one clock.

Every source already carries wall-clock times: each journal line its start and duration, the pod watch
the moment it saw each milestone (finer than the pod's own one-second timestamps), NVFlare's logs their
millisecond stamps. Nothing here runs anything; the demo prints :func:`render` at its end.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubectl_launcher_demo.deployment import SERVER, SITES, PocDeployment
from kubectl_launcher_demo.watch import PodHistory

UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
LOG_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def log_time(line: str) -> float | None:
    """Epoch seconds of an NVFlare log line (its stamps are local time), None if it has none."""
    match = LOG_STAMP.match(line)
    if not match:
        return None
    return datetime.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


def iso_time(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass
class Command:
    kind: str
    start: float
    duration: float

    @property
    def end(self) -> float:
        return self.start + self.duration


@dataclass
class SiteTimeline:
    """One site's milestones (epoch seconds) and its kubectl commands."""

    site: str
    marks: dict[str, float] = field(default_factory=dict)
    commands: list[Command] = field(default_factory=list)

    def mark(self, what: str, at: float | None, *, last: bool = False) -> None:
        if at is None:
            return
        if last or what not in self.marks:
            self.marks[what] = at

    def of(self, kind: str) -> list[Command]:
        return [c for c in self.commands if c.kind == kind]

    def span(self, kind: str) -> tuple[float, float] | None:
        found = self.of(kind)
        return (found[0].start, found[-1].end) if found else None


def add_journal(tl: SiteTimeline, entries: Sequence[Mapping[str, Any]], job_id: str) -> None:
    """The site's commands for this job: those naming it, and those naming no job (setup, Secrets by stdin)."""
    for entry in entries:
        argv = [str(a) for a in entry.get("argv", [])]
        named = {m.lower() for a in argv for m in UUID.findall(a)}
        if named and job_id.lower() not in named:
            continue  # another job's command (the site journal holds every job)
        kind = str(entry.get("purpose") or "?")  # what the launcher said the command was for
        start = iso_time(str(entry.get("started_at")))
        tl.commands.append(Command(kind, start, float(entry.get("duration") or 0.0)))
    tl.commands.sort(key=lambda c: c.start)
    # The site's set-up and take-over run once per launcher, at NVFlare's system start: not the launch's.
    launch = [c for c in tl.commands if c.kind not in ("setup", "takeover")]
    if launch:
        tl.mark("launch: first kubectl", launch[0].start)
    for kind, first, last in (
        ("apply", "pod applied", None),
        ("deliver", "delivery: first command", "delivery: done"),
        ("collect", "collection: first command", "collection: done"),
        ("release", None, "keeper released"),
    ):
        span = tl.span(kind)
        if span:
            if first:
                tl.mark(first, span[0])
            if last:
                tl.mark(last, span[1])


WATCH_MARKS = {
    "seen": "pod seen by the watch",
    "scheduled": "pod scheduled",
    "init-running": "init container running",
    "init-done": "init container done",
    "main-running": "main container running",
    "main-exited": "main container exited",
    "keeper-exited": "keeper exited",
    "phase-Succeeded": "pod Succeeded",
    "phase-Failed": "pod Failed",
    "deleted": "pod deleted",
}


def add_watch(tl: SiteTimeline, milestones: Mapping[str, float]) -> None:
    for key, label in WATCH_MARKS.items():
        tl.mark(label, milestones.get(key))


def stamped(lines: Sequence[str]) -> list[tuple[float, str]]:
    """Lines with their time; a continuation line (NVFlare's multi-line banners) takes its record's stamp."""
    out: list[tuple[float, str]] = []
    current: float | None = None
    for line in lines:
        current = log_time(line) or current
        if current is not None:
            out.append((current, line))
    return out


def add_log_lines(tl: SiteTimeline, lines: Sequence[str], patterns: Mapping[str, str], *, last: bool = False) -> None:
    """Mark the first (or last) line matching each regular expression."""
    for at, line in stamped(lines):
        for label, needle in patterns.items():
            if re.search(needle, line):
                tl.mark(label, at, last=last)


def read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []


def job_process_marks(tl: SiteTimeline, job_log: Path) -> None:
    lines = read_lines(job_log)
    add_log_lines(
        tl,
        lines,
        {
            "job process started": r"_process started\.",
            "job process connected to its parent": "created backbone internal connector",
            "first round started": "Round 0 started",
        },
    )
    add_log_lines(
        tl, lines, {"last round started": r"Round \d+ started", "job process said goodbye": "MPM: Good Bye"}, last=True
    )


def parent_marks(tl: SiteTimeline, parent_lines: Sequence[str], job_id: str) -> None:
    mine = [line for line in parent_lines if job_id in line]
    add_log_lines(
        tl,
        mine,
        {
            "scheduled by the server": r"get result: \(scheduled\)",
            "launch_job returned": "with job launcher",
            "clients told to start": "Started run:",
            "handle saw the end": r" ended: (phase|job container exit code)",
            "parent got the return code": "child worker process finished with RC",
        },
    )


#: The order milestones are printed in (a site shows only those it has).
ORDER = (
    "scheduled by the server",
    "launch: first kubectl",
    "pod applied",
    "pod scheduled",
    "init container running",
    "delivery: first command",
    "delivery: done",
    "init container done",
    "main container running",
    "job process started",
    "job process connected to its parent",
    "launch_job returned",
    "clients told to start",
    "first round started",
    "last round started",
    "job process said goodbye",
    "main container exited",
    "collection: first command",
    "collection: done",
    "keeper released",
    "keeper exited",
    "pod Succeeded",
    "pod Failed",
    "handle saw the end",
    "parent got the return code",
    "server: job FINISHED seen",
    "pod deleted",
)


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:+.1f}"


def render(sites: Sequence[SiteTimeline], zero: float, *, zero_label: str = "submit") -> list[str]:
    """A compact table (seconds after ``zero``), the kubectl commands per kind, and the largest gaps."""
    names = [tl.site for tl in sites]
    width = max(len(w) for w in ORDER) + 1
    lines = [f"{'timeline, s after ' + zero_label:{width}}" + "".join(f"{n:>9}" for n in names)]
    for what in ORDER:
        row = [tl.marks.get(what) for tl in sites]
        if all(v is None for v in row):
            continue
        lines.append(f"  {what:{width - 2}}" + "".join(f"{_fmt(None if v is None else v - zero):>9}" for v in row))
    kinds = sorted({c.kind for tl in sites for c in tl.commands}, key=_kind_order)
    lines.append(f"{'kubectl processes (seconds)':{width}}" + "".join(f"{n:>10}" for n in names))
    for kind in kinds:
        cells = []
        for tl in sites:
            found = tl.of(kind)
            cells.append(f"{len(found)} ({sum(c.duration for c in found):.1f})" if found else "")
        lines.append(f"  {KIND_LABELS.get(kind, kind):{width - 2}}" + "".join(f"{c:>10}" for c in cells))
    totals = [f"{len(tl.commands)} ({sum(c.duration for c in tl.commands):.1f})" for tl in sites]
    lines.append(f"  {'all':{width - 2}}" + "".join(f"{c:>10}" for c in totals))
    return lines


#: Rows whose commands serve the whole site, not one job: the pod watch (its lists and its long-running
#: kubectl, journaled once in the site journal) and the namespace's shared events read.
KIND_LABELS = {"watch": "watch (site-wide)", "events": "events (site-wide)"}


def _kind_order(kind: str) -> int:
    order = ("setup", "secret", "apply", "read", "watch", "events", "deliver", "lease", "collect", "release", "delete")
    return order.index(kind) if kind in order else len(order)


def _gap(tl: SiteTimeline, a: str, b: str) -> float | None:
    if a in tl.marks and b in tl.marks:
        return tl.marks[b] - tl.marks[a]
    return None


def critical_path(sites: Sequence[SiteTimeline], zero: float, finished: float | None) -> list[tuple[str, float, str]]:
    """submit -> FINISHED as a chain of steps whose lengths add up: (step, seconds, what it was made of).

    A step whose end is unknown is merged into the next one.
    """
    by = {tl.site: tl for tl in sites}
    server = by.get(SERVER)
    clients = [tl for tl in sites if tl.site != SERVER]
    if server is None:
        return []

    def latest(tls: Sequence[SiteTimeline], what: str) -> tuple[float | None, SiteTimeline | None]:
        known = [(tl.marks[what], tl) for tl in tls if what in tl.marks]
        if not known:
            return None, None
        at, tl = max(known, key=lambda pair: pair[0])
        return at, tl

    client_launch, slow_launch = latest(clients, "launch_job returned")
    connected, _ = latest(clients, "job process connected to its parent")
    ends = [tl for tl in sites if "parent got the return code" in tl.marks or "handle saw the end" in tl.marks]
    end_at, end_tl = None, None
    for tl in ends:
        at = tl.marks.get("parent got the return code", tl.marks.get("handle saw the end"))
        if at is not None and (end_at is None or at > end_at):
            end_at, end_tl = at, tl
    points: list[tuple[str, float | None, str]] = [
        ("submit -> server scheduled (NVFlare)", server.marks.get("scheduled by the server"), ""),
        ("server launch_job", server.marks.get("launch_job returned"), _launch_note(server)),
        (
            "clients' launch_job (slowest)",
            client_launch,
            f"{slow_launch.site}: {_launch_note(slow_launch)}" if slow_launch and _launch_note(slow_launch) else "",
        ),
        ("-> last client job process connected", connected, "python start-up + NVFlare registration"),
        ("-> server job says goodbye (rounds, end of run)", server.marks.get("job process said goodbye"), ""),
        (
            "-> last job's return code at its parent",
            end_at,
            f"{end_tl.site}: {_tail_note(end_tl)}" if end_tl and _tail_note(end_tl) else "",
        ),
        ("-> FINISHED seen (NVFlare's 1 s loop, demo's 0.5 s poll)", finished, ""),
    ]
    out: list[tuple[str, float, str]] = []
    previous = zero
    for label, at, note in points:
        if at is None or at < previous:
            continue
        out.append((label, at - previous, note))
        previous = at
    return out


def render_paths(ours: Sequence[tuple[str, float, str]], base: Sequence[tuple[str, float, str]]) -> list[str]:
    """Our chain, next to the baseline's step by step when there is one (a step it lacks shows '-')."""
    base_of = {label: seconds for label, seconds, _ in base}

    def other(label: str | None, seconds: float | None = None) -> str:
        if not base:
            return ""
        if label is not None:
            seconds = base_of.get(label)
        return f"{'-' if seconds is None else f'{seconds:.1f}':>8}"

    lines = [f"  {'step':56} {'ours':>6}" + (f" {'process':>8}" if base else "")]
    for label, seconds, note in ours:
        lines.append(f"  {label:56} {seconds:6.1f} {other(label)}".rstrip())
        if note:
            lines.append(f"      {note}")
    total = sum(s for _, s, _ in ours)
    base_total = sum(s for _, s, _ in base)
    lines.append(f"  {'total, server submit -> FINISHED seen':56} {total:6.1f} {other(None, base_total)}".rstrip())
    return lines


def _launch_note(tl: SiteTimeline) -> str:
    parts = []
    pre = _gap(tl, "launch: first kubectl", "pod applied")
    if pre is not None:
        parts.append(f"to apply {pre:.1f}")
    span = tl.span("deliver")
    if span and "pod applied" in tl.marks:
        parts.append(f"apply->delivery start {span[0] - tl.marks['pod applied']:.1f}")
        parts.append(f"delivery {span[1] - span[0]:.1f} ({len(tl.of('deliver'))} kubectl)")
        if "launch_job returned" in tl.marks:
            parts.append(f"delivered->running seen {tl.marks['launch_job returned'] - span[1]:.1f}")
    return ", ".join(parts)


def _tail_note(tl: SiteTimeline) -> str:
    parts = []
    exit_at = tl.marks.get("job process said goodbye")
    span = tl.span("collect")
    if exit_at is not None and span:
        parts.append(f"until collection starts {span[0] - exit_at:.1f}")
        parts.append(f"collection {span[1] - span[0]:.1f} ({len(tl.of('collect'))} kubectl)")
        seen = tl.marks.get("handle saw the end")
        if seen is not None:  # the keeper's release follows, off this path
            parts.append(f"collected->end seen {seen - span[1]:.1f}")
    return ", ".join(parts)


def build(
    dep: PocDeployment,
    job_id: str,
    pods: PodHistory | None,
    *,
    result_dir: Path | None,
    finished_at: float | None,
    kubectl: bool = True,
) -> list[SiteTimeline]:
    """Every site's timeline for ``job_id`` from what the demo has on disk and what its pod watch saw.

    ``kubectl=False``: a job that ran without our launcher (the process-launcher baseline).
    """
    from kubectl_launcher.domain.names import site_name_to_rfc1123
    from kubectl_launcher_demo.report import journal_entries, site_journal

    out = []
    for site in SITES:
        tl = SiteTimeline(site)
        if kubectl:
            add_journal(tl, journal_entries(site_journal(dep, site)), job_id)
        if pods is not None:
            label = site_name_to_rfc1123(site)
            for name, site_label in pods.sites.items():
                if site_label == label and job_id.lower() in name:
                    add_watch(tl, pods.milestones.get(name, {}))
        parent_marks(tl, read_lines(dep.site_dir(site) / "log.txt"), job_id)
        if site == SERVER:
            if result_dir is not None:
                job_process_marks(tl, result_dir / "log.txt")
            tl.mark("server: job FINISHED seen", finished_at)
        else:
            job_process_marks(tl, dep.site_dir(site) / job_id / "log.txt")
        out.append(tl)
    return out
