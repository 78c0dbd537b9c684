"""Devices in labs, shared through labgrid's coordinator (transport: labgrid), with the real parts on
loopback: a labgrid-coordinator, two labgrid-exporters as two labs (one --isolated, reached through
labgrid's ssh tunnel), sshd devices behind them and places with tags (tests/labgrid_fixtures.py).

Cells use the `sleep` engine: these tests exercise places, queues and the controller, not llama.cpp.
"""

from __future__ import annotations

import http.server
import json
import signal
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from sshd_server import wait_for

from edgebench.config import parse_device, parse_profile, select_devices
from edgebench.errors import ConfigError
from edgebench.results.aggregate import run_rows
from edgebench.sweep.execute import run_cells
from edgebench.transport import labgrid_place


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

    # a controller killed between its last cell and the release leaves the place acquired: resuming the
    # finished run lets it go, and says so
    labgrid_place.claim("leftover", labs.address, {"name": "pi-a"})
    labgrid_place._HELD.pop("leftover")
    resumed = _cli("run", "--resume", outcome.store.path)
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, out + err
    assert "pi: released place pi-a, which the stopped run left acquired and no cell needs" in out
    assert "nothing to resume" in out
    assert labs.acquired_by("pi-a") is None

    # a place the coordinator does not have fails at once, instead of queueing for ever
    missing = parse_device(lab_device("gone", labs.shared_key, place="pi-z"), file="gone.yaml")
    outcome = run_cells(profile, [missing], tmp_path / "results")
    assert outcome.status == "failed"
    assert all("has no place matching name=pi-z" in reason for _, reason in outcome.failures)


def test_ctrl_c_cancels_a_waiting_reservation_and_releases_a_held_place(labs, tmp_path, tiny_qwen35):
    devices = tmp_path / "devices"
    write_device(devices, "pi", labs.shared_key, place="pi-b")
    profile = tmp_path / "p.yaml"
    profile.write_text(sleep_profile(tiny_qwen35, tests=("tg3000",)))
    holder = _cli("run", profile, "-d", "pi", "--devices-dir", devices, "-o", tmp_path / "a")
    wait_for(_cells_in(tmp_path / "a", "running"), timeout=120, what="the first run to measure")
    waiter = _cli("run", profile, "-d", "pi", "--devices-dir", devices, "-o", tmp_path / "b")
    coordinator = labgrid_place.coordinator(labs.address)
    wait_for(lambda: coordinator.reservations(), timeout=60, what="the second run's reservation")
    for run in (waiter, holder):
        run.send_signal(signal.SIGINT)
        out, err = run.communicate(timeout=60)
        assert run.returncode == 130, out + err
    assert coordinator.reservations() == []  # the waiting one was cancelled, not left to expire
    assert labs.acquired_by("pi-b") is None


def test_a_select_fleet_runs_on_places_of_both_labs_through_the_isolated_ones_tunnel(labs, tmp_path, tiny_qwen35):
    devices = tmp_path / "devices"
    write_device(devices, "sbc", labs.shared_key, select={"kind": "sbc"}, count=3)
    profile = tmp_path / "p.yaml"
    profile.write_text(sleep_profile(tiny_qwen35, tests=("tg20",)))
    run = _cli("run", profile, "-d", "sbc", "--devices-dir", devices, "-o", tmp_path / "results", "--parallel", 3)
    out, err = run.communicate(timeout=240)
    assert run.returncode == 0, out + err
    run_dir = next((tmp_path / "results").iterdir())
    rows = run_rows(run_dir)
    assert sorted(r["device"] for r in rows) == ["sbc.1", "sbc.2", "sbc.3"]
    # three slots held at once: three places, both labs
    assert sorted((r["place"], r["lab"]) for r in rows) == [("pi-a", "one"), ("pi-b", "one"), ("pi-c", "two")]
    places = json.loads((run_dir / "run.json").read_text())["places"]
    assert sorted(p["place"] for p in places.values()) == ["pi-a", "pi-b", "pi-c"]
    # pi-c's lab is isolated: the controller reached it through labgrid's tunnel, a login on the lab host
    assert "Accepted publickey" in labs.gateway.log_tail(200)
    assert all(labs.acquired_by(place) is None for place in ("pi-a", "pi-b", "pi-c"))


def test_two_runs_on_one_place_queue_at_the_coordinator(labs, tmp_path, tiny_qwen35):
    devices = tmp_path / "devices"
    write_device(devices, "pi", labs.shared_key, place="pi-a")
    long, short = tmp_path / "long.yaml", tmp_path / "short.yaml"
    long.write_text(sleep_profile(tiny_qwen35, tests=("tg300",)))
    short.write_text(sleep_profile(tiny_qwen35, tests=("tg10",)))
    holder = _cli("run", long, "-d", "pi", "--devices-dir", devices, "-o", tmp_path / "a")
    wait_for(_cells_in(tmp_path / "a", "running"), timeout=120, what="the first run to measure")
    waiter = _cli("run", short, "-d", "pi", "--devices-dir", devices, "-o", tmp_path / "b")
    holder_out, holder_err = holder.communicate(timeout=240)
    assert holder.returncode == 0, holder_out + holder_err
    out, err = waiter.communicate(timeout=240)
    assert waiter.returncode == 0, out + err
    assert "waiting for place pi-a: 0 ahead, held by" in out
    first = read_jsonl(next((tmp_path / "a").glob("*/cells.jsonl")))
    second = read_jsonl(next((tmp_path / "b").glob("*/cells.jsonl")))
    assert first[-1]["state"] == "done" and second[-1]["state"] == "done"
    assert second[0]["started"] >= first[-1]["ended"]  # it measured only once the first had let go


def test_kill_9_leaves_the_place_held_and_resume_reuses_it_or_release_frees_it(labs, tmp_path, tiny_qwen35):
    devices = tmp_path / "devices"
    write_device(devices, "pi", labs.shared_key, place="pi-b")
    profile = tmp_path / "p.yaml"
    profile.write_text(sleep_profile(tiny_qwen35, tests=("tg10", "tg400", "tg20")))

    def killed_run(results: Path) -> Path:
        run = _cli("run", profile, "-d", "pi", "--devices-dir", devices, "-o", results)
        wait_for(_cells_in(results, "running", "tg400"), timeout=120, what="the long cell")
        run.kill()  # SIGKILL: nothing is released
        run.wait()
        assert labs.acquired_by("pi-b") is not None  # labgrid's locks never expire
        return next(results.iterdir())

    run_dir = killed_run(tmp_path / "first")
    resumed = _cli("run", "--resume", run_dir)
    out, err = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, out + err
    assert "pi: reusing place pi-b, still acquired by the stopped run" in out
    assert [r["status"] for r in run_rows(run_dir)] == ["done"] * 3
    assert labs.acquired_by("pi-b") is None

    run_dir = killed_run(tmp_path / "second")
    released = _cli("devices", "release", "pi", "--devices-dir", devices)
    out, err = released.communicate(timeout=60)
    assert released.returncode == 0, out + err
    assert "released place pi-b (lab one)" in out
    assert labs.acquired_by("pi-b") is None
    resumed = _cli("run", "--resume", run_dir)
    out, err = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, out + err
    assert "reusing" not in out  # it was released: the resumed run queued for it like any other
    assert [r["status"] for r in run_rows(run_dir)] == ["done"] * 3


def test_a_coordinator_gone_mid_run_fails_the_cells_in_one_sentence_and_resume_finishes_them(labs, tmp_path,
                                                                                              tiny_qwen35):
    devices = tmp_path / "devices"
    write_device(devices, "pi", labs.shared_key, place="pi-c")
    profile = tmp_path / "p.yaml"
    profile.write_text(sleep_profile(tiny_qwen35, tests=("tg10", "tg300", "tg20")))
    results = tmp_path / "results"
    run = _cli("run", profile, "-d", "pi", "--devices-dir", devices, "-o", results)
    wait_for(_cells_in(results, "running", "tg300"), timeout=120, what="the long cell")
    labs.coordinator.kill()
    out, err = run.communicate(timeout=240)
    assert run.returncode == 1, out + err
    assert "Traceback" not in out + err
    assert "the labgrid coordinator at" in out and "went away mid-run" in out
    run_dir = next(results.iterdir())
    assert [r["status"] for r in run_rows(run_dir)] == ["done", "done", "failed"]

    labs.start()  # the coordinator again, on its port, and its exporters (it forgets every acquisition)
    resumed = _cli("run", "--resume", run_dir)
    out, err = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, out + err
    assert [r["status"] for r in run_rows(run_dir)] == ["done"] * 3


class _Http1(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's name)
        self.send_response(426)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_coordinator_of_another_protocol_is_one_sentence(tmp_path, labgrid_tools):
    """labgrid before 25.0 served crossbar (HTTP/1.1 WebSocket) where 26 speaks gRPC."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Http1)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    devices = tmp_path / "devices"
    write_device(devices, "old", tmp_path / "key", place="pi-a", coordinator=f"127.0.0.1:{server.server_port}")
    try:
        release = _cli("devices", "release", "old", "--devices-dir", devices)
        out, err = release.communicate(timeout=60)
    finally:
        server.shutdown()
    assert release.returncode != 0
    assert "Traceback" not in out + err
    assert "client and coordinator versions must match" in out + err


def test_without_labgrid_a_labgrid_device_names_the_extra(tmp_path):
    devices = tmp_path / "devices"
    write_device(devices, "pi", tmp_path / "key", place="pi-a", coordinator="127.0.0.1:1")
    # labgrid made unimportable, as on a controller installed without the extra
    code = ("import sys; sys.modules['labgrid'] = None; from edgebench.cli import main; "
            f"sys.exit(main(['devices', 'release', 'pi', '--devices-dir', {str(devices)!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "pip install 'edgebench[labs]'" in proc.stdout + proc.stderr


def test_devices_trust_reads_a_places_key_through_its_labs_tunnel(labs, tmp_path, private_known_hosts):
    devices = tmp_path / "devices"
    write_device(devices, "pi", labs.shared_key, place="pi-c")
    private_known_hosts.unlink()  # the fixture trusted every place; forget them
    fingerprint = labs.labs["two"].devices["pi-c"].host_key_fingerprint
    trust = _cli("devices", "trust", "pi", "--devices-dir", devices, "--fingerprint", fingerprint)
    out, err = trust.communicate(timeout=60)
    assert trust.returncode == 0, out + err
    assert "trusted: recorded" in out
    server = labs.labs["two"].devices["pi-c"]
    assert f"[{server.host}]:{server.port}" in private_known_hosts.read_text()
    assert labs.acquired_by("pi-c") is None  # reading a key takes no place


@pytest.mark.parametrize("settings, line, key, message", [
    ("", 2, "transport", "transport labgrid needs `place: NAME` or `select: {tag: value, ...}`"),
    ("place: pi-a\nselect: {kind: sbc}\n", 2, "transport", "either `place: NAME` or `select:"),
    ("place: pi-a\ncount: 2\n", 4, "count", "`count` is for `select:` devices"),
    ("select: {Kind: sbc}\n", 3, "select.Kind", "a labgrid tag name is a lowercase letter"),
    ("select: {kind: [a]}\n", 3, "select.kind", "expected one word, got a list"),
    ("select: {kind: sbc}\ncount: 0\n", 4, "count", "must be between 1 and 4096"),
    ("place: pi-a\nhost: pi.local\n", 4, "host", "'host' is only used with `transport: ssh`"),
])
def test_a_labgrid_profile_is_checked_with_file_line_and_key(settings, line, key, message):
    with pytest.raises(ConfigError) as caught:
        parse_device("name: lab\ntransport: labgrid\n" + settings, file="lab.yaml")
    assert f"lab.yaml:{line}: {key}: " in str(caught.value) and message in str(caught.value)


def test_a_select_device_is_count_devices_of_a_fleet(tmp_path):
    write_device(tmp_path, "sbc", tmp_path / "key", select={"kind": "sbc", "soc": "bcm2712"}, count=3)
    fleet = select_devices(["sbc"], tmp_path)
    assert [d.name for d in fleet] == ["sbc.1", "sbc.2", "sbc.3"]
    assert {d.count for d in fleet} == {1} and dict(fleet[0].select) == {"kind": "sbc", "soc": "bcm2712"}
    # run.json stores each slot; resume reads it back the same
    stored = {k: v for k, v in fleet[1].to_dict().items() if k != "source"}
    assert replace(parse_device(json.dumps(stored), file="run.json"), source=fleet[1].source) == fleet[1]
