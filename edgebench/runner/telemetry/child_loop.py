"""A long-running monitor child (`nvidia-smi -lms N`, `tegrastats --interval N`) and the thread
that hands each line it prints to its source.

Starting a monitor once per sampler tick would cost tens of milliseconds of CPU and the tool's
own initialisation each time; a child that prints a line per interval costs a read.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import threading
from typing import Callable, List, Optional


def find_program(program: str) -> Optional[str]:
    """A monitor's path: a bare name looked up in PATH, a path taken if it exists; None if neither."""
    if os.sep not in program:
        return shutil.which(program)
    return program if os.path.exists(program) else None


class ChildLoop(object):
    """One looping monitor child, started on the first `ensure()` and again if it died."""

    def __init__(self, command: List[str], on_line: Callable[[str], None], name: str):
        self.command, self.on_line, self.name = command, on_line, name
        self.process = None
        # a sampler that is never stopped (a crash between start and stop) must not leave a child behind
        atexit.register(self.close)

    def ensure(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        try:
            self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                            stdin=subprocess.DEVNULL, universal_newlines=True, bufsize=1)
        except OSError:
            self.process = None
            return
        threading.Thread(target=self._pump, args=(self.process,), name=self.name, daemon=True).start()

    def _pump(self, process) -> None:
        for line in process.stdout:
            self.on_line(line)

    def close(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
