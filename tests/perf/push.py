#!/usr/bin/env python3
"""Model push speed: edgebench against OpenSSH scp, interleaved, to a loopback sshd.

    python tests/perf/push.py [--size-mib 1024] [--rounds 3]

Starts its own sshd (tests/sshd_server.py) with generated keys. Each round
pushes the same file into an empty store with edgebench (verified on the
device, renamed into place) and copies it with `scp` at its default cipher;
the table says which client carried edgebench's bytes (OpenSSH's `ssh`, or
paramiko where `ssh` cannot be used).
The file's sha256 is computed once beforehand, as `edgebench run` does when it
resolves a model (it names the model's place on the device). Also times a
re-push of the unchanged file. Goals: ratio >= 1.0; re-push <= 0.3 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, median

sys.path.insert(0, str(REPO / "tests"))

from sshd_server import SshServer  # noqa: E402

from edgebench.config import parse_device  # noqa: E402
from edgebench.file_hashes import sha256_file  # noqa: E402


def make_file(path: Path, size: int) -> Path:
    if not path.exists() or path.stat().st_size != size:
        with open(path, "wb") as f:
            for _ in range(size // (16 << 20)):
                f.write(os.urandom(16 << 20))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="edgebench-push-"))
    os.environ["EDGEBENCH_KNOWN_HOSTS"] = str(work / "known_hosts")
    source = make_file(Path(tempfile.gettempdir()) / f"edgebench-push-{args.size_mib}MiB.bin", args.size_mib << 20)
    size = source.stat().st_size
    start = time.monotonic()
    sha = sha256_file(source)
    hash_s = time.monotonic() - start

    from edgebench.transport.remote_store import install_runner, push_model
    from edgebench.transport.ssh import SshTransport
    from edgebench.transport.trust import presented_key, record_presented

    with SshServer(work / "sshd") as server:
        device = parse_device(
            f"name: loopback\ntransport: ssh\nhost: {server.host}\nport: {server.port}\nuser: {server.user}\n"
            f"identity: {server.client_key}\nworkdir: {server.device_dir}/eb\npython: {sys.executable}\n")
        record_presented(presented_key(device), replace=False)
        scp = ["scp", "-q", "-i", str(server.client_key), "-P", str(server.port), "-o", "BatchMode=yes",
               "-o", f"UserKnownHostsFile={server.known_hosts_file()}", "-o", "StrictHostKeyChecking=yes"]
        ours, theirs, routes = [], [], set()
        for round_no in range(args.rounds):
            for tool in (("edgebench", "scp") if round_no % 2 == 0 else ("scp", "edgebench")):
                shutil.rmtree(Path(server.device_dir) / "eb", ignore_errors=True)
                target = Path(server.device_dir) / "scp.bin"
                target.unlink(missing_ok=True)
                if tool == "edgebench":
                    with SshTransport(device) as transport:
                        runner = install_runner(transport)  # once per connection, as `run` does
                        t0 = time.monotonic()
                        result = push_model(transport, str(source), sha, runner=runner)
                        ours.append(size / (time.monotonic() - t0) / 1e6)
                        assert not result.skipped
                        routes.add(transport.bulk.last_route)
                        if transport.bulk.ssh_refused:
                            print(f"edgebench did not use ssh: {transport.bulk.ssh_refused}", flush=True)
                else:
                    t0 = time.monotonic()
                    subprocess.run(scp + [str(source), f"{server.user}@{server.host}:{target}"], check=True)
                    theirs.append(size / (time.monotonic() - t0) / 1e6)
            print(f"round {round_no + 1}: edgebench {ours[-1]:.0f} MB/s, scp {theirs[-1]:.0f} MB/s", flush=True)

        with SshTransport(device) as transport:
            push_model(transport, str(source), sha)
        t0 = time.monotonic()
        with SshTransport(device) as transport:
            runner = install_runner(transport)
            checked = time.monotonic()
            again = push_model(transport, str(source), sha, runner=runner)
            repush_s = time.monotonic() - checked
        with_connect_s = time.monotonic() - t0
        assert again.skipped

    a, b = median(ours), median(theirs)
    print(f"\n{size / 2**20:.0f} MiB file, loopback sshd, {args.rounds} interleaved rounds "
          f"(sha256 of the file beforehand: {hash_s:.2f} s, once per file)\n")
    print("| measure | value | goal |")
    print("|---|---:|---|")
    print(f"| edgebench push (via {'+'.join(sorted(routes))}) | {a:.0f} MB/s | |")
    print(f"| scp (default cipher) | {b:.0f} MB/s | |")
    print(f"| ratio | {a / b:.2f} | >= 1.0 {'met' if a / b >= 1 else 'MISSED'} |")
    print(f"| re-push unchanged | {repush_s:.3f} s | <= 0.3 s {'met' if repush_s <= 0.3 else 'MISSED'} |")
    print(f"| re-push unchanged, with connecting and the runner's check | {with_connect_s:.3f} s | |")
    return 0 if a / b >= 1 and repush_s <= 0.3 else 1


if __name__ == "__main__":
    raise SystemExit(main())
