"""On-device telemetry: what the device was doing while a benchmark window ran.

Each source lives in one module that declares itself (base.register): its device-profile
settings, how it reads, and what it adds to a window summary and to the rows. Importing this
package imports every module in it, so a new source is its module and nothing else: the
runner, the job checks, the device profile, the window summary and the rows all read the
declarations. `Sampler` discovers the sources once under a root path and reads them every
tick; `summarize_window` condenses the records of one timed window.

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

import importlib
import pkgutil
from typing import List

from .base import SOURCES, SUMMARIES, Context, Reader, Unavailable, register, source_settings
from .settings import DEVICE, Setting

# every module, so that each source registers itself; pkgutil also lists the modules of the zipapp
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module("%s.%s" % (__name__, _module.name))

from . import sampler as _sampler  # noqa: E402
from .memory import own_rss_kb  # noqa: E402
from .rapl import counter_delta  # noqa: E402
from .sampler import Sampler  # noqa: E402
from .window import summarize_window  # noqa: E402


def declared_settings(scope=None) -> List[Setting]:
    """Every telemetry setting a job carries: each source's in source order, then the sampler's;
    `scope` keeps those of one profile kind (settings.DEVICE or settings.PROFILE)."""
    found = source_settings() + list(_sampler.SETTINGS)
    return [s for s in found if scope is None or s.scope == scope]


def row_columns():
    """The row columns the summaries declare, in order."""
    return [column for part in SUMMARIES for column in part.columns]


__all__ = ["DEVICE", "SOURCES", "SUMMARIES", "Context", "Reader", "Sampler", "Unavailable", "counter_delta",
           "declared_settings", "own_rss_kb", "register", "row_columns", "source_settings", "summarize_window"]
