"""The registry of telemetry sources and the few file helpers every source shares.

A source declares itself in its own module with `register()`: its device-profile settings, its
discovery function, and what it adds to a window summary and to the rows. Discovery runs once,
finds the files that exist and can be read on this device, and returns a `Reader` whose `read()`
only opens those files. A source that finds nothing usable raises `Unavailable` with a reason
instead of reporting zeros. Every module of this package is imported when the package is (see
__init__.py), so a new source is its module: nothing else lists it.
"""

from __future__ import annotations

import errno
import os
from typing import Callable, Dict, Iterable, List, Optional, Sequence

from .settings import Setting

# name -> Source, in `order`; filled by @register
SOURCES: Dict[str, "Source"] = {}
# everything that adds to a window summary and to the rows, sources or not, in `order`
SUMMARIES: List["Summary"] = []

# Indirections so tests can reproduce a kernel or SELinux refusal even when they
# run as root (for whom a mode-000 file is still readable).
open_file = open
list_dir = os.listdir


class Summary(object):
    """What one part adds to each sample's window summary (`summarize(window) -> dict`, see window.py)
    and the row columns those keys become (`columns`, see columns.py). `order` places it among the
    others: in a window, in the rows, and for a source in every listing of sources."""

    def __init__(self, name: str, order: int, summarize: Optional[Callable] = None, columns: Sequence = ()):
        self.name, self.order, self.summarize, self.columns = name, order, summarize, tuple(columns)


class Source(Summary):
    """A telemetry source as its module declares it.

    `settings`: the device-profile keys it reads (from `ctx.settings`). `throttle(window)`: the
    reasons it sees the device throttled in a window, or None when it cannot tell. `energy(window)`:
    cumulative (t, joules) series measured by the source itself, preferred over integrating power.
    Calling a source discovers it: `SOURCES["thermal"](ctx) -> Reader`.
    """

    def __init__(self, name: str, order: int, discover: Callable[["Context"], "Reader"],
                 settings: Sequence[Setting] = (), summarize=None, columns=(), throttle=None, energy=None):
        super().__init__(name, order, summarize, columns)
        self.discover, self.settings = discover, tuple(settings)
        self.throttle, self.energy = throttle, energy

    def __call__(self, ctx: "Context") -> "Reader":
        return self.discover(ctx)


def register(name: str, order: int, settings: Sequence[Setting] = (), **declared):
    """Decorate a source's discovery function; `declared` as for `Source`."""
    def decorate(discover):
        if name in SOURCES:
            raise ValueError("telemetry source %r registered twice" % name)
        source = Source(name, order, discover, settings, **declared)
        _add_summary(source)
        ranked = sorted(list(SOURCES.values()) + [source], key=lambda s: s.order)
        SOURCES.clear()
        SOURCES.update((s.name, s) for s in ranked)
        return discover
    return decorate


def summary(name: str, order: int, columns: Sequence = ()):
    """Decorate a summary over what several sources read (energy, throttling): it has no reader."""
    def decorate(summarize):
        _add_summary(Summary(name, order, summarize, columns))
        return summarize
    return decorate


def _add_summary(part: Summary) -> None:
    SUMMARIES.append(part)
    SUMMARIES.sort(key=lambda s: s.order)


def source_settings() -> List[Setting]:
    """Every setting the sources declare, in source order."""
    return [setting for source in SOURCES.values() for setting in source.settings]


class Unavailable(Exception):
    """Discovery found nothing usable; `reason` says why ("not present: ...", "permission denied: ...")."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Reader(object):
    """What discovery hands the sampler.

    `read()` returns a fragment of a record (nested dicts are merged across sources).
    `total_rails` names the `power_w` rails that measure the whole device rather
    than one part of it; `total_rank` orders sources when several have such rails
    (lower wins), because adding two whole-device meters would count power twice.
    """

    def __init__(self, read: Callable[[], dict], total_rails: Iterable[str] = (),
                 total_rank: Optional[int] = None, close: Optional[Callable[[], None]] = None):
        self.read = read
        self.total_rails = tuple(total_rails)
        self.total_rank = 100 if total_rank is None else total_rank
        # a source that keeps a helper process running (nvidia-smi's loop) stops it here
        self.close = close or (lambda: None)


class Context(object):
    """Where to look (`root`), whose memory to read (`pid`), how often the sampler reads
    (`interval_s`, for sources that run their own loop) and the sources' device settings
    (`settings`: every declared one, at its default unless given)."""

    def __init__(self, root: str = "/", pid=None, interval_s: float = 1.0, **settings):
        declared = {s.name: s for s in source_settings()}
        unknown = sorted(set(settings) - set(declared))
        if unknown:
            raise TypeError("unknown telemetry settings %s; known: %s" % (unknown, sorted(declared)))
        self.root = root
        self.interval_s = interval_s
        # an int, or a callable returning one: the engine may be a child process started later
        self.pid = pid
        self.settings = {name: s.initial() if settings.get(name) is None else settings[name]
                         for name, s in declared.items()}

    def path(self, *parts: str) -> str:
        """A path under root; absolute device paths (from overrides) are re-rooted too."""
        return os.path.join(self.root, *[p.lstrip("/") for p in parts])

    def current_pid(self) -> int:
        pid = self.pid() if callable(self.pid) else self.pid
        return int(pid) if pid else os.getpid()


def read_text(path: str) -> str:
    with open_file(path, "r", encoding="utf-8", errors="replace") as handle:
        return handle.read().strip()


def read_int(path: str) -> int:
    return int(read_text(path))


def try_int(path: str) -> Optional[int]:
    """One reading, or None when the file vanished or holds garbage mid-run."""
    try:
        return read_int(path)
    except (OSError, ValueError):
        return None


def try_text(path: str) -> Optional[str]:
    try:
        return read_text(path)
    except OSError:
        return None


def entries(directory: str, prefix: str) -> List[str]:
    """Names in `directory` starting with `prefix`, in natural order (zone2 before zone10).

    Raises OSError so callers can tell "not present" from "permission denied";
    glob() would swallow both into an empty list.
    """
    names = [n for n in list_dir(directory) if n.startswith(prefix)]
    return sorted(names, key=_natural_key)


def _natural_key(name: str):
    digits = "".join(c if c.isdigit() else " " for c in name).split()
    return ([int(d) for d in digits], name)


def reason(exc: BaseException, path: str = "") -> str:
    if isinstance(exc, PermissionError) or getattr(exc, "errno", None) in (errno.EACCES, errno.EPERM):
        what = "permission denied"
    elif isinstance(exc, FileNotFoundError) or getattr(exc, "errno", None) == errno.ENOENT:
        what = "not present"
    elif isinstance(exc, ValueError):
        what = "unparseable"
    else:
        what = getattr(exc, "strerror", None) or type(exc).__name__
    return "%s: %s" % (what, path) if path else what


class Problems(object):
    """Collects why candidate files were dropped, to explain an empty discovery.

    Permission problems win over absence in the summary: on Android the files
    usually exist and SELinux refuses them, and "not present" would mislead.
    """

    def __init__(self, root: str):
        self._root = root
        self._items: List[str] = []

    def add(self, exc: BaseException, path: str) -> None:
        self._items.append(reason(exc, os.path.relpath(path, self._root)))

    def unavailable(self, fallback: str) -> Unavailable:
        denied = [p for p in self._items if p.startswith("permission denied")]
        chosen = denied or self._items
        if not chosen:
            return Unavailable(fallback)
        more = " (+%d more)" % (len(chosen) - 1) if len(chosen) > 1 else ""
        return Unavailable(chosen[0] + more)


def first_readable(paths: Iterable[str], problems: Problems, parse: Callable[[str], object] = read_int):
    """The first path that reads and parses now; later paths are fallbacks."""
    for path in paths:
        try:
            parse(path)
            return path
        except (OSError, ValueError) as exc:
            problems.add(exc, path)
    return None
