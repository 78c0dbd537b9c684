"""Facts about the device's CPU that engines report (llama-bench's cpu_info and default threads)."""

from __future__ import annotations

import os
import platform


def _cpuinfo(root="/"):
    try:
        with open(os.path.join(root, "proc/cpuinfo")) as f:
            return f.read()
    except OSError:
        return ""


def cpu_model_name(root="/"):
    for line in _cpuinfo(root).splitlines():
        key, _, value = line.partition(":")
        # x86 says "model name"; many ARM kernels only give "Hardware" or "Model"
        if key.strip() in ("model name", "Hardware", "Model") and value.strip():
            return value.strip()
    return platform.processor() or platform.machine()


def physical_cores(root="/"):
    """Physical cores, as llama-bench's default thread count: hyperthread siblings count once."""
    cores = set()
    physical_id = core_id = None
    for line in _cpuinfo(root).splitlines() + [""]:
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "physical id":
            physical_id = value.strip()
        elif key == "core id":
            core_id = value.strip()
        elif not key:
            if core_id is not None:
                cores.add((physical_id, core_id))
            physical_id = core_id = None
    return len(cores) or os.cpu_count() or 1
