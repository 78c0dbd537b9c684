"""`edgebench bisect PROFILE -d DEVICE --good REF --bad REF`: the llama.cpp commit that made the device slower."""

from __future__ import annotations

from pathlib import Path

from edgebench.cli.common import EXIT_ERROR, EXIT_OK, add_db_option, add_devices_dir, add_results_root
from edgebench.errors import EdgebenchError


def register(commands) -> None:
    bisect = commands.add_parser(
        "bisect", help="find the llama.cpp commit that made a device slower (builds, installs, A/B per midpoint)",
        description="Build llama.cpp at --good and --bad (the profile's engine.source, engine llama-bench) for the "
                    "device, install both and confirm with the paired gate that bad is worse than good beyond the "
                    "threshold (if not: exit 3). Then bisect the first-parent history: each midpoint is built "
                    "incrementally, installed and measured paired against good; a commit that does not build is "
                    "skipped, one that changes no build input is left out. Prints the first bad commit with its "
                    "effect, or the candidates that skips leave. Every measurement is a stored run: a second "
                    "bisect reuses them (unless --fresh) and every build is cached. Exit 0 found, 3 error or ends "
                    "not confirmed.")
    bisect.add_argument("profile", type=Path, help="benchmark profile with engine.source (name: llama-bench)")
    bisect.add_argument("-d", "--device", required=True, metavar="NAME|FILE", help="the device to measure on")
    bisect.add_argument("--good", required=True, metavar="REF", help="a commit, tag or branch that is fast")
    bisect.add_argument("--bad", required=True, metavar="REF", help="a later commit, tag or branch that is slow")
    bisect.add_argument("--test", metavar="TEST", help="the profile's test to judge (default: its first)")
    bisect.add_argument("--metric", default="ts", metavar="METRIC",
                        help="the metric to judge (default ts, the test's tokens per second)")
    bisect.add_argument("--threshold", metavar="KEY=PCT,...", help="as for ab: minimum effect, e.g. tg=5%%")
    bisect.add_argument("--rounds", type=int, default=7, help="rounds before a measurement's first look (default 7)")
    bisect.add_argument("--max-rounds", type=int, default=15,
                        help="the cap of rounds per measurement; still inconclusive there, a midpoint goes to the "
                             "end its estimate is nearer (default 15)")
    bisect.add_argument("--max-steal", type=float, default=5.0, metavar="PCT", help="as for ab (default 5)")
    bisect.add_argument("--max-cpu-wait", type=float, default=10.0, metavar="PCT", help="as for ab (default 10)")
    bisect.add_argument("--fresh", action="store_true", help="measure again what an earlier bisect measured")
    bisect.add_argument("--json", type=Path, metavar="FILE", help="also write the outcome as JSON")
    add_devices_dir(bisect)
    add_results_root(bisect, "; every measurement is stored as an ab run there")
    add_db_option(bisect, "to load every measurement into")
    bisect.set_defaults(handler=cmd_bisect)


def cmd_bisect(args, console) -> int:
    from edgebench.cli.gate import _cli_thresholds
    from edgebench.compare.metrics import METRICS
    from edgebench.compare.paired import SequentialPlan
    from edgebench.config import find_device, load_profile
    from edgebench.db.url import configured_db
    from edgebench.outputs import check_output_file, output_folder, write_output
    from edgebench.sweep.bisect import Bisect
    from edgebench.sweep.disturbance import Disturbance
    from edgebench.sweep.engine_refs import engine_commit, resolve

    def say(text: str) -> None:
        console.print(text, markup=False)

    thresholds = _cli_thresholds(args)
    profile = load_profile(args.profile)
    found = engine_commit(profile)
    if found is None:
        raise EdgebenchError(f"{args.profile}: bisect builds llama.cpp at each commit: give the profile "
                             "engine.source (a llama.cpp git checkout or URL) with engine name llama-bench")
    tests = {t.name: t for t in profile.tests}
    test = tests.get(args.test) if args.test else profile.tests[0]
    if test is None:
        raise EdgebenchError(f"--test {args.test}: the profile has no such test (it has {', '.join(tests)})")
    if args.metric not in METRICS:
        raise EdgebenchError(f"--metric {args.metric}: no such metric (known: {', '.join(METRICS)})")
    if args.rounds < 2:
        raise EdgebenchError("--rounds must be at least 2")
    if args.json:
        check_output_file(args.json, "JSON outcome")
    output_folder(args.results, "results root")
    source = found[0]
    good, bad = resolve(source, args.good), resolve(source, args.bad)
    device = find_device(args.device, args.devices_dir)
    plan = SequentialPlan(first=args.rounds, last=max(args.rounds, args.max_rounds))
    disturbance = Disturbance(args.max_steal, args.max_cpu_wait, None, 5.0)
    db_url = configured_db(args.db, default=False)

    def stored(run) -> None:
        if db_url is not None:
            from edgebench.db.connection import opened
            from edgebench.db.load import load_run

            with opened(db_url) as db:
                load_run(db, run)
    bisect = Bisect(profile, device, good, bad, test, args.metric, {**profile.thresholds, **thresholds}, plan,
                    disturbance, args.results, stored=stored, fresh=args.fresh, log=say)
    outcome = bisect.run()
    if args.json:
        import json

        write_output(args.json, json.dumps(outcome.to_json(), indent=2) + "\n", "JSON outcome")
    for line in outcome_lines(outcome, test.name, args.metric):
        say(line)
    return EXIT_OK if outcome.confirmed.side == "bad" else EXIT_ERROR


def _commit_line(commit) -> str:
    return f"{commit.commit[:12]} {commit.subject} ({commit.date})"


def outcome_lines(outcome, test: str, metric: str) -> list[str]:
    good, bad, confirmed = outcome.good, outcome.bad, outcome.confirmed
    if confirmed.side != "bad":
        return [f"bad {bad.name} is not worse than good {good.name} beyond the threshold on {test} {metric}: "
                f"{confirmed.verdict}, ratio {_effect(confirmed)}; nothing to bisect"]
    lines = []
    if outcome.first_bad is not None:
        lines.append(f"first bad commit: {_commit_line(outcome.first_bad)}")
    else:
        lines.append(f"the first bad commit is one of {len(outcome.candidates)} (commits that do not build "
                     "leave the range open):")
        lines += [f"  {_commit_line(c)}" for c in outcome.candidates]
    effect = outcome.effect
    estimate = " (inconclusive at the cap: by its estimate)" if effect and effect.by_estimate else ""
    lines.append(f"effect: {test} {metric} ×{_effect(effect)} against good {good.name}{estimate}")
    measured = [s for s in outcome.steps if not s.reused]
    lines.append(f"builds: {outcome.builds} compiled, {outcome.cached_builds} from the cache; rounds: "
                 f"{outcome.rounds} in {len(measured)} measurements ({len(outcome.steps) - len(measured)} reused)")
    if outcome.unbuildable:
        lines.append("skipped (does not build): " + ", ".join(f"{c.short} {c.subject}" for c in outcome.unbuildable))
    if outcome.no_build_input:
        lines.append("left out (no build input changed): " + ", ".join(f"{c.short} {c.subject}"
                                                                        for c in outcome.no_build_input))
    return lines


def _effect(step) -> str:
    if step is None or step.ratio is None:
        return "?"
    return f"{step.ratio:.3f} [95% CI {step.ci_low:.3f}, {step.ci_high:.3f}]"
