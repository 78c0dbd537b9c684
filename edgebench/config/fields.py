"""Typed, strict reading of config mappings into frozen dataclasses.

Each dataclass declares its YAML keys with `setting(...)`: the accepted types, a check and
an optional conversion live next to the attribute and its default, so a field is described
exactly once and the dataclass default is the only default. `build()` then reads a mapping
against that table, rejecting unknown keys (with a did-you-mean), wrong types and bad
values, and every error names file, line and the full key path (`engine.n_ctx`,
`models[2].sha256`).

A key set to null (`key:` with nothing after it) counts as not set: the default applies.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Union

from edgebench.config.yamlsource import Document, KeyPath, dotted
from edgebench.errors import ConfigError

Types = Union[type, tuple[type, ...]]
#: a check returns a complaint ("must be at least 1, got 0") or None when the value is fine
Check = Callable[[Any], Union[str, None]]
#: a conversion turns a type-checked YAML value into the attribute's value; may raise via `where.error`
Convert = Callable[[Any, "Where"], Any]

_META = "edgebench.setting"


@dataclass(frozen=True)
class Where:
    """A position in a config document, for reading values below it and for error messages."""

    doc: Document
    path: KeyPath = ()

    def child(self, part: str | int) -> Where:
        return Where(self.doc, self.path + (part,))

    @property
    def key(self) -> str:
        return dotted(self.path)

    @property
    def line(self) -> int:
        return self.doc.line(self.path)

    def error(self, message: str) -> ConfigError:
        return ConfigError(message, file=self.doc.file, line=self.line, key=self.key or None)


@dataclass(frozen=True)
class _Setting:
    types: tuple[type, ...]
    key: str | None
    check: Check | None
    convert: Convert | None


def setting(default: Any = dataclasses.MISSING, types: Types = str, *, key: str | None = None,
            check: Check | None = None, convert: Convert | None = None,
            factory: Callable[[], Any] | None = None) -> Any:
    """Declare a dataclass attribute read from YAML key `key` (default: the attribute name).
    No default (and no `factory` for mutable-looking defaults) means the key is required."""
    spec = _Setting(_as_tuple(types), key, check, convert)
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata={_META: spec})
    return dataclasses.field(default=default, metadata={_META: spec})


def section(cls: type) -> Any:
    """A nested mapping read into `cls`; absent means all of `cls`'s defaults."""
    return setting(cls(), dict, convert=lambda value, where: build(cls, where, value))


def build(cls: type, where: Where, mapping: Mapping[str, Any], *,
          forbidden: Mapping[str, str] | None = None, **fallbacks: Any) -> Any:
    """Read `mapping` into a `cls` instance. `fallbacks` fill attributes the file leaves unset
    (file-dependent defaults such as a name from the file stem, or the source path);
    `forbidden` maps keys that must never appear to the reason why."""
    settings = _settings(cls)
    reject_unknown(where, mapping, settings, forbidden)
    values = dict(fallbacks)
    for key, (f, spec) in settings.items():
        raw = mapping.get(key)
        if raw is not None:
            values[f.name] = read_value(where.child(key), raw, spec.types, spec.check, spec.convert)
        elif f.name not in values and _required(f):
            state = "is null" if key in mapping else "is missing"
            raise where.child(key).error(f"required key {key!r} {state}")
    return cls(**values)


def yaml_keys(cls: type) -> list[str]:
    """The keys a file may use for `cls`."""
    return sorted(_settings(cls))


def _settings(cls: type) -> dict[str, tuple[dataclasses.Field, _Setting]]:
    return {spec.key or f.name: (f, spec) for f in dataclasses.fields(cls) if (spec := f.metadata.get(_META))}


def reject_unknown(where: Where, mapping: Mapping[str, Any], allowed: Iterable[str],
                   forbidden: Mapping[str, str] | None = None) -> None:
    allowed, forbidden = sorted(allowed), forbidden or {}
    for key in mapping:
        if key in forbidden:
            raise where.child(key).error(forbidden[key])
        if key not in allowed:
            raise where.child(key).error(f"unknown key {key!r}{_did_you_mean(key, allowed)}; "
                                         f"allowed keys: {', '.join(allowed)}")


def read_value(where: Where, value: Any, types: Types, check: Check | None = None,
               convert: Convert | None = None) -> Any:
    """Type-check one value (bool is never a number; an int is fine where a float is wanted),
    convert it, then check the result."""
    types = _as_tuple(types)
    if not _has_type(value, types):
        raise where.error(f"expected {' or '.join(_TYPE_NAMES[t] for t in types)}, got {describe(value)}")
    if float in types and type(value) is int:
        value = float(value)
    if convert is not None:
        value = convert(value, where)
    complaint = check(value) if check is not None else None
    if complaint:
        raise where.error(complaint)
    return value


def list_of(types: Types, check: Check | None = None, convert: Convert | None = None, *,
            nonempty: bool = False, unique: bool = False) -> Convert:
    """A conversion for a YAML list: each item read like a setting, the result a tuple."""

    def read(items: list, where: Where) -> tuple:
        if nonempty and not items:
            raise where.error("must not be empty")
        out = tuple(read_value(where.child(i), item, types, check, convert) for i, item in enumerate(items))
        if unique:
            for i, item in enumerate(out):
                if item in out[:i]:
                    raise where.child(i).error(f"duplicate entry {_shown(item)}")
        return out

    return read


# ---- checks ---------------------------------------------------------------------------------

def at_least(low: float) -> Check:
    return lambda v: None if v >= low else f"must be at least {low}, got {_shown(v)}"


def above(low: float) -> Check:
    return lambda v: None if v > low else f"must be greater than {low}, got {_shown(v)}"


def between(low: float, high: float) -> Check:
    return lambda v: None if low <= v <= high else f"must be between {low} and {high}, got {_shown(v)}"


def one_of(*choices: str) -> Check:
    return lambda v: None if v in choices else (
        f"must be one of {', '.join(choices)}; got {_shown(v)}{_did_you_mean(str(v), choices)}")


def matches(pattern: str, rule: str) -> Check:
    """`rule` says in words what the pattern allows, for the message."""
    compiled = re.compile(pattern)
    return lambda v: None if compiled.fullmatch(v) else f"{rule}; got {_shown(v)}"


def not_blank(v: str) -> str | None:
    return None if v.strip() else "must not be empty"


class FrozenMap(Mapping):
    """A mapping setting (labgrid's `select: {kind: sbc}`), frozen and hashable like the rest of a profile."""

    def __init__(self, pairs=()):
        self._items = dict(sorted(dict(pairs).items()))

    def __getitem__(self, key):
        return self._items[key]

    def __iter__(self):
        return iter(self._items)

    def __len__(self):
        return len(self._items)

    def __hash__(self):
        return hash(tuple(self._items.items()))

    def __str__(self):
        return "{" + ", ".join(f"{k}: {v}" for k, v in self._items.items()) + "}"

    __repr__ = __str__


def mapping_of(key_check: Check, value_check: Check) -> Convert:
    """A conversion for a YAML mapping of words (scalars read as text) into a FrozenMap."""

    def read(value: dict, where: Where) -> FrozenMap:
        if not value:
            raise where.error("must not be empty")
        for key, item in value.items():
            complaint = key_check(key) if isinstance(key, str) else "a key must be text"
            if not complaint:
                complaint = (value_check(str(item)) if isinstance(item, (str, int, float)) and
                             not isinstance(item, bool) else f"expected one word, got {describe(item)}")
            if complaint:
                raise where.child(str(key)).error(complaint)
        return FrozenMap((k, str(v)) for k, v in value.items())

    return read


# ---- back to plain data ---------------------------------------------------------------------

def to_plain(value: Any) -> Any:
    """JSON-ready form of a config object: sections become mappings under their YAML keys,
    tuples become lists, and value objects that are not sections (TestSpec, SynthSpec) become
    their canonical text, so the result reads like the file it came from."""
    if isinstance(value, Mapping):  # first: a section that reads as a mapping (the engine's) is one
        return {str(k): to_plain(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.fields(value)
        if not any(_META in f.metadata for f in fields):
            return str(value)
        return {_yaml_key(f): to_plain(getattr(value, f.name)) for f in fields}
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return str(value)  # a named tuple (TestSpec) is one value, not a list
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value


def _yaml_key(f: dataclasses.Field) -> str:
    spec = f.metadata.get(_META)
    return (spec.key if spec else None) or f.name


# ---- messages -------------------------------------------------------------------------------

_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
               list: "a list", dict: "a mapping"}


def describe(value: Any) -> str:
    """What a YAML value is, in the file's own terms: `a string ('five')`, `a boolean (true)`."""
    kind = {bool: "a boolean", str: "a string", int: "an integer", float: "a number",
            list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)
    return kind if isinstance(value, (list, dict)) else f"{kind} ({_shown(value)})"


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, str) else str(value)


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _has_type(value: Any, types: tuple[type, ...]) -> bool:
    # bool subclasses int in Python, but `threads: true` is a mistake, not the number 1
    if isinstance(value, bool):
        return bool in types
    return isinstance(value, types) or (float in types and type(value) is int)


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _as_tuple(types: Types) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)
