"""`edgebench inspect` (of a GGUF file) and `edgebench plan`: their arguments read, the plan modules asked,
the answer shown."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from edgebench.errors import PlanError
from edgebench.facts.stored import recall
from edgebench.models.gguf_info import ModelInfo, info_from_preset, read_gguf
from edgebench.plan import render
from edgebench.plan.calibrate import Limits, calibrate
from edgebench.plan.fit import device_budget, plan_cell, recommend
from edgebench.plan.gpu_fit import gpu_budget, gpu_cell
from edgebench.plan.memory import KV_TYPES
from edgebench.plan.render_calibration import calibration_lines

DEFAULT_CTX = (4096,)


def parse_ctx(text: str | None) -> list[int]:
    """`4096,32768` or `4k,32K`: positive token counts."""
    if not text:
        return list(DEFAULT_CTX)
    out = []
    for part in text.split(","):
        word = part.strip().lower()
        scale = 1
        if word.endswith("k"):
            word, scale = word[:-1], 1024
        if not word.isdigit() or int(word) * scale < 1:
            raise PlanError(f"--ctx takes positive token counts separated by commas (e.g. 4096,32k), "
                            f"not {part.strip()!r}")
        out.append(int(word) * scale)
    return out


def parse_quants(text: str | None) -> list[str]:
    from edgebench.models.synth.spec import QUANTS
    if not text:
        raise PlanError(f"--like needs --quant, one or more of {', '.join(QUANTS)} (comma-separated)")
    quants = [q.strip().upper() for q in text.split(",") if q.strip()]
    unknown = [q for q in quants if q not in QUANTS]
    if unknown:
        raise PlanError(f"unknown quant {', '.join(unknown)}; choose from {', '.join(QUANTS)}")
    return quants


def models_for(args) -> list[ModelInfo]:
    given = [x for x in (args.model, args.like, args.fleet) if x]
    if len(given) != 1:
        raise PlanError("give exactly one of: a MODEL.gguf file, --like PRESET (with --quant), "
                        "or --fleet PROFILE")
    if args.model:
        return [read_gguf(args.model)]
    if args.like:
        return [info_from_preset(args.like, q, args.layers) for q in parse_quants(args.quant)]
    return fleet_models(args.fleet)


def fleet_models(profile_path: Path) -> list[ModelInfo]:
    from edgebench.config import load_profile

    profile = load_profile(profile_path)
    out = []
    for ref in profile.models:
        if ref.synthetic is not None:
            spec = ref.synthetic
            out.append(info_from_preset(spec.preset, spec.quant, spec.layers))
        else:
            out.append(read_gguf(ref.path))
    return out


def cmd_inspect(args, console) -> int:
    info = read_gguf(args.model)
    if args.json:
        sys.stdout.write(json.dumps(render.inspect_json(info), indent=2) + "\n")
        return 0
    from edgebench.cli.ui import print_table  # rich, only for a table
    print_table(console, ["field", "value"], render.inspect_rows(info))
    if info.unknown_arch:
        console.print(info.unknown_arch)
    return 0


def _gpu_budgets(args, devices, budgets) -> dict:
    """Each device's GPU, where one is known (a profile, this machine's driver, or --vram-gb)."""
    from edgebench.config.lookup import is_this_machine
    from edgebench.facts.local import local_facts

    if args.n_gpu_layers is not None and args.n_gpu_layers < -1:
        raise PlanError(f"--n-gpu-layers takes a number of layers (-1: all), not {args.n_gpu_layers}")
    if args.gpu_margin_mib < 0:
        raise PlanError(f"--gpu-margin-mib takes MiB to leave free, 0 or more, not {args.gpu_margin_mib:g}")
    out = {}
    for device in devices:
        gpu = gpu_budget(device, local_facts() if is_this_machine(device) else None, args.vram_gb, args.unified,
                         args.gpu_margin_mib)
        if gpu is not None:
            out[device.name] = gpu
    if args.n_gpu_layers is not None and not out:
        raise PlanError("--n-gpu-layers needs a GPU to plan for: none of the devices has `gpu.vram_gb` in its "
                        "profile and none was probed; give --vram-gb")
    return out


def _limits(args) -> Limits:
    """When a stored run was too disturbed to calibrate a plan (`--max-steal`, `--max-load`, `--max-cpu-wait`)."""
    steal, load = getattr(args, "max_steal", None), getattr(args, "max_load", None)
    wait = getattr(args, "max_cpu_wait", None)
    for flag, value in (("--max-steal", steal), ("--max-load", load), ("--max-cpu-wait", wait)):
        if value is not None and not value >= 0:
            raise PlanError(f"{flag} takes a number, 0 or more, not {value:g}")
    return Limits(**({"max_steal_pct": steal} if steal is not None else {}), max_load=load, max_cpu_wait_pct=wait)


def cmd_plan(args, console) -> int:
    from edgebench.config import select_devices
    from edgebench.config.lookup import LOCAL, is_this_machine
    from edgebench.facts.local import local_facts

    if args.kv not in KV_TYPES:
        raise PlanError(f"unknown KV cache type {args.kv!r}; choose one of {', '.join(KV_TYPES)}")
    contexts = parse_ctx(args.ctx)
    models = models_for(args)
    # like `run`: this machine unless told otherwise, so a plan needs no device profile at all
    devices = select_devices(args.device or [LOCAL], args.devices_dir)
    cals = calibrate(args.results, _limits(args))
    budgets = [device_budget(d, cals.get(d.name), local_facts() if is_this_machine(d) else None,
                             None if is_this_machine(d) else recall(d.name))
               for d in devices]
    if args.n_cpu_moe < 0:
        raise PlanError(f"--n-cpu-moe takes a number of layers, 0 or more, not {args.n_cpu_moe}")
    cells = [plan_cell(m, b, n, args.kv, n_ubatch=args.ubatch, use_mmap=not args.no_mmap,
                       swa_full=args.swa_full, n_cpu_moe=args.n_cpu_moe)
             for m in models for b in budgets for n in contexts]
    gpus = _gpu_budgets(args, devices, budgets)
    for cell in cells:
        gpu = gpus.get(cell.device)
        if gpu is not None:
            budget = next(b for b in budgets if b.name == cell.device)
            cell.gpu = gpu_cell(cell.model, cell.runtime, budget, gpu, cell.n_ctx, args.n_gpu_layers)
    recommend(cells)
    if args.json:
        sys.stdout.write(json.dumps({
            "kv_type": args.kv, "swa_full": args.swa_full, "n_cpu_moe": args.n_cpu_moe,
            "contexts": contexts, "results_root": str(args.results),
            "devices": [render.budget_json(b, gpus.get(b.name)) for b in budgets],
            "cells": [render.cell_json(c) for c in cells],
            "recommendations": render.recommendation_lines(cells),
        }, indent=2) + "\n")
        return 0
    from edgebench.cli.ui import print_table
    first = budgets[0].name
    # a blank line between tables: piped, adjacent markdown tables would read as one
    for model in models:
        mine = [c for c in cells if c.model is model and c.device == first]
        console.print(f"memory of {model.name} at KV {args.kv} (CPU {budgets[0].cpu_arch.value}"
                      + (", swa_full" if args.swa_full else "") + "):")
        print_table(console, *render.breakdown_rows(mine))
        console.print(render.reads_line(mine[0]))
        console.print()
    print_table(console, render.PLAN_HEADER, render.plan_rows(cells))
    console.print()
    if any(c.gpu for c in cells):
        console.print("GPU offload (llama.cpp's placement: the last n_gpu_layers - 1 layers and the output; "
                      f"{args.gpu_margin_mib:g} MiB of VRAM left free):")
        print_table(console, render.GPU_HEADER, render.gpu_rows([c for c in cells if c.gpu]))
        console.print()
    for line in render.recommendation_lines(cells):
        console.print(line)
    for line in render.budget_lines(budgets) + render.gpu_budget_lines(gpus) + calibration_lines(budgets):
        console.print(line)
    notes = sorted({n for c in cells for n in c.notes})
    for note in notes:
        console.print(f"note: {note}")
    return 0
