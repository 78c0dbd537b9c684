"""`ab`'s disturbed rounds on the real path: the runner reads its threads' run-queue wait over every timed
repetition, and a disturbed round is measured again only after a cool-off (issue 24: at once, the burst that
disturbed it was still on, and the 1-minute load average it was judged by could not have changed)."""

from __future__ import annotations

import json
from datetime import datetime

from test_compare import ab, model_file, write_profile
from test_gate_verdicts import SLEEP_200


def records(run_dir, name: str) -> list[dict]:
    return [json.loads(line) for line in (run_dir / name).read_text().splitlines()]


def test_ab_reads_the_cpu_wait_of_each_round_and_cools_off_before_measuring_a_disturbed_one_again(tmp_path):
    profile = write_profile(tmp_path / "p.yaml", model_file(tmp_path / "m.bin"), SLEEP_200)
    # a load limit of 0 makes every round disturbed: each is measured again once, after the cool-off
    ab(tmp_path, profile, "--rounds", "2", "--max-rounds", "2", "--max-load", "0", "--max-cpu-wait", "100",
       "--repeat-disturbed", "1", "--cool-off", "2")
    (run_dir,) = (tmp_path / "results").iterdir()
    samples = records(run_dir, "samples.jsonl")
    assert len(samples) == 8 and all(0 <= s["host"]["cpu_wait_pct"] <= 100 for s in samples)
    report = json.loads((tmp_path / "ab.json").read_text())
    [flags] = report["disturbed"].values()
    assert [f.split(" (")[0] for f in flags] == ["round 1", "round 1", "round 2", "round 2"]
    assert flags[0].endswith("; measured again after 2 s)") and flags[1].endswith("; kept, still disturbed)")
    cells = records(run_dir, "cells.jsonl")

    def when(state: str, key: str, attempt: int, rounds: str) -> list[datetime]:
        return [datetime.fromisoformat(c[key]) for c in cells
                if c["state"] == state and c["attempt"] == attempt and c["cell"].split(":")[0][1:] == rounds]

    for round_no in ("1", "2"):
        gap = min(when("started", "started", 2, round_no)) - max(when("done", "ended", 1, round_no))
        assert gap.total_seconds() >= 2.0, round_no
