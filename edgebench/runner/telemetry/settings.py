"""Telemetry settings as data: each one a name, a default and a shape, declared by its source.

The runner checks a job against these shapes (job.py) and the controller builds the
device profile's `telemetry:` section from the same declarations (config/telemetry.py), so a
setting a source declares can be written in a device file, reaches the runner, and is checked
on both sides by one description. A shape knows how to check a JSON value here; the
controller reads its attributes to check YAML with file, line and key.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Iterable, Optional, Sequence

DEVICE = "device"    # the device profile's `telemetry:` section (how this device's sensors read)
PROFILE = "profile"  # the bench profile's `telemetry:` section (whether and how often to sample)


class Invalid(ValueError):
    """A value that does not fit its shape; `key` is where, relative to the checked value."""

    def __init__(self, key: str, complaint: str, *got):
        shown = "; got %s" % json.dumps(got[0], default=repr) if got else ""
        super().__init__("%s %s%s" % (key, complaint, shown))
        self.key, self.complaint = key, complaint


class Shape(object):
    """What a value must be. `types` are the JSON types it accepts; `what` says it in words."""

    types: tuple = ()
    what = "a value"

    def accepts(self, value) -> bool:
        return isinstance(value, self.types) and not (isinstance(value, bool) and bool not in self.types)

    def check(self, value, key: str):
        """The value as the sources use it, or Invalid."""
        if not self.accepts(value):
            raise Invalid(key, "must be " + self.what, value)
        return value


class Flag(Shape):
    types = (bool,)
    what = "true or false"


class Number(Shape):
    types = (int, float)

    def __init__(self, above: float):
        self.above = above
        self.what = "a positive number" if above == 0 else "a number above %g" % above

    def check(self, value, key):
        if not (self.accepts(value) and value > self.above):
            raise Invalid(key, "must be " + self.what, value)
        return value


class Text(Shape):
    """A string with something in it; `what` names what it holds ("a device path")."""

    types = (str,)

    def __init__(self, what: str = "a non-empty string"):
        self.what = what

    def check(self, value, key):
        if not (self.accepts(value) and value.strip()):
            raise Invalid(key, "must be " + self.what, value)
        return value


class Choice(Shape):
    """One of `choices`, a sequence or a mapping read when checking (a registry filled at import)."""

    types = (str,)

    def __init__(self, choices: Iterable[str]):
        self._choices = choices

    @property
    def choices(self) -> Sequence[str]:
        return list(self._choices)

    @property
    def what(self):
        return "one of " + ", ".join(self.choices)

    def check(self, value, key):
        if not (self.accepts(value) and value in self.choices):
            raise Invalid(key, "must be " + self.what, value)
        return value


class Unique(object):
    """Entries of a list that must differ: as a whole, or by `key` (a power meter's rail)."""

    def __init__(self, noun: str, key: Optional[Callable[[Any], Any]] = None, hint: str = ""):
        self.noun, self.key, self.hint = noun, key, hint


class ListOf(Shape):
    types = (list,)

    def __init__(self, item: Shape, what: str = "a list", nonempty: bool = False, unique: Optional[Unique] = None):
        self.item, self.what, self.nonempty, self.unique = item, what, nonempty, unique

    def check(self, value, key):
        if not self.accepts(value) or (self.nonempty and not value):
            raise Invalid(key, "must be " + self.what)
        out, seen = [], []
        for i, entry in enumerate(value):
            here = "%s[%d]" % (key, i)
            checked = self.item.check(entry, here)
            if self.unique is not None:
                identity = self.unique.key(checked) if self.unique.key else checked
                if identity in seen:
                    raise Invalid(here, "repeats a " + self.unique.noun, entry)
                seen.append(identity)
            out.append(checked)
        return out


class MapOf(Shape):
    """A mapping of names to values of one shape."""

    types = (dict,)

    def __init__(self, value: Shape):
        self.value = value
        self.what = "a mapping of names to " + value.what

    def check(self, value, key):
        if not self.accepts(value):
            raise Invalid(key, "must be " + self.what, value)
        for name, entry in value.items():
            here = "%s.%s" % (key, name)
            if not (isinstance(name, str) and name.strip()) or not self.value.accepts(entry):
                raise Invalid(here, "must map a name to " + self.value.what, entry)
            self.value.check(entry, here)
        return dict(value)


class OneOf(Shape):
    """The first of `shapes` whose JSON type the value has (a path, or a mapping that says more)."""

    def __init__(self, *shapes: Shape, what: str):
        self.shapes, self.what = shapes, what
        self.types = tuple(t for shape in shapes for t in shape.types)

    def check(self, value, key):
        for shape in self.shapes:
            if shape.accepts(value):
                return shape.check(value, key)
        raise Invalid(key, "must be " + self.what, value)


class Record(Shape):
    """An object with named fields (each a Setting); unknown keys are refused, missing ones take
    their defaults. `title` names it for the controller; `properties` are values derived from an
    entry (a function of its plain mapping) that the controller offers as attributes too."""

    types = (dict,)

    def __init__(self, title: str, fields: Sequence["Setting"], what: str = "an object", properties=None):
        self.title, self.fields, self.what = title, tuple(fields), what
        self.properties = dict(properties or {})

    def check(self, value, key):
        if not self.accepts(value):
            raise Invalid(key, "must be " + self.what, value)
        names = [f.name for f in self.fields]
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise Invalid(key, "has unknown keys %s; known: %s" % (", ".join(unknown), ", ".join(sorted(names))))
        return {f.name: f.read(value.get(f.name), "%s.%s" % (key, f.name)) for f in self.fields}


REQUIRED = object()  # a Setting default: the key must be given


class Setting(object):
    """One key of a `telemetry:` section (or of a Record): its shape, its default and what it is for.
    A null value means the default, as in the profiles."""

    def __init__(self, name: str, shape: Shape, default: Any = None, doc: str = "", scope: str = DEVICE):
        self.name, self.shape, self.default, self.doc, self.scope = name, shape, default, doc, scope

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def read(self, value, key: str):
        if value is None:
            if self.required:
                raise Invalid(key, "must be " + self.shape.what, None)
            return self.initial()
        return self.shape.check(value, key)

    def initial(self):
        """A fresh copy of the default: a list default must not be shared between jobs."""
        return json.loads(json.dumps(self.default))
