"""Jetson's GPU through `tegrastats`, where devfreq cannot be read (a container without the host's
/sys/class/devfreq, an L4T release that hides the GPU's node).

One `tegrastats --interval N` child (child_loop.py) prints a line per interval, in one of the
layouts of NVIDIA's tegrastats appendix (L4T 32 to JetPack 6), for example (Orin):

    RAM 2836/30536MB (lfb 6466x4MB) ... EMC_FREQ 3%@2133 GR3D_FREQ 41%@[612,612] ... GPU@41.375C ...
    VDD_GPU_SOC 2386mW/2386mW VDD_CPU_CV 397mW/397mW VIN_SYS_5V0 2423mW/2423mW

- `GR3D_FREQ X%@F` (or `@[F,F]`, one clock per GPC on Orin): the GPU's load and clock in MHz;
- `EMC_FREQ X%@F`: the memory controller's clock;
- `GPU@T C` (`gpu@` on JetPack 6): its temperature; -256C is a powered-down sensor, no reading;
- rails `NAME cur/avg` (mW, with or without the unit): the GPU's power from the rails named like
  a GPU (`VDD_GPU_SOC`, `POM_5V_GPU`, `GPU`, `VDD_CPU_GPU_CV`), as the INA3221 source names them.

tegrastats prints no clock maximum, so its entry has no `clock_max_mhz` and no throttle reasons.
Record keys: `gpu` {"tegrastats": {util_pct, clock_mhz, temp_c, power_w}} and `emc_mhz`.
"""

from __future__ import annotations

import re
import subprocess
import threading
from typing import Optional

from . import devfreq_gpu
from .base import Context, Reader, Unavailable, register
from .child_loop import ChildLoop, find_program
from .settings import Setting, Text

SETTINGS = [
    Setting("tegrastats", Text("a program name or path"), "tegrastats",
            doc="Jetson's tegrastats, read where devfreq cannot read the GPU (a name in PATH, or a path)"),
]
MIN_INTERVAL_MS = 100
PROBE_TIMEOUT_S = 3
_LOAD_AT_CLOCK = r"(\d+)%(?:@\[?([\d,]+)\]?)?"
_GR3D = re.compile(r"\bGR3D_FREQ " + _LOAD_AT_CLOCK)
_EMC = re.compile(r"\bEMC_FREQ " + _LOAD_AT_CLOCK)
_TEMP = re.compile(r"\b([A-Za-z][\w]*)@(-?\d+(?:\.\d+)?)C\b")
_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?\b")
# a sensor that is powered down reads -256C
_LOWEST_TEMP_C = -40.0


def _clock(text: Optional[str]) -> Optional[float]:
    values = [int(v) for v in (text or "").split(",") if v.isdigit()]
    return float(max(values)) if values else None


def parse_line(line: str) -> dict:
    """One tegrastats line -> a record fragment ({} when it names no GPU reading)."""
    entry = {}
    gr3d = _GR3D.search(line)
    if gr3d:
        entry["util_pct"] = float(gr3d.group(1))
        clock = _clock(gr3d.group(2))
        if clock is not None:
            entry["clock_mhz"] = clock
    temps = [float(t) for name, t in _TEMP.findall(line) if name.lower() == "gpu" and float(t) > _LOWEST_TEMP_C]
    if temps:
        entry["temp_c"] = temps[0]
    rails = [int(cur) for name, cur, _avg in _RAIL.findall(line) if "GPU" in name]
    if rails:
        entry["power_w"] = sum(rails) / 1000.0
    fragment = {"gpu": {"tegrastats": entry}} if entry else {}
    emc = _EMC.search(line)
    if emc and _clock(emc.group(2)) is not None:
        fragment["emc_mhz"] = _clock(emc.group(2))
    return fragment


def _probe(program: str, name: str) -> None:
    """Runs tegrastats until its first line: one that may not read the GPU's statistics exits with
    an error instead, which is a refusal to report, not a GPU at 0 %."""
    child = subprocess.Popen([program, "--interval", str(MIN_INTERVAL_MS)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, universal_newlines=True)
    first = []
    reading = threading.Thread(target=lambda: first.append(child.stdout.readline()), daemon=True)
    reading.start()
    reading.join(PROBE_TIMEOUT_S)
    if child.poll() is None:
        child.terminate()
    try:
        _out, err = child.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        child.kill()
        err = ""
    if first and parse_line(first[0]):
        return
    if first and first[0].strip():
        raise Unavailable("not present: no GPU reading in %s's output" % name)
    said = (err or "").strip().splitlines()
    if said:
        raise Unavailable("refused: %s: %s" % (name, said[0]))
    raise Unavailable("error: %s printed nothing within %d s" % (name, PROBE_TIMEOUT_S))


def _devfreq_reads_the_gpu(ctx: Context) -> bool:
    try:
        reader = devfreq_gpu.discover(ctx)
    except Unavailable:
        return False
    reader.close()
    return True


@register("tegrastats", order=83, settings=SETTINGS)
def discover(ctx: Context) -> Reader:
    if _devfreq_reads_the_gpu(ctx):
        raise Unavailable("not needed: devfreq_gpu reads this GPU")
    program = ctx.settings["tegrastats"]
    found = find_program(program)
    if not found:
        raise Unavailable("not present: " + program)
    try:
        _probe(found, program)
    except OSError as exc:
        raise Unavailable("error: %s: %s" % (program, exc))
    lock = threading.Lock()
    latest = {}

    def on_line(line):
        fragment = parse_line(line)
        if fragment:
            with lock:
                latest.clear()
                latest.update(fragment)

    interval_ms = max(MIN_INTERVAL_MS, int(ctx.interval_s * 1000))
    loop = ChildLoop([found, "--interval", str(interval_ms)], on_line, "edgebench-tegrastats")

    def read() -> dict:
        loop.ensure()
        with lock:
            # copies down to the GPU entry: the sampler merges fragments into its records
            return {k: ({n: dict(e) for n, e in v.items()} if k == "gpu" else v) for k, v in latest.items()}

    return Reader(read, close=loop.close)
