"""Where the engine's threads may run: the union of their Cpus_allowed_list (proc/<pid>/task/*/status), as a
hex mask in llama-bench's cpu_mask vocabulary, so a cell's samples show that its cpu_mask held.

The engine's threads are every thread of a child engine (llama-bench); for an engine inside the runner, every
thread of this process but the runner's own Python helpers (this sampler, stderr readers), which nothing pins.

Window summary: `engine_cpus`, the mask of every CPU any reading in the window allowed (None: none read).
"""

from __future__ import annotations

import os
import threading
from typing import List, Optional

from .base import Context, Problems, Reader, read_text, register


def parse_cpu_list(text: str) -> List[int]:
    """`0-3,6` -> [0, 1, 2, 3, 6]."""
    cpus = []
    for part in text.strip().split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        cpus.extend(range(int(low), int(high or low) + 1))
    return cpus


def allowed_cpus(status: str) -> Optional[List[int]]:
    for line in status.splitlines():
        if line.startswith("Cpus_allowed_list:"):
            return parse_cpu_list(line.partition(":")[2])
    return None


def _helper_tids(pid: int) -> set:
    """This process's Python threads but the main one, where the engine runs in this process."""
    if pid != os.getpid():
        return set()
    main = threading.main_thread()
    return {str(t.native_id) for t in threading.enumerate() if t is not main and t.native_id is not None}


def engine_cpus(ctx: Context) -> Optional[int]:
    """The bits of the CPUs the engine's threads may run on; None where none could be read."""
    pid = ctx.current_pid()
    tasks = ctx.path("proc", str(pid), "task")
    try:
        tids = set(os.listdir(tasks)) - _helper_tids(pid)
    except OSError:
        return None
    bits, seen = 0, False
    for tid in tids:
        try:
            cpus = allowed_cpus(read_text(os.path.join(tasks, tid, "status")))
        except OSError:
            continue  # a thread that ended meanwhile
        for cpu in cpus or ():
            bits |= 1 << cpu
        seen = seen or cpus is not None
    return bits if seen else None


def summarize(window) -> dict:
    bits = [int(r["engine_cpus"], 16) for r in window.records if r.get("engine_cpus") is not None]
    union = 0
    for b in bits:
        union |= b
    return {"engine_cpus": "0x%x" % union if bits else None}


@register("affinity", order=12, summarize=summarize)
def discover(ctx: Context) -> Reader:
    problems = Problems(ctx.root)
    path = ctx.path("proc", str(ctx.current_pid()), "task")
    try:
        os.listdir(path)
    except OSError as exc:
        problems.add(exc, path)
        raise problems.unavailable("not present: proc/<pid>/task")
    if engine_cpus(ctx) is None:
        raise problems.unavailable("no Cpus_allowed_list in proc/<pid>/task/*/status")

    def read() -> dict:
        bits = engine_cpus(ctx)
        return {} if bits is None else {"engine_cpus": "0x%x" % bits}

    return Reader(read)
