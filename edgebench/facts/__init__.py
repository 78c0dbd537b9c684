"""What a device is and can do, as `devices check` prints it and every run stores it (devices.jsonl).

Three things here used to share the name "probe"; each has its own now:

    script.py        the fact script: every fact's sh command in one remote shell, and its parser
    device_probe.py  the device probe: the fact script's facts plus the runner's `capabilities` mode
                     (engines, telemetry sources), the record a run stores and `devices check` shows
    selftest.py      the engine self-test `devices check` adds: a short pp and tg on the device

Each fact (system.py, cpu.py, memory.py, ...) is a constant sh command and a pure parser of its output
(`base.py`); `local.py` reads this machine's facts in-process instead (psutil), for `plan`.
"""

# Importing the fact modules registers them; this order is the probe's order.
from . import system, cpu, memory, disk, software, libc, gpu, throttle  # noqa: F401  isort: skip
from .base import FACTS, Fact, fact, is_unavailable, unavailable
from .disk import shell_path
from .script import FactOutputError, fact_command, fact_script, parse_fact_output

__all__ = [
    "FACTS", "Fact", "fact", "is_unavailable", "unavailable", "shell_path",
    "FactOutputError", "fact_command", "fact_script", "parse_fact_output",
]
