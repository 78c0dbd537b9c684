"""The runner's event modes: one job in on stdin, JSON-lines events out on stdout.

    python3 runner.pyz run   < job.json     # measure one cell
    python3 runner.pyz capabilities         # engines and telemetry sources available here
    python3 runner.pyz cooldown < wait.json # wait until the device is cool enough for the next cell

(entry.py picks these or the helper modes, store and lock.)
"""

from __future__ import annotations

import faulthandler
import os
import platform
import sys
import time
import traceback

from . import PROTOCOL_VERSION, RUNNER_VERSION
from .cooldown import cool_down
from .crashes import SIGKILL
from .engines import available as engines_available
from .engines import load_engine
from .host_reading import HostReading
from .job import parse_job, parse_json_object, source_options
from .modelfile import check_model_file
from .oom_kills import kill_of, read_kernel_log, why_killed
from .protocol import Emitter, RunnerFailure
from .telemetry import Sampler, summarize_window
from .telemetry.memory import own_rss_kb
from .testspec import TestSpec


def _protocol_channel():
    """Keep the real stdout for events and point fd 1 at stderr, so nothing a C library
    prints can corrupt the protocol."""
    channel = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return channel


def _lead_process_group():
    """Lead a process group, so the controller can stop the runner and any engine child it started
    with one signal to the group (`kill -TERM -<pid>`)."""
    try:
        if os.getpgrp() != os.getpid():
            os.setsid()
    except OSError:
        pass


def run_job(job, emit):
    engine = load_engine(job["engine"], job["engine_options"])()
    runner_rss_kb = own_rss_kb()
    check_model_file(job["model_path"])
    telemetry = job["telemetry"]
    sampler = None
    if telemetry["enabled"]:
        sampler = Sampler(
            interval_s=telemetry["interval_s"],
            root=telemetry["root"],
            pid=lambda: engine.engine_pid() or os.getpid(),
            sources=telemetry["sources"],
            on_record=lambda record: emit("telemetry", **record),
            **source_options(telemetry)
        )
    test = TestSpec(**job["test"])
    kinds = engine.declaration.test_kinds
    if test.kind not in kinds:
        raise RunnerFailure("job", "engine %s runs %s tests, not %s (%s)"
                            % (job["engine"], "/".join(kinds), test.kind, test.name))
    n_tokens = test.n_items
    # the device's limits the summaries judge a window by (thermal: max_temp_c)
    limits = job["limits"]
    try:
        info = engine.open(job["model_path"], job["engine_options"])
        emit("start", info=info, test=test.name, runner_rss_kb=runner_rss_kb,
             telemetry=sampler.availability() if sampler else {})
        if sampler:
            sampler.start()
        host = HostReading(telemetry.get("root") or "/", engine.engine_pid)

        def mark():
            host.mark()
            if sampler:
                sampler.snapshot()
        if test.quality:
            _run_quality(engine, job, test, emit, mark, sampler, limits)
        for m in () if test.quality else engine.measure(test, job["repetitions"], job["warmup"], mark):
            window = summarize_window(sampler.records_between(m.t0, m.t1), n_tokens, t0=m.t0, t1=m.t1,
                                      **limits) if sampler else {}
            emit("sample", rep=m.rep, t_ns=m.t_ns, ts=n_tokens * 1e9 / m.t_ns, ttft_ns=m.ttft_ns,
                 window=window, host=host.reading())
    except RunnerFailure as failure:
        raise _oom_said(failure, sampler.records if sampler else ())
    finally:
        if sampler:
            sampler.stop()
        late = engine.late_info()
        engine.close()
    emit("done", ok=True, info=late, peak_rss_kb=own_rss_kb("VmHWM") if not engine.engine_pid() else None,
         sampler_cpu_s=sampler.cpu_s if sampler else None, sampler_wall_s=sampler.wall_s if sampler else None)


def _oom_said(failure, records):
    """A child engine that SIGKILL ended, said as the kernel's out-of-memory kill where its log (or, short
    of it, the memory at the last sample) shows one; any other failure as it is."""
    killed = failure.details.pop("killed", None)
    why = killed and why_killed(kill_of(read_kernel_log(), killed["pid"]), records)
    if not why:
        return failure
    return RunnerFailure("oom", "%s died from signal %d: %s" % (killed["process"], SIGKILL, why), **failure.details)


def _run_quality(engine, job, test, emit, mark, sampler, limits):
    """A quality test is deterministic: one pass whatever the repetitions, one sample with the scores."""
    t0 = time.monotonic()
    t_ns, n_tokens, scores = engine.measure_quality(job, test.kind, mark)
    t1 = time.monotonic()
    window = summarize_window(sampler.records_between(t0, t1), n_tokens, t0=t0, t1=t1,
                              **limits) if sampler else {}
    emit("sample", rep=0, t_ns=t_ns, ts=n_tokens * 1e9 / t_ns, ttft_ns=None, window=window,
         n_tokens=n_tokens, quality=scores)


def capabilities(emit, request):
    """`request` (optional): {"engine_options": {...}}, the device's settings the engines depend on."""
    emit("done", ok=True, info={"engines": engines_available(request.get("engine_options") or {}),
                                "python": platform.python_version(),
                                "machine": platform.machine(), "telemetry": Sampler(interval_s=1).availability()})


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    mode = argv[0] if argv else "run"
    _lead_process_group()
    emitter = Emitter(_protocol_channel())
    # a fault in a C engine then prints the Python frames it happened under (fd 2, the stderr tail the
    # controller keeps), which tells a crash inside the engine from one elsewhere
    faulthandler.enable()
    emit = emitter.emit
    emit("hello", protocol=PROTOCOL_VERSION, runner_version=RUNNER_VERSION,
         python=platform.python_version(), pid=os.getpid())
    try:
        if mode == "capabilities":
            request = sys.stdin.read()
            capabilities(emit, parse_json_object(request) if request.strip() else {})
        elif mode == "run":
            run_job(parse_job(sys.stdin.read()), emit)
        elif mode == "cooldown":
            cool_down(parse_json_object(sys.stdin.read()), emit)
        else:
            raise RunnerFailure("job", "unknown runner mode %r (use run, capabilities, cooldown, store or lock)" % mode)
        return 0
    except RunnerFailure as failure:
        emit("error", kind=failure.kind, message=failure.message, **failure.details)
    except MemoryError:
        emit("error", kind="oom", message="the runner ran out of memory")
    except KeyboardInterrupt:
        emit("error", kind="interrupted", message="the runner was interrupted")
    except Exception as exc:  # the controller must always get a structured reason
        emit("error", kind="internal", message="%s: %s" % (type(exc).__name__, exc),
             traceback=traceback.format_exc())
    return 1


if __name__ == "__main__":
    sys.exit(main())
