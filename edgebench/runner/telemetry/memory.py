"""Memory: the engine's resident set and peak (proc/<pid>/status) and MemAvailable.

Window summary:
- `peak_rss_kb`: highest VmHWM (or VmRSS) seen. VmHWM is the process's lifetime peak, so for a
  long-lived engine it can predate the window; `max_rss_kb` is the highest VmRSS sampled inside it.

Row column `peak_rss_mib`: the highest peak over the repetitions' windows and the runner's own
VmHWM at the end of the cell (its `done` event's `peak_rss_kb`, for engines that run inside it).
"""

from __future__ import annotations

import os
from typing import Dict, Optional

from .base import Context, Problems, Reader, read_text, register
from .columns import Column, Windows

STATUS_FIELDS = {"VmRSS": "rss_kb", "VmHWM": "hwm_kb"}


def parse_kb_fields(text: str, wanted) -> Dict[str, int]:
    """`Name:   1234 kB` lines -> {Name: 1234} for the wanted names only."""
    found = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name in wanted:
            try:
                found[name] = int(rest.split()[0])
            except (IndexError, ValueError):
                pass
    return found


def own_rss_kb(field: str = "VmRSS", root: str = "/", pid: Optional[int] = None) -> Optional[int]:
    """One field of a process's status in kB (default: this process's VmRSS), or None."""
    path = os.path.join(root, "proc", str(pid or os.getpid()), "status")
    try:
        return parse_kb_fields(read_text(path), (field,)).get(field)
    except OSError:
        return None


def summarize(window) -> dict:
    rss = [r["rss_kb"] for r in window.records if r.get("rss_kb") is not None]
    peaks = rss + [r["hwm_kb"] for r in window.records if r.get("hwm_kb") is not None]
    return {"peak_rss_kb": max(peaks) if peaks else None, "max_rss_kb": max(rss) if rss else None}


def peak_rss_mib(windows: Windows):
    peaks = windows.values("peak_rss_kb") + [v for v in (windows.cell.get("peak_rss_kb"),) if v is not None]
    return max(peaks) / 1024 if peaks else None


@register("memory", order=10, summarize=summarize, columns=[Column("peak_rss_mib", peak_rss_mib)])
def discover(ctx: Context) -> Reader:
    meminfo = ctx.path("proc", "meminfo")
    problems = Problems(ctx.root)
    usable = []
    for path in (ctx.path("proc", str(ctx.current_pid()), "status"), meminfo):
        try:
            read_text(path)
            usable.append(path)
        except OSError as exc:
            problems.add(exc, path)
    if not usable:
        raise problems.unavailable("not present: proc")
    has_meminfo = meminfo in usable

    def read() -> dict:
        # the pid is looked up every tick: the engine may be a child that starts,
        # exits and is replaced between tests
        pid = ctx.current_pid()
        record = {"pid": pid}
        try:
            fields = parse_kb_fields(read_text(ctx.path("proc", str(pid), "status")), STATUS_FIELDS)
            for name, key in STATUS_FIELDS.items():
                if name in fields:
                    record[key] = fields[name]
        except OSError:
            pass
        if has_meminfo:
            try:
                available = parse_kb_fields(read_text(meminfo), ("MemAvailable",)).get("MemAvailable")
            except OSError:
                available = None
            if available is not None:
                record["mem_available_kb"] = available
        return record

    return Reader(read)

