"""What a signal that killed the engine usually means, and what to try, in one sentence.

Shared by the runner (a llama-bench child that died) and the controller (a runner that died with
its in-process engine), so a user sees the same words whichever engine crashed.
"""

import re
from collections import deque

# Linux's number, named here because a Windows controller's signal module has no SIGKILL
SIGKILL = 9
_TRY_BUILD = ("try `engine.repack: false` in the profile, or an engine built without native flags "
              "(`edgebench install-engine`)")
_MEANINGS = {
    4: "illegal instruction in the engine (SIGILL): the CPU or VM advertises an instruction set it "
       "cannot run; " + _TRY_BUILD,
    11: "segmentation fault in the engine (SIGSEGV): most often an instruction set the VM advertises "
        "but faults on (AMX), else a damaged model file or an engine bug; " + _TRY_BUILD +
        ", and check the model with `edgebench inspect`",
    7: "bus error in the engine (SIGBUS): the mapped model file was truncated or changed while in use, "
       "or the disk is full",
    6: "the engine aborted (SIGABRT) on a failed internal check",
    9: "killed (SIGKILL): most often the kernel's out-of-memory killer; a smaller model, context or "
       "batch may fit",
}
# lines of an engine's stderr that name why it stopped, as opposed to a backtrace's frames
_CAUSE = re.compile(r"GGML_ASSERT|GGML_ABORT|(?i:error|failed|terminate called|what\(\):)|Fatal Python error")
# a backtrace's frame ("#3 0x7f... in ggml_abort"), which names functions, not causes
_FRAME = re.compile(r"^\s*#\d+\s")
# the engine's own assertion: when there is one, it is the cause, whatever else failed after it
_ASSERTION = re.compile(r"GGML_ASSERT|GGML_ABORT")
# where the engine was built, before the source path an assertion names (/tmp/pip-wheel-x/vendor/llama.cpp/)
_BUILD_DIR = re.compile(r"^\S*/llama\.cpp/")
# faulthandler's frames in the runner's own engine modules: the fault happened inside the engine
_ENGINE_FRAME = re.compile(r'File ".*[/\\]engines[/\\]\w+\.py"')


def in_engine(stderr_text):
    return bool(_ENGINE_FRAME.search(stderr_text or ""))


def is_cause(line):
    """Whether a stderr line says why (an assertion, an error), as opposed to a backtrace's frame."""
    return bool(_CAUSE.search(line)) and not _FRAME.match(line)


def cause_lines(stderr_text, limit=3):
    """The stderr lines that say why (an assertion, an error), not the backtrace after them; an
    assertion's source path starts at llama.cpp/, not in the directory its wheel was built in."""
    found = [_BUILD_DIR.sub("llama.cpp/", line.strip()) for line in (stderr_text or "").splitlines()
             if is_cause(line)]
    return found[:limit]


def main_cause(stderr_text):
    """The one line that names why the engine stopped: its assertion if it made one, else its first
    error line; None when it said nothing (Python's "Fatal Python error" only names the signal)."""
    found = [line for line in cause_lines(stderr_text, limit=None) if not line.startswith("Fatal Python error")]
    asserted = [line for line in found if _ASSERTION.search(line)]
    return (asserted or found or [None])[0]


class StderrTail:
    """The last lines a process wrote to stderr, and the lines that named its cause even once a long
    backtrace (gdb prints ~100 lines after a GGML_ASSERT) has pushed them out of the tail."""

    def __init__(self, max_lines=30, max_causes=8):
        self.lines = deque(maxlen=max_lines)
        self.causes = deque(maxlen=max_causes)
        self.count = 0

    def add(self, line):
        line = line.rstrip()
        self.count += 1
        self.lines.append((self.count, line))
        if is_cause(line):
            self.causes.append((self.count, line))

    def text(self):
        """The tail, after the cause lines that scrolled out of it, with the gaps marked."""
        first_kept = self.lines[0][0] if self.lines else self.count + 1
        out, previous = [], 0
        for number, line in [(n, text) for n, text in self.causes if n < first_kept] + [(first_kept, None)]:
            if number > previous + 1:
                out.append("[... %d lines left out ...]" % (number - previous - 1))
            if line is not None:
                out.append(line)
            previous = number
        return "\n".join(out + [line for _, line in self.lines])

    def cause(self):
        return main_cause("\n".join(line for _, line in self.causes))


def killed_child(name, pid, code):
    """What a failure carries about a child engine that SIGKILL ended, for the runner to ask the kernel
    whether its out-of-memory killer did it (main.py); nothing for any other end."""
    return {"killed": {"process": name, "pid": pid}} if code == -SIGKILL else {}


def explain(signal_number, stderr_text="", engine=True):
    """One sentence for a death by `signal_number`; None when there is nothing useful to say."""
    if signal_number == 11 and not engine:
        return None  # a fault outside the engine: nothing here would help
    meaning = _MEANINGS.get(signal_number)
    if meaning is None:
        return None
    causes = [c for c in cause_lines(stderr_text) if not c.startswith("Fatal Python error")]
    return meaning + (": " + " / ".join(causes) if causes else "")
