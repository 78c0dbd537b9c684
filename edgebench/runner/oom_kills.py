"""Whether the kernel's out-of-memory killer killed a process, and the one sentence that says so.

A fact-like pair: KERNEL_LOG_COMMAND, a shell command that prints the kernel log's OOM-kill lines,
and `kill_of(text, pid)`, a pure parser of what it prints. The runner runs the command itself when
its llama-bench child dies by SIGKILL; the controller runs it through the transport when the runner
dies with its in-process engine (the runner's pid comes from its `hello`). Where no reader is
allowed, memory at its limit in the last telemetry sample makes an OOM kill probable, no more.
"""

from __future__ import annotations

import re
import subprocess
from typing import NamedTuple, Optional

# dmesg first; /dev/kmsg (without blocking at its end) where dmesg is missing; the journal where a
# user may read neither (kernel.dmesg_restrict) but is in its group. Only the kill lines come back,
# so a long kernel log costs the link nothing.
KERNEL_LOG_COMMAND = ("{ dmesg || dd if=/dev/kmsg iflag=nonblock bs=65536 || journalctl -k -q --no-pager; } "
                      "2>/dev/null | grep -E 'Killed process|oom-kill:|oom_reaper: reaped'")
KERNEL_LOG_TIMEOUT_S = 20
ADVICE = "a smaller model, quantization or context may fit"

# "Out of memory: Killed process 1234 (python3) total-vm:...": 5.x and later, with "Memory cgroup out
# of memory: " for a cgroup's limit; 4.x and 3.x print "Killed process 1234 (python3) total-vm:..." on a
# line of its own after "Out of memory: Kill process 1234 (...) score N or sacrifice child", which
# names the process chosen, not always the one killed (a child may be killed in its place)
_KILLED = re.compile(r"Killed process (\d+) \(([^)]*)\)")
# "oom-kill:constraint=CONSTRAINT_MEMCG,...,task=llama-bench,pid=1234,uid=0" (4.19 and later)
_OOM_KILL = re.compile(r"oom-kill:(\S*?)\btask=([^,]*),pid=(\d+)")
# "oom_reaper: reaped process 1234 (llama-bench), now anon-rss:0kB, ..." (4.6 and later)
_REAPED = re.compile(r"oom_reaper: reaped process (\d+) \(([^)]*)\)")
# where the kernel's message starts, after the reader's prefix (a timestamp, a journal's host)
_MESSAGE = re.compile(r"Memory cgroup out of memory|Out of memory|Killed process")
_RSS_KB = re.compile(r"\b(?:anon|file|shmem)-rss:(\d+)kB")


class OomKill(NamedTuple):
    pid: int
    name: str  # the process's name as the kernel knows it (at most 15 characters)
    rss_kb: Optional[int]  # what it held when killed (anonymous, file and shared), where the log says
    cgroup: bool  # killed at its memory cgroup's limit, not for want of the device's memory
    line: str  # the kernel's line that says so, from its message on


def kill_of(text: str, pid: Optional[int]) -> Optional[OomKill]:
    """The OOM kill of `pid` in kernel-log text (dmesg, /dev/kmsg or journalctl lines, any of their
    prefixes); the latest when the log holds an older one of a reused pid; None when it names none."""
    found = None
    for line in (text or "").splitlines():
        kill = _parse_line(line)
        if kill is None or kill.pid != pid:
            continue
        # a second `Killed process` line for the pid is a later kill of a reused pid
        found = kill if found is not None and _is_killed(found) and _is_killed(kill) else _merge(found, kill)
    return found


def _is_killed(kill: OomKill) -> bool:
    return "Killed process" in kill.line


def _parse_line(line: str) -> Optional[OomKill]:
    match = _KILLED.search(line)
    if match:
        rss = [int(kb) for kb in _RSS_KB.findall(line[match.end():])]
        message = line[_MESSAGE.search(line).start():]
        return OomKill(int(match.group(1)), match.group(2), sum(rss) if rss else None,
                       message.startswith("Memory cgroup"), message)
    match = _OOM_KILL.search(line)
    if match:
        return OomKill(int(match.group(3)), match.group(2), None, "CONSTRAINT_MEMCG" in match.group(1),
                       line[match.start():])
    match = _REAPED.search(line)
    if match:  # what it holds after the reaping, not what it held: no size
        return OomKill(int(match.group(1)), match.group(2), None, False, line[match.start():])
    return None


def _merge(earlier: Optional[OomKill], later: OomKill) -> OomKill:
    """One kill is told in several lines (oom-kill:, Killed process, oom_reaper:): the size and line
    come from its `Killed process` line, the cgroup from whichever line says so."""
    if earlier is None:
        return later
    kept = earlier if _is_killed(earlier) and not _is_killed(later) else later
    return kept._replace(cgroup=earlier.cgroup or later.cgroup)


def read_kernel_log(timeout_s: float = KERNEL_LOG_TIMEOUT_S) -> str:
    """The command's output on this device (the runner's side); empty when nothing could be read."""
    try:
        done = subprocess.run(["sh", "-c", KERNEL_LOG_COMMAND], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, universal_newlines=True, timeout=timeout_s)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout


def at_limit(records) -> Optional[dict]:
    """The last telemetry record with memory readings, when it shows the device's memory nearly all
    taken (MemAvailable under a tenth of what the engine held plus it); else None."""
    for record in reversed(list(records or ())):
        available = record.get("mem_available_kb")
        if available is None:
            continue
        held = record.get("rss_kb") or 0
        return record if available * 10 < held + available else None
    return None


def why_killed(kill: Optional[OomKill], records=()) -> Optional[str]:
    """Why a process died by SIGKILL, in words, when the kernel's log or its memory says OOM; else None."""
    if kill is not None:
        where = " at its memory cgroup's limit" if kill.cgroup else ""
        held = " while it held %s" % _mib(kill.rss_kb) if kill.rss_kb else ""
        return ("killed by the kernel's out-of-memory killer%s%s (the kernel log names %s, pid %d); %s"
                % (where, held, kill.name, kill.pid, ADVICE))
    record = at_limit(records)
    if record is not None:
        held = ", the engine %s" % _mib(record["rss_kb"]) if record.get("rss_kb") else ""
        return ("probably killed by the kernel's out-of-memory killer: the device had %s of memory available "
                "at the last sample%s (no kernel log line could confirm it); %s"
                % (_mib(record["mem_available_kb"]), held, ADVICE))
    return None


def _mib(kb: int) -> str:
    return "%.0f MiB" % (kb / 1024)
