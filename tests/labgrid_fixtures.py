"""pytest plugin: labgrid labs on loopback, as labgrid's own tests/conftest.py starts them.

A real `labgrid-coordinator --listen 127.0.0.1:0`, two real `labgrid-exporter`s as two labs (the
second `--isolated`: its devices are reached through labgrid's `ssh <lab host> -W` tunnel), real
sshd "devices" behind each as NetworkService resources, and places created with tags over the
coordinator's own API. The isolated lab's host is this machine under the name the exporter
publishes (getfqdn()); the system ssh that labgrid's tunnel runs finds it through an ssh wrapper
put first on PATH, whose config names the lab host's sshd, its key and its known_hosts: what a
user's ~/.ssh/config does for a real lab host.

On CI a missing labgrid fails the tests that need it (missing_parts.py); elsewhere they skip.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from missing_parts import missing
from sshd_server import SshServer, wait_for

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")

LISTENING = re.compile(rb"listening on ([\d.]+:\d+)")
_LABS = pytest.StashKey["Labs"]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # a failing lab test is mostly explained by the coordinator's or an exporter's side
    outcome = yield
    report = outcome.get_result()
    if report.failed and _LABS in item.stash:
        report.sections.append(("labgrid logs", item.stash[_LABS].logs()))


def _tool(name: str) -> str | None:
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.is_file() else shutil.which(name)


@pytest.fixture(scope="session")
def labgrid_tools() -> tuple[str, str]:
    try:
        import labgrid  # noqa: F401
    except ImportError:
        missing("labgrid (pip install 'edgebench[labs]')")
    tools = _tool("labgrid-coordinator"), _tool("labgrid-exporter")
    if None in tools:
        missing("labgrid-coordinator and labgrid-exporter (pip install 'edgebench[labs]')")
    return tools


def _terminate(proc: subprocess.Popen | None) -> None:
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class CoordinatorProcess:
    """labgrid-coordinator in a directory of its own (it writes places.yaml and resources.yaml there)."""

    def __init__(self, binary: str, workdir: Path):
        self.binary, self.workdir = binary, workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.address: str | None = None
        self.proc: subprocess.Popen | None = None

    def start(self) -> CoordinatorProcess:
        listen = self.address or "127.0.0.1:0"  # a restart keeps its port: clients and exporters know it
        log = open(self.workdir / "coordinator.log", "ab")
        self.proc = subprocess.Popen([self.binary, "--listen", listen], cwd=self.workdir, stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        start = (self.workdir / "coordinator.log").stat().st_size if self.address else 0

        def listening():
            if self.proc.poll() is not None:
                raise RuntimeError(f"labgrid-coordinator exited: {self.log_tail()}")
            found = LISTENING.findall((self.workdir / "coordinator.log").read_bytes()[start:])
            return found and found[-1].decode()
        self.address = wait_for(listening, timeout=60, what="labgrid-coordinator to listen")
        return self

    def stop(self) -> None:
        _terminate(self.proc)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, n: int = 40) -> str:
        path = self.workdir / "coordinator.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:]) if path.exists() else ""


@dataclass
class Lab:
    """One lab host: an exporter publishing a NetworkService per sshd device."""

    name: str
    isolated: bool
    devices: dict[str, SshServer] = field(default_factory=dict)  # group (= place) name -> its sshd
    proc: subprocess.Popen | None = None
    config: Path | None = None

    def write_config(self, directory: Path) -> None:
        lines = []
        for group, server in self.devices.items():
            lines += [f"{group}:", "  NetworkService:", f"    address: {server.host}", f"    port: {server.port}",
                      f"    username: {server.user}"]
        self.config = directory / f"exporter-{self.name}.yaml"
        self.config.write_text("\n".join(lines) + "\n")

    def start(self, binary: str, coordinator: str, log_dir: Path) -> None:
        argv = [binary, "--coordinator", coordinator, "--name", self.name]
        if self.isolated:
            argv.append("--isolated")
        log = open(log_dir / f"exporter-{self.name}.log", "ab")
        self.proc = subprocess.Popen([*argv, str(self.config)], stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()

    def stop(self) -> None:
        _terminate(self.proc)


class Labs:
    """A coordinator, its labs and places: what the tests drive."""

    def __init__(self, tools, base: Path, sshd_binary: str, gateway: SshServer, shared_key: Path):
        self.coordinator_bin, self.exporter_bin = tools
        self.base, self.sshd_binary, self.gateway, self.shared_key = base, sshd_binary, gateway, shared_key
        self.coordinator = CoordinatorProcess(self.coordinator_bin, base / "coordinator")
        self.labs: dict[str, Lab] = {}
        self.places: dict[str, tuple[str, dict]] = {}  # name -> (exporter, tags)

    @property
    def address(self) -> str:
        return self.coordinator.address

    def add_lab(self, name: str, places: list[str], isolated: bool = False) -> Lab:
        lab = self.labs[name] = Lab(name, isolated)
        for place in places:
            server = SshServer(self.base / f"sshd-{place}", sshd_path=self.sshd_binary, own_home=True)
            # one key logs in everywhere: a `select:` profile names one identity for all its places
            server.authorized_keys_file.write_text(self.shared_key.with_suffix(".pub").read_text())
            lab.devices[place] = server.start()
        lab.write_config(self.base)
        return lab

    def servers(self) -> list[SshServer]:
        return [s for lab in self.labs.values() for s in lab.devices.values()]

    def start(self) -> None:
        self.coordinator.start()
        self.start_exporters()
        # a coordinator killed before it saved places.yaml comes back without them
        known = self._client().places()
        for name, (exporter, tags) in self.places.items():
            if name not in known:
                self.add_place(name, exporter, **tags)

    def start_exporters(self) -> None:
        for lab in self.labs.values():
            lab.stop()
            lab.start(self.exporter_bin, self.address, self.base)
        wanted = {(lab.name, group) for lab in self.labs.values() for group in lab.devices}

        def published():
            if wanted <= set(self._resources()):
                return True
            time.sleep(0.5)  # each look is a client session of its own
            return False
        wait_for(published, timeout=60, what="the exporters' resources at the coordinator")

    def _client(self):
        # the process's one session: gRPC shares a connection between channels to one address, and the
        # coordinator refuses a second client stream from the same peer
        from edgebench.transport.labgrid_place import coordinator
        return coordinator(self.address)

    def _resources(self) -> list[tuple[str, str]]:
        client = self._client()
        client.places()
        return [(lab, group) for lab, groups in client.session.resources.items() for group in groups
                if groups[group]]

    def add_place(self, name: str, exporter: str, **tags: str) -> None:
        """A place matching the lab's `name` group's NetworkService, with tags (as `labgrid-client
        -p NAME create; add-match LAB/NAME/NetworkService; set-tags ...` makes it)."""
        self.places[name] = (exporter, tags)
        client = self._client()
        pb2 = client.pb2
        client.rpc("AddPlace", pb2.AddPlaceRequest(name=name), "adding a place")
        match = pb2.AddPlaceMatchRequest(placename=name, pattern=f"{exporter}/{name}/NetworkService")
        client.rpc("AddPlaceMatch", match, "adding a match")
        client.rpc("SetPlaceTags", pb2.SetPlaceTagsRequest(placename=name, tags=tags), "tagging")

    def acquired_by(self, name: str) -> str | None:
        return self._client().places()[name].acquired

    def stop(self) -> None:
        for lab in self.labs.values():
            lab.stop()
        self.coordinator.stop()
        for server in self.servers():
            server.stop()

    def logs(self) -> str:
        parts = [f"--- coordinator ---\n{self.coordinator.log_tail()}"]
        for lab in self.labs.values():
            path = self.base / f"exporter-{lab.name}.log"
            if path.exists():
                parts.append(f"--- exporter {lab.name} ---\n" + "\n".join(path.read_text().splitlines()[-20:]))
        return "\n".join(parts)


def _ssh_wrapper(directory: Path, gateway: SshServer) -> Path:
    """`ssh` that reads a config naming the isolated lab's host (this machine's fqdn) as the gateway sshd."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "ssh_config"
    config.write_text(f"Host {socket.getfqdn()}\n  HostName {gateway.host}\n  Port {gateway.port}\n"
                      f"  User {gateway.user}\n  IdentityFile {gateway.client_key}\n  IdentitiesOnly yes\n"
                      f"  UserKnownHostsFile {gateway.known_hosts_file()}\n  GlobalKnownHostsFile /dev/null\n"
                      f"  BatchMode yes\n")
    wrapper = directory / "ssh"
    # a later -F (edgebench's own `-F /dev/null`) wins over this one
    wrapper.write_text(f'#!/bin/sh\nexec {shutil.which("ssh")} -F "{config}" "$@"\n')
    wrapper.chmod(0o755)
    return directory


@pytest.fixture
def labs(labgrid_tools, sshd_binary, tmp_path, monkeypatch, private_known_hosts, request):
    """Two labs on one coordinator: `one` (direct) with places pi-a and pi-b, `two` (isolated) with
    place pi-c; every place tagged kind=sbc and lab=<lab>. Device host keys are trusted (recorded in
    the test's known_hosts), as `devices trust` would. LG_COORDINATOR names the coordinator."""
    from edgebench.transport import hostkeys
    from edgebench.transport.labgrid_place import _COORDINATORS, _HELD
    from edgebench.transport.sshconn import fetch_host_key

    base = tmp_path / "labs"
    base.mkdir()
    gateway = SshServer(base / "gateway", sshd_path=sshd_binary).start()
    shared_key = gateway.client_key
    monkeypatch.setenv("PATH", f"{_ssh_wrapper(base / 'bin', gateway)}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("LG_USERNAME", "edgebench-test")
    setup = Labs(labgrid_tools, base, sshd_binary, gateway, shared_key)
    setup.add_lab("one", ["pi-a", "pi-b"])
    setup.add_lab("two", ["pi-c"], isolated=True)
    request.node.stash[_LABS] = setup
    try:
        setup.start()
        for lab in setup.labs.values():
            for place in lab.devices:
                setup.add_place(place, lab.name, kind="sbc", lab=lab.name)
        for server in setup.servers():
            hostkeys.record(server.host, server.port, fetch_host_key(server.host, server.port))
        monkeypatch.setenv("LG_COORDINATOR", setup.address)
        yield setup
    finally:
        for coord in list(_COORDINATORS.values()):
            coord.close()
        _COORDINATORS.clear()
        _HELD.clear()
        setup.stop()
        gateway.stop()
