#!/usr/bin/env python3
"""Does a 6% step stand out of the runs this machine really measures? (tests/test_history.py sets its
series' level so that it cannot depend on the machine's load; this is the measurement it leaves out.)

    python tests/perf/history_step.py [--model m.gguf | --like tiny-llama@Q8_0] [--runs 20] [--points 12]

Measures --runs real runs of tg256 (9 repetitions, 1 thread) on the local device, keeps those whose best
repetition is within --quiet (2%) of the undisturbed speed (the 90th percentile of the runs' bests: load
only ever slows a run), makes the later half of the first --points of them 6% slower, loads them into a
SQLite database and prints what `history --point best` finds: the goal is one regression change point,
where the step was put, and none in the same runs without it. Prints how many runs were quiet; on a
shared machine whose load comes in epochs, fewer than --points means the machine was too busy to tell.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from common import REPO  # noqa: F401  (puts the repository on sys.path)

from edgebench.cli import main
from edgebench.db.connection import opened
from edgebench.db.history import read_series
from edgebench.db.url import parse_db_url
from edgebench.models.synth.build import cached_synthetic
from edgebench.models.synth.spec import parse_synth_spec
from edgebench.results.aggregate import run_rows

PROFILE = "tests: [tg256]\nrepetitions: 9\nwarmup: 1\nengine: {threads: 1}\ntelemetry: {enabled: false}\n"
STEP = 1.06


def best_ts(run_dir: Path) -> float:
    (row,) = run_rows(run_dir)
    return max(row["samples_ts"])


def measure(base: Path, model: Path, count: int) -> list[Path]:
    (base / "devices").mkdir()
    (base / "devices" / "box.yaml").write_text(f"name: box\ntransport: local\nworkdir: {base / 'work'}\n")
    (base / "p.yaml").write_text(f"models: [{json.dumps(str(model))}]\n{PROFILE}")
    for _ in range(count):
        main(["run", str(base / "p.yaml"), "-d", "box", "--devices-dir", str(base / "devices"), "-o",
              str(base / "r")])
    return sorted((base / "r").iterdir())


def with_step(runs: list[Path], dest: Path, step_at: int) -> list[Path]:
    dest.mkdir()
    copies = []
    for i, run in enumerate(runs):
        copy = dest / run.name
        shutil.copytree(run, copy)
        if i >= step_at:
            lines = [json.loads(line) for line in (copy / "samples.jsonl").read_text().splitlines()]
            (copy / "samples.jsonl").write_text("".join(
                json.dumps(dict(s, ts=s["ts"] / STEP, t_ns=round(s["t_ns"] * STEP))) + "\n" for s in lines))
        copies.append(copy)
    return copies


def changes(runs: list[Path], db_file: Path) -> list:
    url = f"sqlite:///{db_file}"
    main(["db", "load", *map(str, runs), "--db", url])
    with opened(parse_db_url(url)) as db:
        (series,) = read_series(db, "ts", device="box", test="tg256", point="best")
    return series.changes


def main_script() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="GGUF file (default: a cached synthetic model, see --like)")
    parser.add_argument("--like", default="tiny-llama@Q8_0")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--points", type=int, default=12)
    parser.add_argument("--quiet", type=float, default=0.02)
    args = parser.parse_args()
    model = Path(args.model) if args.model else Path(cached_synthetic(parse_synth_spec(args.like)))
    base = Path(tempfile.mkdtemp(prefix="edgebench-history-"))
    runs = measure(base, model, args.runs)
    speeds = {run: best_ts(run) for run in runs}
    undisturbed = statistics.quantiles(speeds.values(), n=10, method="inclusive")[-1]
    quiet = [run for run in runs if abs(speeds[run] / undisturbed - 1) <= args.quiet][:args.points]
    print("best t/s of each run:", " ".join(f"{v:.1f}" for v in speeds.values()))
    print(f"{len(quiet)} of {len(runs)} runs within {args.quiet:.0%} of the undisturbed {undisturbed:.1f} t/s")
    if len(quiet) < 4:
        print("too few quiet runs to look for a step: the machine was busy")
        return 1
    step_at = len(quiet) // 2
    found = changes(with_step(quiet, base / "stepped", step_at), base / "stepped.sqlite")
    level = changes(quiet, base / "level.sqlite")
    print(f"step of {1 / STEP - 1:+.1%} put at point {step_at}: found "
          + (", ".join(f"{c.magnitude:+.1%} at {c.index} (p={c.p_value:.2g})" for c in found) or "nothing"))
    print(f"the same runs without it: {len(level)} change point(s)")
    ok = [c.index for c in found] == [step_at] and found[0].regression and not level
    print("goal met" if ok else "goal missed")
    shutil.rmtree(base, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main_script())
