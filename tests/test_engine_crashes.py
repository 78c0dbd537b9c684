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
from edgebench.toolchain.runner_zipapp import write_runner
from edgebench.transport.local import LocalTransport
from edgebench.transport.remote_store import install_runner
from edgebench.transport.runner_session import run_runner


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
    runner = install_runner(transport)
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
        run_runner(transport, runner, "run", job, 120, on_event)
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


# -- the engine's own reason reaches the user ---------------------------------------------------------

ASSERTION = "llama.cpp/ggml/src/ggml-cpu.c:42: GGML_ASSERT(n_threads > 0) failed"


def edgebench(*args, cwd):
    return subprocess.run([sys.executable, "-m", "edgebench", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


def write_profile(path, models):
    path.write_text("models: [" + ", ".join(json.dumps(str(m)) for m in models) + "]\n"
                    "tests: [pp8]\nrepetitions: 1\nwarmup: 0\nengine: {threads: 1}\ntelemetry: {enabled: false}\n")
    return path


def failure_list(stdout):
    """The lines of `run`'s closing failure list, one per failed cell."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if "cell(s) failed:" in line)
    return [line.strip() for line in lines[start + 1:] if line.startswith("  ")]


def failed_records(run_dir):
    cells = [json.loads(line) for line in (run_dir / "cells.jsonl").read_text().splitlines()]
    return [c["error"] for c in cells if c["state"] == "failed"]


def only_run(results):
    (run_dir,) = [p for p in results.iterdir() if p.is_dir()]
    return run_dir


def test_run_and_show_give_the_engines_reason_for_a_damaged_model(tmp_path, tiny_qwen35, local_device_file):
    damaged = tmp_path / "damaged.gguf"
    damaged.write_bytes(tiny_qwen35.read_bytes()[: tiny_qwen35.stat().st_size // 2])
    reason = "data is not within the file bounds"
    run = edgebench("run", write_profile(tmp_path / "p.yaml", [damaged]), "-d", local_device_file,
                    "-o", tmp_path / "results", cwd=tmp_path)
    assert run.returncode == 1, run.stderr
    (line,) = failure_list(run.stdout)
    assert line.startswith("testbox/damaged/pp8") and "could not load" in line and reason in line
    assert "see stderr" not in line  # the reason is there, not somewhere else
    run_dir = only_run(tmp_path / "results")
    (error,) = failed_records(run_dir)
    assert reason in error["cause"] and error["cause"].startswith("llama_model_load: error loading model")
    show = edgebench("show", run_dir, cwd=tmp_path)
    assert show.returncode == 0
    listed = show.stdout.split("Failed cells:")[1].strip().splitlines()
    assert len(listed) == 1 and "could not load" in listed[0] and reason in listed[0]


def test_a_real_engine_assertion_is_kept_past_its_backtrace(tmp_path, tiny_qwen35, local_device_file):
    """A Qwen3.5 shape with no full-attention layer makes llama.cpp abort on GGML_ASSERT(buffer);
    ggml then prints a backtrace (with gdb, ~100 lines) that pushes the assertion out of the tail."""
    import dataclasses

    from edgebench.models.synth.shapes import PRESETS
    from edgebench.models.synth.writer import write_gguf

    no_attention = write_gguf(dataclasses.replace(PRESETS["tiny-qwen35"], n_layer=2), tmp_path / "rr.gguf")
    run = edgebench("run", write_profile(tmp_path / "p.yaml", [no_attention]), "-d", local_device_file,
                    "-o", tmp_path / "results", cwd=tmp_path)
    assert run.returncode == 1, run.stderr
    (line,) = failure_list(run.stdout)
    assert "signal 6" in line and "GGML_ASSERT(buffer) failed" in line
    (error,) = failed_records(only_run(tmp_path / "results"))
    assert error["signal"] == signal.SIGABRT
    assert error["cause"].startswith("llama.cpp/ggml/src/") and error["cause"].endswith("GGML_ASSERT(buffer) failed")
    assert "GGML_ASSERT(buffer) failed" in error["stderr_tail"]


def aborting_python(tmp_path, frames):
    """An interpreter that, asked to run a cell, does what an aborting engine does: prints its assertion,
    then a long backtrace, then dies by SIGABRT; otherwise (probe, cool-down) it is the real one."""
    script = tmp_path / "python-aborting"
    script.write_text(f'#!/bin/sh\ncase "$2" in run)\n'
                      f'  echo {json.dumps(ASSERTION)} >&2\n'
                      f'  i=0; while [ $i -lt {frames} ]; do echo "#$i  0x00007f0000001000 in frame_$i () from '
                      f'/usr/lib/libggml-base.so" >&2; i=$((i+1)); done\n'
                      f'  kill -ABRT $$;;\nesac\nexec {sys.executable} "$@"\n')
    script.chmod(0o755)
    return script


@pytest.mark.parametrize("transport", ["local", "ssh"])
def test_the_cause_of_an_abort_is_kept_when_its_backtrace_scrolls_it_out(tmp_path, tiny_qwen35, transport,
                                                                         request):
    python = aborting_python(tmp_path, frames=2000)  # ~130 KB of stderr: several SSH reads
    device = tmp_path / "devices" / "box.yaml"
    device.parent.mkdir()
    if transport == "ssh":
        from test_fleet_faults import trusted_device
        request.getfixturevalue("private_known_hosts")
        (server,) = request.getfixturevalue("sshd_factory")(1)
        trusted_device(server, "box", directory=device.parent, python=str(python))
    else:
        device.write_text(f"name: box\ntransport: local\nworkdir: {tmp_path / 'work'}\npython: {python}\n")
    run = edgebench("run", write_profile(tmp_path / "p.yaml", [tiny_qwen35]), "-d", device,
                    "-o", tmp_path / "results", cwd=tmp_path)
    assert run.returncode == 1, run.stderr
    (line,) = failure_list(run.stdout)
    assert "runner died from signal 6" in line and ASSERTION in line
    (error,) = failed_records(only_run(tmp_path / "results"))
    assert error["cause"] == ASSERTION
    tail = error["stderr_tail"].splitlines()
    assert tail[0] == ASSERTION and tail[1].startswith("[... ") and any(t.startswith("#1999 ") for t in tail[-3:])


def test_a_llama_bench_assertion_is_kept_past_its_backtrace(runner, tmp_path):
    """llama-bench runs as the runner's child: the runner keeps its assertion, the controller names it."""
    frames = "\n".join(f"#{i}  0x00007f0000001000 in frame_{i} () from libggml-base.so" for i in range(200))
    tool = dying_tool(tmp_path, "ABRT", ASSERTION + "\n" + frames)
    transport = LocalTransport(parse_device(f"name: box\nworkdir: {tmp_path / 'work'}\n"))
    job = {"engine": "llama-bench", "model_path": str(gguf_stub(tmp_path / "m.gguf")),
           "test": {"n_prompt": 8, "n_gen": 0, "n_depth": 0}, "repetitions": 1, "warmup": 0,
           "engine_options": {"binary": str(tool)}, "telemetry": {"enabled": False}}
    with pytest.raises(RunnerError) as caught:
        run_runner(transport, str(runner), "run", job, 60, lambda event: None)
    assert str(caught.value).startswith("llama-bench died from signal 6: the engine aborted (SIGABRT) on a failed "
                                        "internal check: " + ASSERTION)
    assert caught.value.cause == ASSERTION and ASSERTION in caught.value.stderr_tail
