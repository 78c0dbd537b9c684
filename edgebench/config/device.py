"""Device profiles (`devices/*.yaml`): how to reach a device and what it is."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
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
from edgebench.config.yamlsource import Document, load_yaml, parse_yaml

TRANSPORTS = ("local", "ssh", "labgrid")
DEVICE_CLASSES = ("phone", "sbc", "laptop", "desktop", "server")
SSH_KEYS = ("host", "port", "user", "identity", "ssh_config_host", "proxy_jump")
# a labgrid device: its coordinator, and a place by name or a reservation filter (with how many places)
LABGRID_KEYS = ("coordinator", "place", "select", "count")
# what a labgrid place's NetworkService does not say: the key edgebench logs in with
LABGRID_SSH_KEYS = ("identity",)
DEFAULT_WORKDIR = "~/.cache/edgebench"

# the name becomes a directory on the controller and on the device, and appears in shell commands
NAME_RULE = matches(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}",
                    "a device name becomes a directory name: use 1-64 letters, digits, '.', '_' or '-', "
                    "starting with a letter or digit")
# these end up as ssh arguments: a leading '-' would be read as an option (`-oProxyCommand=...`)
SSH_WORD = matches(r"[^\s-]\S*", "must be a single word that does not start with '-'")

# read on the controller, whatever directory a command runs from: so absolute (or from ~)
TOOLCHAIN_FILE = matches(r"[/~]\S*\.cmake",
                         "must be the absolute path (or ~/...) of a CMake toolchain file ending in .cmake")

_NO_SECRETS = ("passwords never go in files: use an SSH key (`identity:` or ~/.ssh/config) "
               "or ssh-agent")
FORBIDDEN = {"password": _NO_SECRETS, "passphrase": _NO_SECRETS}

_optional_text = dict(default=None, types=str, check=not_blank)

# labgrid's own rule for tag names (labgrid.remote.common.TAG_KEY)
TAG_KEY = matches(r"[a-z][a-z0-9_]+", "a labgrid tag name is a lowercase letter then lowercase letters, digits or '_'")
COORDINATOR_RULE = matches(r"[^\s/-][^\s/]*", "must be host:port (or host, for port 20408)")


class Tags(Mapping):
    """A labgrid reservation filter, `{kind: sbc, soc: bcm2712}`: frozen and hashable like the rest of a profile."""

    def __init__(self, pairs=()):
        self._tags = dict(sorted(dict(pairs).items()))

    def __getitem__(self, key):
        return self._tags[key]

    def __iter__(self):
        return iter(self._tags)

    def __len__(self):
        return len(self._tags)

    def __hash__(self):
        return hash(tuple(self._tags.items()))

    def __repr__(self):
        return f"Tags({self._tags!r})"


def _tags(value: dict, where: Where) -> Tags:
    if not value:
        raise where.error("must name at least one tag, e.g. {kind: sbc}")
    for key, tag in value.items():
        complaint = TAG_KEY(str(key)) if isinstance(key, str) else "a tag name must be a string"
        if complaint:
            raise where.child(str(key)).error(complaint)
        if not isinstance(tag, (str, int)) or isinstance(tag, bool) or not str(tag).strip() or " " in str(tag):
            raise where.child(key).error(f"a tag value is one word, got {tag!r}")
    return Tags((k, str(v)) for k, v in value.items())


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
class DeviceProfile:
    name: str = setting(types=str, check=NAME_RULE)
    transport: str = setting("local", str, check=one_of(*TRANSPORTS))
    device_class: str | None = setting(None, str, key="class", check=one_of(*DEVICE_CLASSES))
    tags: tuple[str, ...] = setting((), list, convert=list_of(str, not_blank, unique=True))
    # kept as written: `~` means the device user's home, which only the transport can expand
    workdir: str = setting(DEFAULT_WORKDIR, str, check=not_blank)

    host: str | None = setting(None, str, check=SSH_WORD)
    port: int = setting(22, int, check=between(1, 65535))
    user: str | None = setting(None, str, check=SSH_WORD)
    identity: str | None = setting(**_optional_text)
    ssh_config_host: str | None = setting(None, str, check=SSH_WORD)
    proxy_jump: str | None = setting(None, str, check=SSH_WORD)

    # labgrid: None means $LG_COORDINATOR
    coordinator: str | None = setting(None, str, check=COORDINATOR_RULE)
    place: str | None = setting(None, str, check=SSH_WORD)
    select: Tags | None = setting(None, dict, convert=_tags)
    # a `select:` device stands for this many places, each a device of the fleet (`NAME.1`, `NAME.2`, ...)
    count: int = setting(1, int, check=between(1, 4096))

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

    @property
    def is_ssh(self) -> bool:
        return self.transport == "ssh"

    @property
    def place_filter(self) -> dict[str, str]:
        """The labgrid reservation filter: the tags, or the place's name (the coordinator matches `name`)."""
        return dict(self.select) if self.select else {"name": self.place}

    def slots(self) -> list[DeviceProfile]:
        """The devices a fleet runs on: a `select:` with `count: N` is N of them, each holding a place of its own."""
        if self.count == 1:
            return [self]
        return [replace(self, name=f"{self.name}.{i}", count=1) for i in range(1, self.count + 1)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, under the YAML keys (`class`, not `device_class`). Holds no secrets:
        the loader refuses them."""
        return to_plain(self)


_SSH_DEFAULTS = {f.name: f.default for f in fields(DeviceProfile) if f.name in SSH_KEYS}
_LABGRID_DEFAULTS = {f.name: f.default for f in fields(DeviceProfile) if f.name in LABGRID_KEYS}


def load_device(path: str | Path) -> DeviceProfile:
    return device_from(load_yaml(path))


def parse_device(text: str, file: str = "<string>") -> DeviceProfile:
    return device_from(parse_yaml(text, file))


def device_from(doc: Document) -> DeviceProfile:
    where = Where(doc)
    device = build(DeviceProfile, where, doc.data, forbidden=FORBIDDEN, source=doc.file)
    _check_transport(device, where, doc.data)
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


def _check_labgrid(device: DeviceProfile, where: Where, raw: dict[str, Any]) -> None:
    if (device.place is None) == (device.select is None):
        raise where.child("transport").error(
            "transport labgrid needs either `place: NAME` or `select: {tag: value, ...}` (with `count:`)")
    if device.count != 1 and device.select is None:
        raise where.child("count").error("`count` is for `select:` devices; a `place:` is one place")
    for key in SSH_KEYS:
        if key not in LABGRID_SSH_KEYS and raw.get(key) is not None and raw[key] != _SSH_DEFAULTS[key]:
            raise where.child(key).error(f"{key!r} comes from the labgrid place's NetworkService resource; "
                                         f"only `identity` is set in a labgrid device's profile")


def _check_transport(device: DeviceProfile, where: Where, raw: dict[str, Any]) -> None:
    if device.transport == "labgrid":
        _check_labgrid(device, where, raw)
        return
    for key in LABGRID_KEYS:
        if raw.get(key) is not None and raw[key] != _LABGRID_DEFAULTS[key]:
            raise where.child(key).error(f"{key!r} is only used with `transport: labgrid`, "
                                         f"but this device's transport is {device.transport!r}")
    if device.is_ssh:
        if not (device.host or device.ssh_config_host):
            raise where.child("transport").error(
                "transport ssh needs `host` (or `ssh_config_host` naming a Host in ~/.ssh/config)")
        return
    # without this, a file that forgot `transport: ssh` would quietly benchmark the controller. A key
    # at its default is no such slip: a run's stored device record (run.json) carries `port: 22` for
    # every device, and `run --resume` reads that record back
    for key in SSH_KEYS:
        if raw.get(key) is not None and raw[key] != _SSH_DEFAULTS[key]:
            raise where.child(key).error(f"{key!r} is only used with `transport: ssh`, "
                                         f"but this device's transport is {device.transport!r}")
