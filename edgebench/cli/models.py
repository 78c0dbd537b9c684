"""Commands about model files: synth, quantize, inspect, plan, push."""

from __future__ import annotations

import sys
from pathlib import Path

from edgebench.cli.common import (
    EXIT_OK,
    add_devices_dir,
)
from edgebench.errors import EdgebenchError


def register(commands) -> None:
    synth = commands.add_parser("synth", help="write a shape-faithful random-weight GGUF model",
                                description="Write a GGUF model with a real model's shapes and random weights. "
                                            "Speed does not depend on weight values; quality cannot be measured.")
    synth.add_argument("--like", required=True, metavar="PRESET", help="shape preset, e.g. tiny-qwen35, qwen3.5-4b")
    synth.add_argument("--quant", default="F16", help="F16, Q8_0, Q6_K, Q5_K_M, Q4_K_M or Q3_K_S (default F16)")
    synth.add_argument("--layers", type=int, metavar="N", help="keep the width, cut the depth to N layers")
    synth.add_argument("-o", "--output", required=True, type=Path,
                       help="GGUF file to write, or an existing folder to write <preset>[-L<N>]-<QUANT>.gguf in")
    synth.set_defaults(handler=cmd_synth)

    quantize = commands.add_parser(
        "quantize", help="make an int8 variant of an ONNX model (onnxruntime dynamic quantization)",
        description="Quantize an ONNX model's weights to int8 with onnxruntime's dynamic quantization, so "
                    "that a profile can sweep the fp32 and int8 variants of one model.")
    quantize.add_argument("model", type=Path, help="ONNX model (external data beside it is followed)")
    quantize.add_argument("--int8", action="store_true", required=True, help="dynamic int8 (the only mode)")
    quantize.add_argument("-o", "--output", required=True, type=Path, help="the int8 model to write")
    quantize.set_defaults(handler=cmd_quantize)

    inspect = commands.add_parser(
        "inspect", help="what a model file is: GGUF (arch, params, quant, layer kinds) or ONNX (signature, opsets)",
        description="Read a GGUF file's metadata and tensor table, or an ONNX model's inputs and outputs with "
                    "their dimensions, opsets, initializer bytes by type and external-data files.")
    inspect.add_argument("model", type=Path, help="GGUF or ONNX file")
    inspect.add_argument("--json", action="store_true", help="print JSON")
    inspect.set_defaults(handler=cmd_inspect)

    plan = commands.add_parser(
        "plan", help="will a model fit a device, up to which context, and how fast will it run",
        description="Memory (weights, KV cache on attention layers only, recurrent state, buffers), "
                    "fit against each device's RAM minus its reserve, the largest context that fits, "
                    "and roofline speeds calibrated by stored results.")
    plan.add_argument("model", type=Path, nargs="?", help="GGUF file (or use --like / --fleet)")
    plan.add_argument("--like", metavar="PRESET", help="a synth shape preset instead of a file, e.g. qwen3.5-4b")
    plan.add_argument("--quant", metavar="Q,...", help="quants for --like, e.g. Q3_K_S,Q4_K_M,Q8_0")
    plan.add_argument("--layers", type=int, metavar="N", help="with --like: keep the first N layers")
    plan.add_argument("--fleet", type=Path, metavar="PROFILE", help="every model of a benchmark profile")
    plan.add_argument("-d", "--device", action="append", metavar="DEVICE",
                      help="name, file, tag:X or all (repeatable; default: local, this machine, built in "
                           "if there is no devices/local.yaml)")
    plan.add_argument("--ctx", metavar="N,...", help="contexts in tokens, e.g. 4096,32k,262144 (default 4096)")
    plan.add_argument("--kv", default="f16", metavar="TYPE", help="KV cache type: f16 (default), q8_0, q4_0, ...")
    plan.add_argument("--ubatch", type=int, default=512, metavar="N", help="llama.cpp n_ubatch (default 512)")
    plan.add_argument("--no-mmap", action="store_true", help="the weights are loaded, not mapped")
    plan.add_argument("--swa-full", action="store_true",
                      help="full-size sliding-window caches (llama.cpp --swa-full; default: window + ubatch cells)")
    plan.add_argument("--n-cpu-moe", type=int, default=0, metavar="N",
                      help="keep the experts of the first N MoE layers in host memory (llama.cpp --n-cpu-moe)")
    plan.add_argument("--n-gpu-layers", type=int, metavar="N",
                      help="layers offloaded to the GPU, as llama.cpp's -ngl (-1: all; default: the most that "
                           "fit, as llama-fit-params chooses)")
    plan.add_argument("--vram-gb", type=float, metavar="GB",
                      help="the GPU's memory, where the device profile (gpu.vram_gb) and the driver do not say")
    plan.add_argument("--unified", action="store_true", default=None,
                      help="the GPU shares the system RAM (Jetson, Apple silicon)")
    plan.add_argument("--gpu-margin-mib", type=float, default=1024, metavar="MIB",
                      help="VRAM left free, as llama-fit-params' --fit-target (default 1024)")
    plan.add_argument("--results", type=Path, default=Path("results"), metavar="DIR",
                      help="results root to calibrate speed from (default: results/)")
    plan.add_argument("--max-steal", type=float, metavar="PCT",
                      help="a stored cell with more steal than this is disturbed and calibrates nothing (default 5)")
    plan.add_argument("--max-load", type=float, metavar="L",
                      help="... or with a higher 1-minute load (default 1.5 x the device's CPUs)")
    plan.add_argument("--max-cpu-wait", type=float, metavar="PCT",
                      help="... or whose benchmark thread waited for a CPU longer than this share of a repetition "
                           "(default 10, as ab)")
    plan.add_argument("--json", action="store_true", help="print JSON")
    add_devices_dir(plan)
    plan.set_defaults(handler=cmd_plan)

    push = commands.add_parser(
        "push", help="copy a model to a device's content-addressed store (verified, resumable)",
        description="Upload a model to <workdir>/models/<sha256>/ on the device. The device checks the "
                    "sha256 before the file takes its final name; an interrupted upload resumes; a model "
                    "already there is skipped.")
    push.add_argument("model", type=Path, help="model file (GGUF or ONNX)")
    push.add_argument("-d", "--device", required=True, metavar="NAME|FILE", help="device name or profile file")
    add_devices_dir(push)
    push.set_defaults(handler=cmd_push)


def cmd_synth(args, console) -> int:
    from edgebench.cli.ui import build_progress
    from edgebench.models.synth.build import build_synthetic
    from edgebench.models.synth.spec import parse_synth_spec
    from edgebench.outputs import check_output_file, output_errors

    spec_text = f"{args.like}@{args.quant}" + (f"?layers={args.layers}" if args.layers is not None else "")
    spec = parse_synth_spec(spec_text)
    # into a folder: the file takes the spec's own name, as the model cache names it
    output = args.output / spec.file_name() if args.output.is_dir() else args.output
    check_output_file(output, "model")
    with build_progress(console, f"building {spec.canonical()}") as progress, output_errors(output, "model"):
        path = build_synthetic(spec, output, progress=progress)
    console.print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    return EXIT_OK


def cmd_quantize(args, console) -> int:
    from edgebench.models.onnx_quantize import quantize_int8
    from edgebench.outputs import check_output_file, output_errors

    check_output_file(args.output, "int8 model")
    with output_errors(args.output, "int8 model"):
        path = quantize_int8(args.model, args.output)
    before = args.model.stat().st_size
    console.print(f"wrote {path} ({path.stat().st_size / 2**20:.2f} MiB; fp32 {before / 2**20:.2f} MiB)")
    return EXIT_OK


def cmd_inspect(args, console) -> int:
    if args.model.suffix.lower() == ".onnx":
        return _inspect_onnx(args, console)
    from edgebench.cli.plan import cmd_inspect as inspect_model
    return inspect_model(args, console)


def _inspect_onnx(args, console) -> int:
    import json

    from edgebench.cli.ui import print_table
    from edgebench.models.onnx_files import describe

    if not args.model.is_file():
        raise EdgebenchError(f"model file not found: {args.model}")
    found = describe(args.model)
    if args.json:
        sys.stdout.write(json.dumps(found, indent=2) + "\n")
        return EXIT_OK

    def signature(items):
        return "; ".join(f"{i['name']} {i['type']}[{', '.join(map(str, i['dims']))}]" for i in items)
    rows = [["format", f"ONNX (IR {found['ir_version']}, {found['producer'] or 'unknown producer'})"],
            ["kind", found["kind"]],
            ["opsets", ", ".join(f"{k} {v}" for k, v in found["opsets"].items())],
            ["inputs", signature(found["inputs"])], ["outputs", signature(found["outputs"])],
            ["nodes", found["nodes"]], ["parameters", f"{found['params']:,}"],
            ["initializer bytes", ", ".join(f"{k} {v / 2**20:.2f} MiB" for k, v in found["initializer_bytes"].items())],
            ["external data", ", ".join(f"{e['file']} ({e['bytes'] / 2**20:.2f} MiB)" for e in found["external_data"])
             or "none"],
            ["file size", f"{found['file_bytes'] / 2**20:.2f} MiB"]]
    print_table(console, ["field", "value"], rows)
    return EXIT_OK


def cmd_plan(args, console) -> int:
    from edgebench.cli.plan import cmd_plan as make_plan
    return make_plan(args, console)


def cmd_push(args, console) -> int:
    import time

    from edgebench.cli.ui import build_progress, eviction_lines
    from edgebench.config import find_device
    from edgebench.models.resolve import file_model
    from edgebench.transport import open_transport
    from edgebench.transport.remote_store import push_model

    model = file_model(args.model)
    device = find_device(args.device, args.devices_dir)
    with (open_transport(device) as transport,
          build_progress(console, f"pushing {model.path.name} to {device.name}") as progress):
        start = time.monotonic()
        # an ONNX model's external data goes with it, placed beside it, as `run` places it
        result = push_model(transport, str(model.path), model.sha256, progress=progress,
                            extra_files=model.extra_files)
        elapsed = time.monotonic() - start
    files = f"{model.path.name} (+ {', '.join(p.name for p in model.extra_files)})" if model.extra_files \
        else model.path.name
    if result.skipped:
        console.print(f"{files} is already on {device.name}: {result.path} ({elapsed:.2f} s)", markup=False)
    else:
        note = f", resumed at {result.resumed_from / 2**20:.0f} MiB" if result.resumed_from else ""
        rate = _amount(result.sent_bytes / max(elapsed, 1e-9))
        console.print(f"pushed {files} to {device.name}:{result.path}: {_amount(result.sent_bytes)} "
                      f"in {elapsed:.1f} s ({rate}/s{note})", markup=False)
    for line in eviction_lines(device.name, result.evicted):
        console.print(line, markup=False)
    return EXIT_OK


def _amount(n_bytes: float) -> str:
    """Bytes in the unit that shows them (decimal, as the rate in MB/s): a small model is not "0 MB"."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= size:
            value = n_bytes / size
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{n_bytes:.0f} B"
