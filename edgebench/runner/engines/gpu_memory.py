"""The GPU memory an in-process llama.cpp engine holds, read from the devices themselves.

nvidia-smi's per-process listing is a sample: it is read every other telemetry tick, and a GPU job
of a quarter of a second can start and end between two listings (a tg128 at 520 t/s did). Here the
engine asks each GPU device for its free memory, `ggml_backend_dev_memory(dev, &free, &total)` (CUDA:
cudaMemGetInfo), at the points after which its memory can only have grown:

- `start`: before the model loads (this first call makes the process's GPU context);
- `model`: the weights are on the device;
- `context`: a context with its KV/recurrent state and its compute buffers reserved;
- `run`: after a test's repetitions, which add what llama.cpp allocates only while computing
  (cuBLAS workspaces, its memory pool, CUDA graphs). None of it is freed before the context is.

The process's peak is the card's free memory before the process touched it less the lowest reading.
"Before" comes from NVML (nvml.py), read before libllama loads; where there is no NVML (another
vendor) the peak is what the process allocated after its `start` reading, which leaves out the GPU
context itself, and `method` says which of the two a figure is.

llama.cpp's own accounting of the buffers (`llama_get_memory_breakdown`) returns a C++ std::map,
which ctypes cannot read; the engine reads the same figures from llama.cpp's log (model, KV/RS,
output and compute buffer sizes per buffer type).
"""

from __future__ import annotations

from . import ggml_devices, nvml

MIB = 1024 * 1024
WITH_CONTEXT = "engine: device free memory, from before the process (NVML) to its lowest reading"
WITHOUT_CONTEXT = "engine: device memory allocated after the GPU context was made (the context not included)"


class DeviceMemoryLog(object):
    """Every GPU device's free memory at the engine's stages, and NVML's from before the process."""

    def __init__(self, read=ggml_devices.gpu_memory, before=nvml.free_memory):
        self._read, self._before = read, before
        self.before = None  # {NVML index: (free, total)}
        self.readings = []  # (stage, {device: (free bytes, total bytes)})

    def read_before(self) -> None:
        """Call before libllama loads: nothing of this process is on a GPU yet."""
        self.before = self._before()

    def read(self, stage: str) -> None:
        found = self._read()
        if found:
            self.readings.append((stage, dict(found)))

    def summary(self) -> dict:
        """{device: {total_mib, readings: [[stage, used MiB]], peak_mib, method}}; {} without a GPU."""
        devices, lowest = {}, {}
        for stage, found in self.readings:
            for name, (free, total) in found.items():
                entry = devices.setdefault(name, {"total_mib": _mib(total), "readings": []})
                entry["readings"].append([stage, _mib(total - free)])
                lowest[name] = min(free, lowest.get(name, free))
        free_before = nvml.match(self.before or {}, {name: d["total_mib"] * MIB for name, d in devices.items()})
        for name, entry in devices.items():
            if name in free_before:
                entry.update(before_free_mib=_mib(free_before[name]), method=WITH_CONTEXT,
                             peak_mib=_mib(free_before[name] - lowest[name]))
            else:
                used = [mib for _stage, mib in entry["readings"]]
                entry.update(method=WITHOUT_CONTEXT, peak_mib=round(max(used) - used[0], 1))
        return devices


def _mib(n_bytes) -> float:
    return round(n_bytes / MIB, 1)


__all__ = ["DeviceMemoryLog", "WITH_CONTEXT", "WITHOUT_CONTEXT"]
