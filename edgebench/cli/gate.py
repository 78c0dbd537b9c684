"""The regression gate's commands: compare, ab, baseline."""

from __future__ import annotations

from pathlib import Path

from edgebench.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    add_db_option,
    add_devices_dir,
    add_results_root,
    local_device,
)
from edgebench.errors import EdgebenchError
from edgebench.outputs import check_output_file, output_folder, write_output


def add_gate_options(parser, baselines: bool = True):
    from edgebench.compare.thresholds import KEYS

    parser.add_argument("--threshold", metavar="KEY=PCT,...",
                        help=f"minimum effect per metric, e.g. tg=3%%,pp=5%%,peak_rss=2%%; a key is {KEYS}, as in "
                             f"a profile's thresholds:; overrides the profile's")
    parser.add_argument("--inconclusive", choices=("exit2", "pass", "fail"), default="exit2",
                        help="what an inconclusive verdict exits with: 2 (default), 0 or 1")
    parser.add_argument("--markdown", type=Path, metavar="FILE",
                        help="also write a markdown report (appended when FILE is $GITHUB_STEP_SUMMARY)")
    parser.add_argument("--junit", type=Path, metavar="FILE", help="also write JUnit XML (a regression fails)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the report as JSON")
    if baselines:
        add_results_root(parser, "holding baselines/")


def register(commands) -> None:
    compare = commands.add_parser(
        "compare", help="regression gate: a candidate run against a base run (or llama-bench output)",
        description="Match the cells of two runs (device, model, test, threads, engine settings) and judge "
                    "each metric: regressed when a one-sided exact Mann-Whitney test gives p <= 0.01 AND the "
                    "Hodges-Lehmann shift is at least the threshold and twice the runs' own noise; same when the "
                    "95% interval of the ratio lies within the threshold both ways, not worse when only a loss "
                    "is ruled out. Exit 0 no regression, 1 regression, 2 inconclusive, 3 error. Inputs: run "
                    "directories or llama-bench json/jsonl files.")
    compare.add_argument("runs", nargs="+", type=Path, metavar="RUN",
                         help="BASE CANDIDATE, or only CANDIDATE with --baseline")
    compare.add_argument("--baseline", metavar="NAME", help="use the saved baseline NAME as the base")
    add_db_option(compare, "holding the --baseline (a name saved with `baseline save --db`, or a run id)")
    compare.add_argument("--allow-different-devices", action="store_true",
                         help="compare even where a device's probe (CPU model, cores, RAM) differs between the runs")
    add_gate_options(compare)
    compare.set_defaults(handler=cmd_compare)

    ab = commands.add_parser(
        "ab", help="A/B: two variants of a profile, interleaved on each device, judged round by round",
        description="Run variants A and B of a profile interleaved (AB, BA, AB, ...) on each device in one "
                    "run, one timed repetition per round, with the profile's cool-down between cells. Each round "
                    "pairs its A with its B: after --rounds and then every 2 rounds a one-sided Wilcoxon "
                    "signed-rank test of the rounds' log(B/A) decides regressed / improved (p <= alpha split "
                    "over the looks AND the estimate beyond the threshold), same (a change of the threshold "
                    "ruled out both ways), or runs more, up to --max-rounds, where a metric only shown not worse "
                    "is 'not worse' (a pass). A round disturbed by steal time or by other runnable tasks is "
                    "measured again after --cool-off. Each device gets its own verdict; exit 0 ok, 1 any "
                    "regression, 3 any device not judged, 2 any inconclusive.")
    ab.add_argument("profile", type=Path, help="benchmark profile")
    for variant in ("a", "b"):
        ab.add_argument(f"--{variant}", action="append", default=[], metavar="KEY=VALUE",
                        help=f"set a profile key for variant {variant.upper()}, e.g. engine.threads=1 or "
                             f"engine.binary=/opt/llama-new/llama-bench (repeatable)")
        ab.add_argument(f"--{variant}-model", metavar="MODEL",
                        help=f"variant {variant.upper()} benchmarks this model (file or synthetic:SPEC)")
    ab.add_argument("-d", "--device", action="append", metavar="NAME|FILE|tag:X|all",
                    help="device(s), repeatable; each runs its own A/B (default: local)")
    ab.add_argument("--parallel", type=int, default=1, metavar="N", help="run the A/B of up to N devices at once")
    ab.add_argument("--rounds", type=int, default=7, help="rounds before the first look (default 7)")
    ab.add_argument("--max-rounds", type=int, default=15,
                    help="the round budget: looks every 2 rounds until settled or this many (default 15)")
    ab.add_argument("--max-steal", type=float, default=5.0, metavar="PCT",
                    help="a round with more steal time than this is disturbed (default 5)")
    ab.add_argument("--max-cpu-wait", type=float, default=10.0, metavar="PCT",
                    help="a round where a benchmark thread waited for a CPU (other runnable tasks held it) more "
                         "than this share of the repetition is disturbed (default 10)")
    ab.add_argument("--max-load", type=float, metavar="LOAD",
                    help="a round with a higher 1-minute load average is disturbed (default: not judged; it "
                         "lags a round by a minute)")
    ab.add_argument("--cool-off", type=float, default=5.0, metavar="SECONDS",
                    help="wait this long before measuring a disturbed round again (default 5)")
    ab.add_argument("--repeat-disturbed", type=int, default=1, metavar="N",
                    help="measure a disturbed round again up to N times; one still disturbed is kept, flagged "
                         "(default 1)")
    ab.add_argument("--no-wait", action="store_true", help="fail at once if another controller holds the device")
    add_devices_dir(ab)
    add_results_root(ab, "; the rounds are stored as a run there")
    add_gate_options(ab, baselines=False)
    ab.set_defaults(handler=cmd_ab)

    baseline = commands.add_parser("baseline", help="save and list named baselines for `compare --baseline`")
    baseline_commands = baseline.add_subparsers(dest="baseline_command", metavar="ACTION", required=True)
    save = baseline_commands.add_parser("save", help="keep a copy of a run as a named baseline",
                                        description="Copy a finished run to <results>/baselines/NAME.")
    save.add_argument("run_dir", type=Path, help="results/<run-id>")
    save.add_argument("--name", required=True, help="baseline name, e.g. main")
    save.add_argument("--replace", action="store_true", help="replace an existing baseline of that name")
    add_results_root(save, "holding baselines/")
    add_db_option(save, "to also keep it in (the run is loaded there, and NAME names it)")
    save.set_defaults(handler=cmd_baseline_save)
    listed = baseline_commands.add_parser("list", help="list saved baselines")
    add_results_root(listed, "holding baselines/")
    add_db_option(listed, "whose baselines (saved with `baseline save --db`) are listed too")
    listed.set_defaults(handler=cmd_baseline_list)


def _gate_outputs(args, console, report, code: int | None = None) -> int:
    from rich.markup import escape

    from edgebench.cli.ui import print_table
    from edgebench.compare import report as out

    code = report.exit_code(args.inconclusive) if code is None else code
    print_table(console, out.header(report), out.table_rows(report))
    for line in out.unmatched_lines(report) + [f"inconclusive: {n}" for n in out.notes(report)]:
        console.print(escape(line))
    for line in out.device_lines(report):
        console.print(escape(line))
    console.print(f"{out.summary_line(report)} → exit {code}")
    if args.markdown:
        write_output(args.markdown, out.to_markdown(report), "markdown report", append=_is_step_summary(args.markdown))
    if args.junit:
        write_output(args.junit, out.to_junit(report), "JUnit report")
    if args.json:
        write_output(args.json, out.to_json(report, code), "JSON report")
    return code


def _is_step_summary(path: Path) -> bool:
    """GitHub's job summary collects every step's markdown, so it is appended to, never replaced."""
    import os

    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    return bool(summary) and Path(summary).resolve() == path.resolve()


def _check_gate_outputs(args) -> None:
    """Before a gate runs (an A/B run takes minutes): a report path that cannot be written stops it."""
    for path, what in ((args.markdown, "markdown report"), (args.junit, "JUnit report"), (args.json, "JSON report")):
        if path:
            check_output_file(path, what)


def _cli_thresholds(args) -> dict:
    from edgebench.compare.thresholds import ThresholdError, parse_threshold_option

    try:
        return parse_threshold_option(args.threshold) if args.threshold else {}
    except ThresholdError as exc:
        raise EdgebenchError(str(exc)) from exc


def cmd_compare(args, console) -> int:
    from edgebench.compare.baselines import baseline_path
    from edgebench.compare.gate import compare_sides
    from edgebench.compare.inputs import load_side

    thresholds = _cli_thresholds(args)
    _check_gate_outputs(args)
    from edgebench.db.url import configured_db

    url = configured_db(args.db, default=False)
    if args.baseline and url is not None and not baseline_path(args.results, args.baseline).is_dir():
        if len(args.runs) != 1:
            raise EdgebenchError("with --baseline give only the candidate run")
        return _compare_to_db_baseline(args, console, url, thresholds)
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
    report = compare_sides(load_side(paths[0]), load_side(paths[1]), thresholds,
                           allow_different_devices=args.allow_different_devices)
    return _gate_outputs(args, console, report)


def _ab_settings(args):
    from edgebench.compare.paired import SequentialPlan
    from edgebench.sweep.disturbance import Disturbance

    if args.rounds < 2:
        raise EdgebenchError("--rounds must be at least 2")
    if args.parallel < 1:
        raise EdgebenchError(f"--parallel is how many devices run at once: give 1 or more, not {args.parallel}")
    if args.repeat_disturbed < 0:
        raise EdgebenchError("--repeat-disturbed is a count of repeats: give 0 or more")
    try:
        return (SequentialPlan(first=args.rounds, last=max(args.rounds, args.max_rounds)),
                Disturbance(args.max_steal, args.max_cpu_wait, args.max_load, args.cool_off))
    except ValueError as exc:
        raise EdgebenchError(str(exc)) from exc


def _compare_to_db_baseline(args, console, url, thresholds) -> int:
    import tempfile

    from edgebench.compare.gate import compare_sides
    from edgebench.compare.inputs import load_side
    from edgebench.db.connection import opened
    from edgebench.db.runs import baseline_run, has_run, materialize

    with opened(url, create=False) as db, tempfile.TemporaryDirectory(prefix="edgebench-baseline-") as scratch:
        run_id = baseline_run(db, args.baseline) or (args.baseline if has_run(db, args.baseline) else None)
        if run_id is None:
            raise EdgebenchError(f"no baseline or run {args.baseline!r} in the database {url} (save one with "
                                 f"`edgebench baseline save RUN --name {args.baseline} --db URL`)")
        base = load_side(materialize(db, run_id, Path(scratch)))
    report = compare_sides(base, load_side(args.runs[0]), thresholds,
                           allow_different_devices=args.allow_different_devices)
    return _gate_outputs(args, console, report)


def cmd_ab(args, console) -> int:
    from edgebench.config import load_profile, select_devices
    from edgebench.sweep.ab import AbRun, variant_profile

    thresholds = _cli_thresholds(args)
    plan, disturbance = _ab_settings(args)
    profile = load_profile(args.profile)
    variants = {"A": variant_profile(profile, "A", args.a, args.a_model),
                "B": variant_profile(profile, "B", args.b, args.b_model)}
    devices = select_devices(args.device, args.devices_dir) if args.device else [local_device(args)]
    _check_gate_outputs(args)
    output_folder(args.results, "results root")
    from edgebench.sweep.engine_refs import prepare

    variants, commits = prepare(variants, devices, log=lambda text: console.print(text, markup=False))
    ab = AbRun(profile, variants, devices, args.results, thresholds, plan=plan, disturbance=disturbance,
               repeat_disturbed=args.repeat_disturbed, parallel=args.parallel, wait_for_lock=not args.no_wait)
    from edgebench.cli.ui import RunDisplay

    try:
        with RunDisplay(console, total=2 * plan.first * sum(map(len, ab.pairs.values()))) as display:
            ab.run.observer = display
            reports = ab.execute()
    except KeyboardInterrupt:
        console.print(f"results: {ab.store.path}")
        console.print(f"[yellow]interrupted: what was measured is in {ab.store.path}[/]")
        return EXIT_INTERRUPTED
    console.print(f"results: {ab.store.path}")
    for cell_id, reason in ab.run.failures:
        console.print(f"  [red]{cell_id}[/]: {reason}")
    return _fleet_outputs(args, console, reports, commits)


def _fleet_outputs(args, console, reports: dict, commits: dict | None = None) -> int:
    """Every device's verdict, then one report of all comparisons with the fleet's exit code."""
    from edgebench.compare.gate import GateReport, fleet_exit_code
    from edgebench.sweep.engine_refs import variant_name

    codes = {name: report.exit_code(args.inconclusive) for name, report in reports.items()}
    commits = commits or {}
    merged = GateReport(base=variant_name("A", commits.get("A")), cand=variant_name("B", commits.get("B")),
                        alpha=next(iter(reports.values())).alpha,
                        base_commit=commits["A"].short if "A" in commits else None,
                        cand_commit=commits["B"].short if "B" in commits else None)
    for report in reports.values():
        merged.comparisons += report.comparisons
        merged.base_unmeasured += report.base_unmeasured
        merged.disturbed.update(report.disturbed)
    merged.device_codes = codes
    return _gate_outputs(args, console, merged, fleet_exit_code(codes))


def cmd_baseline_save(args, console) -> int:
    from edgebench.compare.baselines import save_baseline
    from edgebench.db import runs
    from edgebench.db.connection import opened
    from edgebench.db.load import load_run
    from edgebench.db.url import configured_db

    output_folder(args.results, "results root")
    url = configured_db(args.db, default=False)
    if url is not None and not args.replace:
        with opened(url) as db:
            if runs.baseline_run(db, args.name):
                raise EdgebenchError(f"baseline {args.name!r} exists in {url}; pass --replace to replace it")
    path = save_baseline(args.run_dir, args.name, args.results, replace=args.replace)
    console.print(f"baseline {args.name!r} saved: {path}")
    if url is not None:
        with opened(url) as db:
            run_id, _ = load_run(db, path)
            runs.save_baseline(db, args.name, run_id)
        console.print(f"baseline {args.name!r} saved in {url}")
    return EXIT_OK


def cmd_baseline_list(args, console) -> int:
    from edgebench.cli.ui import print_table
    from edgebench.compare.baselines import DIRECTORY, list_baselines
    from edgebench.db.url import configured_db

    folder = str(Path(args.results) / DIRECTORY)
    rows = [[name, header.run_id or "", (header.profile or {}).get("name", ""), header.created or "",
             ", ".join(sorted(header.devices or {})), folder] for name, header in list_baselines(args.results)]
    url = configured_db(args.db, default=False)
    if url is not None:
        from edgebench.db import runs
        from edgebench.db.connection import opened

        with opened(url, create=False) as db:
            rows += [[name, run_id, profile or "", created or "", ", ".join(devices), str(url)]
                     for name, run_id, profile, created, devices in runs.list_baselines(db)]
    print_table(console, ["name", "run", "profile", "created", "devices", "kept in"], rows)
    return EXIT_OK
