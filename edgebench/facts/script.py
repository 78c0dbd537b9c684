"""The fact script: all facts in one remote shell, so one SSH round trip, which is what a phone's
latency makes worth it.

Output layout (LF line ends; NONCE is fresh per script)::

    @@edgebench-probe 1 NONCE
    @@edgebench-probe NONCE begin <fact>
    <the fact command's stdout and stderr, verbatim>
    @@edgebench-probe NONCE end <fact> <exit status>
    ... once per fact, in registry order

The end marker is printed after a newline of its own, so a command whose
output lacks a final newline still leaves the marker at a line start; the
parser drops exactly that one newline. The nonce keeps a command's output from
forging a marker.
"""

from __future__ import annotations

import re
import secrets
import shlex
from typing import Any

from edgebench.errors import EdgebenchError

from .base import FACTS, unavailable

# the markers, error kind and messages below are stored in devices.jsonl and in test fixtures: kept as they were
MARKER = "@@edgebench-probe"
VERSION = "1"
_HEADER = re.compile(rf"^{MARKER} {VERSION} ([0-9a-f]{{8,64}})$", re.MULTILINE)
_NONCE = re.compile(r"[0-9a-f]{8,64}\Z")


class FactOutputError(EdgebenchError):
    """What came back is not the output of the fact script (the shell never ran it)."""

    kind = "probe-output"


def fact_script(workdir: str, *, python: str = "python3", nonce: str | None = None) -> str:
    """A POSIX sh script running every registered fact; `workdir` and `python` (the interpreter the
    runner will use) reach it only shell-quoted."""
    nonce = nonce or secrets.token_hex(8)
    if not _NONCE.match(nonce):
        raise ValueError("nonce must be 8-64 lowercase hex digits")
    # Markers use echo: it is built into every shell, and mksh has no printf builtin.
    lines = [
        # English messages, so "Permission denied" reads the same on every device
        "LC_ALL=C; export LC_ALL",
        f"echo '{MARKER} {VERSION} {nonce}'",
    ]
    # root: the filesystem root the cpu fact reads below; empty on a device (tests point it at a fixture tree)
    arguments = {"workdir": workdir, "python": python, "root": ""}
    for fact in FACTS.values():
        command = fact.command_for(arguments[fact.argument]) if fact.argument else fact.command
        lines += [
            f"echo '{MARKER} {nonce} begin {fact.name}'",
            # a subshell so no fact's exit, cd or variables reach the next one;
            # no stdin so nothing can swallow a script fed through `sh -s`
            f"(\n{command}\n) </dev/null 2>&1",
            f"eb_status=$?; echo; echo \"{MARKER} {nonce} end {fact.name} $eb_status\"",
        ]
    return "\n".join(lines) + "\n"


def fact_command(workdir: str, python: str = "python3") -> str:
    """The fact script as one command line for SSH exec: the login shell may be bash (Termux) or
    anything else, so hand the script to `sh` explicitly."""
    return "sh -c " + shlex.quote(fact_script(workdir, python=python))


def parse_fact_output(output: str) -> dict[str, Any]:
    """Fact name -> parsed value (or None / "unavailable: ..."), for every registered fact."""
    # a pty (ssh -t) turns LF into CRLF
    output = output.replace("\r\n", "\n")
    header = _HEADER.search(output)
    if not header:
        raise FactOutputError(f"no probe header in the output: {output.strip()[:200]!r}")
    nonce = header.group(1)
    markers = re.compile(rf"^{MARKER} {nonce} (begin|end) ([a-z][a-z0-9_]*)(?: (\d+))?$", re.MULTILINE)

    results: dict[str, Any] = {name: unavailable("not in the probe output") for name in FACTS}
    started: dict[str, int] = {}
    for marker in markers.finditer(output, header.end()):
        kind, name, status = marker.groups()
        if name not in FACTS:
            continue  # a fact this controller does not know
        if kind == "begin":
            started[name] = marker.end() + 1
            results[name] = unavailable("probe cut short")
        elif name in started and status is not None:
            body = output[started.pop(name):marker.start()]
            results[name] = FACTS[name].parse(body.removesuffix("\n"), int(status))
    return results
