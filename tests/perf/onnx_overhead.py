#!/usr/bin/env python3
"""Runner overhead on a generic ONNX model: edgebench's onnxruntime engine against a bare loop.

    python tests/perf/onnx_overhead.py [--rounds 6] [--reps 200] [--batch 16] [--threads 2]

Builds an MLP (1024 -> 4096 -> 1024, dynamic batch) with the `onnx` package, then in
interleaved rounds measures the median latency of one forward pass (a) through the runner
(local transport, telemetry on, as `edgebench run` does it) and (b) in a bare
`session.run` loop in its own process with the same session options. Prints both, per
round and as medians, and their ratio. Goal: within +-3%.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from common import REPO, local_transport

sys.path.insert(0, str(REPO / "tests"))

import onnx_models  # noqa: E402

from edgebench.runner.job import make_job  # noqa: E402
from edgebench.runner.testspec import TestSpec  # noqa: E402
from edgebench.transport.remote_store import install_runner  # noqa: E402
from edgebench.transport.runner_session import run_runner  # noqa: E402

BARE = textwrap.dedent("""
    import statistics, sys, time
    import numpy as np, onnxruntime as ort
    path, batch, reps, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((batch, session.get_inputs()[0].shape[1]), dtype=np.float32)
    session.run(None, {"x": x})
    times = []
    for _ in range(reps):
        start = time.perf_counter_ns()
        session.run(None, {"x": x})
        times.append(time.perf_counter_ns() - start)
    print(statistics.median(times))
""")


def runner_median(transport, runner, model: Path, batch: int, reps: int, threads: int) -> float:
    samples = []
    job = make_job("onnxruntime", str(model), TestSpec(batch=batch), reps, 1, {"threads": threads},
                   {"enabled": True, "interval_s": 0.5})
    run_runner(transport, runner, "run", job, 3600,
               lambda e: samples.append(e["t_ns"]) if e["event"] == "sample" else None)
    return statistics.median(samples)


def bare_median(model: Path, batch: int, reps: int, threads: int) -> float:
    out = subprocess.run([sys.executable, "-c", BARE, str(model), str(batch), str(reps), str(threads)],
                         capture_output=True, text=True, check=True).stdout
    return float(out.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    model = onnx_models.mlp(Path(tempfile.mkdtemp(prefix="edgebench-onnx-")) / "mlp.onnx", features=1024,
                            hidden=4096, classes=1024)
    transport = local_transport()
    runner = install_runner(transport)
    ours, bare = [], []
    for round_no in range(args.rounds):
        order = ("runner", "bare") if round_no % 2 == 0 else ("bare", "runner")
        for which in order:
            if which == "runner":
                ours.append(runner_median(transport, runner, model, args.batch, args.reps, args.threads))
            else:
                bare.append(bare_median(model, args.batch, args.reps, args.threads))
        print(f"round {round_no + 1}: runner {ours[-1] / 1e6:.3f} ms, bare {bare[-1] / 1e6:.3f} ms, "
              f"ratio {ours[-1] / bare[-1]:.3f}")
    ratios = [a / b for a, b in zip(ours, bare)]
    print(f"\nMLP 1024-4096-1024, batch {args.batch}, {args.threads} threads, {args.reps} reps x {args.rounds} "
          f"interleaved rounds")
    print(f"median latency: runner {statistics.median(ours) / 1e6:.3f} ms, bare loop "
          f"{statistics.median(bare) / 1e6:.3f} ms")
    print(f"ratio of medians {statistics.median(ours) / statistics.median(bare):.3f}; median paired ratio "
          f"{statistics.median(ratios):.3f} (goal: within 0.97-1.03)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
