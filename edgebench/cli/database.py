"""The results database's commands: db load, and history (series with change points)."""

from __future__ import annotations

from pathlib import Path

from edgebench.cli.common import EXIT_ERROR, EXIT_FAILED_CELLS, EXIT_OK, add_db_option, add_results_root
from edgebench.errors import EdgebenchError

NEWEST = 5


def register(commands) -> None:
    db = commands.add_parser("db", help="the results database: load run directories into it",
                             description="SQLite under the results root by default (results/edgebench.sqlite), "
                                         "or PostgreSQL shared by a team (--db postgresql://...).")
    actions = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    load = actions.add_parser("load", help="load run directories (loading one twice changes nothing)",
                              description="Load each run directory into the database, replacing an earlier "
                                          "load of the same run, so loading twice changes nothing. A folder "
                                          "that is not a run (results/baselines/) is skipped with a note.")
    load.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="results/<run-id> directories")
    add_db_option(load, "to load into, else SQLite under the results root")
    add_results_root(load, "holding the default SQLite database")
    load.set_defaults(handler=cmd_db_load)

    history = commands.add_parser(
        "history", help="a metric's history per device, model, test and engine settings, with change points",
        description="Every series of a metric in the database (keyed by device, model hash, test and engine "
                    "settings; the engine build commit on the x-axis where known, else time), with its change "
                    "points from E-divisive means (Apache Otava, the edgebench[history] extra): where, how "
                    "much, and the p-value.")
    history.add_argument("-d", "--device", metavar="NAME", help="only this device")
    history.add_argument("--model", metavar="M", help="only this model (name, file name or sha256 prefix)")
    history.add_argument("--test", metavar="T", help="only this test, e.g. tg128")
    history.add_argument("--metric", default="ts", help="the metric (default ts; also ttft, peak_rss, ...)")
    history.add_argument("--point", choices=("median", "best"), default="median",
                         help="a run's point: the median of its repetitions (default) or the best one, which a "
                              "shared machine's passing load did not slow")
    history.add_argument("--fail-on-regression", action="store_true",
                         help="exit 1 when a regression change point lies among the newest N points, "
                              "3 when no series matched")
    history.add_argument("--newest", type=int, default=NEWEST, metavar="N",
                         help=f"how many of the newest points --fail-on-regression looks at (default {NEWEST})")
    add_db_option(history, "to read, else SQLite under the results root")
    add_results_root(history, "holding the default SQLite database")
    history.set_defaults(handler=cmd_history)


def cmd_db_load(args, console) -> int:
    from rich.markup import escape

    from edgebench.db.connection import opened
    from edgebench.db.load import load_run
    from edgebench.db.url import configured_db
    from edgebench.errors import ResultsError

    url = configured_db(args.db, args.results)
    runs = [p for p in args.runs if (p / "run.json").is_file()]
    for path in args.runs:
        if path not in runs:  # `db load results/*/` also names results/baselines/
            console.print(f"skipped {escape(str(path))}: not a run directory (no run.json)")
    if not runs:
        raise EdgebenchError(f"nothing to load: no run directory among {', '.join(map(str, args.runs))}")
    failed = []
    with opened(url) as db:
        for path in runs:
            try:
                run_id, cells = load_run(db, path)
            except ResultsError as exc:  # one broken run directory does not keep the others out
                failed.append(path)
                console.print(f"[red]not loaded[/] {escape(str(path))}: {escape(str(exc))}")
                continue
            console.print(f"loaded {escape(str(path))} ({run_id}, {cells} cells) into {url}")
    if failed:
        console.print(f"[red]{len(failed)} of {len(runs)} run directories not loaded[/]")
        return EXIT_ERROR
    return EXIT_OK


def cmd_history(args, console) -> int:
    from rich.markup import escape

    from edgebench.cli.ui import print_table
    from edgebench.compare.changepoints import regressions_among_newest
    from edgebench.db.connection import opened
    from edgebench.db.history import check_choice, read_series, why_no_series
    from edgebench.db.url import configured_db

    if args.newest < 1:
        raise EdgebenchError("--newest is a count of points: give 1 or more")
    check_choice(args.metric, args.point)
    url = configured_db(args.db, args.results)
    with opened(url, create=False) as db:
        series = read_series(db, args.metric, args.device, args.model, args.test, args.point)
        why = None if series else why_no_series(db, args.metric, args.device, args.model, args.test)
    if why and args.fail_on_regression:  # a gate that judged nothing must not pass
        raise EdgebenchError(f"no {args.metric} history to judge: {why}")
    if why:
        console.print(f"no {args.metric} history: {escape(why)}")
        return EXIT_OK
    failing = []
    for s in series:
        unit = s.metric.unit
        console.print(f"\n[bold]{escape(s.title)}[/]  {args.metric} ({unit}) by {s.x_axis}, {len(s.points)} runs")
        starts = {c.index: c for c in s.changes}
        rows = []
        for i, p in enumerate(s.points):
            change = starts.get(i)
            mark = (f"{'REGRESSION' if change.regression else 'change'} {change.magnitude:+.1%} "
                    f"(p={change.p_value:.2g})") if change else ""
            rows.append([str(i), p.x_label, p.run_id, f"{p.value:.2f}", str(p.n_samples), mark])
        print_table(console, ["#", s.x_axis, "run", f"{args.metric} ({unit})", "n", "change point"], rows)
        failing += [(s, c) for c in regressions_among_newest(s.changes, len(s.points), args.newest)]
    if args.fail_on_regression and failing:
        for s, c in failing:
            console.print(f"[red]regression[/] in {escape(s.title)}: {c.magnitude:+.1%} from point {c.index} "
                          f"({s.points[c.index].x_label}), p={c.p_value:.2g}")
        return EXIT_FAILED_CELLS
    return EXIT_OK
