"""Commands that make and read runs: run (and --resume), show, report, merge."""

from __future__ import annotations

import sys
from pathlib import Path

from edgebench.cli.common import (
    EXIT_FAILED_CELLS,
    EXIT_INTERRUPTED,
    EXIT_OK,
    add_db_option,
    add_devices_dir,
    add_results_root,
    local_device,
)
from edgebench.errors import EdgebenchError


def register(commands) -> None:
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
    add_devices_dir(run)
    add_results_root(run, "; each run makes a new subdirectory")
    add_db_option(run, "to load the run into as it goes (after every cell); none unless given")
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
                    "over time with throttled spans shaded, J/token; with two runs, the gate's verdicts; for an "
                    "`ab` run, A against B per pair with its rounds and verdicts.")
    report.add_argument("runs", nargs="+", metavar="RUN", help="results/<run-id> directories, or run ids in --db")
    report.add_argument("-o", "--output", type=Path,
                        help="the HTML file to write (default: report.html in the first RUN's directory, or "
                             "report-<run-id>.html in the current folder for a run id read from --db)")
    add_db_option(report, "to read runs from, and to draw the history of the runs' devices with change points")
    report.set_defaults(handler=cmd_report)

    merge = commands.add_parser(
        "merge", help="join run directories (e.g. the shards of one fleet run) into one",
        description="Join runs of the same profile whose cells do not overlap, such as the --shard i/N runs "
                    "of N controllers, into a new run directory. The sources are left as they are.")
    merge.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="results/<run-id> directories")
    merge.add_argument("-o", "--output", required=True, type=Path, metavar="DIR",
                       help="the merged run directory to create (must not exist or be empty)")
    merge.set_defaults(handler=cmd_merge)


def cmd_run(args, console) -> int:
    from functools import partial

    from rich.markup import escape

    from edgebench.cli.ui import RunDisplay
    from edgebench.config import load_profile, select_devices
    from edgebench.outputs import output_folder
    from edgebench.sweep.cells import parse_shard
    from edgebench.sweep.execute import RunInterrupted, plan_resume, plan_run, run_plan, settle_places

    if (args.profile is None) == (args.resume is None):
        raise EdgebenchError("give a profile to run, or --resume RUN_DIR to finish a run (not both)")
    if args.parallel < 1:
        raise EdgebenchError(f"--parallel is how many devices are measured at once: give 1 or more, "
                             f"not {args.parallel}")
    if args.resume:
        if args.device or args.shard:
            raise EdgebenchError("--resume runs the devices and shard the run was started with: "
                                 "drop -d/--shard")
        plan = plan_resume(args.resume)
        if not plan.cells:
            # a run killed after its last cell may still hold places: they are let go all the same
            for note in settle_places(plan.store.header, plan.planned, []):
                console.print(escape(note), soft_wrap=True)
            console.print(f"{args.resume}: every cell has finished; nothing to resume")
            return EXIT_OK
    else:
        profile = load_profile(args.profile)
        devices = select_devices(args.device, args.devices_dir) if args.device else [local_device(args)]
        try:
            shard = parse_shard(args.shard) if args.shard else None
        except ValueError as exc:
            raise EdgebenchError(str(exc)) from exc
        plan = plan_run(profile, devices, shard)
        if not plan.cells:
            console.print(f"shard {args.shard} has no devices: nothing to run")
            return EXIT_OK
        output_folder(args.results, "results root")
        from edgebench.sweep.engine_refs import prepare

        # an engine at a commit (engine.source/ref): built for and installed on each device first; the
        # cells then run that build
        prepared = prepare({"run": profile}, devices, log=lambda text: console.print(text, markup=False))[0]["run"]
        if prepared is not profile:
            plan = plan_run(prepared, devices, shard)
    start = partial(run_plan, plan, args.results)
    total = len(plan.cells)
    display = observer = RunDisplay(console, total=total)
    feed = _db_feed(args, display)
    if feed:
        observer = feed
    try:
        with display:
            outcome = start(observer=observer, parallel=args.parallel, wait_for_lock=not args.no_wait)
    except RunInterrupted as stop:
        _close_feed(console, feed)
        path = escape(str(stop.outcome.store.path))
        _print_results(console, stop.outcome)
        console.print(f"[yellow]interrupted: finished samples are kept in {path}; "
                      f"`edgebench run --resume {path}` finishes it[/]")
        return EXIT_INTERRUPTED
    _close_feed(console, feed)
    _print_results(console, outcome)
    if outcome.failures:
        console.print(f"[red]{len(outcome.failures)} cell(s) failed:[/]")
        for cell_id, reason in outcome.failures:
            console.print(f"  [red]{escape(cell_id)}[/]: {escape(reason)}")  # an engine's words may hold [...]
        return EXIT_FAILED_CELLS
    return EXIT_OK


def _db_feed(args, display):
    """The database a run loads into as it goes (--db or $EDGEBENCH_DB), checked before anything runs."""
    from edgebench.db.connection import connect
    from edgebench.db.feed import DbFeed
    from edgebench.db.url import configured_db

    url = configured_db(args.db, default=False)
    if url is None:
        return None
    connect(url).close()
    return DbFeed(url, display)


def _close_feed(console, feed) -> None:
    from rich.markup import escape

    if feed is None:
        return
    feed.close()
    if feed.error:
        console.print(f"[yellow]the run was not loaded into {escape(str(feed.url))}: {escape(feed.error)}; "
                      f"`edgebench db load` loads it later[/]")
    else:
        console.print(f"loaded into {escape(str(feed.url))}")


def _print_results(console, outcome) -> None:
    from rich.markup import escape

    from edgebench.cli.ui import print_table
    from edgebench.results.export import table_cells

    print_table(console, *table_cells(outcome.rows))
    console.print(f"results: {escape(str(outcome.store.path))}")


def cmd_show(args, console) -> int:
    from edgebench.outputs import check_output_file, output_file, write_output
    from edgebench.results.export import FORMATS, write_sqlite
    from edgebench.results.model import load

    what = f"{args.format} export"
    if args.format == "sqlite" and not args.output:
        raise EdgebenchError("--format sqlite needs -o FILE")
    if args.output:
        check_output_file(args.output, what)
    cells = load(args.run_dir).cells
    if args.format == "sqlite":
        with output_file(args.output, what) as partial:
            write_sqlite(cells, partial)
        console.print(f"wrote {args.output}")
        return EXIT_OK
    text = FORMATS[args.format](cells)
    if args.output:
        write_output(args.output, text, what)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_report(args, console) -> int:
    import tempfile

    from edgebench.db.url import configured_db
    from edgebench.outputs import OutputError, check_output_file, write_output
    from edgebench.report.html import build_report

    output = args.output or _default_report(args.runs[0])
    try:
        check_output_file(output, "report")
    except OutputError as exc:
        raise exc if args.output else OutputError(f"{exc} (give -o FILE to write it elsewhere)") from exc
    url = configured_db(args.db, default=False)
    with tempfile.TemporaryDirectory(prefix="edgebench-report-") as scratch:
        runs, history = _report_inputs(args.runs, url, Path(scratch))
        text = build_report(runs, history=history)
    write_output(output, text, "report")
    console.print(f"wrote {output} ({len(text) / 1024:.0f} KiB)")
    return EXIT_OK


def _default_report(first: str) -> Path:
    """Beside the runs it shows: in the first run's directory; a run id from the database has none here,
    so its report goes to the current folder."""
    return Path(first) / "report.html" if Path(first).is_dir() else Path(f"report-{Path(first).name}.html")


def _report_inputs(names: list[str], url, scratch: Path):
    """Run directories (a name that is no directory is a run id in the database, rebuilt under `scratch`),
    and with a database the history of every metric series on the runs' devices."""
    from edgebench.results.store import read_header

    if url is None:
        missing = [n for n in names if not Path(n).is_dir()]
        if missing:
            raise EdgebenchError(f"no such run directory: {', '.join(missing)} (a run id needs --db or $EDGEBENCH_DB)")
        return [Path(n) for n in names], []
    from edgebench.db.connection import opened
    from edgebench.db.history import read_series
    from edgebench.db.runs import materialize

    with opened(url, create=False) as db:
        runs = [Path(n) if Path(n).is_dir() else materialize(db, n, scratch) for n in names]
        devices = sorted({d for run in runs for d in (read_header(run).devices or {})})
        history = [s for device in devices for s in read_series(db, "ts", device=device)]
    return runs, history


def cmd_merge(args, console) -> int:
    from edgebench.outputs import output_errors
    from edgebench.results.merge import merge_runs

    with output_errors(args.output, "merged run"):
        dest = merge_runs(args.runs, args.output)
    console.print(f"merged {len(args.runs)} runs into {dest}")
    return EXIT_OK
