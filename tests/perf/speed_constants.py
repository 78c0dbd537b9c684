#!/usr/bin/env python3
"""Fits the generation cost constants of edgebench/plan/speed.py to measured tg t/s, and checks them.

    python tests/perf/speed_constants.py [--measure OUT.jsonl] [--data tests/perf/data/speed-cells-xeon2.jsonl]

`--measure` runs llama-bench (EDGEBENCH_LLAMA_BENCH, the engine's build) for tg64 at depth 0, 2048
and 8192, 3 repetitions, on twelve synthetic models (six architectures, each at two depths of layers),
in `--rounds` passes; each cell is the median of its passes. The recorded data has five passes.
The fit is a least-squares one of the seconds per token, weighted to relative error, over

    bytes read (not repacked) | repacked bytes read | layers | matrix-state elements | cache cells
    | query heads x attended positions

and the constants are each coefficient over the first (bytes at the device's effective bandwidth).
It prints them, the fit's relative errors, and each architecture predicted from the others: the
effective bandwidth is calibrated on the other architectures' depth-0 cells (their median), as
`plan` does from stored results, with the constants now in speed.py.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from edgebench.models.gguf_info import read_gguf  # noqa: E402
from edgebench.models.synth.build import cached_synthetic  # noqa: E402
from edgebench.models.synth.spec import parse_synth_spec  # noqa: E402
from edgebench.plan import speed  # noqa: E402
from edgebench.plan.memory import Runtime  # noqa: E402

SPECS = ("llama-3.2-1b@Q4_K_M?layers=4", "llama-3.2-1b@Q4_K_M?layers=8", "gemma-3-270m@Q4_K_M",
         "gemma-3-270m@Q4_K_M?layers=6", "qwen3-30b-a3b@Q4_K_M?layers=1", "qwen3-30b-a3b@Q4_K_M?layers=2",
         "deepseek-v2-lite@Q4_K_M?layers=2", "deepseek-v2-lite@Q4_K_M?layers=4", "lfm2-350m@Q4_K_M",
         "lfm2-350m@Q4_K_M?layers=8", "qwen3.5-0.8b@Q4_K_M?layers=8", "qwen3.5-0.8b@Q4_K_M?layers=4")
N_GEN = 64
COLUMNS = ("bytes", "repacked", "layers", "state", "cells", "head_positions")


def measure(out: Path, binary: str, rounds: int) -> None:
    """Every spec in turn, `rounds` times: this VM's speed drifts over minutes, and a cell measured once
    can land in a slow stretch (qwen3moe at depth 8192 once read 44 t/s where it runs at 61)."""
    with out.open("a") as handle:
        for spec in SPECS * rounds:
            model = cached_synthetic(parse_synth_spec(spec))
            done = subprocess.run([binary, "-m", str(model), "-p", "0", "-n", str(N_GEN), "-d", "0,2048,8192",
                                   "-r", "3", "-t", str(os.cpu_count()), "-o", "jsonl"],
                                  capture_output=True, text=True, check=True)
            for line in done.stdout.splitlines():
                if line.startswith("{"):
                    row = json.loads(line)
                    handle.write(json.dumps({"spec": spec, "n_depth": row["n_depth"], "avg_ts": row["avg_ts"],
                                             "stddev_ts": row["stddev_ts"]}) + "\n")
                    print(spec, row["n_depth"], round(row["avg_ts"], 2), flush=True)


def features(info, depth: int, cpu_arch: str) -> list:
    runtime = Runtime(cpu_arch=cpu_arch)
    repacked = speed.repacked_read_per_token(info, cpu_arch)
    attention = [layer for layer in info.layers if layer.attention]
    return [speed.bytes_read_per_token(info, runtime, depth) - repacked, repacked, len(info.layers),
            sum(layer.s_size for layer in info.layers), speed.cache_cells(attention, depth),
            sum(speed.attended(layer, depth) * layer.n_head for layer in attention)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO / "tests/perf/data/speed-cells-xeon2.jsonl")
    parser.add_argument("--measure", type=Path, metavar="OUT", help="measure the cells first, into OUT")
    parser.add_argument("--rounds", type=int, default=3, help="with --measure: passes over every spec (default 3)")
    parser.add_argument("--cpu-arch", default="x86_64", help="the measuring machine's CPU (which weights it repacks)")
    args = parser.parse_args()
    if args.measure:
        measure(args.measure, os.environ.get("EDGEBENCH_LLAMA_BENCH", "llama-bench"), args.rounds)
        args.data = args.measure
    measured = {}
    for line in args.data.read_text().splitlines():
        if line.strip():
            cell = json.loads(line)
            measured.setdefault((cell["spec"], cell["n_depth"]), []).append(cell["avg_ts"])
    # each cell's median over the rounds that measured it
    cells = [{"spec": spec, "n_depth": depth, "avg_ts": float(np.median(ts))} for (spec, depth), ts in measured.items()]
    infos = {spec: read_gguf(cached_synthetic(parse_synth_spec(spec))) for spec in {c["spec"] for c in cells}}
    # a tg64 at depth d generates at depths d .. d+63: the plan and calibration take the middle
    x = np.array([features(infos[c["spec"]], c["n_depth"] + N_GEN // 2, args.cpu_arch) for c in cells], float)
    seconds = np.array([1 / c["avg_ts"] for c in cells])
    coef, *_ = np.linalg.lstsq(x / seconds[:, None], np.ones(len(cells)), rcond=None)
    fitted = coef / coef[0]
    errors = (x @ coef - seconds) / seconds
    print(f"effective bandwidth {1 / coef[0] / 1e9:.1f} GB/s; fit over {len(cells)} cells: "
          f"max {100 * abs(errors).max():.1f}%, rms {100 * np.sqrt((errors ** 2).mean()):.1f}%")
    names = ("(bytes)", "REPACKED_WEIGHT_COST", "LAYER_BYTES", "STATE_ELEMENT_BYTES - 8", "CACHE_CELL_BYTES",
             "HEAD_POSITION_BYTES")
    for name, value in zip(names[1:], fitted[1:]):
        print(f"  {name} = {value:.4g}")
    costs = np.array([speed.bytes_per_token(infos[c["spec"]], Runtime(cpu_arch=args.cpu_arch),
                                            c["n_depth"] + N_GEN // 2) for c in cells])
    family = [c["spec"].split("@")[0] for c in cells]
    print("\nEach architecture predicted from the others (speed.py's constants; bandwidth = the median of the\n"
          "other architectures' depth-0 cells):\n\n| model | depth | predicted t/s | measured t/s | error |\n"
          "|---|---:|---:|---:|---:|")
    worst = 0.0
    for i, cell in enumerate(cells):
        others = [j for j, c in enumerate(cells) if family[j] != family[i] and c["n_depth"] == 0]
        bandwidth = float(np.median([costs[j] * cells[j]["avg_ts"] for j in others]))
        predicted = bandwidth / costs[i]
        error = predicted / cell["avg_ts"] - 1
        worst = max(worst, abs(error))
        print(f"| {cell['spec']} | {cell['n_depth']} | {predicted:.1f} | {cell['avg_ts']:.1f} | {100 * error:+.1f}% |")
    print(f"\nworst: {100 * worst:.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
