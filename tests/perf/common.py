"""Shared pieces of the benchmark scripts in tests/perf (not a test module)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from edgebench.config import parse_device  # noqa: E402
from edgebench.models.synth.build import cached_synthetic  # noqa: E402
from edgebench.models.synth.spec import parse_synth_spec  # noqa: E402
from edgebench.runner.job import make_job  # noqa: E402
from edgebench.runner.testspec import TestSpec  # noqa: E402
from edgebench.transport.local import LocalTransport  # noqa: E402
from edgebench.transport.runner_session import run_runner  # noqa: E402

DEFAULT_MODEL = "qwen3.5-4b@Q4_K_M?layers=8"


def model_path(args) -> Path:
    if args.model:
        return Path(args.model)
    print(f"building/caching synthetic model {args.like} ...", file=sys.stderr)
    return Path(cached_synthetic(parse_synth_spec(args.like)))


def add_model_args(parser):
    parser.add_argument("--model", help="GGUF file (default: a cached synthetic model, see --like)")
    parser.add_argument("--like", default=DEFAULT_MODEL, help=f"synthetic spec (default {DEFAULT_MODEL})")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--reps", type=int, default=5, help="repetitions per measurement (llama-bench -r)")


def local_transport() -> LocalTransport:
    work = tempfile.mkdtemp(prefix="edgebench-perf-")
    return LocalTransport(parse_device(f"name: perf\ntransport: local\nworkdir: {work}\n"))


def run_edgebench(transport, runner, model, n_prompt, n_gen, threads, reps, telemetry=True, interval_s=0.5,
                  engine_options=None, events=None):
    """One runner job through the local transport; returns (samples, done event). `events`, a list,
    collects every event (the start event's info too)."""
    samples = []
    job = make_job("llama.cpp", str(model), TestSpec(n_prompt=n_prompt, n_gen=n_gen), reps, 1,
                   dict({"threads": threads}, **(engine_options or {})),
                   {"enabled": telemetry, "interval_s": interval_s})
    def keep(event):
        if event["event"] == "sample":
            samples.append(event)
        if events is not None and event["event"] != "telemetry":
            events.append(event)
    done = run_runner(transport, runner, "run", job, 3600, keep)
    return samples, done


def run_llama_bench(binary, model, n_prompt, n_gen, threads, reps, extra=()):
    cmd = [binary, "-m", str(model), "-p", str(n_prompt), "-n", str(n_gen), "-t", str(threads), "-r", str(reps),
           "-o", "jsonl", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return rows[0]


def median(values):
    return statistics.median(values)


def print_paired_ratios(names, ours: dict, theirs: dict, goal: float) -> bool:
    """The table of edgebench against llama-bench per test; True when every paired ratio is within `goal`.
    The ratio is the median of each round's paired ratio: the two tools ran back to back, so the
    machine's drift between rounds (large on shared VMs) cancels out of it."""
    print(f"| test | edgebench t/s | llama-bench t/s | paired ratio | per-round ratios | goal ±{goal:.0%} |")
    print("|---|---:|---:|---:|---|---|")
    ok = True
    for name in names:
        ratios = [a / b for a, b in zip(ours[name], theirs[name])]
        ratio = median(ratios)
        met = abs(ratio - 1) <= goal
        ok &= met
        print(f"| {name} | {median(ours[name]):.2f} | {median(theirs[name]):.2f} | {ratio:.3f} | "
              f"{', '.join(f'{r:.3f}' for r in ratios)} | {'met' if met else 'MISSED'} |")
    return ok
