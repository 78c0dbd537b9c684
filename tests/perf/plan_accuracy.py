#!/usr/bin/env python3
"""How close `edgebench plan` comes to what llama.cpp allocates, what the process uses and how fast it runs,
for every architecture family synth writes (published shapes, depth cut so they fit this machine).

    python tests/perf/plan_accuracy.py [--results DIR] [--reps 3] [--rounds 3] [--only items|rss|speed|readme]

1. Items: the plan's weights, KV (full and sliding-window), recurrent state, output and compute buffer
   against llama.cpp's own accounting (tests/llama_accounting.py: the sizes llama.cpp logs as it
   allocates), per architecture x context x KV type. Goal: each within 2%, or 8 MiB for small items.
2. Peak RSS: each model run once through `edgebench run` (pp512 with n_ctx set: the whole cache is
   allocated and cleared, i.e. touched) against the plan's predicted peak RSS. Goal: max(10%, 100 MiB).
3. Speed: tg64 of every architecture at depth 0 and at a deep context (sliding windows stop growing
   there, MoE reads only its active experts), predicted with the device calibrated on the other
   architectures' tg64 runs (the median effective bandwidth: one rate for reads and fixed work, as
   `plan` calibrates from runs of models alike in size) and measured. Goal: within +-20%.
   (tests/perf/speed_constants.py fits the cost constants.)
4. The README's sequence: `run profiles/quickstart.yaml`, `run profiles/ci-smoke.yaml` (twice), then
   `plan --like qwen3.5-4b --layers 8 --quant Q4_K_M` on those results, against that model's measured tg128
   (each run's steal and load printed beside it). Goal: within +-25%.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from edgebench.models.gguf_info import read_gguf  # noqa: E402
from edgebench.models.synth.build import cached_synthetic  # noqa: E402
from edgebench.models.synth.spec import parse_synth_spec  # noqa: E402
from edgebench.plan.memory import MIB, Runtime, memory_items, total  # noqa: E402
from edgebench.plan.speed import bytes_per_token  # noqa: E402
from edgebench.results.aggregate import run_rows  # noqa: E402
from tests.llama_accounting import Setting, accounting, fit_params_host  # noqa: E402

# one published shape per family, cut to a depth this 2-core machine runs in seconds
MODELS = {
    "qwen35 (hybrid DeltaNet)": "qwen3.5-0.8b@Q4_K_M?layers=8",
    "llama (full attention)": "llama-3.2-1b@Q4_K_M?layers=4",
    "gemma3 (sliding window)": "gemma-3-270m@Q4_K_M",
    "qwen3moe (MoE 128/8)": "qwen3-30b-a3b@Q4_K_M?layers=1",
    "lfm2 (short conv hybrid)": "lfm2-350m@Q4_K_M",
    "deepseek2 (MLA + MoE)": "deepseek-v2-lite@Q4_K_M?layers=2",
}
CONTEXTS = (4096, 32768)
KV_TYPES = ("f16", "q8_0")
ITEMS = {"weights": None, "repacked": None, "KV cache": "kv_full_mib", "KV cache, sliding window": "kv_swa_mib",
         "recurrent state": "recurrent_mib", "output buffer": "output_mib", "compute buffer": "compute_mib"}
DEEP = 8192


def model(spec: str) -> Path:
    return Path(cached_synthetic(parse_synth_spec(spec)))


def within_items(planned: float, actual: float) -> bool:
    return abs(planned - actual) <= max(0.02 * actual, 8.0)


def edgebench_run(root: Path, specs, tests, engine: dict, reps: int) -> list[dict]:
    """One `edgebench run` on the local device; its rows."""
    root.mkdir(parents=True, exist_ok=True)
    profile = root.parent / f"{root.name}.yaml"
    lines = ["models:"] + [f"  - synthetic:{m}" for m in specs]
    lines += ["engine:", "  name: llama.cpp"] + [f"  {k}: {v}" for k, v in engine.items()]
    lines += ["tests:"] + [f"  - {t}" for t in tests] + [f"repetitions: {reps}", "warmup: 1"]
    profile.write_text("\n".join(lines) + "\n")
    subprocess.run([sys.executable, "-m", "edgebench", "run", str(profile), "-o", str(root)], cwd=REPO,
                   check=True, stdout=subprocess.DEVNULL)
    (run,) = [p for p in root.iterdir() if p.is_dir()]
    return run_rows(run)


def items_report(fit_params: str) -> bool:
    ok = True
    print("### Plan against llama.cpp's accounting (MiB, plan / llama.cpp)\n")
    print("| architecture | n_ctx | KV | " + " | ".join(ITEMS) + " | within |")
    print("|---|---|---|" + "---:|" * len(ITEMS) + "---|")
    settings = [Setting(n, kv) for n in CONTEXTS for kv in KV_TYPES]
    for family, spec in MODELS.items():
        path = model(spec)
        info = read_gguf(path)
        for setting, actual in accounting(path, settings).items():
            items = {i.name: i for i in memory_items(info, Runtime(kv_type=setting.kv_type, cpu_arch="x86_64"))}
            cells, good = [], True
            host = fit_params_host(fit_params, path, setting.n_ctx, setting.kv_type)
            for name, key in ITEMS.items():
                if name == "weights":
                    # the tensors llama.cpp keeps in host buffers, as its dry run counts them (whole MiB)
                    planned = sum(items[n].allocated(setting.n_ctx) for n in ("weights", "expert weights")
                                  if n in items) / MIB
                    theirs = host["model_mib"]
                elif name == "repacked":
                    planned = items["repacked weights"].allocated(setting.n_ctx) / MIB
                    theirs = actual["model_buffers_mib"].get("CPU_REPACK", 0.0)
                else:
                    planned = items[name].allocated(setting.n_ctx) / MIB if name in items else 0.0
                    theirs = actual[key]
                good &= within_items(planned, theirs)
                cells.append(f"{planned:.1f} / {theirs:.1f}")
            ok &= good
            print(f"| {family} | {setting.n_ctx} | {setting.kv_type} | " + " | ".join(cells)
                  + f" | {'yes' if good else 'NO'} |")
    print()
    return ok


def rss_report(work: Path) -> bool:
    ok = True
    arch = platform.machine()
    print("### Predicted peak RSS against measured (pp512 with n_ctx set)\n")
    print("| architecture | n_ctx | KV | predicted MiB | measured MiB | error MiB | error % | within |")
    print("|---|---|---|---:|---:|---:|---:|---|")
    for n_ctx in CONTEXTS:
        for kv in KV_TYPES:
            rows = edgebench_run(work / f"mem-{n_ctx}-{kv}", MODELS.values(), ["pp512"],
                                 {"n_ctx": n_ctx, "type_k": kv, "type_v": kv}, reps=1)
            for family, spec in MODELS.items():
                row = next(r for r in rows if r["model"] == parse_synth_spec(spec).canonical())
                info = read_gguf(model(spec))
                predicted = total(memory_items(info, Runtime(kv_type=kv, cpu_arch=arch)), rss=True).at(n_ctx) / MIB
                measured = row["peak_rss_mib"]
                error = predicted - measured
                good = abs(error) <= max(0.10 * measured, 100)
                ok &= good
                print(f"| {family} | {n_ctx} | {kv} | {predicted:.0f} | {measured:.0f} | {error:+.0f} | "
                      f"{100 * error / measured:+.1f}% | {'yes' if good else 'NO'} |")
    print()
    return ok


def speed_report(work: Path, reps: int, rounds: int) -> bool:
    """tg64 and tg64@d8192 of each architecture, predicted from the other architectures' tg64: the
    device's effective bandwidth is calibrated on their stored results (the median over their cells,
    one rate for reads and fixed work), so no architecture is predicted from its own measurement.

    The architectures run in turn, `rounds` times, and each cell's t/s is the median over the rounds:
    this VM's speed drifts by 15% or more over minutes, and architectures measured minutes apart
    would otherwise carry that drift into each other's calibration."""
    ok = True
    cpu_arch = platform.machine()
    runs = {family: [] for family in MODELS}
    for round_no in range(rounds):
        for family, spec in MODELS.items():
            runs[family].append(edgebench_run(work / f"speed-{round_no}-{spec.split('@')[0]}", [spec],
                                              ["tg64", f"tg64@d{DEEP}"], {}, reps=reps))
    measured = {}
    for family, spec in MODELS.items():
        rows = []
        for test_rows in zip(*runs[family]):
            rows.append(dict(test_rows[0], avg_ts=statistics.median(r["avg_ts"] for r in test_rows)))
        measured[family] = (read_gguf(model(spec)), rows)

    def cost(info, row):
        # the plan's depth is where the generated tokens sit on average, as calibration uses it
        return bytes_per_token(info, Runtime(cpu_arch=cpu_arch), row["n_depth"] + row["n_gen"] // 2)

    print("### Generation speed, each architecture calibrated on the others' tg64\n")
    print("| architecture | test | calibrated on | predicted t/s | measured t/s | error % | within ±20% |")
    print("|---|---|---:|---:|---:|---:|---|")
    for family, (info, rows) in measured.items():
        others = [r["avg_ts"] * cost(i, r) for f, (i, rs) in measured.items() if f != family
                  for r in rs if not r["n_depth"]]
        bandwidth = statistics.median(others)
        for row in rows:
            predicted = bandwidth / cost(info, row)
            measured_ts = row["avg_ts"]
            error = (predicted - measured_ts) / measured_ts
            good = abs(error) <= 0.20
            ok &= good
            print(f"| {family} | {row['test']} | {bandwidth / 1e9:.1f} GB/s | {predicted:.1f} | {measured_ts:.1f} | "
                  f"{100 * error:+.1f}% | {'yes' if good else 'NO'} |")
    print()
    return ok


def readme_report(work: Path, reps: int) -> bool:
    """What a user who followed the README gets: the plan of a model twice the quickstart's bytes, from the
    quickstart and ci-smoke runs, against a run of that model. On a shared machine every run may be
    disturbed: the plan is also shown with the disturbance limits lifted, and each run's steal and load."""
    root = work / "readme"
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "edgebench", "init", str(root)], check=True, stdout=subprocess.DEVNULL)
    for profile in ("quickstart", "ci-smoke", "ci-smoke"):
        subprocess.run([sys.executable, "-m", "edgebench", "run", f"profiles/{profile}.yaml"], cwd=root, check=True,
                       stdout=subprocess.DEVNULL)
    measured = edgebench_run(work / "readme-measured", ["qwen3.5-4b@Q4_K_M?layers=8"], ["tg128"], {}, reps)
    for run in sorted(p for p in (root / "results").iterdir() if p.is_dir()) + [
            next(p for p in (work / "readme-measured").iterdir() if p.is_dir())]:
        print(f"{run.name}: " + "; ".join(_disturbance(run)))
    (row,) = measured
    ok = True
    lifted = ["--max-load", "1000", "--max-steal", "100", "--max-cpu-wait", "100"]
    for label, limits in (("default limits", []), ("limits lifted", lifted)):
        ok &= _readme_plan(root, label, limits, row["avg_ts"])
    return ok


def _readme_plan(root: Path, label: str, limits: list[str], measured: float) -> bool:
    import json
    args = [sys.executable, "-m", "edgebench", "plan", "--like", "qwen3.5-4b", "--layers", "8", "--quant", "Q4_K_M",
            *limits]
    planned = subprocess.run(args, cwd=root, check=True, capture_output=True, text=True).stdout
    (cell,) = json.loads(subprocess.run(args + ["--json"], cwd=root, check=True, capture_output=True,
                                        text=True).stdout)["cells"]
    print(f"\n### The README's sequence, plan with {label}\n")
    print("\n".join(line for line in planned.splitlines() if line.startswith(("local:", "  ", "note:"))))
    if cell["tg_ts"] is None and cell["tg_ts_range"] is None:
        print(f"\nno prediction (no run calibrates it), measured {measured:.2f} t/s\n")
        return False
    if cell["tg_ts"] is None:
        low, high = cell["tg_ts_range"]
        print(f"\npredicted {low:.1f}–{high:.1f} t/s (a range), measured {measured:.2f} t/s\n")
        return low <= measured <= high
    error = (cell["tg_ts"] - measured) / measured
    print(f"\npredicted {cell['tg_ts']:.2f} t/s, measured {measured:.2f} t/s: {100 * error:+.1f}% "
          f"({'within' if abs(error) <= 0.25 else 'NOT within'} ±25%)\n")
    return abs(error) <= 0.25


def _disturbance(run: Path) -> list[str]:
    """Each cell's t/s with the highest steal and load its samples saw."""
    from edgebench.results.model import load as load_run
    out = []
    for cell in load_run(run).cells:
        hosts = [s.host for s in cell.samples if s.host]
        steal = max((h.get("steal_pct") or 0 for h in hosts), default=0)
        load = max((h.get("load1") or 0 for h in hosts), default=0)
        out.append(f"{cell.facts.model} {cell.facts.test} {cell.tokens_per_s or 0:.2f} t/s (steal <= {steal:.1f}%, "
                   f"load <= {load:.2f})")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, help="where to keep the runs (default: a temporary directory)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of each speed run (default 3)")
    parser.add_argument("--rounds", type=int, default=3, help="speed rounds, every architecture in each (default 3)")
    parser.add_argument("--only", choices=("items", "rss", "speed", "readme"), help="one part only")
    parser.add_argument("--llama-fit-params", default=str(Path(os.environ.get("EDGEBENCH_LLAMA_BENCH") or
                        "llama-bench").with_name("llama-fit-params")),
                        help="llama.cpp's llama-fit-params (default: beside $EDGEBENCH_LLAMA_BENCH)")
    args = parser.parse_args()
    if args.only in (None, "items") and not shutil.which(args.llama_fit_params):
        parser.error(f"llama-fit-params is not at {args.llama_fit_params}: set EDGEBENCH_LLAMA_BENCH to the "
                     "llama-bench it was built beside, or give --llama-fit-params")
    work = args.results or Path(tempfile.mkdtemp(prefix="edgebench-plan-accuracy-"))
    if args.only != "readme":
        for spec in MODELS.values():
            model(spec)
    ok = True
    if args.only in (None, "items"):
        ok &= items_report(args.llama_fit_params)
    if args.only in (None, "rss"):
        ok &= rss_report(work)
    if args.only in (None, "speed"):
        ok &= speed_report(work, args.reps, args.rounds)
    if args.only in (None, "readme"):
        ok &= readme_report(work, args.reps)
    print(f"runs kept in {work}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
