"""`edgebench install-engine`: which flags build the engine, and where its wheel is cached."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edgebench.cli import main
from edgebench.toolchain import llama_cpp_wheel as wheel

REPO = Path(__file__).resolve().parent.parent


def test_the_pinned_version_is_the_one_the_extra_installs():
    assert wheel.pinned_in((REPO / "pyproject.toml").read_text()) == wheel.LLAMA_CPP_PYTHON


@pytest.mark.parametrize("machine, flags", [
    ("x86_64", wheel.PORTABLE_X86), ("AMD64", wheel.PORTABLE_X86),
    ("aarch64", ""), ("arm64", ""),  # ARM probes each feature before using it: native stays
])
def test_x86_builds_are_portable_and_leave_amx_out(machine, flags):
    assert wheel.default_cmake_args(machine) == flags
    if flags:
        assert "-DGGML_NATIVE=OFF" in flags and "-DGGML_AMX_INT8=OFF" in flags


def test_the_users_flags_win_and_get_their_own_cached_wheel(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGEBENCH_CACHE", str(tmp_path))
    monkeypatch.delenv("CMAKE_ARGS", raising=False)
    default = wheel.wheel_dir()
    monkeypatch.setenv("CMAKE_ARGS", "-DGGML_CUDA=ON")
    assert wheel.cmake_args() == "-DGGML_CUDA=ON"
    cuda = wheel.wheel_dir()
    # pip's own cache would hand back the default build here: ours is keyed by the flags
    assert cuda != default and cuda.parent == default.parent == tmp_path / "wheels"
    assert cuda.name.startswith(f"llama-cpp-python-{wheel.LLAMA_CPP_PYTHON}-")


def test_print_flags_through_the_cli_and_the_module(monkeypatch, capsys):
    monkeypatch.setenv("CMAKE_ARGS", "-DGGML_NATIVE=ON")
    assert main(["install-engine", "--print-flags"]) == 0
    assert capsys.readouterr().out.strip() == "-DGGML_NATIVE=ON"
    done = subprocess.run([sys.executable, "-m", "edgebench.toolchain.llama_cpp_wheel", "--cmake-args"],
                          capture_output=True, text=True, env={"CMAKE_ARGS": "-DX=1", "PATH": "/usr/bin:/bin"},
                          cwd=REPO)
    assert done.returncode == 0 and done.stdout.strip() == "-DX=1", done.stderr
