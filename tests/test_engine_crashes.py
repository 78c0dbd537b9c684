"""A crashed engine says in words what the signal usually means and what to try, whichever engine
crashed: a llama-bench child (the runner explains), or llama.cpp in the runner's own process (the
controller explains, from the faulthandler frames the runner prints)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import pytest

from edgebench.config import parse_device
from edgebench.errors import RunnerError
from edgebench.runner.crashes import cause_lines, explain, in_engine
from edgebench.transport.local import LocalTransport
from edgebench.zipapp import write_runner


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    return write_runner(tmp_path_factory.mktemp("runner"))


def gguf_stub(path):
    path.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 16)
    return path


def dying_tool(tmp_path, signal_name: str, stderr: str = ""):
    """A stand-in llama-bench that prints what a real one prints and then dies by the signal,
    as a process killed by the CPU would."""
    tool = tmp_path / "llama-bench"
    tool.write_text(f"#!/bin/sh\necho {json.dumps(stderr)} >&2\nkill -{signal_name} $$\n")
    tool.chmod(0o755)
    return tool


@pytest.mark.parametrize("signal_name, words", [
    ("ILL", "illegal instruction in the engine (SIGILL): the CPU or VM advertises an instruction set it cannot "
            "run; try `engine.repack: false`"),
    ("SEGV", "segmentation fault in the engine (SIGSEGV)"),
])
def test_a_llama_bench_killed_by_the_cpu_is_explained(runner, tmp_path, signal_name, words):
    job = {"engine": "llama-bench", "model_path": str(gguf_stub(tmp_path / "m.gguf")),
           "test": {"n_prompt": 8, "n_gen": 0, "n_depth": 0}, "repetitions": 1, "warmup": 0,
           "engine_options": {"binary": str(dying_tool(tmp_path, signal_name))}, "telemetry": {"enabled": False}}
    proc = subprocess.run([sys.executable, str(runner), "run"], input=json.dumps(job), capture_output=True,
                          text=True, timeout=60)
    error = json.loads(proc.stdout.splitlines()[-1])
    assert proc.returncode == 1 and error["kind"] == "engine"
    number = getattr(signal, f"SIG{signal_name}")
    assert error["message"].startswith(f"llama-bench died from signal {number}: {words}")


def test_a_fault_inside_the_in_process_engine_is_explained(tmp_path, tiny_qwen35):
    """SIGSEGV delivered to the runner while llama.cpp decodes: the controller sees faulthandler's
    frames in the engine module and says what a fault in the engine usually means."""
    transport = LocalTransport(parse_device(f"name: box\nworkdir: {tmp_path / 'work'}\n"))
    runner = transport.install_runner()
    job = {"engine": "llama.cpp", "model_path": str(tiny_qwen35),
           "test": {"n_prompt": 0, "n_gen": 100000, "n_depth": 0}, "repetitions": 1, "warmup": 0,
           "engine_options": {"threads": 1, "n_ctx": 100001}, "telemetry": {"enabled": False}}
    pid = {}

    def on_event(event):
        if event["event"] == "hello":
            pid["runner"] = event["pid"]
        elif event["event"] == "start":  # the engine is loaded and about to decode for a long time
            threading.Timer(0.5, os.kill, (pid["runner"], signal.SIGSEGV)).start()
    with pytest.raises(RunnerError) as caught:
        transport.run_runner(runner, "run", job, 120, on_event)
    assert caught.value.signal == signal.SIGSEGV
    assert str(caught.value).startswith("runner died from signal 11: segmentation fault in the engine (SIGSEGV)")
    assert "llama_cpp_engine.py" in caught.value.stderr_tail  # the frames that told


def test_a_fault_outside_any_engine_is_not_blamed_on_it():
    tail = 'Fatal Python error: Segmentation fault\n  File "/x/ebrunner/telemetry/sampler.py", line 3 in run'
    assert not in_engine(tail) and explain(11, tail, engine=False) is None
    assert explain(4, "", engine=False).startswith("illegal instruction in the engine")


def test_the_cause_is_kept_apart_from_the_backtrace():
    tail = "\n".join(["llama.cpp/ggml/src/ggml-backend.cpp:123: GGML_ASSERT(buffer) failed", "#0 0x1 in ggml_abort",
                      "#1 0x2 in llama_decode", "#2 0x3 in ffi_call"])
    assert cause_lines(tail) == ["llama.cpp/ggml/src/ggml-backend.cpp:123: GGML_ASSERT(buffer) failed"]
    assert explain(6, tail).endswith("failed internal check: llama.cpp/ggml/src/ggml-backend.cpp:123: "
                                     "GGML_ASSERT(buffer) failed")
