"""A run that waits for another controller's device lock says so, also when its output is piped (CI),
where no live view shows the device's state."""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
import threading
import time

from edgebench.models.synth.shapes import PRESETS
from edgebench.models.synth.writer import write_gguf

OWNER = {"controller": "ci-7", "pid": 4121, "run_id": "20260101-nightly", "since": "2026-01-01T02:00:00+0000"}


def test_a_piped_run_says_whose_lock_it_waits_for(tmp_path):
    workdir = tmp_path / "device"
    workdir.mkdir()
    (tmp_path / "devices").mkdir()
    (tmp_path / "devices" / "box.yaml").write_text(f"name: box\ntransport: local\nworkdir: {workdir}\n")
    model = write_gguf(PRESETS["tiny-llama"], tmp_path / "m.gguf")  # F16: no engine needed to write it
    (tmp_path / "p.yaml").write_text(f"models: [{json.dumps(str(model))}]\ntests: [tg10]\nrepetitions: 1\n"
                                     f"warmup: 0\nengine: {{name: sleep, simulate_ts: 1000}}\n"
                                     f"telemetry: {{enabled: false}}\n")
    # another controller's lock, as its holder keeps it: an flock, with the owner's record in the file
    lock = open(workdir / "lock", "a+")
    lock.write(json.dumps(OWNER) + "\n")
    lock.flush()
    fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
    run = subprocess.Popen([sys.executable, "-m", "edgebench", "run", "p.yaml", "-d", "box", "-o", "results"],
                           cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(run.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while not any("waiting for the device lock" in line for line in lines) and run.poll() is None:
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.1)
    finally:
        fcntl.flock(lock.fileno(), fcntl.LOCK_UN)  # the other controller is done
        lock.close()
    assert run.wait(timeout=120) == 0, run.stderr.read()
    reader.join(timeout=10)
    (said,) = [line for line in lines if "waiting for the device lock" in line]
    assert said.startswith("box: waiting for the device lock (controller ci-7 pid 4121 (run 20260101-nightly, "
                           "since 2026-01-01T02:00:00+0000))"), said
