#!/usr/bin/env python3
"""How close `edgebench plan` comes to what llama.cpp really uses and delivers on this machine.

    python tests/perf/plan_accuracy.py [--results DIR]

1. Memory: synthetic qwen35 (hybrid) and llama models of a few hundred MB, at n_ctx 4096 and
   32768 with f16 and q8_0 KV caches. Each is run once through `edgebench run` (pp512 with n_ctx
   set, so the whole KV cache is allocated and llama.cpp clears it, i.e. touches it) and its peak
   RSS is compared with the plan's predicted peak RSS. Goal: every error within max(10%, 100 MiB).
2. Speed: eta is calibrated from one stored tg run per architecture (the plan's own calibration
   reads it from the results root) and the plan then predicts tg t/s for another quant and for a
   deeper context (8192: the attention constants in speed.py were fitted at 4096); both are
   measured. Goal: within +-20%.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from edgebench.config import parse_device  # noqa: E402
from edgebench.models.gguf_info import read_gguf  # noqa: E402
from edgebench.models.synth.build import cached_synthetic  # noqa: E402
from edgebench.models.synth.spec import parse_synth_spec  # noqa: E402
from edgebench.plan.calibrate import calibrate  # noqa: E402
from edgebench.plan.fit import device_budget  # noqa: E402
from edgebench.plan.memory import MIB, Runtime, memory_items, total  # noqa: E402
from edgebench.plan.speed import tg_ts  # noqa: E402
from edgebench.results.aggregate import run_rows  # noqa: E402

MODELS = ("qwen3.5-0.8b@Q4_K_M?layers=8", "llama-3.2-1b@Q4_K_M?layers=4")
CONTEXTS = (4096, 32768)
KV_TYPES = ("f16", "q8_0")
# calibration run -> the runs it predicts (same architecture, another quant or a deeper context)
SPEED = {
    "qwen3.5-0.8b@Q4_K_M?layers=8": [("qwen3.5-0.8b@Q8_0?layers=8", "tg64"),
                                     ("qwen3.5-0.8b@Q4_K_M?layers=8", "tg64@d8192")],
    "llama-3.2-1b@Q4_K_M?layers=4": [("llama-3.2-1b@Q8_0?layers=4", "tg64"),
                                     ("llama-3.2-1b@Q4_K_M?layers=4", "tg64@d8192")],
}


def edgebench_run(root: Path, models, tests, engine: dict, reps: int) -> list[dict]:
    """One `edgebench run` on the local device; its rows."""
    root.mkdir(parents=True, exist_ok=True)
    profile = root.parent / f"{root.name}.yaml"
    lines = ["models:"] + [f"  - synthetic:{m}" for m in models]
    lines += ["engine:", "  name: llama.cpp"] + [f"  {k}: {v}" for k, v in engine.items()]
    lines += ["tests:"] + [f"  - {t}" for t in tests] + [f"repetitions: {reps}", "warmup: 1"]
    profile.write_text("\n".join(lines) + "\n")
    subprocess.run([sys.executable, "-m", "edgebench", "run", str(profile), "-o", str(root)], cwd=REPO,
                   check=True, stdout=subprocess.DEVNULL)
    (run,) = [p for p in root.iterdir() if p.is_dir()]
    return run_rows(run)


def memory_table(work: Path) -> list[tuple]:
    arch = platform.machine()
    out = []
    for n_ctx in CONTEXTS:
        for kv in KV_TYPES:
            rows = edgebench_run(work / f"mem-{n_ctx}-{kv}", MODELS, ["pp512"],
                                 {"n_ctx": n_ctx, "type_k": kv, "type_v": kv}, reps=1)
            for spec in MODELS:
                row = next(r for r in rows if r["model"] == parse_synth_spec(spec).canonical())
                info = read_gguf(cached_synthetic(parse_synth_spec(spec)))
                items = memory_items(info, Runtime(kv_type=kv, cpu_arch=arch))
                predicted = total(items, rss=True).at(n_ctx) / MIB
                measured = row["peak_rss_mib"]
                out.append((spec, n_ctx, kv, predicted, measured))
    return out


def speed_table(work: Path, reps: int) -> list[tuple]:
    out = []
    device = parse_device("name: local\ntransport: local\n")
    for base, targets in SPEED.items():
        root = work / f"cal-{base.split('@')[0]}"
        edgebench_run(root, [base], ["tg64"], {}, reps=reps)
        budget = device_budget(device, calibrate(root).get("local"))
        for spec, test in targets:
            depth = int(test.split("@d")[1]) if "@d" in test else 0
            info = read_gguf(cached_synthetic(parse_synth_spec(spec)))
            predicted = tg_ts(info, Runtime(), budget.bandwidth.value, depth + 32)
            rows = edgebench_run(work / f"spd-{spec.split('?')[0]}-{test}", [spec], [test], {}, reps=reps)
            out.append((base, spec, test, budget.bandwidth.value / 1e9, predicted, rows[0]["avg_ts"]))
    return out


def memory_report(work: Path) -> bool:
    ok = True
    print("| model | n_ctx | KV | predicted MiB | measured peak RSS MiB | error MiB | error % | within |")
    print("|---|---|---|---:|---:|---:|---:|---|")
    for spec, n_ctx, kv, predicted, measured in memory_table(work):
        error = predicted - measured
        within = abs(error) <= max(0.10 * measured, 100)
        ok &= within
        print(f"| {spec} | {n_ctx} | {kv} | {predicted:.0f} | {measured:.0f} | {error:+.0f} | "
              f"{100 * error / measured:+.1f}% | {'yes' if within else 'NO'} |")
    print()
    return ok


def speed_report(work: Path, reps: int) -> bool:
    ok = True
    print("| calibrated on | predicted | test | effective GB/s | predicted t/s | measured t/s | error % | within |")
    print("|---|---|---|---:|---:|---:|---:|---|")
    for base, spec, test, bandwidth, predicted, measured in speed_table(work, reps):
        error = (predicted - measured) / measured
        within = abs(error) <= 0.20
        ok &= within
        print(f"| {base} tg64 | {spec} | {test} | {bandwidth:.1f} | {predicted:.1f} | {measured:.1f} | "
              f"{100 * error:+.1f}% | {'yes' if within else 'NO'} |")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, help="where to keep the runs (default: a temporary directory)")
    parser.add_argument("--reps", type=int, default=5, help="repetitions of each speed run (default 5)")
    parser.add_argument("--skip-memory", action="store_true", help="only the speed part")
    args = parser.parse_args()
    work = args.results or Path(tempfile.mkdtemp(prefix="edgebench-plan-accuracy-"))
    for spec in {*MODELS, *(s for targets in SPEED.values() for s, _ in targets)}:
        cached_synthetic(parse_synth_spec(spec))
    ok = True if args.skip_memory else memory_report(work)
    ok &= speed_report(work, args.reps)
    print(f"\nruns kept in {work}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
