"""Raspberry Pi firmware throttling flags (`vcgencmd get_throttled`)."""

from __future__ import annotations

from .base import fact, first_line

# bit -> name; bits 16-19 are the sticky "has occurred since boot" versions of 0-3
THROTTLE_BITS = {
    0: "under_voltage",
    1: "arm_freq_capped",
    2: "throttled",
    3: "soft_temp_limit",
    16: "under_voltage_occurred",
    17: "arm_freq_capped_occurred",
    18: "throttled_occurred",
    19: "soft_temp_limit_occurred",
}


@fact("throttled", """
command -v vcgencmd >/dev/null 2>&1 || exit 0
vcgencmd get_throttled
""")
def parse_throttled(stdout: str, exit_code: int) -> dict:
    key, found, raw = first_line(stdout).partition("=")
    if not found or key != "throttled":
        raise ValueError(f"expected throttled=0x..., got {stdout.strip()[:80]!r}")
    value = int(raw, 16)
    return {"raw": raw, **{name: bool(value >> bit & 1) for bit, name in THROTTLE_BITS.items()}}
