"""On-device telemetry: what the device was doing while a benchmark window ran.

Sources register themselves in `SOURCES` (see base.py); `Sampler` discovers
them once under a root path and reads them every tick; `summarize_window`
condenses the records of one timed window.

Record keys (absent when their source is unavailable or the read failed):

    t, ts                 time.monotonic() and wall-clock seconds
    pid, rss_kb, hwm_kb   the measured process and its VmRSS / VmHWM
    mem_available_kb      MemAvailable
    thermal_c             {zone type: °C}
    cpufreq_khz           {policyN: {"cur", "max", "scaling_max"}}
    load1, load5, load15  load averages
    battery               {supply: {"current_ua", "voltage_uv", "power_uw",
                           "temp_c", "capacity_pct", "status"}}
    power_w               {rail: W}  battery supplies, INA3221 labels, extra paths
    power_total_w         whole-device W chosen from power_w (see sampler.py)
    ina3221               {label: {"mv", "ma"}}
    energy_uj             {RAPL domain: µJ counter}
    energy_range_uj       {RAPL domain: wrap point of that counter}
"""

from .base import SOURCES, Context, Reader, Unavailable, register
from .memory import own_rss_kb
from .sampler import Sampler
from .window import counter_delta, summarize_window

__all__ = ["SOURCES", "Context", "Reader", "Sampler", "Unavailable", "counter_delta", "own_rss_kb",
           "register", "summarize_window"]
