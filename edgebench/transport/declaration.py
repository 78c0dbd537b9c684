"""What a transport says about itself: the device-profile settings it reads, as plain data.

Each transport module (named in this package's `TRANSPORTS`) holds a `DECLARATION` beside its
transport class (`TRANSPORT`). config/device.py builds the device profile from every declaration: a
transport's settings become top-level keys of the profile (`host:`, `port:`), typed, checked and
reported with file, line and key like the rest of the config, and a key of another transport than
the device's is an error. So adding a transport is its module, a line in `TRANSPORTS` and a test.

A transport module imports its library (paramiko, labgrid) only when a device is opened, so the
controller reads every declaration without it.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Tuple


class TransportSetting(NamedTuple):
    name: str
    type: type  # str, int, float, bool or dict, as YAML writes it
    default: Any  # None: unset (a setting at its default counts as unset for the other transports)
    doc: str
    # (low, high), both included, for numbers
    between: Optional[Tuple[float, float]] = None
    # (regular expression the whole value matches, the rule in words for the message); text without
    # one must simply not be blank
    pattern: Optional[Tuple[str, str]] = None
    # for a mapping (type dict) of words: a pattern (as above) for its keys and one for its values; it is
    # read into a frozen mapping
    items: Optional[Tuple[Tuple[str, str], Tuple[str, str]]] = None


class TransportDeclaration(NamedTuple):
    name: str
    doc: str
    settings: Tuple[TransportSetting, ...] = ()
    # a device of this transport sets at least one of these (empty: none is needed) ...
    needs_one_of: Tuple[str, ...] = ()
    # ... and the message says what, after "transport NAME needs "
    needs: str = ""
    # the settings that say where the device is, the first one set shown by `devices list`
    address: Tuple[str, ...] = ()
    # a rule across settings, given the device profile: (key, message) where it is broken, else None
    check: Optional[Callable[[Any], Optional[Tuple[str, str]]]] = None
    # the setting that makes one profile stand for that many devices of a fleet (`NAME.1` ... `NAME.N`,
    # each with the setting at 1): labgrid's `count:` of places
    fleet_size: Optional[str] = None

    def setting(self, name: str) -> Optional[TransportSetting]:
        return next((s for s in self.settings if s.name == name), None)


# for values that end up as command-line arguments: a leading '-' would be read as an option
# (`-oProxyCommand=...`)
WORD = (r"[^\s-]\S*", "must be a single word that does not start with '-'")
