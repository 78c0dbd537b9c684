#!/usr/bin/env python3
"""edgebench on a CUDA GPU: speed against llama-bench, telemetry's cost, and VRAM per process.

    LLAMA_CPP_LIB_PATH=<build>/bin python tests/perf/gpu.py --llama-bench <build>/bin/llama-bench \\
        --fit-params <build>/bin/llama-fit-params --out <folder>

Both tools must use the same llama.cpp build: the in-process engine loads <build>/bin/libllama.so
through LLAMA_CPP_LIB_PATH, which llama-cpp-python honours. Prints, and writes as JSON to --out:

1. pp512 and tg128 at n_gpu_layers all, edgebench (local transport) against llama-bench,
   interleaved rounds, the median of paired ratios of each job's median t/s (on an H200 a process
   settles in one of two pp512 speeds, ~31k or ~36k t/s, for all its repetitions: a mean over few
   jobs follows which mode each landed in). Goal: within ±3%.
2. tg128 t/s with telemetry on against off (nvidia_smi included). Goal: < 1% apart.
3. The engine process's peak VRAM (the nvidia_smi source's `peak_vram_mib`) at n_gpu_layers 0,
   half and all x n_ctx 4096 and 32768, for a Qwen3.5 and a Llama synthetic model, with llama.cpp's
   own buffers (its log's `<buffer type> <kind> buffer size` lines) and `llama-fit-params
   --fit-print on`'s estimate per device, and the offload planner's prediction (plan/offload.py).
   Goal: within max(10%, 256 MiB). `--predict-recorded tests/perf/data/h200-vram.json` compares the
   planner with a recorded run where there is no GPU.
4. Per-repetition t/s samples of pp512 and tg128 through edgebench's runner (--sample-reps), for
   the statistical gate's tests (llama-bench's own are taken with `-r 30 -o json`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

from common import local_transport, median, run_edgebench, run_llama_bench

from edgebench.models.synth.build import cached_synthetic
from edgebench.models.synth.shapes import PRESETS
from edgebench.models.synth.spec import parse_synth_spec
from edgebench.transport.remote_store import install_runner

TESTS = (("pp512", 512, 0), ("tg128", 0, 128))
SPEED_GOAL, COST_GOAL = 0.03, 0.01
MODELS = ("qwen3.5-4b@Q4_K_M?layers=8", "llama-3.2-1b@Q4_K_M?layers=8")
CONTEXTS = (4096, 32768)
ALL_LAYERS = 99


def predicted_vram_mib(model, n_gpu_layers, n_ctx):
    """The planner's VRAM for the engine process at these settings (edgebench/plan/offload.py)."""
    from edgebench.models.gguf_info import read_gguf
    from edgebench.plan.memory import MIB, Runtime
    from edgebench.plan.offload import gpu_plan

    ngl = -1 if n_gpu_layers == ALL_LAYERS else n_gpu_layers
    plan = gpu_plan(read_gguf(model), Runtime(cpu_arch="x86_64"), ngl, None)
    return round(plan.vram_at(n_ctx) / MIB)


def predict_recorded(path: Path) -> list:
    """Predicted against the VRAM a GPU run recorded (this needs no GPU: the plan is computed here)."""
    rows = json.loads(path.read_text())["rows"]
    print("| model | n_gpu_layers | n_ctx | measured peak VRAM MiB | predicted MiB | error | within max(10%, 256 MiB) |"
          "\n|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        model = Path(cached_synthetic(parse_synth_spec(r["model"])))
        r["predicted_mib"] = predicted_vram_mib(model, r["n_gpu_layers"], r["n_ctx"])
        error = r["predicted_mib"] - r["measured_mib"]
        r["met"] = abs(error) <= max(0.10 * r["measured_mib"], 256)
        print(f"| {r['model']} | {r['n_gpu_layers']} | {r['n_ctx']} | {r['measured_mib']:.0f} | {r['predicted_mib']} | "
              f"{100 * error / r['measured_mib']:+.1f}% | {'yes' if r['met'] else 'NO'} |")
    return rows


def n_layers(spec):
    parsed = parse_synth_spec(spec)
    return parsed.layers or PRESETS[parsed.preset].n_layer


def speed(args, transport, runner, model):
    ours = {name: [] for name, *_ in TESTS}
    theirs = {name: [] for name, *_ in TESTS}
    info = {}
    for round_no in range(args.rounds):
        for name, n_prompt, n_gen in TESTS:
            order = ("edgebench", "llama-bench") if round_no % 2 == 0 else ("llama-bench", "edgebench")
            for tool in order:
                if tool == "edgebench":
                    events = []
                    samples, _ = run_edgebench(transport, runner, model, n_prompt, n_gen, args.threads, args.reps,
                                               engine_options={"n_gpu_layers": ALL_LAYERS}, events=events)
                    info = next(e["info"] for e in events if e["event"] == "start")
                    ours[name].append(median([s["ts"] for s in samples]))
                else:
                    row = run_llama_bench(args.llama_bench, model, n_prompt, n_gen, args.threads, args.reps,
                                          ["-ngl", str(ALL_LAYERS)])
                    theirs[name].append(median(row["samples_ts"]))
                    lb_info = {k: row[k] for k in ("backends", "gpu_info")}
            print(f"round {round_no + 1}: {name}: edgebench {ours[name][-1]:.1f} t/s, "
                  f"llama-bench {theirs[name][-1]:.1f} t/s", flush=True)
    rows = []
    for name, *_ in TESTS:
        ratios = [a / b for a, b in zip(ours[name], theirs[name])]
        rows.append({"test": name, "edgebench_ts": median(ours[name]), "llama_bench_ts": median(theirs[name]),
                     "ratio": median(ratios), "ratios": ratios, "met": abs(median(ratios) - 1) <= SPEED_GOAL})
    print("\n| test | edgebench t/s | llama-bench t/s | paired ratio | goal ±3% |\n|---|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['test']} | {r['edgebench_ts']:.1f} | {r['llama_bench_ts']:.1f} | {r['ratio']:.3f} | "
              f"{'met' if r['met'] else 'MISSED'} |")
    print(f"backends/gpu_info: edgebench {info.get('backends')!r}/{info.get('gpu_info')!r}, "
          f"llama-bench {lb_info['backends']!r}/{lb_info['gpu_info']!r}")
    return {"rows": rows, "edgebench_info": {k: info.get(k) for k in ("backends", "gpu_info", "gpu_memory_mib")},
            "llama_bench_info": lb_info}


def telemetry_cost(args, transport, runner, model):
    runs = {True: [], False: []}
    availability = None
    for round_no in range(args.rounds):
        for on in ((True, False) if round_no % 2 == 0 else (False, True)):
            events = []
            samples, _ = run_edgebench(transport, runner, model, 0, 128, args.threads, args.reps, telemetry=on,
                                       engine_options={"n_gpu_layers": ALL_LAYERS}, events=events)
            if on:
                availability = next(e.get("telemetry") for e in events if e["event"] == "start")
            runs[on].append(sum(s["ts"] for s in samples) / len(samples))
    ratios = [a / b for a, b in zip(runs[True], runs[False])]
    cost = 1 - median(ratios)
    print(f"\ntelemetry on/off, tg128 at n_gpu_layers {ALL_LAYERS}: on {median(runs[True]):.1f} t/s, "
          f"off {median(runs[False]):.1f} t/s, cost {cost * 100:+.2f}% (goal < 1%: "
          f"{'met' if cost < COST_GOAL else 'MISSED'}); nvidia_smi: {availability.get('nvidia_smi')}")
    return {"on_ts": runs[True], "off_ts": runs[False], "cost": cost, "met": cost < COST_GOAL,
            "sources": availability}


def fit_print(binary, model, ngl, n_ctx):
    if not binary:
        return None
    done = subprocess.run([binary, "-m", str(model), "-ngl", str(ngl), "-c", str(n_ctx), "--fit-print", "on"],
                          capture_output=True, text=True, timeout=120)
    found = {}
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) == 4 and all(p.isdigit() for p in parts[1:]):
            found[parts[0]] = dict(zip(("model", "context", "compute"), map(int, parts[1:])))
    return found


def vram(args, transport, runner):
    rows = []
    for spec in args.models.split(","):
        model = Path(cached_synthetic(parse_synth_spec(spec)))
        layers = n_layers(spec)
        for ngl in (0, layers // 2, ALL_LAYERS):
            for n_ctx in CONTEXTS:
                events = []
                samples, done = run_edgebench(transport, runner, model, 0, 16, args.threads, 2,
                                              interval_s=0.1, events=events,
                                              engine_options={"n_gpu_layers": ngl, "n_ctx": n_ctx})
                start = next(e for e in events if e["event"] == "start")
                peaks = [s["window"].get("peak_vram_mib") for s in samples]
                peak = max((p for p in peaks if p is not None), default=None)
                row = {"model": spec, "n_layer": layers, "n_gpu_layers": ngl, "n_ctx": n_ctx,
                       "measured_mib": peak, "predicted_mib": predicted_vram_mib(model, ngl, n_ctx),
                       "model_buffers_mib": start["info"].get("model_buffers_mib"),
                       "context_buffers_mib": (done.get("info") or {}).get("context_buffers_mib"),
                       "fit_print_mib": fit_print(args.fit_params, model, ngl, n_ctx)}
                rows.append(row)
                print(f"{spec} ngl={ngl} n_ctx={n_ctx}: measured {peak} MiB", flush=True)
    print("\n| model | n_gpu_layers | n_ctx | measured peak VRAM MiB | predicted MiB | llama.cpp CUDA0 buffers MiB "
          "(model+KV/RS+compute) | fit-print CUDA0 MiB |\n|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        gpu_buffers = sum(v for k, v in (r["model_buffers_mib"] or {}).items() if k.startswith("CUDA0")) + \
            sum(v for k, v in (r["context_buffers_mib"] or {}).items() if k.startswith("CUDA0"))
        fit = (r["fit_print_mib"] or {}).get("CUDA0")
        print(f"| {r['model']} | {r['n_gpu_layers']} | {r['n_ctx']} | {r['measured_mib']} | "
              f"{r['predicted_mib'] if r['predicted_mib'] is not None else 'n/a'} | {gpu_buffers:.0f} | "
              f"{sum(fit.values()) if fit else 'n/a'} |")
    return rows


def samples(args, transport, runner, model):
    found = {}
    for name, n_prompt, n_gen in TESTS:
        got, _ = run_edgebench(transport, runner, model, n_prompt, n_gen, args.threads, args.sample_reps,
                               engine_options={"n_gpu_layers": ALL_LAYERS})
        found[name] = [s["ts"] for s in got]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--predict-recorded", type=Path, metavar="JSON",
                        help="only compare the planner with the VRAM a GPU run recorded (e.g. "
                             "tests/perf/data/h200-vram.json); needs no GPU")
    parser.add_argument("--llama-bench", help="llama-bench binary of the same build")
    parser.add_argument("--fit-params", help="llama-fit-params binary of the same build")
    parser.add_argument("--out", type=Path, default=Path("gpu-out"), help="folder for the JSON results")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--sample-reps", type=int, default=30)
    parser.add_argument("--parts", default="speed,cost,vram,samples")
    parser.add_argument("--models", default=",".join(MODELS), help="synthetic specs; the first is the speed model")
    args = parser.parse_args()
    if args.predict_recorded:
        return 0 if all(r["met"] for r in predict_recorded(args.predict_recorded)) else 1
    if not args.llama_bench:
        parser.error("--llama-bench is required to measure")
    args.out.mkdir(parents=True, exist_ok=True)
    transport = local_transport()
    runner = install_runner(transport)
    model = Path(cached_synthetic(parse_synth_spec(args.models.split(",")[0])))
    parts = args.parts.split(",")
    steps = (("speed", "gpu-speed.json", lambda: speed(args, transport, runner, model)),
             ("cost", "gpu-telemetry-cost.json", lambda: telemetry_cost(args, transport, runner, model)),
             ("vram", "gpu-vram.json", lambda: vram(args, transport, runner)),
             ("samples", "edgebench-samples.json", lambda: samples(args, transport, runner, model)))
    ok = True
    for name, filename, step in steps:
        if name in parts:
            started = time.monotonic()
            result = step()
            (args.out / filename).write_text(json.dumps(result, indent=1))
            print(f"[{name}: {time.monotonic() - started:.0f} s]", flush=True)
            ok &= all(r.get("met", True) for r in (result.get("rows", []) if isinstance(result, dict) else []))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
