"""What a fact is, the registry of facts, and the failure rules every fact shares.

A fact is a fixed POSIX sh command plus a pure parser of what it printed, so
parsers are tested on recorded outputs with no device at hand (the pyinfra
idea). Values are either what the parser returned, `None` when the thing does
not exist on this device (no vcgencmd on a laptop, no GPU on a phone), or the
string "unavailable: <reason>" when it exists but could not be read. A value
is never guessed.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any, Callable

Parser = Callable[[str, int], Any]

UNAVAILABLE = "unavailable: "

# Matched in English: the probe script sets LC_ALL=C so every tool, on every
# device, reports refusals this way (Android's SELinux denials included).
_DENIED = re.compile(r"permission denied|operation not permitted", re.IGNORECASE)
_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
_SHELL_VARIABLE = re.compile(r"[a-z_][a-z0-9_]*\Z")


def unavailable(reason: str) -> str:
    return UNAVAILABLE + reason


def is_unavailable(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(UNAVAILABLE)


def denied(text: str) -> bool:
    return bool(_DENIED.search(text))


@dataclass(frozen=True)
class Fact:
    """One probe: `command` is a constant; a fact that needs a value from the user
    (`argument`) reads it from a shell variable of that name, which `command_for`
    assigns with `quote_argument` — the value never becomes part of the command."""

    name: str
    command: str
    parser: Parser
    argument: str | None = None
    quote_argument: Callable[[str], str] = shlex.quote

    def command_for(self, value: str | None = None) -> str:
        if self.argument is None:
            if value is not None:
                raise TypeError(f"fact {self.name!r} takes no argument")
            return self.command
        if value is None:
            raise TypeError(f"fact {self.name!r} needs its {self.argument!r} argument")
        return f"{self.argument}={self.quote_argument(value)}\n{self.command}"

    def parse(self, stdout: str, exit_code: int) -> Any:
        failure = failure_of(stdout, exit_code)
        if failure is not None:
            return failure
        if not stdout.strip():
            return None
        try:
            return self.parser(stdout, exit_code)
        except (ValueError, KeyError, IndexError) as exc:
            # Something we do not recognise was printed; saying so beats failing the whole check.
            return unavailable(f"unparseable output ({exc})")


def failure_of(stdout: str, exit_code: int) -> str | None:
    """The shared rules: refusals, missing commands and failed commands are "unavailable"."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if lines and all(denied(line) for line in lines):
        return unavailable("permission denied")
    if exit_code == 0:
        return None
    if exit_code == 127:
        return unavailable("command not found")
    if any(denied(line) for line in lines):
        return unavailable("permission denied")
    detail = f": {lines[0].strip()[:200]}" if lines else ""
    return unavailable(f"exit status {exit_code}{detail}")


FACTS: dict[str, Fact] = {}


def fact(name: str, command: str, *, argument: str | None = None,
         quote_argument: Callable[[str], str] = shlex.quote) -> Callable[[Parser], Parser]:
    """Register the decorated parser as fact `name`; probes run in registration order."""
    if not _NAME.match(name):
        # names travel inside the probe's marker lines, so they must stay plain words
        raise ValueError(f"fact name {name!r} must be lowercase letters, digits and _")
    if argument is not None and not _SHELL_VARIABLE.match(argument):
        raise ValueError(f"argument {argument!r} must be a lowercase shell variable name")

    def register(parser: Parser) -> Parser:
        if name in FACTS:
            raise ValueError(f"fact {name!r} is registered twice")
        FACTS[name] = Fact(name, command.strip("\n"), parser, argument, quote_argument)
        return parser

    return register


# Small helpers the parsers share.

def key_values(text: str, sep: str = "=") -> dict[str, str]:
    """`key<sep>value` lines (first separator splits); other lines are ignored."""
    pairs = {}
    for line in text.splitlines():
        key, found, value = line.partition(sep)
        if found:
            pairs[key.strip()] = value.strip()
    return pairs


def first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    raise ValueError("no output")
