#!/usr/bin/env python3
"""The regression gate's two rules on real samples of a machine: false alarms, power, rounds, smallest effect.

    python tests/perf/gate_quality.py [--samples 400] [--comparisons 300] [--save FILE | --load FILE]

Rules compared (both as `edgebench ab` runs them: rounds of A and B back to back, the order alternating):
- old, unpaired: all A samples against all B samples, one-sided exact Mann-Whitney p <= 0.01 AND a
  Hodges-Lehmann shift of at least the threshold (compare/stats.py decide), judged after 7 rounds, then 2 more
  at a time while inconclusive, up to 15;
- new, paired and sequential: each round's log(B/A), one-sided Wilcoxon signed-rank test with alpha split over
  the looks at 7, 9, ..., 15 rounds, same when a change of the threshold is ruled out both ways (TOST), not
  worse at the budget when only toward worse, stopping at the first look that settles it (compare/paired.py
  decide_paired).

1. Collects real samples (unless --load): repetitions of each test of a synthetic model through the local
   runner, in jobs of --chunk repetitions, the tests alternating. A round of an A/B takes two consecutive
   samples of a test; a window of 15 rounds takes 30.
2. A/A: --comparisons random windows, B = A's own noise; a "regressed" or "improved" verdict is a false alarm
   (goal <= 1%); the shares called same, not worse and inconclusive too.
3. Power: the same windows with B's t/s divided by 1.05 and 1.10 (real noise, known slowdown), and multiplied
   by 1.10 (a known 10% improvement: how often it is called improved, and how often, wrongly, same).
4. Mean rounds used, and the smallest slowdown detected with 80% power within the 15-round budget
   (searched on a grid of 1% steps up to 50%).

Sample file (--save writes it, --load reads it), so samples measured elsewhere (a GPU machine, llama-bench)
are analysed without measuring again. A JSON object:

    {"tg32": [412.1, 409.8, ...], "pp64": [1520.3, ...]}

one key per test (a test name edgebench parses: tg128, pp512, pp512+tg128; the kind picks the threshold:
3% for tg, 5% for pp and pp+tg, or --threshold), each a list of t/s values in the order they were measured
(one per timed repetition; consecutive values become the A and B of a round, so keep the order). A llama-bench
`-o jsonl` (or `-o json`) file is read too: its rows' samples_ts, concatenated per test in file order.

The machine's load adds noise: the script prints the load average before and after collecting.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import time
from pathlib import Path

from common import local_transport, model_path, run_edgebench

from edgebench.compare.paired import SequentialPlan, decide_paired
from edgebench.compare.stats import ALPHA, decide
from edgebench.runner.testspec import parse_test
from edgebench.transport.remote_store import install_runner

KIND_THRESHOLDS = {"tg": 0.03, "pp": 0.05, "pp+tg": 0.05}
PLAN = SequentialPlan()  # looks at 7, 9, 11, 13, 15 rounds
OLD_LOOKS = PLAN.looks  # the old ab added 2 rounds at a time while inconclusive, up to 15
SLOWDOWNS = (1.05, 1.10)
SPEEDUP = 1 / 1.10  # B's t/s divided by this: 10% faster
EFFECTS = [1 + k / 100 for k in range(1, 51)]
GOAL_AA, GOAL_POWER = 0.01, 0.80


def collect(args, tests: dict) -> dict[str, list[float]]:
    model = model_path(args)
    transport = local_transport()
    runner = install_runner(transport)
    samples: dict[str, list[float]] = {name: [] for name in tests}
    start = time.monotonic()
    while any(len(v) < args.samples for v in samples.values()):
        for name, test in tests.items():
            missing = args.samples - len(samples[name])
            if missing <= 0:
                continue
            got, done = run_edgebench(transport, runner, model, test.n_prompt, test.n_gen, args.threads,
                                      min(args.chunk, missing), telemetry=False)
            if not done.get("ok", True):
                raise SystemExit(f"runner job failed: {done}")
            samples[name].extend(s["ts"] for s in got)
        print(f"\rcollected {', '.join(f'{k} {len(v)}' for k, v in samples.items())} samples "
              f"in {time.monotonic() - start:.0f} s", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return samples


def load_samples(path: Path) -> dict[str, list[float]]:
    text = path.read_text()
    try:
        data = json.loads(text)
    except ValueError:
        data = [json.loads(line) for line in text.splitlines() if line.strip()]
    if isinstance(data, dict) and all(isinstance(v, list) for v in data.values()):
        return {parse_test(name).name: [float(v) for v in values] for name, values in data.items()}
    rows = data if isinstance(data, list) else [data]
    samples: dict[str, list[float]] = {}
    for row in rows:  # llama-bench rows
        test = parse_test(f"pp{row['n_prompt']}+tg{row['n_gen']}" if row.get("n_prompt") and row.get("n_gen")
                          else f"pp{row['n_prompt']}" if row.get("n_prompt") else f"tg{row['n_gen']}")
        samples.setdefault(test.name, []).extend(float(v) for v in row["samples_ts"])
    return samples


def rounds_of(values: list[float], start: int, count: int, slowdown: float) -> tuple[list[float], list[float]]:
    """`count` rounds from consecutive samples: round i is values[start+2i], values[start+2i+1], A first in odd
    rounds and B first in even ones (AB, BA, ...), B slowed by `slowdown` (t/s divided)."""
    a, b = [], []
    for i in range(count):
        first, second = values[start + 2 * i], values[start + 2 * i + 1]
        x, y = (first, second) if i % 2 == 0 else (second, first)
        a.append(x)
        b.append(y / slowdown)
    return a, b


def old_rule(values, start, threshold, slowdown) -> tuple[str, int]:
    for look in OLD_LOOKS:
        a, b = rounds_of(values, start, look, slowdown)
        verdict = decide(a, b, higher_is_better=True, threshold=threshold, alpha=ALPHA).verdict
        if verdict != "inconclusive":
            return verdict, look
    return verdict, look


def new_rule(values, start, threshold, slowdown) -> tuple[str, int]:
    a_all, b_all = rounds_of(values, start, PLAN.budget, slowdown)
    for look in PLAN.looks:
        verdict = decide_paired(a_all[:look], b_all[:look], True, threshold, PLAN, interval=False).verdict
        if verdict != "unknown":
            return verdict, look
    return verdict, look


RULES = {"old: unpaired MWU": old_rule, "new: paired sequential": new_rule}


def rates(rule, values, starts, threshold, slowdown=1.0) -> dict:
    counts = {"regressed": 0, "improved": 0, "inconclusive": 0, "same": 0, "not worse": 0}
    rounds = []
    for start in starts:
        verdict, used = rule(values, start, threshold, slowdown)
        counts[verdict] += 1
        rounds.append(used)
    found = {k: v / len(starts) for k, v in counts.items()}
    found["rounds"] = statistics.fmean(rounds)
    return found


def smallest_detected(rule, values, starts, threshold) -> float | None:
    """The smallest slowdown on the grid caught with 80% power (power rises with the effect: bisect)."""
    low, high = 0, len(EFFECTS) - 1
    if rates(rule, values, starts, threshold, EFFECTS[high])["regressed"] < GOAL_POWER:
        return None
    while low < high:
        mid = (low + high) // 2
        if rates(rule, values, starts, threshold, EFFECTS[mid])["regressed"] >= GOAL_POWER:
            high = mid
        else:
            low = mid + 1
    return EFFECTS[low] - 1


def describe(values: list[float]) -> str:
    med = statistics.median(values)
    cv = statistics.stdev(values) / statistics.fmean(values)
    mean = statistics.fmean(values)
    lag1 = (sum((a - mean) * (b - mean) for a, b in zip(values, values[1:]))
            / sum((v - mean) ** 2 for v in values))
    pairs = [math.log(b / a) for a, b in zip(values[0::2], values[1::2])]
    return (f"median {med:.1f} t/s, CV {cv:.1%}, lag-1 autocorrelation {lag1:+.2f}, "
            f"sd of a round's log(B/A) {statistics.stdev(pairs):.1%}")


def pct(x: float | None) -> str:
    return "not within 50%" if x is None else f"{x * 100:.1f}%"


def load() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="GGUF file (default: a cached synthetic model, see --like)")
    parser.add_argument("--like", default="tiny-qwen35@Q8_0", help="synthetic spec (default tiny-qwen35@Q8_0)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tests", default="tg32,pp64", help="tests to sample, comma-separated (default tg32,pp64)")
    parser.add_argument("--threshold", type=float, help="the minimum effect for every test (default: by kind)")
    parser.add_argument("--samples", type=int, default=400, help="samples per test (default 400)")
    parser.add_argument("--chunk", type=int, default=50, help="repetitions per runner job (default 50)")
    parser.add_argument("--comparisons", type=int, default=300, help="windows per row (default 300)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the window draws")
    parser.add_argument("--save", type=Path, help="write the collected samples to this JSON file")
    parser.add_argument("--load", type=Path, help="analyse a sample file (see above) instead of collecting")
    args = parser.parse_args()

    if args.load:
        samples = load_samples(args.load)
    else:
        tests = {parse_test(name).name: parse_test(name) for name in args.tests.split(",")}
        print(f"before collecting: {load()} on {os.cpu_count()} cores (other work on the machine adds noise)")
        samples = collect(args, tests)
        print(f"after collecting: {load()}")
        if args.save:
            args.save.write_text(json.dumps(samples))
    started = time.monotonic()
    rng = random.Random(args.seed)
    window = 2 * PLAN.budget
    print(f"\n{args.comparisons} windows of {window} consecutive samples per test; looks at {PLAN.looks} rounds\n")
    print("| test | threshold | rule | A/A false alarms | A/A same | A/A not worse | A/A inconclusive | power at 5% "
          "| power at 10% | 10% faster: improved | 10% faster: same | mean rounds (A/A, 5%, 10%) "
          "| smallest effect at 80% power |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    all_met = True
    for name, values in samples.items():
        if len(values) < window:
            raise SystemExit(f"{name}: need at least {window} samples, have {len(values)}")
        print(f"{name}: {len(values)} samples, {describe(values)}", file=sys.stderr)
        threshold = args.threshold or KIND_THRESHOLDS[parse_test(name).kind]
        starts = [rng.randrange(len(values) - window + 1) for _ in range(args.comparisons)]
        for label, rule in RULES.items():
            aa = rates(rule, values, starts, threshold)
            power = {s: rates(rule, values, starts, threshold, s) for s in SLOWDOWNS + (SPEEDUP,)}
            smallest = smallest_detected(rule, values, starts[:max(50, args.comparisons // 3)], threshold)
            alarms = aa["regressed"] + aa["improved"]
            if label.startswith("new"):
                all_met &= alarms <= GOAL_AA
            print(f"| {name} | {threshold:.0%} | {label} | {pct(alarms)} | {pct(aa['same'])} "
                  f"| {pct(aa['not worse'])} | {pct(aa['inconclusive'])} "
                  f"| {pct(power[1.05]['regressed'])} | {pct(power[1.10]['regressed'])} "
                  f"| {pct(power[SPEEDUP]['improved'])} | {pct(power[SPEEDUP]['same'])} "
                  f"| {aa['rounds']:.1f}, {power[1.05]['rounds']:.1f}, {power[1.10]['rounds']:.1f} | {pct(smallest)} |")
    for name, values in samples.items():
        print(f"\n{name}: {describe(values)}")
    print(f"\n(A/A resolution: 0 alarms in {args.comparisons} means <= {3 / args.comparisons:.1%} at 95%; windows "
          f"overlap, so they are not fully independent. Smallest effect: a grid of 1% steps on "
          f"{max(50, args.comparisons // 3)} windows.)")
    print(f"analysis took {time.monotonic() - started:.0f} s", file=sys.stderr)
    return 0 if all_met else 1


if __name__ == "__main__":
    raise SystemExit(main())
