"""Finding device profiles by name and loading benchmark profiles by path.

Device directories, first match wins (like $PATH): `devices_dir` when given, else each entry
of `$EDGEBENCH_DEVICES` (os.pathsep-separated), else `./devices`. The name `local` with no
profile of that name is the built-in local device: this machine, with nothing to configure.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgebench.config.device import DeviceProfile, load_device, parse_device
from edgebench.config.profile import BenchProfile, load_profile_file
from edgebench.config.transports import fleet_slots
from edgebench.errors import ConfigError, DeviceNotFound, ProfileNotFound

ENV_VAR = "EDGEBENCH_DEVICES"
SUFFIXES = (".yaml", ".yml")
LOCAL = "local"
BUILTIN_SOURCE = "<built-in local device>"


def device_dirs(devices_dir: str | os.PathLike | None = None) -> list[Path]:
    if devices_dir is not None:
        return [Path(devices_dir)]
    env = os.environ.get(ENV_VAR, "")
    if env.strip():
        return [Path(entry) for entry in env.split(os.pathsep) if entry.strip()]
    return [Path("devices")]


def find_device(name_or_path: str | os.PathLike, devices_dir: str | os.PathLike | None = None) -> DeviceProfile:
    """A device by name (`rpi5` -> `rpi5.yaml` in the device directories) or by file path."""
    text = os.fspath(name_or_path)
    if _looks_like_path(text):
        if not Path(text).is_file():
            raise DeviceNotFound(f"device file {text!r} not found", file=text)
        return load_device(text)
    dirs = device_dirs(devices_dir)
    for directory in dirs:
        for suffix in SUFFIXES:
            candidate = directory / f"{text}{suffix}"
            if candidate.is_file():
                return load_device(candidate)
    if text == LOCAL:
        return builtin_local()
    available = sorted(_device_files(dirs))
    if LOCAL not in available:
        available.append(f"{LOCAL} (built in)")
    raise DeviceNotFound(f"no device named {text!r} (looked for {text}.yaml and {text}.yml in "
                         f"{_origin(devices_dir)}); available: {', '.join(available) or 'none'}",
                         file=", ".join(os.path.abspath(d) for d in dirs))


def builtin_local() -> DeviceProfile:
    """This machine, so that a fresh install needs no profile at all: the commands work from any
    directory, not only inside a checkout that ships devices/local.yaml."""
    return parse_device(f"name: {LOCAL}\ntransport: local\n", file=BUILTIN_SOURCE)


def is_builtin(device: DeviceProfile) -> bool:
    return device.source == BUILTIN_SOURCE


def is_this_machine(device: DeviceProfile) -> bool:
    """Whether probing the controller describes the device: only for `local`, because another
    local-transport profile may stand for a container or chroot with limits of its own."""
    return device.name == LOCAL and device.transport == "local"


def list_devices(devices_dir: str | os.PathLike | None = None) -> list[DeviceProfile]:
    """Every device profile in the device directories, sorted by name. A broken file raises its
    ConfigError rather than quietly vanishing from a fleet (`-d all`, `-d tag:X`)."""
    devices, problems = scan_devices(devices_dir)
    if problems:
        raise problems[0]
    return devices


def scan_devices(devices_dir: str | os.PathLike | None = None) -> tuple[list[DeviceProfile], list[ConfigError]]:
    """The device profiles that load, sorted by name, and the error of each file that does not
    (a second file using a name already taken is one), so one bad file hides no other device."""
    dirs = device_dirs(devices_dir)
    if devices_dir is not None and not Path(devices_dir).is_dir():
        raise ConfigError(f"device directory {os.fspath(devices_dir)!r} does not exist")
    devices: dict[str, DeviceProfile] = {}
    problems: list[ConfigError] = []
    for path in _device_files(dirs).values():
        try:
            device = load_device(path)
        except ConfigError as error:
            problems.append(error)
            continue
        if device.name in devices:
            problems.append(ConfigError(f"device name {device.name!r} is also used by {devices[device.name].source}",
                                        file=device.source, key="name"))
            continue
        devices[device.name] = device
    return sorted(devices.values(), key=lambda d: d.name), problems


def select_devices(selectors, devices_dir: str | os.PathLike | None = None) -> list[DeviceProfile]:
    """Devices for `-d` selectors: a name or file, `tag:X` (every device tagged X) or `all`.
    Order follows the selectors; a device picked twice runs once."""
    chosen: dict[str, DeviceProfile] = {}
    for selector in selectors:
        text = os.fspath(selector)
        if text == "all":
            picked = list_devices(devices_dir)
        elif text.startswith("tag:"):
            tag = text[len("tag:"):]
            picked = [d for d in list_devices(devices_dir) if tag in d.tags]
            if not picked:
                raise DeviceNotFound(f"no device is tagged {tag!r} in {_origin(devices_dir)}")
        else:
            picked = [find_device(text, devices_dir)]
        # a labgrid `select:` with `count: N` is N devices of the fleet, each holding a place of its own
        for device in (slot for d in picked for slot in fleet_slots(d)):
            chosen.setdefault(device.name, device)
    if not chosen:
        raise DeviceNotFound(f"no devices in {_origin(devices_dir)}")
    return list(chosen.values())


def load_profile(path: str | os.PathLike) -> BenchProfile:
    if not Path(path).is_file():
        # the command line adds `init`'s hint when the name is one of the examples (cli/examples.py)
        raise ProfileNotFound(f"benchmark profile {os.fspath(path)!r} not found", file=os.fspath(path))
    return load_profile_file(path)


def _looks_like_path(text: str) -> bool:
    separators = tuple(filter(None, (os.sep, os.altsep, "/")))
    return text.endswith(SUFFIXES) or any(sep in text for sep in separators)


def _device_files(dirs: list[Path]) -> dict[str, Path]:
    """Stem -> file; an earlier directory shadows a later one, as on $PATH."""
    found: dict[str, Path] = {}
    for directory in dirs:
        if directory.is_dir():
            for path in sorted(directory.iterdir()):
                if path.suffix in SUFFIXES and path.is_file():
                    found.setdefault(path.stem, path)
    return found


def _origin(devices_dir: str | os.PathLike | None) -> str:
    if devices_dir is not None:
        return "the given devices directory"
    return f"each directory of ${ENV_VAR}" if os.environ.get(ENV_VAR, "").strip() else "the default ./devices"
