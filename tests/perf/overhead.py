#!/usr/bin/env python3
"""What the runner costs on top of the engine it drives.

    python tests/perf/overhead.py [--model m.gguf | --like qwen3.5-4b@Q4_K_M?layers=8]

1. tg128 t/s with telemetry on versus off, interleaved rounds (goal: < 1% apart).
2. Peak RSS of the runner minus the peak RSS of the bare engine: the same
   llama.cpp engine code driven by a few lines of Python, with no protocol, no
   sampler and no runner (goal: <= 30 MB).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from common import add_model_args, local_transport, median, model_path, run_edgebench

from edgebench.transport.remote_store import install_runner

# the engine code loaded from the runner's zipapp, as the runner loads it (in edgebench's controller package
# it imports llama-cpp-python's whole package, which the runner leaves out)
BARE_ENGINE = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from ebrunner.testspec import TestSpec
from ebrunner.engines.llama_cpp_engine import LlamaCppEngine
engine = LlamaCppEngine()
engine.open(sys.argv[2], {"threads": int(sys.argv[3])})
list(engine.measure(TestSpec(0, 128, 0), int(sys.argv[4]), 1, lambda: None))
engine.close()
status = open("/proc/self/status").read()
print(json.dumps({l.split(":")[0]: int(l.split()[1]) for l in status.splitlines() if l.startswith(("VmHWM", "VmRSS"))}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(parser)
    parser.add_argument("--interval", type=float, default=0.5, help="telemetry interval (profile default 0.5 s)")
    parser.set_defaults(rounds=6, reps=3)
    args = parser.parse_args()
    model = model_path(args)
    transport = local_transport()
    runner = install_runner(transport)

    speed = {True: [], False: []}
    runner_peaks, bare_peaks, sampler_share = [], [], []
    for round_no in range(args.rounds):
        for telemetry in ((True, False) if round_no % 2 == 0 else (False, True)):
            samples, done = run_edgebench(transport, runner, model, 0, 128, args.threads, args.reps,
                                          telemetry=telemetry, interval_s=args.interval)
            speed[telemetry].append(sum(s["ts"] for s in samples) / len(samples))
            runner_peaks.append(done["peak_rss_kb"])
            if telemetry:
                sampler_share.append(done["sampler_cpu_s"] / done["sampler_wall_s"])
        bare = subprocess.run([sys.executable, "-c", BARE_ENGINE, runner, str(model), str(args.threads),
                               str(args.reps)], capture_output=True, text=True, check=True)
        bare_peaks.append(json.loads(bare.stdout.splitlines()[-1])["VmHWM"])
        print(f"round {round_no + 1}: telemetry on {speed[True][-1]:.2f} t/s, off {speed[False][-1]:.2f} t/s; "
              f"peak RSS runner {runner_peaks[-1] / 1024:.1f} MiB, bare engine {bare_peaks[-1] / 1024:.1f} MiB",
              flush=True)

    on, off = median(speed[True]), median(speed[False])
    # paired: each round ran both back to back, so the machine's drift between rounds cancels
    diff = median([a / b - 1 for a, b in zip(speed[True], speed[False])])
    extra_mb = (median(runner_peaks) - median(bare_peaks)) * 1024 / 1e6
    print(f"\nmodel {model.name}, {args.threads} threads, {args.rounds} interleaved rounds x {args.reps} reps, "
          f"telemetry every {args.interval:g} s\n")
    print("| measure | value | goal |")
    print("|---|---:|---|")
    print(f"| tg128 telemetry on | {on:.2f} t/s | |")
    print(f"| tg128 telemetry off | {off:.2f} t/s | |")
    met = "met" if abs(diff) < 0.01 else "MISSED"
    print(f"| difference (median of paired rounds) | {diff * 100:+.2f}% | < 1% {met} |")
    print(f"| sampler thread CPU / wall time | {median(sampler_share) * 100:.3f}% of one core | |")
    print(f"| runner peak RSS | {median(runner_peaks) / 1024:.1f} MiB | |")
    print(f"| bare engine peak RSS | {median(bare_peaks) / 1024:.1f} MiB | |")
    print(f"| runner beyond engine | {extra_mb:.1f} MB | <= 30 MB {'met' if extra_mb <= 30 else 'MISSED'} |")
    return 0 if abs(diff) < 0.01 and extra_mb <= 30 else 1


if __name__ == "__main__":
    raise SystemExit(main())
