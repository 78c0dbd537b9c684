"""`edgebench install-engine`: which flags build the engine, and where its wheel is cached."""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import require

from edgebench.cli import main
from edgebench.paths import cache_root
from edgebench.toolchain import build_tools
from edgebench.toolchain import llama_cpp_wheel as wheel

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def llama_cpp_sdist() -> Path:
    """llama-cpp-python's source package, where tests/perf/build_llama_bench.sh keeps it (fetched once)."""
    folder = cache_root() / f"llama.cpp-{wheel.LLAMA_CPP_PYTHON}" / "sdist"
    sdist = folder / f"llama_cpp_python-{wheel.LLAMA_CPP_PYTHON}.tar.gz"
    if not sdist.is_file():
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                        *build_tools.isolation_args(build_tools.missing()),
                        f"llama-cpp-python=={wheel.LLAMA_CPP_PYTHON}", "-d", str(folder)])
    require(sdist.is_file(), f"llama-cpp-python's sdist ({sdist})")
    return sdist


@pytest.fixture(scope="session")
def llama_cpp_src(llama_cpp_sdist, tmp_path_factory) -> Path:
    """Its source tree: build_llama_bench.sh's unpacked copy, else one unpacked here."""
    unpacked = llama_cpp_sdist.parent.parent / "src"
    if (unpacked / "CMakeLists.txt").is_file():
        return unpacked
    into = tmp_path_factory.mktemp("llama-cpp-python")
    with tarfile.open(llama_cpp_sdist) as archive:
        archive.extractall(into, filter="data")
    return into / f"llama_cpp_python-{wheel.LLAMA_CPP_PYTHON}"


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


def test_the_build_leaves_out_what_the_engine_does_not_load_and_keeps_the_users_flags_last(monkeypatch):
    monkeypatch.setenv("CMAKE_ARGS", "-DLLAVA_BUILD=ON")
    args = shlex.split(wheel.build_cmake_args(wheel.cmake_args()))
    assert args[0] == "-DLLAVA_BUILD=OFF" and args[-1] == "-DLLAVA_BUILD=ON"  # CMake keeps the last
    include = next(arg for arg in args if arg.startswith("-DCMAKE_PROJECT_llama.cpp_INCLUDE="))
    assert Path(include.split("=", 1)[1]) == wheel.ENGINE_ONLY_CMAKE and wheel.ENGINE_ONLY_CMAKE.is_file()


def test_a_wheel_built_before_the_engine_only_scope_is_not_reused(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGEBENCH_CACHE", str(tmp_path))
    flags = wheel.default_cmake_args("x86_64")
    # the key the cache used when every build had mtmd and common; llama-bench's build folder keeps it
    assert wheel.wheel_dir(flags=flags).name != f"llama-cpp-python-{wheel.LLAMA_CPP_PYTHON}-" \
                                                 f"{wheel.flags_key(wheel.LLAMA_CPP_PYTHON, flags)}"


def test_configured_with_the_engine_flags_llama_cpp_has_no_mtmd_common_tests_or_tools(llama_cpp_src, tmp_path):
    require(shutil.which("cmake") is not None, "CMake")
    build = tmp_path / "build"
    args = shlex.split(wheel.build_cmake_args(wheel.default_cmake_args()))
    done = subprocess.run(["cmake", "-S", str(llama_cpp_src), "-B", str(build), *args],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    vendored = build / "vendor" / "llama.cpp"
    assert (vendored / "src" / "CMakeFiles" / "llama.dir").is_dir()
    assert (vendored / "ggml" / "src" / "CMakeFiles" / "ggml-cpu.dir").is_dir()
    for left_out in ("common", "tools", "tests", "examples", "pocs"):
        assert not (vendored / left_out).exists(), left_out
    installs = " ".join(path.read_text() for path in build.rglob("cmake_install.cmake"))
    assert "libllama" in installs and "libmtmd" not in installs and "libllama-common" not in installs


@pytest.mark.parametrize("wanted, isolated", [([], False), (["cmake>=3.21"], True)])
def test_pip_builds_with_the_tools_here_only_when_none_lacks(tmp_path, wanted, isolated):
    argv, env = wheel.wheel_command(tmp_path, flags="-DGGML_NATIVE=OFF", wanted=wanted)
    assert argv[:4] == [sys.executable, "-m", "pip", "wheel"]
    assert argv[-3:] == [f"llama-cpp-python=={wheel.LLAMA_CPP_PYTHON}", "-w", str(tmp_path)]
    assert ("--no-build-isolation" not in argv) == isolated and "--no-deps" in argv
    assert env == {"CMAKE_ARGS": wheel.build_cmake_args("-DGGML_NATIVE=OFF")}


def _offline_env(tmp_path: Path, sdist: Path, **more: str) -> dict[str, str]:
    # pip as on a host without a package index: only the folder holding the sdist, no pip.conf
    return {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(sdist.parent),
            "EDGEBENCH_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(REPO), **more}


def test_offline_with_the_build_tools_installed_the_engine_builds_without_isolation(llama_cpp_sdist, tmp_path):
    require(not build_tools.missing(), "the build tools (pip install scikit-build-core cmake)")
    # LLAMA_BUILD=OFF: llama-cpp-python's CMake project compiles nothing, so the whole pip build is quick
    env = _offline_env(tmp_path, llama_cpp_sdist, CMAKE_ARGS="-DLLAMA_BUILD=OFF")
    shown = subprocess.run([sys.executable, "-m", "edgebench", "install-engine", "--print-command"],
                           capture_output=True, text=True, env=env, cwd=tmp_path)
    assert shown.returncode == 0 and len(shown.stdout.strip().splitlines()) == 1, shown.stderr
    assert "--no-build-isolation" in shlex.split(shown.stdout)
    built = subprocess.run(["bash", "-c", shown.stdout], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    assert list((tmp_path / "cache" / "wheels").glob("*.partial/llama_cpp_python-*.whl"))


def test_offline_without_the_build_tools_says_what_to_install(llama_cpp_sdist, tmp_path):
    require(importlib.util.find_spec("cmake") is None, "a Python without the cmake package (it is hidden by PATH)")
    bare = tmp_path / "bin"  # a PATH with this Python and no CMake
    bare.mkdir()
    (bare / "python").symlink_to(sys.executable)
    env = _offline_env(tmp_path, llama_cpp_sdist, PATH=str(bare))
    done = subprocess.run([sys.executable, "-m", "edgebench", "install-engine"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 3
    assert "Traceback" not in done.stderr and "No matching distribution found for scikit-build-core" in done.stderr
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith("error: pip wheel failed") and "(pip install " in error, done.stderr[-2000:]
    assert "'cmake>=3.21'" in error
    assert not list((tmp_path / "cache" / "wheels").glob("*/*.whl"))
