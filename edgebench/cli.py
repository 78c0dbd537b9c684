"""The `edgebench` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgebench import __version__
from edgebench.errors import EdgebenchError

EXIT_OK, EXIT_FAILED_CELLS, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 3, 130


def _add_devices_dir(parser):
    parser.add_argument("--devices-dir", metavar="DIR",
                        help="where device profiles live (default: $EDGEBENCH_DEVICES or ./devices)")


def _add_results_root(parser, what: str):
    parser.add_argument("-o", "--results", type=Path, default=Path("results"), metavar="DIR",
                        help=f"results root{(' ' + what) if what[0] != ';' else what} (default: results/)")


def _add_gate_options(parser, baselines: bool = True):
    parser.add_argument("--threshold", metavar="KEY=PCT,...",
                        help="minimum effect per metric, e.g. tg=3%%,pp=5%%,peak_rss=2%% (keys: a test such as "
                             "tg128, pp, tg, pp+tg, ts, ttft, peak_rss, j_per_token); overrides the profile's")
    parser.add_argument("--inconclusive", choices=("exit2", "pass", "fail"), default="exit2",
                        help="what an inconclusive verdict exits with: 2 (default), 0 or 1")
    parser.add_argument("--markdown", type=Path, metavar="FILE",
                        help="also write a markdown report (appended when FILE is $GITHUB_STEP_SUMMARY)")
    parser.add_argument("--junit", type=Path, metavar="FILE", help="also write JUnit XML (a regression fails)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the report as JSON")
    if baselines:
        _add_results_root(parser, "holding baselines/")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgebench", description=(
        "Deploy quantized LLMs to edge devices and benchmark them the way llama-bench does."))
    parser.add_argument("--version", action="version", version=f"edgebench {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    synth = commands.add_parser("synth", help="write a shape-faithful random-weight GGUF model",
                                description="Write a GGUF model with a real model's shapes and random weights. "
                                            "Speed does not depend on weight values; quality cannot be measured.")
    synth.add_argument("--like", required=True, metavar="PRESET", help="shape preset, e.g. tiny-qwen35, qwen3.5-4b")
    synth.add_argument("--quant", default="F16", help="F16, Q8_0, Q6_K, Q5_K_M, Q4_K_M or Q3_K_S (default F16)")
    synth.add_argument("--layers", type=int, metavar="N", help="keep the width, cut the depth to N layers")
    synth.add_argument("-o", "--output", required=True, type=Path, help="GGUF file to write")
    synth.set_defaults(handler=cmd_synth)

    quantize = commands.add_parser(
        "quantize", help="make an int8 variant of an ONNX model (onnxruntime dynamic quantization)",
        description="Quantize an ONNX model's weights to int8 with onnxruntime's dynamic quantization, so "
                    "that a profile can sweep the fp32 and int8 variants of one model.")
    quantize.add_argument("model", type=Path, help="ONNX model (external data beside it is followed)")
    quantize.add_argument("--int8", action="store_true", required=True, help="dynamic int8 (the only mode)")
    quantize.add_argument("-o", "--output", required=True, type=Path, help="the int8 model to write")
    quantize.set_defaults(handler=cmd_quantize)

    run = commands.add_parser("run", help="run a benchmark profile on devices",
                              description="Run every cell (device x model x test) of a profile and store "
                                          "the results in a new directory under the results root.")
    run.add_argument("profile", type=Path, nargs="?", help="benchmark profile (profiles/*.yaml)")
    run.add_argument("--resume", type=Path, metavar="RUN_DIR",
                     help="finish results/<run-id>: run only its missing, failed or interrupted cells, with "
                          "the profile and devices it was started with, and add them to that directory")
    run.add_argument("--no-wait", action="store_true",
                     help="fail a device's cells at once when another controller holds its lock, "
                          "instead of waiting for it")
    run.add_argument("-d", "--device", action="append", metavar="NAME|FILE|tag:X|all",
                     help="device name (devices/NAME.yaml), file, tag:X (every device tagged X) or all; "
                          "repeatable (default: local, built in if there is no devices/local.yaml)")
    run.add_argument("--parallel", type=int, default=1, metavar="N",
                     help="measure up to N devices at once (cells on one device still run one by one)")
    run.add_argument("--shard", metavar="i/N", help="run only shard i of N (every N-th device by name), so N "
                                                   "controllers split a fleet between them")
    _add_devices_dir(run)
    _add_results_root(run, "; each run makes a new subdirectory")
    run.set_defaults(handler=cmd_run)

    show = commands.add_parser("show", help="print a run's results",
                               description="Print a run as a table, or export it in llama-bench's formats.")
    show.add_argument("run_dir", type=Path, help="results/<run-id>")
    show.add_argument("--format", default="md", choices=("md", "csv", "json", "jsonl", "sqlite"))
    show.add_argument("-o", "--output", type=Path, help="write to this file (required for sqlite)")
    show.set_defaults(handler=cmd_show)

    report = commands.add_parser(
        "report", help="a self-contained HTML report with plots of one or more runs",
        description="Write one HTML file (inline SVG, no network) with each run's overview, t/s per model "
                    "and device, t/s against depth, peak memory against RAM, temperature and CPU frequency "
                    "over time with throttled spans shaded, J/token; with two runs, the gate's verdicts.")
    report.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="results/<run-id> directories")
    report.add_argument("-o", "--output", required=True, type=Path, help="the HTML file to write")
    report.set_defaults(handler=cmd_report)

    merge = commands.add_parser(
        "merge", help="join run directories (e.g. the shards of one fleet run) into one",
        description="Join runs of the same profile whose cells do not overlap, such as the --shard i/N runs "
                    "of N controllers, into a new run directory. The sources are left as they are.")
    merge.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="results/<run-id> directories")
    merge.add_argument("-o", "--output", required=True, type=Path, metavar="DIR",
                       help="the merged run directory to create (must not exist or be empty)")
    merge.set_defaults(handler=cmd_merge)

    compare = commands.add_parser(
        "compare", help="regression gate: a candidate run against a base run (or llama-bench output)",
        description="Match the cells of two runs (device, model, test, threads, engine settings) and judge "
                    "each metric: regressed when a one-sided exact Mann-Whitney test gives p <= 0.01 AND the "
                    "Hodges-Lehmann shift is at least the threshold. Exit 0 no regression, 1 regression, "
                    "2 inconclusive, 3 error. Inputs: run directories or llama-bench json/jsonl files.")
    compare.add_argument("runs", nargs="+", type=Path, metavar="RUN",
                         help="BASE CANDIDATE, or only CANDIDATE with --baseline")
    compare.add_argument("--baseline", metavar="NAME", help="use the saved baseline NAME as the base")
    _add_gate_options(compare)
    compare.set_defaults(handler=cmd_compare)

    ab = commands.add_parser(
        "ab", help="A/B: two variants of a profile, interleaved on one device, then gated",
        description="Run variants A and B of a profile interleaved (AB, BA, AB, ...) on one device in one "
                    "run, one timed repetition per round, with the profile's cool-down between cells; add "
                    "rounds while a verdict is inconclusive; then judge B against A as `compare` does.")
    ab.add_argument("profile", type=Path, help="benchmark profile")
    for variant in ("a", "b"):
        ab.add_argument(f"--{variant}", action="append", default=[], metavar="KEY=VALUE",
                        help=f"set a profile key for variant {variant.upper()}, e.g. engine.threads=1 or "
                             f"engine.binary=/opt/llama-new/llama-bench (repeatable)")
        ab.add_argument(f"--{variant}-model", metavar="MODEL",
                        help=f"variant {variant.upper()} benchmarks this model (file or synthetic:SPEC)")
    ab.add_argument("-d", "--device", metavar="NAME|FILE", help="the device (default: local)")
    ab.add_argument("--rounds", type=int, default=7, help="rounds per variant before judging (default 7)")
    ab.add_argument("--max-rounds", type=int, default=15,
                    help="rounds per variant at most, added two at a time while inconclusive (default 15)")
    ab.add_argument("--no-wait", action="store_true", help="fail at once if another controller holds the device")
    _add_devices_dir(ab)
    _add_results_root(ab, "; the rounds are stored as a run there")
    _add_gate_options(ab, baselines=False)
    ab.set_defaults(handler=cmd_ab)

    baseline = commands.add_parser("baseline", help="save and list named baselines for `compare --baseline`")
    baseline_commands = baseline.add_subparsers(dest="baseline_command", metavar="ACTION", required=True)
    save = baseline_commands.add_parser("save", help="keep a copy of a run as a named baseline",
                                        description="Copy a finished run to <results>/baselines/NAME.")
    save.add_argument("run_dir", type=Path, help="results/<run-id>")
    save.add_argument("--name", required=True, help="baseline name, e.g. main")
    save.add_argument("--replace", action="store_true", help="replace an existing baseline of that name")
    _add_results_root(save, "holding baselines/")
    save.set_defaults(handler=cmd_baseline_save)
    listed = baseline_commands.add_parser("list", help="list saved baselines")
    _add_results_root(listed, "holding baselines/")
    listed.set_defaults(handler=cmd_baseline_list)

    inspect = commands.add_parser("inspect", help="what a GGUF model is: arch, params, quant, layer kinds",
                                  description="Read a GGUF file's metadata and tensor table.")
    inspect.add_argument("model", type=Path, help="GGUF file")
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
                      help="name, file, tag:X or all (repeatable; default all)")
    plan.add_argument("--ctx", metavar="N,...", help="contexts in tokens, e.g. 4096,32k,262144 (default 4096)")
    plan.add_argument("--kv", default="f16", metavar="TYPE", help="KV cache type: f16 (default), q8_0, q4_0, ...")
    plan.add_argument("--ubatch", type=int, default=512, metavar="N", help="llama.cpp n_ubatch (default 512)")
    plan.add_argument("--no-mmap", action="store_true", help="the weights are loaded, not mapped")
    plan.add_argument("--results", type=Path, default=Path("results"), metavar="DIR",
                      help="results root to calibrate speed from (default: results/)")
    plan.add_argument("--json", action="store_true", help="print JSON")
    _add_devices_dir(plan)
    plan.set_defaults(handler=cmd_plan)

    devices = commands.add_parser("devices", help="list and inspect device profiles")
    device_commands = devices.add_subparsers(dest="devices_command", metavar="ACTION", required=True)
    listing = device_commands.add_parser("list", help="list device profiles",
                                         description="List the device profiles found in the devices directory.")
    _add_devices_dir(listing)
    listing.set_defaults(handler=cmd_devices_list)

    trust = device_commands.add_parser(
        "trust", help="record a device's SSH host key after showing its fingerprint",
        description="Connect to the device, show the host key it presents and record it in edgebench's "
                    "known_hosts (~/.config/edgebench/known_hosts, or $EDGEBENCH_KNOWN_HOSTS). Nothing is "
                    "trusted without confirmation: answer the prompt, or pass the fingerprint you checked.")
    trust.add_argument("name", help="device name or profile file")
    trust.add_argument("--fingerprint", metavar="SHA256:...", help="trust only if the key has this fingerprint")
    trust.add_argument("--replace", action="store_true", help="replace a different key already recorded")
    _add_devices_dir(trust)
    trust.set_defaults(handler=cmd_devices_trust)

    check = device_commands.add_parser(
        "check", help="connect and probe a device: CPU, RAM, OS, Python, engines, disk, sensors",
        description="Connect to the device and report what edgebench will find there.")
    check.add_argument("name", help="device name or profile file")
    check.add_argument("--json", action="store_true", help="print the facts as JSON")
    _add_devices_dir(check)
    check.set_defaults(handler=cmd_devices_check)

    ansible = device_commands.add_parser(
        "import-ansible", help="write a device profile for each host of an Ansible YAML inventory",
        description="Write devices/<host>.yaml for each host of an Ansible YAML inventory: ansible_host, "
                    "ansible_port, ansible_user and ansible_ssh_private_key_file become host, port, user and "
                    "identity, groups become tags. Passwords are never written. Existing profiles are kept.")
    ansible.add_argument("inventory", type=Path, metavar="INVENTORY.yml", help="Ansible inventory in YAML")
    ansible.add_argument("--force", action="store_true", help="overwrite profiles that already exist")
    ansible.add_argument("--dry-run", action="store_true", help="print the profiles instead of writing them")
    _add_devices_dir(ansible)
    ansible.set_defaults(handler=cmd_devices_import_ansible)

    push = commands.add_parser(
        "push", help="copy a model to a device's content-addressed store (verified, resumable)",
        description="Upload a model to <workdir>/models/<sha256>/ on the device. The device checks the "
                    "sha256 before the file takes its final name; an interrupted upload resumes; a model "
                    "already there is skipped.")
    push.add_argument("model", type=Path, help="model file (GGUF or ONNX)")
    push.add_argument("-d", "--device", required=True, metavar="NAME|FILE", help="device name or profile file")
    _add_devices_dir(push)
    push.set_defaults(handler=cmd_push)
    return parser


def cmd_synth(args, console) -> int:
    from edgebench.synth.build import build_synthetic
    from edgebench.synth.spec import parse_synth_spec
    from edgebench.ui import build_progress

    spec_text = f"{args.like}@{args.quant}" + (f"?layers={args.layers}" if args.layers else "")
    spec = parse_synth_spec(spec_text)
    with build_progress(console, spec.canonical()) as progress:
        path = build_synthetic(spec, args.output, progress=progress)
    console.print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    return EXIT_OK


def cmd_quantize(args, console) -> int:
    from edgebench.onnx_quantize import quantize_int8

    path = quantize_int8(args.model, args.output)
    before = args.model.stat().st_size
    console.print(f"wrote {path} ({path.stat().st_size / 2**20:.2f} MiB; fp32 {before / 2**20:.2f} MiB)")
    return EXIT_OK


def cmd_run(args, console) -> int:
    from functools import partial

    from edgebench.cells import parse_shard, plan_cells, shard_cells
    from edgebench.config import load_profile, select_devices
    from edgebench.execute import resume_run, run_cells, stored_plan, unfinished_cells
    from edgebench.results.export import table_cells
    from edgebench.ui import RunDisplay, print_table

    if (args.profile is None) == (args.resume is None):
        raise EdgebenchError("give a profile to run, or --resume RUN_DIR to finish a run (not both)")
    if args.resume:
        if args.device or args.shard:
            raise EdgebenchError("--resume runs the devices and shard the run was started with: "
                                 "drop -d/--shard")
        total = len(unfinished_cells(args.resume, stored_plan(args.resume)[1])[0])
        start = partial(resume_run, args.resume)
        if not total:
            console.print(f"{args.resume}: every cell has finished; nothing to resume")
            return EXIT_OK
    else:
        profile = load_profile(args.profile)
        devices = select_devices(args.device, args.devices_dir) if args.device else [_local_device(args)]
        try:
            shard = parse_shard(args.shard) if args.shard else None
        except ValueError as exc:
            raise EdgebenchError(str(exc)) from exc
        cells = plan_cells(profile, devices)
        total = len(shard_cells(cells, *shard) if shard else cells)
        if not total:
            console.print(f"shard {args.shard} has no devices: nothing to run")
            return EXIT_OK
        start = partial(run_cells, profile, devices, args.results, shard=shard)
    display = RunDisplay(console, total=total)
    try:
        with display:
            outcome = start(observer=display, parallel=args.parallel, wait_for_lock=not args.no_wait)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: finished samples are kept in the run directory; "
                      "`edgebench run --resume` finishes it[/]")
        return EXIT_INTERRUPTED
    print_table(console, *table_cells(outcome.rows))
    console.print(f"results: {outcome.store.path}")
    if outcome.failures:
        console.print(f"[red]{len(outcome.failures)} cell(s) failed:[/]")
        for cell_id, reason in outcome.failures:
            console.print(f"  [red]{cell_id}[/]: {reason}")
        return EXIT_FAILED_CELLS
    return EXIT_OK


def _local_device(args):
    """devices/local.yaml when there is one, else this machine with default settings."""
    from edgebench.config import find_device, parse_device
    from edgebench.errors import DeviceNotFound

    try:
        return find_device("local", args.devices_dir)
    except DeviceNotFound:
        return parse_device("name: local\ntransport: local\n", file="<built-in local device>")


def cmd_show(args, console) -> int:
    from edgebench.results.aggregate import run_rows
    from edgebench.results.export import FORMATS, write_sqlite

    rows = run_rows(args.run_dir)
    if args.format == "sqlite":
        if not args.output:
            raise EdgebenchError("--format sqlite needs -o FILE")
        write_sqlite(rows, args.output)
        console.print(f"wrote {args.output}")
        return EXIT_OK
    text = FORMATS[args.format](rows)
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_report(args, console) -> int:
    from edgebench.report.html import build_report

    text = build_report(args.runs)
    partial = args.output.with_name(args.output.name + ".partial")
    partial.write_text(text)
    partial.replace(args.output)
    console.print(f"wrote {args.output} ({len(text) / 1024:.0f} KiB)")
    return EXIT_OK


def cmd_merge(args, console) -> int:
    from edgebench.results.merge import merge_runs

    dest = merge_runs(args.runs, args.output)
    console.print(f"merged {len(args.runs)} runs into {dest}")
    return EXIT_OK


def _gate_outputs(args, console, report) -> int:
    import os

    from edgebench.compare import report as out
    from edgebench.ui import print_table

    code = report.exit_code(args.inconclusive)
    print_table(console, out.HEADER, out.table_rows(report))
    for line in out.unmatched_lines(report) + [f"inconclusive: {n}" for n in out.notes(report)]:
        console.print(line)
    console.print(f"{out.summary_line(report)} → exit {code}")
    if args.markdown:
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        mode = "a" if summary and Path(summary).resolve() == args.markdown.resolve() else "w"
        with open(args.markdown, mode) as f:
            f.write(out.to_markdown(report))
    if args.junit:
        args.junit.write_text(out.to_junit(report))
    if args.json:
        args.json.write_text(out.to_json(report, code))
    return code


def _cli_thresholds(args) -> dict:
    from edgebench.compare.metrics import parse_thresholds

    try:
        return parse_thresholds(args.threshold) if args.threshold else {}
    except ValueError as exc:
        raise EdgebenchError(str(exc)) from exc


def cmd_compare(args, console) -> int:
    from edgebench.compare.baselines import baseline_path
    from edgebench.compare.gate import compare_sides
    from edgebench.compare.inputs import load_side

    if args.baseline:
        if len(args.runs) != 1:
            raise EdgebenchError("with --baseline give only the candidate run")
        base = baseline_path(args.results, args.baseline)
        if not base.is_dir():
            raise EdgebenchError(f"no baseline {args.baseline!r} under {base.parent} "
                                 f"(save one with `edgebench baseline save RUN --name {args.baseline}`)")
        paths = [base, args.runs[0]]
    elif len(args.runs) != 2:
        raise EdgebenchError("compare takes BASE CANDIDATE (or --baseline NAME CANDIDATE)")
    else:
        paths = args.runs
    report = compare_sides(load_side(paths[0]), load_side(paths[1]), _cli_thresholds(args))
    return _gate_outputs(args, console, report)


def cmd_ab(args, console) -> int:
    from edgebench.compare.ab import AbRun, variant_profile
    from edgebench.config import find_device, load_profile

    profile = load_profile(args.profile)
    variants = {"A": variant_profile(profile, "A", args.a, args.a_model),
                "B": variant_profile(profile, "B", args.b, args.b_model)}
    device = find_device(args.device, args.devices_dir) if args.device else _local_device(args)
    if args.rounds < 2:
        raise EdgebenchError("--rounds must be at least 2")
    ab = AbRun(profile, variants, device, args.results, _cli_thresholds(args), rounds=args.rounds,
               max_rounds=args.max_rounds, wait_for_lock=not args.no_wait)
    from edgebench.ui import RunDisplay

    try:
        with RunDisplay(console, total=2 * args.rounds * len(ab.pairs)) as display:
            ab.run.observer = display
            report = ab.execute()
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted: what was measured is in {ab.store.path}[/]")
        return EXIT_INTERRUPTED
    console.print(f"results: {ab.store.path}")
    for cell_id, reason in ab.run.failures:
        console.print(f"  [red]{cell_id}[/]: {reason}")
    return _gate_outputs(args, console, report)


def cmd_baseline_save(args, console) -> int:
    from edgebench.compare.baselines import save_baseline

    path = save_baseline(args.run_dir, args.name, args.results, replace=args.replace)
    console.print(f"baseline {args.name!r} saved: {path}")
    return EXIT_OK


def cmd_baseline_list(args, console) -> int:
    from edgebench.compare.baselines import list_baselines
    from edgebench.ui import print_table

    rows = [[name, meta.get("run_id", ""), (meta.get("profile") or {}).get("name", ""), meta.get("created", ""),
             ", ".join(sorted(meta.get("devices") or {}))] for name, meta in list_baselines(args.results)]
    print_table(console, ["name", "run", "profile", "created", "devices"], rows)
    return EXIT_OK


def cmd_inspect(args, console) -> int:
    from edgebench.plan.commands import cmd_inspect as inspect_model
    return inspect_model(args, console)


def cmd_plan(args, console) -> int:
    from edgebench.plan.commands import cmd_plan as make_plan
    return make_plan(args, console)


def cmd_devices_list(args, console) -> int:
    from edgebench.config import list_devices
    from edgebench.ui import print_table

    rows = [[d.name, d.transport, d.device_class or "", ", ".join(d.tags), d.host or d.ssh_config_host or "",
             d.source] for d in list_devices(args.devices_dir)]
    print_table(console, ["name", "transport", "class", "tags", "host", "file"], rows)
    return EXIT_OK


def cmd_devices_trust(args, console) -> int:
    from edgebench.config import find_device
    from edgebench.transport import trust

    device = find_device(args.name, args.devices_dir)
    presented = trust.presented_key(device)
    console.print(f"{device.name} ({presented.entry}) presents {presented.key_type} key {presented.fingerprint}")
    if presented.already_trusted:
        console.print("already trusted")
        return EXIT_OK
    if args.fingerprint:
        if args.fingerprint.strip() != presented.fingerprint:
            raise EdgebenchError(f"fingerprint mismatch: expected {args.fingerprint}, the device presents "
                                 f"{presented.fingerprint}; nothing was recorded")
    elif not sys.stdin.isatty():
        raise EdgebenchError("not a terminal: pass --fingerprint SHA256:... (checked on the device with "
                             "ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub) to trust non-interactively")
    elif console.input("Trust this key? [y/N] ").strip().lower() not in ("y", "yes"):
        console.print("not trusted")
        return EXIT_ERROR
    path = trust.record_presented(presented, replace=args.replace)
    console.print(f"trusted: recorded in {path}")
    return EXIT_OK


def cmd_devices_check(args, console) -> int:
    import json

    from edgebench.config import find_device
    from edgebench.probe import facts_rows, probe_device

    device = find_device(args.name, args.devices_dir)
    facts = probe_device(device)
    if args.json:
        sys.stdout.write(json.dumps(facts, indent=2, default=str) + "\n")
    else:
        from edgebench.ui import print_table
        print_table(console, ["fact", "value"], facts_rows(facts))
    return EXIT_OK


def cmd_devices_import_ansible(args, console) -> int:
    from rich.console import Console
    from rich.markup import escape

    from edgebench.config import device_dirs
    from edgebench.config.ansible import load_inventory, plan_profiles, write_profiles

    inventory = load_inventory(args.inventory)
    for warning in inventory.warnings:
        Console(stderr=True, highlight=False, soft_wrap=True).print(f"[yellow]warning:[/] {escape(warning)}")
    # the first devices directory: the one a device name is looked up in first
    planned = plan_profiles(inventory, device_dirs(args.devices_dir)[0])
    if args.dry_run:
        for item in planned:
            action = "skip (exists)" if item.exists and not args.force else "overwrite" if item.exists else "write"
            sys.stdout.write(f"# would {action} {item.path}\n{item.text}\n")
        return EXIT_OK
    written, skipped = write_profiles(planned, force=args.force)
    for path in written:
        console.print(f"wrote {escape(str(path))}", soft_wrap=True)
    for path in skipped:
        console.print(f"[yellow]kept {escape(str(path))}: it already exists (--force overwrites it)[/]",
                      soft_wrap=True)
    console.print(f"{len(written)} profile(s) written, {len(skipped)} kept")
    return EXIT_OK


def cmd_push(args, console) -> int:
    import time

    from edgebench.config import find_device
    from edgebench.models import sha256_file
    from edgebench.transport import open_transport
    from edgebench.ui import build_progress

    if not args.model.is_file():
        raise EdgebenchError(f"model file not found: {args.model}")
    device = find_device(args.device, args.devices_dir)
    sha = sha256_file(args.model)
    with open_transport(device) as transport, build_progress(console, f"push {args.model.name}") as progress:
        start = time.monotonic()
        result = transport.push_model(str(args.model), sha, progress=progress)
        elapsed = time.monotonic() - start
    if result.skipped:
        console.print(f"{args.model.name} is already on {device.name}: {result.path} ({elapsed:.2f} s)")
    else:
        note = f", resumed at {result.resumed_from / 2**20:.0f} MiB" if result.resumed_from else ""
        console.print(f"pushed {args.model.name} to {device.name}:{result.path}: {result.sent_bytes / 1e6:.0f} MB "
                      f"in {elapsed:.1f} s ({result.sent_bytes / 1e6 / max(elapsed, 1e-9):.0f} MB/s{note})")
    return EXIT_OK


def main(argv=None) -> int:
    from rich.console import Console
    from rich.markup import escape

    args = build_parser().parse_args(argv)
    console = Console(stderr=False, highlight=False, soft_wrap=True)
    try:
        return args.handler(args, console)
    except EdgebenchError as error:
        Console(stderr=True, highlight=False, soft_wrap=True).print(f"[red]error:[/] {escape(str(error))}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
