"""A benchmark profile's `engine:` section, read against what the chosen engine declares.

Every engine declares its options in its own module (edgebench/runner/engines/*_engine.py); this
turns those declarations into the section's checks, so a profile is held to the options of the
engine it names and no others: `providers` for llama.cpp is an error naming the file, line and key,
not a setting quietly ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Iterator

from edgebench.config.fields import (
    Check,
    Convert,
    Types,
    Where,
    above,
    at_least,
    list_of,
    not_blank,
    one_of,
    read_value,
    reject_unknown,
)
from edgebench.runner import engines
from edgebench.runner.engines.cpu_mask import NO_MASK, canonical, is_mask
from edgebench.runner.engines.declaration import EngineDeclaration, Option

DEFAULT_ENGINE = "llama.cpp"


@dataclass(frozen=True)
class EngineOptions(Mapping):
    """The engine's name and every option it declares, as the profile gives it or as declared by default.
    It reads as the section it came from (`engine["n_batch"]`, `to_plain`), and an option also as an
    attribute (`engine.n_batch`); an option of another engine is no attribute."""

    name: str = DEFAULT_ENGINE
    options: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        declared = engines.declared(self.name)
        if declared is None:
            raise ValueError(f"unknown engine {self.name!r}; known: {', '.join(engines.names())}")
        foreign = sorted(set(self.options or ()) - {o.name for o in declared.options})
        if foreign:
            raise ValueError(f"engine {self.name} takes no {', '.join(foreign)}")
        given = dict(self.options or {})
        object.__setattr__(self, "options", MappingProxyType(
            {o.name: given[o.name] if o.name in given else default(o) for o in declared.options}))

    @property
    def declaration(self) -> EngineDeclaration:
        return engines.declared(self.name)

    @property
    def threads(self) -> tuple[int, ...]:
        """The thread counts the cells sweep; empty (also for an engine without `threads`) leaves the
        count to the runner."""
        return self.options.get("threads", ())

    def __getattr__(self, key: str) -> Any:
        options = self.__dict__.get("options") or {}
        if key in options:
            return options[key]
        raise AttributeError(f"engine {self.__dict__.get('name')} has no option {key!r}")

    def __getitem__(self, key: str) -> Any:
        return self.name if key == "name" else self.options[key]

    def __iter__(self) -> Iterator[str]:
        yield "name"
        yield from self.options

    def __len__(self) -> int:
        return 1 + len(self.options)


def read_engine(value: dict, where: Where) -> EngineOptions:
    """The section, checked against the declaration of the engine it names (llama.cpp if none)."""
    raw_name = value.get("name")
    name = DEFAULT_ENGINE if raw_name is None else read_value(where.child("name"), raw_name, str,
                                                              check=one_of(*engines.names()))
    declared = engines.declared(name)
    allowed = ["name"] + [o.name for o in declared.options]
    for key in value:
        takers = [] if key in allowed else [d.name for d in engines.declarations().values() if d.option(key)]
        if takers:
            takes = "engine takes" if len(takers) == 1 else "engines take"
            raise where.child(key).error(f"only the {_listing(takers)} {takes} {key}")
    reject_unknown(where, value, allowed)
    options = {o.name: read_value(where.child(o.name), value[o.name], *reader(o))
               for o in declared.options if value.get(o.name) is not None}
    if options.get("cores", "all") != "all" and options.get("cpu_mask", NO_MASK) != NO_MASK:
        raise where.child("cpu_mask").error(f"cores: {options['cores']} and cpu_mask both choose the CPUs; "
                                            "give one of them")
    return EngineOptions(name, options)


def without_foreign_options(section: dict, keep: tuple[str, ...] = ()) -> dict:
    """An engine section as plain data, less the options its engine does not take, except those in `keep`
    (still checked when it is read): an `ab` variant that switches engines. (A run.json written before
    engines declared their options is converted by the loader, results/model.py.)"""
    name = section.get("name") or DEFAULT_ENGINE
    declared = engines.declared(name) if isinstance(name, str) else None
    if declared is None:
        return section  # reading it says what is wrong with the name
    return {k: v for k, v in section.items() if k == "name" or declared.option(k) or k in keep}


def default(option: Option) -> Any:
    """The declared default, immutable as a profile's values are."""
    if isinstance(option.default, dict):
        return MappingProxyType(dict(option.default))
    return tuple(option.default) if isinstance(option.default, list) else option.default


def reader(option: Option) -> tuple[Types, Check | None, Convert | None]:
    """(accepted YAML types, check, conversion) for read_value, from the option's declared kind."""
    kind = option.kind
    if kind in ("int", "float"):
        return (int if kind == "int" else float), _bounds(option), None
    if kind == "bool":
        if not option.aliases:
            return bool, None, None
        # llama-bench writes its booleans 0/1 (--cpu-strict 1): an option may take those too
        return (bool, int), None, lambda v, where: _alias(option, v, where)
    if kind == "mask":
        # an unquoted 0xF0 is a YAML number; either way one spelling (0xf0) is kept
        return (str, int), None, _mask
    if kind == "text":
        return str, not_blank, None
    if kind == "choice":
        aliases = dict(option.aliases)
        types = (str,) + tuple(sorted({type(k) for k in aliases}, key=lambda t: t.__name__))
        return types, one_of(*option.choices), lambda v, where: v.strip().lower() if isinstance(v, str) else aliases[v]
    if kind == "texts":
        return list, None, list_of(str, not_blank, nonempty=True, unique=True)
    if kind == "sizes":
        return dict, None, _sizes
    if kind == "counts":
        # one number is a sweep of one; an empty list leaves the choice to the runner
        items = list_of(int, _bounds(option), unique=True)
        return (int, list), None, lambda v, where: (items(v, where) if isinstance(v, list) else
                                                    (read_value(where, v, int, _bounds(option)),))
    raise ValueError(f"option {option.name} has an unknown kind {kind!r}")


def _alias(option: Option, value: Any, where: Where) -> Any:
    if isinstance(value, bool):
        return value
    aliases = dict(option.aliases)
    if value in aliases:
        return aliases[value]
    raise where.error(f"expected true or false (or {' or '.join(str(k) for k in aliases)}), got {value!r}")


def _mask(value: Any, where: Where) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise where.error(f"a CPU mask cannot be negative, got {value}")
        return "0x%x" % value
    if not is_mask(value.strip()):
        raise where.error(f"expected a hex CPU mask like 0xF0 (bit n: CPU n), got {value!r}")
    return canonical(value.strip())


def _bounds(option: Option) -> Check | None:
    if option.at_least is not None:
        return at_least(option.at_least)
    return above(option.above) if option.above is not None else None


def _sizes(value: dict, where: Where) -> Mapping[str, int]:
    return MappingProxyType({str(name): read_value(where.child(name), size, int, at_least(1))
                             for name, size in value.items()})


def _listing(names: list[str]) -> str:
    return " and ".join(names) if len(names) < 3 else ", ".join(names[:-1]) + " and " + names[-1]
