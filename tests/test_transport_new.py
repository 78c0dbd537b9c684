"""A new transport is its module and one line in the registry.

The test copies the edgebench package, adds a toy transport (this machine, with the runner started
under `nice`, and a `niceness` setting the device profile must give) and names it in TRANSPORTS, then
runs the copy's CLI end to end: the device file sets the new key, the config checks it with file, line
and key, a run goes through the toy transport to the real runner, and `devices list` shows its address.
The copy differs from this tree by the module and the registry line, so nothing else was edited.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from package_copy import REPO, copy_with, edgebench

from edgebench.transport import TRANSPORTS

NICE_TRANSPORT = '''"""This machine, with the runner started under nice (a test toy)."""

from edgebench.transport.declaration import TransportDeclaration, TransportSetting
from edgebench.transport.local import LocalTransport

DECLARATION = TransportDeclaration(
    "nice", "this machine, at a lower priority",
    settings=(TransportSetting("niceness", int, None, "nice's increment", between=(1, 19)),),
    needs_one_of=("niceness",), needs="`niceness`", address=("niceness",))


class NiceTransport(LocalTransport):
    name = "nice"

    def start(self, argv):
        return super().start(["nice", "-n", str(self.device.niceness), *argv])


TRANSPORT = NiceTransport
'''
NEW_MODULE = Path("edgebench/transport/nice.py")
REGISTRY = Path("edgebench/transport/__init__.py")
SSH_LINE = '    "ssh": "edgebench.transport.ssh",\n'


@pytest.fixture(scope="module")
def with_nice(tmp_path_factory) -> Path:
    """A copy of the edgebench package with the nice module added and registered, nothing else changed."""
    return copy_with(tmp_path_factory.mktemp("edgebench-with-nice"), {NEW_MODULE: NICE_TRANSPORT},
                     {REGISTRY: (SSH_LINE, SSH_LINE + '    "nice": "edgebench.transport.nice",\n')})


def workshop(tmp_path: Path, settings: str) -> Path:
    (tmp_path / "model.bin").write_bytes(b"the sleep engine does not read it\n" * 8)
    (tmp_path / "devices").mkdir()
    (tmp_path / "devices/calm.yaml").write_text(
        f"name: calm\nworkdir: {json.dumps(str(tmp_path / 'device'))}\n{settings}")
    (tmp_path / "p.yaml").write_text(
        "models: [model.bin]\ntests: [tg8]\nrepetitions: 2\nwarmup: 0\nengine: {name: sleep, simulate_ts: 40}\n")
    return tmp_path


def test_a_new_transport_runs_a_cell_with_its_setting(with_nice, tmp_path):
    work = workshop(tmp_path, "transport: nice\nniceness: 7\n")
    proc = edgebench(with_nice, "run", "p.yaml", "-d", "calm", "-o", "results", cwd=work)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run,) = (work / "results").iterdir()
    device = json.loads((run / "run.json").read_text())["devices"]["calm"]
    assert (device["transport"], device["niceness"]) == ("nice", 7)
    shown = edgebench(with_nice, "show", run, "--format", "json", cwd=work)
    assert [row["status"] for row in json.loads(shown.stdout)] == ["done"]

    listed = edgebench(with_nice, "devices", "list", cwd=work)
    assert listed.returncode == 0, listed.stderr
    assert "| calm | nice |  |  | 7 |" in listed.stdout


@pytest.mark.parametrize("settings, line, key, message", [
    ("transport: nice\nniceness: 40\n", 4, "niceness", "must be between 1 and 19, got 40"),
    ("transport: nice\n", 3, "transport", "transport nice needs `niceness`"),
    ("niceness: 3\n", 3, "niceness", "'niceness' is only used with `transport: nice`, "
                                     "but this device's transport is 'local'"),
    ("transport: nice\nniceness: 3\nhost: pi\n", 5, "host", "'host' is only used with `transport: ssh`, "
                                                     "but this device's transport is 'nice'"),
])
def test_its_settings_are_checked_with_file_line_and_key(with_nice, tmp_path, settings, line, key, message):
    work = workshop(tmp_path, settings)
    proc = edgebench(with_nice, "run", "p.yaml", "-d", "calm", "-o", "results", cwd=work)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert f"calm.yaml:{line}: {key}: {message}" in proc.stderr
    assert "Traceback" not in proc.stderr and not (work / "results").exists()


def test_without_the_module_the_transport_does_not_exist(tmp_path):
    # the same device files against this tree: the transport and its key come from the new module
    work = workshop(tmp_path, "transport: nice\nniceness: 7\n")
    proc = edgebench(REPO, "run", "p.yaml", "-d", "calm", "-o", "results", cwd=work)
    assert proc.returncode == 3
    assert "calm.yaml:4: niceness: unknown key 'niceness'" in proc.stderr
    (work / "devices/calm.yaml").write_text("name: calm\ntransport: nice\n")
    proc = edgebench(REPO, "run", "p.yaml", "-d", "calm", "-o", "results", cwd=work)
    assert f"calm.yaml:2: transport: must be one of {', '.join(TRANSPORTS)}; got 'nice'" in proc.stderr
