"""The device profile's `telemetry:` section, built from the settings the runner's telemetry sources
declare (edgebench/runner/telemetry/settings.py), so a profile accepts exactly what the runner does.

A source that declares a setting needs no edit here: the section gets the key with its default, and
the setting's shape becomes the type, check and conversion of a config field, with errors that name
file, line and key like the rest of the config. device_worker sends the whole section to the runner,
which checks it again against the same declarations.
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Any

from edgebench.config.fields import (
    Where,
    above,
    build,
    list_of,
    not_blank,
    one_of,
    read_value,
    setting,
    to_plain,
)
from edgebench.runner.telemetry import DEVICE, declared_settings
from edgebench.runner.telemetry import settings as shapes


def _field_of(shape: shapes.Shape) -> tuple[tuple[type, ...], Any, Any]:
    """(types, check, convert) for config/fields that read what `shape` accepts."""
    if isinstance(shape, shapes.Flag):
        return (bool,), None, None
    if isinstance(shape, shapes.Number):
        return (float,), above(shape.above), None
    if isinstance(shape, shapes.Text):
        return (str,), not_blank, None
    if isinstance(shape, shapes.Choice):
        return (str,), one_of(*shape.choices), None
    if isinstance(shape, shapes.ListOf):
        return (list,), None, _list(shape)
    if isinstance(shape, shapes.MapOf):
        return (dict,), None, _mapping(shape)
    if isinstance(shape, shapes.OneOf):
        return tuple(t for s in shape.shapes for t in _field_of(s)[0]), None, _one_of(shape)
    if isinstance(shape, shapes.Record):
        record = _record_class(shape)
        return (dict,), None, lambda value, where: build(record, where, value)
    raise TypeError(f"no config field for the telemetry shape {type(shape).__name__}")


def _read(shape: shapes.Shape, where: Where, value: Any) -> Any:
    return read_value(where, value, *_field_of(shape))


def _list(shape: shapes.ListOf):
    types, check, convert = _field_of(shape.item)
    unique = shape.unique
    read_items = list_of(types, check, convert, nonempty=shape.nonempty,
                         unique=unique is not None and unique.key is None)

    def read(value: list, where: Where) -> tuple:
        items = read_items(value, where)
        if unique is not None and unique.key is not None:
            first: dict[Any, int] = {}
            for i, item in enumerate(items):
                identity = unique.key(to_plain(item))
                if identity in first:
                    hint = f"; {unique.hint}" if unique.hint else ""
                    raise where.child(i).error(f"duplicate {unique.noun} {identity!r} "
                                               f"(also {where.child(first[identity]).key}){hint}")
                first[identity] = i
        return items
    return read


def _mapping(shape: shapes.MapOf):
    def read(value: dict, where: Where) -> MappingProxyType:
        return MappingProxyType({name: _read(shape.value, where.child(name), entry) for name, entry in value.items()})
    return read


def _one_of(shape: shapes.OneOf):
    def read(value: Any, where: Where) -> Any:
        # read_value has checked the type already: one of the shapes takes it
        chosen = next(s for s in shape.shapes if isinstance(value, _field_of(s)[0]))
        return _read(chosen, where, value)
    return read


def _frozen(value: Any) -> Any:
    """A declared default as a frozen config value (a list becomes a tuple)."""
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, dict):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    return value


def _fields(declared: list[shapes.Setting]) -> list[tuple[str, Any, Any]]:
    out = []
    for s in declared:
        types, check, convert = _field_of(s.shape)
        if s.required:
            spec = setting(types=types, check=check, convert=convert)
        else:
            spec = setting(_frozen(s.default), types, check=check, convert=convert)
        out.append((s.name, Any, spec))
    return out


def _record_class(shape: shapes.Record) -> type:
    namespace = {name: property(lambda self, derive=derive: derive(to_plain(self)))
                 for name, derive in shape.properties.items()}
    return dataclasses.make_dataclass(shape.title, _fields(list(shape.fields)), namespace=namespace,
                                      frozen=True, kw_only=True)


def device_section() -> type:
    """The `telemetry:` section of a device profile: every setting declared for devices."""
    return dataclasses.make_dataclass(
        "TelemetryPaths", _fields(declared_settings(DEVICE)), frozen=True, kw_only=True,
        namespace={"__doc__": "How the runner reads this device's sensors: files to sample in addition to "
                              "the ones it discovers, units the kernel ABI gets wrong here, and which "
                              "sources to read at all (one key per setting the runner's sources declare)."})
