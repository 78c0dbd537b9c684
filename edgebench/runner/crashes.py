"""What a signal that killed the engine usually means, and what to try, in one sentence.

Shared by the runner (a llama-bench child that died) and the controller (a runner that died with
its in-process engine), so a user sees the same words whichever engine crashed.
"""

import re

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
# faulthandler's frames in the runner's own engine modules: the fault happened inside the engine
_ENGINE_FRAME = re.compile(r'File ".*[/\\]engines[/\\]\w+\.py"')


def in_engine(stderr_text):
    return bool(_ENGINE_FRAME.search(stderr_text or ""))


def cause_lines(stderr_text, limit=3):
    """The stderr lines that say why (an assertion, an error), not the backtrace after them."""
    found = [line.strip() for line in (stderr_text or "").splitlines()
             if _CAUSE.search(line) and not _FRAME.match(line)]
    return found[:limit]


def explain(signal_number, stderr_text="", engine=True):
    """One sentence for a death by `signal_number`; None when there is nothing useful to say."""
    if signal_number == 11 and not engine:
        return None  # a fault outside the engine: nothing here would help
    meaning = _MEANINGS.get(signal_number)
    if meaning is None:
        return None
    causes = [c for c in cause_lines(stderr_text) if not c.startswith("Fatal Python error")]
    return meaning + (": " + " / ".join(causes) if causes else "")
