"""Devices in labs, shared through labgrid's coordinator (transport: labgrid), with the real parts on
loopback: a labgrid-coordinator, two labgrid-exporters as two labs (one --isolated, reached through
labgrid's ssh tunnel), sshd devices behind them and places with tags (tests/labgrid_fixtures.py).

Cells use the `sleep` engine: these tests exercise places, queues and the controller, not llama.cpp.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgebench.config import parse_device, parse_profile
from edgebench.run.execute import run_cells

pytestmark = pytest.mark.usefixtures("labs")


def sleep_profile(model: Path, tests=("tg20", "tg30"), ts: float = 100.0) -> str:
    return (f"models: [{json.dumps(str(model))}]\ntests: [{', '.join(tests)}]\nrepetitions: 2\nwarmup: 0\n"
            f"engine: {{name: sleep, simulate_ts: {ts}}}\ntelemetry: {{interval_s: 0.1}}\nretry_backoff_s: 0.2\n")


def lab_device(name: str, key: Path, **keys) -> str:
    lines = [f"name: {name}", "transport: labgrid", f"identity: {key}", f"python: {sys.executable}"]
    lines += [f"{k}: {json.dumps(v)}" for k, v in keys.items()]
    return "\n".join(lines) + "\n"


def write_device(directory: Path, name: str, key: Path, **keys) -> Path:
    directory.mkdir(exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(lab_device(name, key, **keys))
    return path


def _cli(*args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgebench", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _cells_in(results: Path, state: str, test: str | None = None):
    def check():
        files = list(results.glob("*/cells.jsonl"))
        return files and [c for c in read_jsonl(files[0])
                          if c["state"] == state and (test is None or f"/{test}/" in c["cell"])]
    return check


def test_a_place_device_runs_there_and_lets_the_place_go(labs, tmp_path, tiny_qwen35):
    device = parse_device(lab_device("pi", labs.shared_key, place="pi-a", coordinator=labs.address), file="pi.yaml")
    profile = parse_profile(sleep_profile(tiny_qwen35), file=str(tmp_path / "p.yaml"))
    outcome = run_cells(profile, [device], tmp_path / "results")
    assert outcome.status == "complete", outcome.failures
    assert [(r["place"], r["lab"], r["status"]) for r in outcome.rows] == [("pi-a", "one", "done")] * 2
    meta = json.loads((outcome.store.path / "run.json").read_text())
    assert meta["places"]["pi"] == {"place": "pi-a", "lab": "one", "coordinator": labs.address}
    # the runner ran in that place's device: its own HOME, its own workdir
    assert (labs.labs["one"].devices["pi-a"].device_dir / ".cache" / "edgebench").is_dir()
    assert labs.acquired_by("pi-a") is None
