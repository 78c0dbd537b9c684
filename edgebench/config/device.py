"""Device profiles (`devices/*.yaml`): how to reach a device and what it is."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgebench.config.fields import (
    Where,
    above,
    at_least,
    between,
    build,
    list_of,
    matches,
    not_blank,
    one_of,
    section,
    setting,
    to_plain,
)
from edgebench.config.telemetry import device_section
from edgebench.config.transports import check_transport_settings, reach_section
from edgebench.config.yamlsource import Document, load_yaml, parse_yaml
from edgebench.transport import TRANSPORTS

DEVICE_CLASSES = ("phone", "sbc", "laptop", "desktop", "server")
DEFAULT_WORKDIR = "~/.cache/edgebench"

# the name becomes a directory on the controller and on the device, and appears in shell commands
NAME_RULE = matches(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}",
                    "a device name becomes a directory name: use 1-64 letters, digits, '.', '_' or '-', "
                    "starting with a letter or digit")
# read on the controller, whatever directory a command runs from: so absolute (or from ~)
TOOLCHAIN_FILE = matches(r"[/~]\S*\.cmake",
                         "must be the absolute path (or ~/...) of a CMake toolchain file ending in .cmake")

_NO_SECRETS = ("passwords never go in files: use an SSH key (`identity:` or ~/.ssh/config) "
               "or ssh-agent")
FORBIDDEN = {"password": _NO_SECRETS, "passphrase": _NO_SECRETS}

_optional_text = dict(default=None, types=str, check=not_blank)


@dataclass(frozen=True, kw_only=True)
class DeviceFacts:
    """What the device is, for roofline estimates and fit checks; the runner measures the rest."""

    ram_gb: float | None = setting(None, float, check=above(0))
    mem_bandwidth_gbs: float | None = setting(None, float, check=above(0))
    cores: int | None = setting(None, int, check=at_least(1))
    soc: str | None = setting(**_optional_text)
    peak_gflops: float | None = setting(None, float, check=above(0))
    # memory to leave free for the OS and other apps when judging whether a model fits
    reserve_gb: float | None = setting(None, float, check=at_least(0))


@dataclass(frozen=True, kw_only=True)
class DeviceGpu:
    """The device's GPU, for offload planning where no probe can read it (or to override one).
    `unified`: the GPU shares the system RAM (Jetson, Apple silicon): one pool, not two."""

    vram_gb: float | None = setting(None, float, check=above(0))
    unified: bool = setting(False, bool)
    # the GPU runtime's own VRAM beyond llama.cpp's buffers (default: measured on CUDA, plan/offload.py)
    runtime_mib: float | None = setting(None, float, check=at_least(0))
    # peak memory bandwidth of the GPU, for generation speed with layers offloaded
    mem_bandwidth_gbs: float | None = setting(None, float, check=above(0))


# built from the runner's telemetry declarations: every setting a source declares, and nothing else
TelemetryPaths = device_section()


@dataclass(frozen=True, kw_only=True)
class DeviceLimits:
    max_temp_c: float | None = setting(None, float, check=above(0))
    min_battery_pct: float | None = setting(None, float, check=between(0, 100))


@dataclass(frozen=True, kw_only=True)
class _DeviceIdentity:
    name: str = setting(types=str, check=NAME_RULE)
    transport: str = setting(next(iter(TRANSPORTS)), str, check=one_of(*TRANSPORTS))
    device_class: str | None = setting(None, str, key="class", check=one_of(*DEVICE_CLASSES))
    tags: tuple[str, ...] = setting((), list, convert=list_of(str, not_blank, unique=True))
    # kept as written: `~` means the device user's home, which only the transport can expand
    workdir: str = setting(DEFAULT_WORKDIR, str, check=not_blank)


# then every setting a transport declares (host:, port:, ...), read at the top level of the file
_DeviceReach = reach_section(_DeviceIdentity)


@dataclass(frozen=True, kw_only=True)
class DeviceProfile(_DeviceReach):
    # None: the transport's own choice (the controller's interpreter locally, python3 over ssh)
    python: str | None = setting(**_optional_text)
    llama_bench: str | None = setting(**_optional_text)
    # None: the llama-perplexity beside llama_bench (one build), which the llama-bench engine's ppl tests run
    llama_perplexity: str | None = setting(**_optional_text)
    # a CMake toolchain file that builds llama.cpp for this device (the Android NDK's
    # build/cmake/android.toolchain.cmake); None: Debian's cross gcc, or this machine's compiler for its arch
    toolchain_file: str | None = setting(None, str, check=TOOLCHAIN_FILE)

    facts: DeviceFacts = section(DeviceFacts)
    gpu: DeviceGpu = section(DeviceGpu)
    telemetry: TelemetryPaths = section(TelemetryPaths)
    limits: DeviceLimits = section(DeviceLimits)
    max_cache_gb: float | None = setting(None, float, check=above(0))

    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, under the YAML keys (`class`, not `device_class`). Holds no secrets:
        the loader refuses them."""
        return to_plain(self)


def load_device(path: str | Path) -> DeviceProfile:
    return device_from(load_yaml(path))


def parse_device(text: str, file: str = "<string>") -> DeviceProfile:
    return device_from(parse_yaml(text, file))


def device_from(doc: Document) -> DeviceProfile:
    where = Where(doc)
    device = build(DeviceProfile, where, doc.data, forbidden=FORBIDDEN, source=doc.file)
    check_transport_settings(device, where, doc.data)
    _check_sources(device, where)
    _check_gpu(device, where)
    return device


def _check_gpu(device: DeviceProfile, where: Where) -> None:
    gpu, ram = device.gpu, device.facts.ram_gb
    # a unified GPU's memory is the RAM itself: more of it than the device has is a typo
    if gpu.unified and gpu.vram_gb is not None and ram is not None and gpu.vram_gb > ram:
        raise where.child("gpu").child("vram_gb").error(
            f"a unified-memory GPU shares the device's RAM: vram_gb ({gpu.vram_gb:g}) cannot exceed "
            f"facts.ram_gb ({ram:g})")


def _check_sources(device: DeviceProfile, where: Where) -> None:
    sources = device.telemetry.sources
    # without this the battery check would find no battery and let every cell run
    if device.limits.min_battery_pct is not None and sources is not None and "battery" not in sources:
        raise where.child("telemetry").child("sources").error(
            "limits.min_battery_pct needs the battery source: add `battery` here or drop the limit")
