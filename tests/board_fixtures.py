"""pytest plugin: the emulated Arm board (tests/arm_board.py), booted once per session.

Tests that use it are marked `board`. Its image is built once (about 15 minutes cold, then cached by
its recipe) and each session boots it (a minute or two). On CI (CI=true) a missing part fails the
test; elsewhere it skips, like the rest of the suite (tests/missing_parts.py).

    arm_board       the running Board (session scope): port, identity, ssh(), fingerprint
    board_device    a devices directory holding a profile for it, its host key trusted through the
                    real `edgebench devices trust --fingerprint` (per test: trust is per test's state)
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import arm_board as boards
import pytest
from missing_parts import missing


def pytest_configure(config):
    config.addinivalue_line("markers", "board: runs on the emulated Arm board (tests/arm_board.py)")


@pytest.fixture(scope="session")
def arm_board_session(tmp_path_factory) -> Iterator[boards.Board]:
    packages = boards.missing_tools()
    if packages:
        missing(f"the emulated Arm board's tools (apt-get install {' '.join(packages)})")
    if os.geteuid() != 0 and not (boards.image_dir() / "board.img").exists():
        missing("root, to build the emulated Arm board's image (debootstrap)")
    board = boards.Board(tmp_path_factory.mktemp("board"))
    try:
        board.start(log=lambda text: print(text, file=sys.stderr))
    except boards.BoardError as exc:
        pytest.fail(f"the emulated Arm board did not start: {exc}")
    yield board
    board.stop()


@pytest.fixture
def arm_board(arm_board_session) -> boards.Board:
    if arm_board_session.process.poll() is not None:
        pytest.fail(f"the emulated Arm board is down (qemu exited {arm_board_session.process.returncode}); "
                    f"its console: {arm_board_session.console_log}")
    return arm_board_session


@pytest.fixture
def board_device(arm_board, tmp_path, monkeypatch) -> Path:
    """A devices directory with `board.yaml`, its host key trusted; returns the directory."""
    devices = tmp_path / "devices"
    devices.mkdir()
    (devices / "board.yaml").write_text(arm_board.device_yaml("board"))
    monkeypatch.setenv("EDGEBENCH_KNOWN_HOSTS", str(tmp_path / "edgebench_known_hosts"))
    done = subprocess.run([sys.executable, "-m", "edgebench", "devices", "trust", "board", "--devices-dir",
                           str(devices), "--fingerprint", arm_board.fingerprint],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return devices
