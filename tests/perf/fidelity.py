#!/usr/bin/env python3
"""edgebench vs llama-bench on the same model and thread count, interleaved in one run.

    python tests/perf/fidelity.py --llama-bench $(tests/perf/build_llama_bench.sh)

The llama-bench binary must be built from the llama.cpp that the installed
llama-cpp-python vendors (build_llama_bench.sh does that). Prints, per test,
both medians over the rounds and their ratio. Goal: within ±3% on pp512 and tg128.
"""

from __future__ import annotations

import argparse

from common import add_model_args, local_transport, model_path, print_paired_ratios, run_edgebench, run_llama_bench

from edgebench.transport.remote_store import install_runner

TESTS = (("pp512", 512, 0), ("tg128", 0, 128))
GOAL = 0.03


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llama-bench", required=True, help="llama-bench binary")
    add_model_args(parser)
    parser.set_defaults(rounds=6, reps=3)
    args = parser.parse_args()
    model = model_path(args)
    transport = local_transport()
    runner = install_runner(transport)
    ours = {name: [] for name, *_ in TESTS}
    theirs = {name: [] for name, *_ in TESTS}
    for round_no in range(args.rounds):
        for name, n_prompt, n_gen in TESTS:
            # alternate which tool goes first, so drift does not favour one of them
            order = ("edgebench", "llama-bench") if round_no % 2 == 0 else ("llama-bench", "edgebench")
            for tool in order:
                if tool == "edgebench":
                    samples, _ = run_edgebench(transport, runner, model, n_prompt, n_gen, args.threads, args.reps)
                    ours[name].append(sum(s["ts"] for s in samples) / len(samples))
                else:
                    row = run_llama_bench(args.llama_bench, model, n_prompt, n_gen, args.threads, args.reps)
                    theirs[name].append(row["avg_ts"])
            print(f"round {round_no + 1}: {name}: edgebench {ours[name][-1]:.2f} t/s, "
                  f"llama-bench {theirs[name][-1]:.2f} t/s", flush=True)
    print(f"\nmodel {model.name}, {args.threads} threads, {args.rounds} interleaved rounds x {args.reps} reps\n")
    ok = print_paired_ratios([name for name, *_ in TESTS], ours, theirs, GOAL)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
