"""Memory from /proc/meminfo, in bytes."""

from __future__ import annotations

from .base import fact, key_values

_FIELDS = {"MemTotal": "total_bytes", "MemAvailable": "available_bytes", "SwapTotal": "swap_total_bytes"}


@fact("memory", "cat /proc/meminfo")
def parse_memory(stdout: str, exit_code: int) -> dict[str, int | None]:
    values = key_values(stdout, ":")
    if "MemTotal" not in values:
        raise ValueError("no MemTotal line")
    # MemAvailable is missing before Linux 3.14: None, not an estimate
    return {field: _kib_to_bytes(values.get(key)) for key, field in _FIELDS.items()}


def _kib_to_bytes(text: str | None) -> int | None:
    if text is None:
        return None
    number, _, unit = text.partition(" ")
    if unit.strip() not in ("kB", ""):
        raise ValueError(f"unexpected unit in {text!r}")
    return int(number) * 1024
