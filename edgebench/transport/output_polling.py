"""Reading what a device process prints, and short device commands run to their end.

Built on Transport.start alone, so every transport reads output the same way.
"""

from __future__ import annotations

import codecs
import time

from edgebench.errors import TransportError
from edgebench.transport.base import Completed, Process

POLL_S = 0.25


class TextOutput:
    """A process's stdout and stderr as text, decoded across the pieces they arrive in (a
    character split between two reads stays whole)."""

    def __init__(self, process: Process):
        self.process = process
        self.open = {"out", "err"}
        self._decoders = {name: codecs.getincrementaldecoder("utf-8")(errors="replace") for name in self.open}

    @property
    def ended(self) -> bool:
        return not self.open

    def poll(self, timeout: float) -> tuple[str, str]:
        """(stdout text, stderr text) from the next piece of output; both empty when nothing came."""
        piece = self.process.receive(timeout)
        if piece is None:
            return "", ""
        name, data = piece
        if not data:
            self.open.discard(name)
        text = self._decoders[name].decode(data, final=not data)
        return (text, "") if name == "out" else ("", text)


class Lines:
    """Complete lines out of text that arrives in pieces."""

    def __init__(self):
        self.partial = ""

    def feed(self, text: str) -> list[str]:
        *lines, self.partial = (self.partial + text).split("\n")
        return lines

    def rest(self) -> str:
        rest, self.partial = self.partial, ""
        return rest


def helper_argv(transport, runner: str, mode: str, *args) -> list[str]:
    """A helper mode of the runner (store, lock). -S: no site-packages to scan at start (they need
    only the stdlib), which is most of a small command's time on a device."""
    return [transport.helper_python, "-S", runner, mode, *map(str, args)]


def run_to_end(transport, argv: list[str], what: str, timeout_s: float = 120) -> Completed:
    """Run argv on the device with nothing on its stdin; its exit code and output. `what` names
    the command in the error when it does not finish in time."""
    process = transport.start(argv)
    out, err = [], []
    try:
        process.close_stdin()
        output = TextOutput(process)
        deadline = time.monotonic() + timeout_s
        while not output.ended:
            if time.monotonic() > deadline:
                raise TransportError(f"{transport.device.name}: {what} did not finish within {timeout_s:g} s")
            text, errors = output.poll(POLL_S)
            out.append(text)
            err.append(errors)
        code, _signal = process.wait()
    except BaseException:
        process.kill()
        raise
    finally:
        process.close()
    return Completed(code if code is not None else -1, "".join(out), "".join(err))
