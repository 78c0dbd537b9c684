#!/usr/bin/env python3
"""What `run --db` costs: the same run with and without a SQLite database loaded as it goes.

    python tests/perf/db_feed.py [--cells 300,600] [--rounds 1]

Each size is one profile of that many cells (tests tg1, tg2, ...) on the local device, with the
`sleep` engine at a speed that makes every cell a few milliseconds, one repetition, telemetry off:
the run is the controller's own work (planning, the runner's start per cell, the records, the
database), not the engine's. `edgebench run` is started as a command, as a user starts it, once
without and once with `--db sqlite:///...` (a fresh file each time), back to back in each round so
the shared machine's drift cancels out of the ratio.

Prints per size the wall times and the ratio with/without (median of the rounds' paired ratios).
Goal: 600 cells with --db within 1.25x of without.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO

from edgebench.models.synth.build import cached_synthetic
from edgebench.models.synth.spec import parse_synth_spec

GOAL = 1.25


def profile_text(model: Path, cells: int) -> str:
    tests = ", ".join(f"tg{i}" for i in range(1, cells + 1))
    return (f"name: db-feed-perf\nmodels: ['{model}']\ntests: [{tests}]\nrepetitions: 1\nwarmup: 0\n"
            f"engine: {{name: sleep, simulate_ts: 1000000}}\ntelemetry: {{enabled: false}}\n")


def timed_run(work: Path, profile: Path, db: Path | None) -> float:
    cmd = [sys.executable, "-m", "edgebench", "run", str(profile), "-d", "box", "--devices-dir",
           str(work / "devices"), "-o", str(work / "results")]
    if db is not None:
        cmd += ["--db", f"sqlite:///{db}"]
    env = dict(os.environ, PYTHONPATH=str(REPO), EDGEBENCH_STATE=str(work / "state"))
    env.pop("EDGEBENCH_DB", None)
    start = time.monotonic()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", default="300,600", help="run sizes, comma-separated")
    parser.add_argument("--rounds", type=int, default=1, help="paired rounds per size")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="edgebench-dbfeed-"))
    (work / "devices").mkdir()
    (work / "devices" / "box.yaml").write_text(f"name: box\ntransport: local\nworkdir: {work / 'device'}\n")
    model = Path(cached_synthetic(parse_synth_spec("tiny-qwen35@Q8_0")))
    print(f"{REPO}: sleep engine, local device, SQLite; {os.cpu_count()} cores")
    print("| cells | without --db s | with --db s | ratio | per-round ratios | goal |")
    print("|---:|---:|---:|---:|---|---|")
    for size in (int(s) for s in args.cells.split(",")):
        profile = work / f"p{size}.yaml"
        profile.write_text(profile_text(model, size))
        without, with_db = [], []
        for round_no in range(args.rounds):
            without.append(timed_run(work, profile, None))
            with_db.append(timed_run(work, profile, work / f"db-{size}-{round_no}.sqlite"))
        ratios = [b / a for a, b in zip(without, with_db)]
        ratio = statistics.median(ratios)
        goal = f"<= {GOAL}x: {'met' if ratio <= GOAL else 'MISSED'}" if size >= 600 else ""
        print(f"| {size} | {statistics.median(without):.1f} | {statistics.median(with_db):.1f} | {ratio:.2f} | "
              f"{', '.join(f'{r:.2f}' for r in ratios)} | {goal} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
