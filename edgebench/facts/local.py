"""This machine's facts, read in-process with psutil rather than through the fact script.

The fact script reads /proc, which a macOS or Windows controller does not have; the local
device is the controller, so Python can ask the OS directly on any of them. Keys match
`edgebench.plan.calibrate.describe_probe`, so a plan reads either the same way.
"""

from __future__ import annotations

import platform

import psutil


def local_facts() -> dict:
    """Architecture as the OS names it (x86_64, aarch64, arm64, AMD64), total RAM in bytes, and
    physical cores; a value the OS will not tell is None, never a guess."""
    # physical cores: llama.cpp's threads gain little from SMT siblings; some VMs hide them
    cores = psutil.cpu_count(logical=False) or psutil.cpu_count(logical=True)
    return {
        "arch": platform.machine() or None,
        "ram_bytes": psutil.virtual_memory().total or None,
        "cores": cores or None,
        "vram_bytes": nvidia_vram_bytes(),
    }


def nvidia_vram_bytes() -> int | None:
    """The first NVIDIA GPU's memory as its driver reports it; None without one (or without the driver)."""
    import shutil
    import subprocess
    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    try:
        done = subprocess.run([smi, "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                              capture_output=True, text=True, timeout=10)
        return int(float(done.stdout.split()[0])) << 20 if done.returncode == 0 and done.stdout.split() else None
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
