"""An engine that the kernel's out-of-memory killer kills fails its cell with the kernel's own word
for it (its log, matched to the engine's pid), and the sweep goes on with the next cell.

The parser is held to the lines kernels print; the real kills run a device inside a memory cgroup
(tests/memory_cgroup.py) through the real controller, and the kernel kills the engine there.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import _synth
from memory_cgroup import MemoryCgroup, memory_cgroup, unavailable
from missing_parts import missing

from edgebench.models.synth.shapes import PRESETS
from edgebench.runner.oom_kills import KERNEL_LOG_COMMAND, kill_of, why_killed

# -- the kernel log's lines ------------------------------------------------------------------------

LOGS = Path(__file__).parent / "fixtures" / "kernel_log"

# captured on this project's test VM (Linux 6.18, cgroup v1 memory controller) from a real kill (dmesg)
LINUX_6_18_MEMCG = (LOGS / "linux-6.18-memcg-dmesg.txt").read_text()
# a global OOM on a 5.x kernel, from a report on LKML (dmesg): one line names the kill and the size
LINUX_5_X = (LOGS / "linux-5.10-global-dmesg.txt").read_text()
# not captured: Linux 4.19's mm/oom_kill.c formats (Raspberry Pi OS buster's kernel), as journalctl -k
# prints them: the oom-kill summary, the chosen process, the kill, the reaper
LINUX_4_19_JOURNAL = (LOGS / "linux-4.19-global-journalctl.txt").read_text()
# not captured: Linux 3.10's formats (old vendor kernels), as /dev/kmsg gives them: a memory cgroup's
# kill before oom-kill: summaries and shmem-rss existed
LINUX_3_10_KMSG = (LOGS / "linux-3.10-memcg-kmsg.txt").read_text()


@pytest.mark.parametrize("text, pid, name, rss_kb, cgroup", [
    (LINUX_6_18_MEMCG, 9236, "llama-bench", 294784 + 10964, True),
    (LINUX_5_X, 1669, "xdg-desktop-por", 9792 + 10972, False),
    (LINUX_4_19_JOURNAL, 2412, "python3", 1771320 + 4, False),
    (LINUX_3_10_KMSG, 4321, "llama-bench", 512000 + 2048, False),
])
def test_the_kernel_log_names_the_kill_of_a_pid(text, pid, name, rss_kb, cgroup):
    kill = kill_of(text, pid)
    assert (kill.pid, kill.name, kill.rss_kb, kill.cgroup) == (pid, name, rss_kb, cgroup)
    # the kernel's words, without the reader's prefix (timestamp, /dev/kmsg's fields, the journal's host)
    assert f"Killed process {pid} ({name})" in kill.line
    assert kill.line.startswith(("Out of memory", "Memory cgroup out of memory", "Killed process"))
    assert kill_of(text, pid + 1) is None


def test_a_chosen_parent_whose_child_was_killed_in_its_place_is_not_the_one_killed():
    text = ("[ 99.1] Out of memory: Kill process 700 (sh) score 3 or sacrifice child\n"
            "[ 99.2] Killed process 701 (llama-bench) total-vm:9kB, anon-rss:8kB, file-rss:0kB, shmem-rss:0kB\n")
    assert kill_of(text, 700) is None and kill_of(text, 701).name == "llama-bench"


def test_the_latest_kill_of_a_reused_pid_is_the_one_told():
    older = "[ 5.0] Out of memory: Killed process 812 (old) total-vm:1kB, anon-rss:1024kB, file-rss:0kB\n"
    later = LINUX_6_18_MEMCG.replace("9236", "812")
    assert kill_of(older + later, 812).name == "llama-bench"
    assert kill_of(later + "[ 9.0] oom_reaper: reaped process 812 (llama-bench), now anon-rss:0kB\n", 812).rss_kb


def test_the_sentences_say_what_killed_it_and_what_to_try():
    assert why_killed(kill_of(LINUX_6_18_MEMCG, 9236)) == (
        "killed by the kernel's out-of-memory killer at its memory cgroup's limit while it held 299 MiB (the "
        "kernel log names llama-bench, pid 9236); a smaller model, quantization or context may fit")
    assert why_killed(kill_of(LINUX_4_19_JOURNAL, 2412)).startswith(
        "killed by the kernel's out-of-memory killer while it held 1730 MiB (the kernel log names python3, pid 2412)")
    low = [{"rss_kb": 1800 << 10, "mem_available_kb": 900 << 10}, {"rss_kb": 1900 << 10, "mem_available_kb": 40 << 10},
           {"t": 3.0}]
    assert why_killed(None, low) == (
        "probably killed by the kernel's out-of-memory killer: the device had 40 MiB of memory available at the last "
        "sample, the engine 1900 MiB (no kernel log line could confirm it); a smaller model, quantization or "
        "context may fit")
    assert why_killed(None, low[:1]) is None and why_killed(None, []) is None


# -- real kills: a device inside a memory cgroup -----------------------------------------------------

LIMIT_BYTES = 256 << 20
MODEL = "tiny-llama@Q8_0"


@dataclass
class OomDevice:
    """A device whose engines the OOM killer kills past `limit_bytes`. Another device (an emulated 2 GiB
    board) joins as another param of `oom_device`, with its RAM as the limit and no cgroup."""

    file: Path
    limit_bytes: int
    cgroup: MemoryCgroup | None = None


def cgroup_python(tmp_path: Path, cgroup: MemoryCgroup) -> Path:
    """The device's `python`: moves itself into the cgroup, then is the real interpreter (exec keeps the pid)."""
    script = tmp_path / "python-in-cgroup"
    script.write_text(f"#!/bin/sh\necho $$ > {cgroup.procs} || exit 70\nexec {sys.executable} \"$@\"\n")
    script.chmod(0o755)
    return script


@pytest.fixture(params=["local", "ssh"])
def oom_device(request, tmp_path, llama_bench_binary):
    why = unavailable()
    if why:
        missing(why)
    with memory_cgroup("edgebench-oom", LIMIT_BYTES) as cgroup:
        python = cgroup_python(tmp_path, cgroup)
        device = tmp_path / "devices" / "box.yaml"
        device.parent.mkdir()
        if request.param == "ssh":
            from test_fleet_faults import trusted_device
            request.getfixturevalue("private_known_hosts")
            (server,) = request.getfixturevalue("sshd_factory")(1)
            trusted_device(server, "box", directory=device.parent, python=str(python))
        else:
            device.write_text(f"name: box\ntransport: local\nworkdir: {tmp_path / 'work'}\npython: {python}\n")
        with device.open("a") as f:
            f.write(f"llama_bench: {llama_bench_binary}\n")
        yield OomDevice(device, LIMIT_BYTES, cgroup)


def depth_past(limit_bytes: int) -> int:
    """A context depth whose KV cache alone is twice the limit (llama.cpp clears it at once: all of it is touched)."""
    return 2 * limit_bytes // PRESETS["tiny-llama"].kv_bytes_per_token() // 1024 * 1024


def edgebench(*args, cwd):
    return subprocess.run([sys.executable, "-m", "edgebench", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]  # a torn line fails here


@pytest.mark.parametrize("engine, dies", [("llama.cpp", "runner"), ("llama-bench", "llama-bench")])
def test_an_oom_killed_engine_fails_its_cell_and_the_sweep_goes_on(tmp_path, model_dir, llama_cpp, oom_device,
                                                                   engine, dies):
    model = _synth(model_dir, MODEL)
    too_deep = f"pp8@d{depth_past(oom_device.limit_bytes)}"
    profile = tmp_path / "p.yaml"
    profile.write_text(f"models: [{json.dumps(str(model))}]\ntests: [{too_deep}, pp8]\nrepetitions: 2\nwarmup: 0\n"
                       f"engine: {{name: {engine}, threads: 1}}\ntelemetry: {{interval_s: 0.2}}\n")
    kills_before = oom_device.cgroup.oom_kills() if oom_device.cgroup else None
    run = edgebench("run", profile, "-d", oom_device.file, "-o", tmp_path / "results", cwd=tmp_path)
    assert run.returncode == 1, run.stdout + run.stderr
    if oom_device.cgroup:  # the kernel's own count: it was a real kill
        assert oom_device.cgroup.oom_kills() == kills_before + 1

    failures = run.stdout.split("cell(s) failed:")[1].strip().splitlines()
    assert len(failures) == 1 and failures[0].startswith(f"box/{model.stem}/{too_deep}/t1: {dies} died from signal 9: "
                                                         "killed by the kernel's out-of-memory killer")
    assert failures[0].endswith("a smaller model, quantization or context may fit")
    pid = int(re.search(r"pid (\d+)\)", failures[0]).group(1))
    # the pid the sentence names is the one the kernel killed, by the name of the engine's process
    log = subprocess.run(["sh", "-c", KERNEL_LOG_COMMAND], capture_output=True, text=True).stdout
    assert kill_of(log, pid).name == ("llama-bench" if dies == "llama-bench" else Path(sys.executable).name[:15])

    (run_dir,) = (tmp_path / "results").iterdir()
    for path in run_dir.iterdir():  # every results file whole: each line (or file) parses
        jsonl(path) if path.suffix == ".jsonl" else json.loads(path.read_text())
    cells = {(c["cell"], c["state"]): c for c in jsonl(run_dir / "cells.jsonl")}
    failed = cells[(f"box/{model.stem}/{too_deep}/t1", "failed")]["error"]
    assert failed["kind"] == "oom" and "killed by the kernel's out-of-memory killer" in failed["message"]
    assert (f"box/{model.stem}/pp8/t1", "done") in cells  # the next cell ran to its end
    samples = [s for s in jsonl(run_dir / "samples.jsonl") if s["cell"] == f"box/{model.stem}/pp8/t1"]
    assert len(samples) == 2
    show = edgebench("show", run_dir, cwd=tmp_path)
    assert show.returncode == 0 and "killed by the kernel's out-of-memory killer" in show.stdout
    assert re.search(r"\| pp8 \| \d", show.stdout)  # the cell that fitted has its numbers
