"""The device profile's transport settings, built from what each transport declares
(edgebench/transport/declaration.py), so a profile accepts exactly the keys its transports read.

A transport that declares a setting needs no edit here: the setting becomes a top-level key of the
profile with its default, type and check, and errors name file, line and key like the rest of the
config. A key that another transport than the device's declares is refused, unless it sits at its
default: a run's stored device record (run.json) carries every setting (`port: 22` for a local device),
and `run --resume` reads that record back.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from edgebench.config.fields import Where, between, mapping_of, matches, not_blank, setting
from edgebench.transport import declarations


def _field(declared) -> tuple[str, Any, Any]:
    check = not_blank if declared.type is str else None
    if declared.pattern is not None:
        check = matches(*declared.pattern)
    if declared.between is not None:
        check = between(*declared.between)
    convert = mapping_of(*(matches(*rule) for rule in declared.items)) if declared.items else None
    return declared.name, Any, setting(declared.default, declared.type, check=check, convert=convert)


def _settings() -> dict[str, list[str]]:
    """Each declared setting's name -> the transports that declare it, in declaration order."""
    users: dict[str, list[str]] = {}
    for name, declaration in declarations().items():
        for declared in declaration.settings:
            users.setdefault(declared.name, []).append(name)
    return users


def reach_section(base: type) -> type:
    """`base` with every transport's settings after its own fields; a setting two transports
    declare is one key, and they must declare it alike."""
    fields, seen = [], {}
    for declaration in declarations().values():
        for declared in declaration.settings:
            if declared.name in seen:
                if seen[declared.name] != declared:
                    raise TypeError(f"transports declare the setting {declared.name!r} differently")
                continue
            seen[declared.name] = declared
            fields.append(_field(declared))
    return dataclasses.make_dataclass("DeviceReach", fields, bases=(base,), frozen=True, kw_only=True)


def check_transport_settings(device: Any, where: Where, raw: dict[str, Any]) -> None:
    """The device's transport has what it needs, and no other transport's setting is set."""
    declaration = declarations()[device.transport]
    needed = declaration.needs_one_of
    if needed and not any(getattr(device, key) is not None for key in needed):
        raise where.child("transport").error(f"transport {declaration.name} needs {declaration.needs}")
    broken = declaration.check(device) if declaration.check else None
    if broken:
        raise where.child(broken[0]).error(broken[1])
    # without this, a file that forgot `transport: ssh` would quietly benchmark the controller
    for key, users in _settings().items():
        if device.transport in users or raw.get(key) is None:
            continue
        default = declarations()[users[0]].setting(key).default
        if raw[key] != default:
            wanted = " or ".join(f"`transport: {user}`" for user in users)
            raise where.child(key).error(f"{key!r} is only used with {wanted}, "
                                         f"but this device's transport is {device.transport!r}")


def address(device: Any) -> str | None:
    """Where the device is, in its transport's words (`devices list`): the first address setting set."""
    keys = declarations()[device.transport].address
    return next((str(getattr(device, key)) for key in keys if getattr(device, key) is not None), None)


def fleet_slots(device: Any) -> list:
    """The devices a profile stands for in a fleet: itself, or where its transport declares a fleet size
    (labgrid's `count: N`), N devices `NAME.1` ... `NAME.N`, each of size 1."""
    key = declarations()[device.transport].fleet_size
    size = getattr(device, key) if key else 1
    if size == 1:
        return [device]
    return [dataclasses.replace(device, name=f"{device.name}.{i}", **{key: 1}) for i in range(1, size + 1)]
