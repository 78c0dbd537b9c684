"""Device probe facts behind `edgebench devices check`.

Each fact is a constant sh command and a pure parser of its output
(`edgebench.facts.base`); `probe_script` runs them all in one remote shell and
`parse_probe` turns the output back into a dict of values.
"""

# Importing the fact modules registers them; this order is the probe's order.
from . import system, cpu, memory, disk, software, gpu, throttle  # noqa: F401  isort: skip
from .base import FACTS, Fact, fact, is_unavailable, unavailable
from .disk import shell_path
from .probe import ProbeOutputError, parse_probe, probe_command, probe_script

__all__ = [
    "FACTS", "Fact", "fact", "is_unavailable", "unavailable", "shell_path",
    "ProbeOutputError", "parse_probe", "probe_command", "probe_script",
]
