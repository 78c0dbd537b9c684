#!/usr/bin/env python3
"""Fleet orchestration cost: the same small profile on 1, 4 and 16 simulated devices.

    python tests/perf/fleet.py [--sizes 1,4,16] [--cells 4] [--cell-s 4]

Each simulated device is its own OpenSSH sshd on loopback (tests/sshd_server.py),
reached over SSH like a real one: host-key check, device lock, runner install,
probe, model push, then the cells, all devices in parallel (--parallel N). Cells
use the `sleep` test engine, which takes a known time without using the CPU, so
the figures measure the controller rather than this 2-core machine's arithmetic.

The devices log in as a plain user (`--user`, created when running as root) with the
system python3, like a Raspberry Pi's `pi`: root's shell start-up here (pyenv in
~/.bashrc, ~0.25 CPU-s per SSH command) would otherwise be charged to every command
of every simulated device, all on the same 2 cores.

Prints, per fleet size: wall time, efficiency wall(1)/wall(N), the controller's CPU
seconds (this process, all threads) per device-cell, and the whole machine's CPU
seconds (controller + every simulated device), which shows when the 2 cores, not the
controller, are what limits a large simulated fleet.
Goals: wall(16) <= 1.25 x wall(1); controller CPU <= 0.05 s per device-cell.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from common import REPO

sys.path.insert(0, str(REPO / "tests"))

from sshd_server import SshServer  # noqa: E402

from edgebench.config import parse_device, parse_profile  # noqa: E402
from edgebench.models.synth.build import cached_synthetic  # noqa: E402
from edgebench.models.synth.spec import parse_synth_spec  # noqa: E402
from edgebench.sweep.execute import run_cells  # noqa: E402
from edgebench.transport.trust import presented_key, record_presented  # noqa: E402


def device_for(server: SshServer, name: str, python: str):
    return parse_device(f"name: {name}\ntransport: ssh\nhost: {server.host}\nport: {server.port}\n"
                        f"user: {server.user}\nidentity: {server.client_key}\nworkdir: {server.device_dir}\n"
                        f"python: {python}\n", file=f"{name}.yaml")


def machine_cpu_s() -> float:
    """Busy CPU seconds of the whole machine so far (/proc/stat: everything but idle and iowait)."""
    fields = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def profile_text(model: Path, cells: int, cell_s: float) -> str:
    # `cells` tests of tg100, tg101, ...; 2 repetitions each, at a speed that makes a cell cell_s long
    tests = ", ".join(f"tg{100 + i}" for i in range(cells))
    return (f"name: fleet-perf\nmodels: ['{model}']\ntests: [{tests}]\nrepetitions: 2\nwarmup: 0\n"
            f"engine: {{name: sleep, simulate_ts: {2 * 100 / cell_s}}}\ntelemetry: {{interval_s: 0.5}}\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,4,16", help="fleet sizes, comma-separated")
    parser.add_argument("--cells", type=int, default=4, help="cells per device")
    parser.add_argument("--cell-s", type=float, default=4.0, help="seconds each cell takes on the device")
    parser.add_argument("--user", default="edgeuser" if os.geteuid() == 0 else None,
                        help="login user of the simulated devices (default: edgeuser when root, else you)")
    parser.add_argument("--python", default="/usr/bin/python3", help="the devices' interpreter")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="edgebench-fleet-"))
    os.environ["EDGEBENCH_KNOWN_HOSTS"] = str(work / "known_hosts")
    model = Path(cached_synthetic(parse_synth_spec("tiny-qwen35@Q8_0")))
    profile = parse_profile(profile_text(model, args.cells, args.cell_s), file=str(work / "fleet.yaml"))
    work.chmod(0o755)  # the devices' login user reaches its directory through this one
    servers = [SshServer(work / f"sshd-{i}", user=args.user).start() for i in range(max(sizes))]
    try:
        devices = [device_for(server, f"sim{i:02d}", args.python) for i, server in enumerate(servers)]
        for device in devices:
            record_presented(presented_key(device), replace=False)
        print(f"{args.cells} cells per device, each {args.cell_s:g} s on the device (sleep engine); "
              f"{os.cpu_count()} cores")
        print(f"{'devices':>7} {'cells':>5} {'wall s':>7} {'efficiency':>10} {'ctrl CPU s':>10} "
              f"{'CPU s/cell':>10} {'machine CPU s':>13} {'failed':>6}")
        base = None
        for size in sizes:
            cpu0, machine0, wall0 = time.process_time(), machine_cpu_s(), time.monotonic()
            outcome = run_cells(profile, devices[:size], work / "results", parallel=size)
            wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
            machine = machine_cpu_s() - machine0
            cells = len(outcome.rows)
            base = base or wall
            print(f"{size:>7} {cells:>5} {wall:>7.2f} {base / wall:>10.2f} {cpu:>10.2f} {cpu / cells:>10.3f} "
                  f"{machine:>13.2f} {len(outcome.failures):>6}")
        print(f"goals: wall({sizes[-1]}) <= 1.25 x wall({sizes[0]}); controller CPU <= 0.05 s per device-cell")
    finally:
        for server in servers:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
