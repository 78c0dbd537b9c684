"""NVIDIA GPUs through `nvidia-smi`'s looping query mode.

Two long-running `nvidia-smi ... -lms N` children (child_loop.py; started on the first read,
stopped when the sampler stops) print one CSV line per GPU, and one per process holding GPU memory,
every N ms; a reader thread keeps the latest of each, so a sampler tick only copies a few numbers.

Record keys: `gpu` {"nvidia<index>": {name, mem_used_mib, mem_total_mib, util_pct, clock_mhz,
clock_max_mhz, mem_clock_mhz, mem_clock_max_mhz, temp_c, power_w, power_limit_w, throttle}} and
`gpu_process_mib`, the measured process's own memory on all GPUs (absent when nvidia-smi does not
list it: a container without the host's pid namespace, or a process that has no CUDA context).
`throttle` lists the active clock-event reasons that slow the GPU down (nvidia-smi's names:
sw_power_cap, hw_slowdown, sw_thermal_slowdown, hw_thermal_slowdown, hw_power_brake_slowdown);
an idle GPU or an application clock setting is not throttling.
"""

from __future__ import annotations

import subprocess
import threading
import time
from typing import Dict, List, Optional, Tuple

from .base import Context, Reader, Unavailable, register
from .child_loop import ChildLoop, find_program
from .gpu import gpu_throttle
from .settings import Setting, Text

SETTINGS = [
    Setting("nvidia_smi", Text("a program name or path"), "nvidia-smi",
            doc="the nvidia-smi program that reports NVIDIA GPUs (a name looked up in PATH, or a path)"),
]

# (nvidia-smi field, record key, parse)
_GPU_FIELDS: List[Tuple[str, str, str]] = [
    ("index", "index", "int"), ("name", "name", "text"),
    ("memory.used", "mem_used_mib", "num"), ("memory.total", "mem_total_mib", "num"),
    ("utilization.gpu", "util_pct", "num"),
    ("clocks.sm", "clock_mhz", "num"), ("clocks.max.sm", "clock_max_mhz", "num"),
    ("clocks.mem", "mem_clock_mhz", "num"), ("clocks.max.mem", "mem_clock_max_mhz", "num"),
    ("temperature.gpu", "temp_c", "num"), ("power.draw", "power_w", "num"), ("power.limit", "power_limit_w", "num"),
]
# drivers before 535 know only the older name of the same bit mask
_REASON_FIELDS = ("clocks_event_reasons.active", "clocks_throttle_reasons.active")
# nvmlClocksEventReasons bits that mean the GPU is held below the clock it asks for
THROTTLE_BITS = {0x4: "sw_power_cap", 0x8: "hw_slowdown", 0x20: "sw_thermal_slowdown",
                 0x40: "hw_thermal_slowdown", 0x80: "hw_power_brake_slowdown"}
_APP_QUERY = "--query-compute-apps=pid,gpu_uuid,used_memory"
_FORMAT = "--format=csv,noheader,nounits"
# the loop never runs faster than this: nvidia-smi's own cost grows with its rate
MIN_LOOP_MS = 100


def throttle_reasons(mask: Optional[int]) -> Optional[List[str]]:
    if mask is None:
        return None
    return [name for bit, name in sorted(THROTTLE_BITS.items()) if mask & bit]


def _value(text: str, kind: str):
    text = text.strip()
    # "[N/A]", "[Not Supported]", "[Unknown Error]": no reading, which is not 0
    if not text or text.startswith("[") or text in ("N/A", "Not Supported"):
        return None
    if kind == "text":
        return text
    try:
        return int(text, 0) if kind == "int" else float(text)
    except ValueError:
        return None


def parse_gpu_line(line: str, reason_field: Optional[str]) -> Optional[dict]:
    """One CSV line of the GPU query -> a record fragment's GPU entry (with "index"), or None."""
    parts = [p.strip() for p in line.split(",")]
    # the uuid column sits between index and name so that several GPUs' processes can be told apart
    wanted = len(_GPU_FIELDS) + 1 + (1 if reason_field else 0)
    if len(parts) != wanted:
        return None
    index, uuid, rest = parts[0], parts[1], parts[2:]
    entry = {"index": _value(index, "int"), "uuid": uuid}
    for (_field, key, kind), text in zip(_GPU_FIELDS[1:], rest):
        entry[key] = _value(text, kind)
    if reason_field:
        entry["throttle"] = throttle_reasons(_value(rest[-1], "int"))
    return entry if entry["index"] is not None else None


def parse_app_line(line: str) -> Optional[Tuple[int, str, float]]:
    parts = [p.strip() for p in line.split(",")]
    if len(parts) != 3:
        return None
    pid, mib = _value(parts[0], "int"), _value(parts[2], "num")
    return (pid, parts[1], mib) if pid is not None and mib is not None else None


def _gpu_query(reason_field: Optional[str]) -> str:
    fields = [f for f, _k, _p in _GPU_FIELDS]
    fields.insert(1, "uuid")
    if reason_field:
        fields.append(reason_field)
    return "--query-gpu=" + ",".join(fields)


def _run_once(program: str, query: str) -> str:
    try:
        done = subprocess.run([program, query, _FORMAT], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=15, universal_newlines=True)
    except PermissionError:
        raise Unavailable("permission denied: " + program)
    except (OSError, subprocess.SubprocessError) as exc:
        raise Unavailable("error: %s: %s" % (program, exc))
    if done.returncode != 0:
        first = (done.stdout.strip().splitlines() or ["exit status %d" % done.returncode])[0]
        raise _Refused(first)
    return done.stdout


class _Refused(Unavailable):
    """nvidia-smi ran and said no (no driver, no GPU, an unknown field)."""


@register("nvidia_smi", order=80, settings=SETTINGS, throttle=gpu_throttle)
def discover(ctx: Context) -> Reader:
    program = ctx.settings["nvidia_smi"]
    found = find_program(program)
    if not found:
        raise Unavailable("not present: " + program)
    reason_field = None
    for candidate in _REASON_FIELDS + (None,):
        try:
            text = _run_once(found, _gpu_query(candidate))
        except _Refused as refused:
            if candidate is None or "field" not in refused.reason.lower():
                raise Unavailable("refused: %s: %s" % (program, refused.reason))
            continue
        reason_field = candidate
        break
    if not [line for line in text.splitlines() if parse_gpu_line(line, reason_field)]:
        raise Unavailable("not present: no GPU listed by " + program)
    return _reader(ctx, found, reason_field)


def _reader(ctx: Context, program: str, reason_field: Optional[str]) -> Reader:
    # each nvidia-smi query takes the driver's lock for a moment, which delays the engine's kernel
    # launches (measured on an H200: tg128 1.2% slower with two loops at half the sampler's
    # interval); one GPU line per sampler tick is enough, and a process's memory changes slowly
    interval_ms = max(MIN_LOOP_MS, int(ctx.interval_s * 1000))
    apps_ms = 2 * interval_ms
    # a process not listed for a few loops has released its memory or exited
    stale_s = max(1.5, 3 * apps_ms / 1000.0)
    lock = threading.Lock()
    gpus: Dict[int, dict] = {}
    apps: Dict[Tuple[int, str], Tuple[float, float]] = {}

    def on_gpu(line):
        entry = parse_gpu_line(line, reason_field)
        if entry is not None:
            with lock:
                gpus[entry["index"]] = entry

    def on_app(line):
        parsed = parse_app_line(line)
        if parsed is not None:
            pid, uuid, mib = parsed
            with lock:
                apps[(pid, uuid)] = (mib, time.monotonic())

    loops = [ChildLoop([program, _gpu_query(reason_field), _FORMAT, "-lms", str(interval_ms)], on_gpu,
                       "edgebench-nvidia-smi"),
             ChildLoop([program, _APP_QUERY, _FORMAT, "-lms", str(apps_ms)], on_app, "edgebench-nvidia-smi")]

    def read() -> dict:
        for loop in loops:
            loop.ensure()
        pid, now = ctx.current_pid(), time.monotonic()
        with lock:
            entries = [dict(e) for _i, e in sorted(gpus.items())]
            own = [mib for (p, _uuid), (mib, seen) in apps.items() if p == pid and now - seen <= stale_s]
        fragment = {}
        if entries:
            fragment["gpu"] = {"nvidia%d" % e.pop("index"): _without_none(e) for e in entries}
        if own:
            fragment["gpu_process_mib"] = sum(own)
        return fragment

    def close() -> None:
        for loop in loops:
            loop.close()

    return Reader(read, close=close)


def _without_none(entry: dict) -> dict:
    entry.pop("uuid", None)
    return {k: v for k, v in entry.items() if v is not None}
