#!/usr/bin/env python3
"""256 devices in one fleet run: the controller's CPU and memory, and the wall time against one device's.

    python tests/perf/scale.py [--devices 256] [--cells 2] [--cell-s 8] [--via ssh,labgrid]

One sshd per simulated device does not reach 256 on 2 cores. The stand-in: a few sshd servers, each
listening on 16 ports (sshd's MAX_LISTEN_SOCKS), each port a device with its own HOME (sshd's
`Match LocalPort` + `SetEnv`), so its own `~/.cache/edgebench`: its own runner install, device lock,
model store and probe, reached by its own SSH connection with its own host-key entry, through the
real runner protocol. The same
devices run twice: as plain SSH devices (`host:`/`port:` profiles), and as labgrid places (a real
coordinator and two exporters publishing one NetworkService per port, 256 places tagged kind=sim,
and one `select: {kind: sim}` profile with `count: 256`). Cells use the `sleep` engine, so the
devices' work is waiting, not arithmetic.

Prints, per route: wall time for N devices and for 1 (the same cells), the controller's CPU seconds
(this process, all threads) per cell, its peak RSS, when the last device started its first cell
(connect, lock, probe, push: the set-up), and the whole machine's busy CPU seconds (controller, sshd,
every device's runner), which shows when the 2 cores rather than the controller are the limit.
Goals: controller <= 0.05 CPU-s per cell and <= 1 GB RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO

sys.path.insert(0, str(REPO / "tests"))
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")

from sshd_server import SshServer, free_port, wait_for  # noqa: E402

from edgebench.config import parse_device, parse_profile  # noqa: E402
from edgebench.config.transports import fleet_slots  # noqa: E402
from edgebench.models.synth.build import cached_synthetic  # noqa: E402
from edgebench.models.synth.spec import parse_synth_spec  # noqa: E402
from edgebench.results.store import read_cell_records  # noqa: E402
from edgebench.sweep.execute import run_cells  # noqa: E402

# sshd listens on at most 16 sockets (MAX_LISTEN_SOCKS)
PORTS_PER_SSHD = 16


class ManyPortServer(SshServer):
    """One sshd, `ports` devices: each port logs in with a HOME of its own."""

    def __init__(self, base_dir: Path, ports: int, **kwargs):
        self.extra_ports = [free_port() for _ in range(ports - 1)]
        super().__init__(base_dir, **kwargs)

    @property
    def ports(self) -> list[int]:
        return [self.port, *self.extra_ports]

    def home(self, port: int) -> Path:
        return self.base_dir / f"home-{port}"

    def _write_config(self) -> None:
        super()._write_config()
        lines = [f"Port {port}" for port in self.extra_ports]
        for port in [self._port, *self.extra_ports]:
            self.home(port).mkdir(exist_ok=True)
            lines += [f"Match LocalPort {port}", f'  SetEnv "HOME={self.home(port)}"']
        with open(self.config_file, "a") as f:
            f.write("\n".join(lines) + "\n")


def machine_cpu_s() -> float:
    fields = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def profile_text(model: Path, cells: int, cell_s: float) -> str:
    tests = ", ".join(f"tg{100 + i}" for i in range(cells))
    return (f"name: scale\nmodels: ['{model}']\ntests: [{tests}]\nrepetitions: 2\nwarmup: 0\n"
            f"engine: {{name: sleep, simulate_ts: {2 * 100 / cell_s}}}\ntelemetry: {{interval_s: 1}}\n"
            f"timeout_s: 1800\n")


def ssh_devices(servers, python: str, count: int):
    devices = []
    for server in servers:
        for port in server.ports:
            name = f"sim{len(devices):03d}"
            devices.append(parse_device(f"name: {name}\ntransport: ssh\nhost: {server.host}\nport: {port}\n"
                                        f"user: {server.user}\nidentity: {server.client_key}\n"
                                        f"python: {python}\n", file=f"{name}.yaml"))
    return devices[:count]


def trust_all(servers, path: Path) -> None:
    """What `devices trust` records for each device, written at once."""
    path.write_text("".join(f"[{s.host}]:{port} {s.host_public_key}\n" for s in servers for port in s.ports))


class Lab:
    """A coordinator and two exporters publishing every port as a place tagged kind=sim."""

    def __init__(self, work: Path, servers):
        bindir = Path(sys.executable).parent
        self.coordinator_bin = shutil.which("labgrid-coordinator", path=f"{bindir}:{os.environ['PATH']}")
        self.exporter_bin = shutil.which("labgrid-exporter", path=f"{bindir}:{os.environ['PATH']}")
        if not (self.coordinator_bin and self.exporter_bin):
            raise SystemExit("labgrid is not installed: pip install 'edgebench[labs]'")
        self.work, self.servers, self.procs = work, servers, []

    def start(self, count: int) -> str:
        log = open(self.work / "coordinator.log", "wb")
        self.procs.append(subprocess.Popen([self.coordinator_bin, "--listen", "127.0.0.1:0"], cwd=self.work,
                                           stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

        def listening():
            text = (self.work / "coordinator.log").read_text()
            return "listening on " in text and text.split("listening on ")[1].split()[0]
        address = wait_for(listening, timeout=120, what="the coordinator")
        places = [(s, port) for s in self.servers for port in s.ports][:count]
        halves = {"lab1": places[: len(places) // 2], "lab2": places[len(places) // 2:]}
        for lab, members in halves.items():
            config = self.work / f"{lab}.yaml"
            config.write_text("".join(f"p{port}:\n  NetworkService:\n    address: {s.host}\n    port: {port}\n"
                                      f"    username: {s.user}\n" for s, port in members))
            out = open(self.work / f"{lab}.log", "wb")
            self.procs.append(subprocess.Popen([self.exporter_bin, "--coordinator", address, "--name", lab,
                                                str(config)], stdout=out, stderr=subprocess.STDOUT,
                                               start_new_session=True))
        from edgebench.transport.labgrid_place import coordinator
        client = coordinator(address)
        wait_for(lambda: sum(len(g) for g in client.session.resources.values()) >= len(places) or
                 time.sleep(0.5), timeout=300, what="the exporters' resources")
        pb2 = client.pb2
        for lab, members in halves.items():
            for _server, port in members:
                name = f"p{port}"
                client.rpc("AddPlace", pb2.AddPlaceRequest(name=name), "add")
                client.rpc("AddPlaceMatch", pb2.AddPlaceMatchRequest(placename=name,
                                                                      pattern=f"{lab}/{name}/NetworkService"), "match")
                client.rpc("SetPlaceTags", pb2.SetPlaceTagsRequest(placename=name, tags={"kind": "sim"}), "tag")
        return address

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
            proc.wait()


def setup_span(run_dir: Path) -> float:
    """Seconds from the run's first cell start to the last device's first cell start."""
    starts: dict[str, float] = {}
    for record in read_cell_records(run_dir):
        started = getattr(record, "started", None)
        facts = getattr(record, "facts", None)
        if started and facts is not None:
            t = _epoch(started)
            starts[facts.device] = min(starts.get(facts.device, t), t)
    return max(starts.values()) - min(starts.values()) if starts else float("nan")


def _epoch(stamp: str) -> float:
    from datetime import datetime
    return datetime.fromisoformat(stamp).timestamp()


def measure(profile, devices, results: Path, parallel: int) -> dict:
    cpu0, machine0, wall0 = time.process_time(), machine_cpu_s(), time.monotonic()
    outcome = run_cells(profile, devices, results, parallel=parallel)
    wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
    cells = len(outcome.rows)
    return {"devices": len(devices), "cells": cells, "wall_s": wall, "ctrl_cpu_s": cpu,
            "cpu_per_cell": cpu / max(cells, 1), "machine_cpu_s": machine_cpu_s() - machine0,
            "failed": len(outcome.failures), "setup_span_s": setup_span(outcome.store.path),
            "first_failure": outcome.failures[0][1] if outcome.failures else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=256)
    parser.add_argument("--cells", type=int, default=2, help="cells per device")
    parser.add_argument("--cell-s", type=float, default=8.0, help="seconds each cell takes on the device")
    parser.add_argument("--via", default="ssh,labgrid", help="routes to measure: ssh, labgrid or both")
    parser.add_argument("--python", default="/usr/bin/python3" if Path("/usr/bin/python3").exists() else "python3",
                        help="the devices' interpreter")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="edgebench-scale-"))
    os.environ["EDGEBENCH_KNOWN_HOSTS"] = str(work / "known_hosts")
    os.environ["EDGEBENCH_STATE"] = str(work / "state")
    model = Path(cached_synthetic(parse_synth_spec("tiny-qwen35@Q8_0")))
    profile = parse_profile(profile_text(model, args.cells, args.cell_s), file=str(work / "scale.yaml"))
    n_servers = -(-args.devices // PORTS_PER_SSHD)
    per_server = -(-args.devices // n_servers)
    servers = [ManyPortServer(work / f"sshd-{i}", per_server).start() for i in range(n_servers)]
    trust_all(servers, work / "known_hosts")
    lab = None
    figures = []
    try:
        print(f"{args.devices} devices on {n_servers} sshd, {args.cells} cells each of {args.cell_s:g} s "
              f"(sleep engine); {os.cpu_count()} cores", flush=True)
        routes = args.via.split(",")
        for route in routes:
            if route == "ssh":
                fleet = ssh_devices(servers, args.python, args.devices)
                one = fleet[:1]
            else:
                lab = Lab(work, servers)
                address = lab.start(args.devices)
                text = (f"name: sim\ntransport: labgrid\ncoordinator: {address}\nselect: {{kind: sim}}\n"
                        f"identity: {servers[0].client_key}\npython: {args.python}\n")
                for server in servers[1:]:  # one key logs in on every server
                    server.authorized_keys_file.write_text(servers[0].client_key.with_suffix(".pub").read_text())
                fleet = fleet_slots(parse_device(text + f"count: {args.devices}\n", file="sim.yaml"))
                one = [parse_device(text, file="sim.yaml")]
            base = measure(profile, one, work / f"results-{route}-1", 1)
            big = measure(profile, fleet, work / f"results-{route}-n", len(fleet))
            figures.append((route, base, big))
            print(json.dumps({"route": route, "one": base, "fleet": big}), flush=True)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"\n{'route':>8} {'devices':>7} {'cells':>5} {'wall s':>7} {'x one':>6} {'setup s':>7} "
              f"{'ctrl CPU s':>10} {'CPU s/cell':>10} {'machine CPU s':>13} {'failed':>6}")
        for route, base, big in figures:
            for row in (base, big):
                print(f"{route:>8} {row['devices']:>7} {row['cells']:>5} {row['wall_s']:>7.1f} "
                      f"{row['wall_s'] / base['wall_s']:>6.2f} {row['setup_span_s']:>7.1f} {row['ctrl_cpu_s']:>10.1f} "
                      f"{row['cpu_per_cell']:>10.3f} {row['machine_cpu_s']:>13.1f} {row['failed']:>6}")
        print(f"controller peak RSS: {peak_mb:.0f} MB (goal <= 1024); goal: <= 0.05 controller CPU-s per cell")
    finally:
        if lab:
            lab.stop()
        for server in servers:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
