"""`install-engine -d DEVICE --on-device`: llama.cpp built on the device with its own cmake and compiler,
through a real sshd on loopback (this machine is the device: it has cmake, ninja and g++).

The real build keeps its device-side cache where a device user's would be (~/.cache/edgebench-device),
so only the first run on a machine pays the cold build (about 10 min on 2 cores); the failure paths build
a tiny fake llama.cpp (three tools and a shared libllama) in a cache of their own, so they take seconds.
The device's PATH is sshd's default one; a test changes it (and the device cache) through the device's
`python:`, a wrapper that sets them and runs this Python, as a Termux or venv interpreter would."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sshd_server import wait_for
from test_ssh import device_yaml, trust

from edgebench.cli.common import EXIT_ERROR, EXIT_INTERRUPTED
from edgebench.results.aggregate import run_rows

pytestmark = pytest.mark.usefixtures("private_known_hosts")
REPO = Path(__file__).resolve().parent.parent

FAKE_CMAKE = """cmake_minimum_required(VERSION 3.14)
project(fake_llama C CXX)
set(CMAKE_RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)
set(CMAKE_LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)
find_package(Git)
execute_process(COMMAND ${GIT_EXECUTABLE} rev-parse --short HEAD OUTPUT_VARIABLE COMMIT
                OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE FAILED)
if(FAILED)
    set(COMMIT unknown)
endif()
file(WRITE ${CMAKE_BINARY_DIR}/common/build-info.cpp
     "int LLAMA_BUILD_NUMBER = 1;\\nchar const *LLAMA_COMMIT = \\"${COMMIT}\\";\\n")
add_custom_command(OUTPUT slow.h COMMAND ${CMAKE_COMMAND} -E sleep ${SLOW}
                   COMMAND ${CMAKE_COMMAND} -E touch slow.h)
add_library(llama SHARED llama.cpp slow.h)
set_target_properties(llama PROPERTIES VERSION 0.0.1 SOVERSION 0)
foreach(tool llama-bench llama-perplexity llama-fit-params)
    add_executable(${tool} tool.cpp)
    target_link_libraries(${tool} llama)
endforeach()
"""


def fake_source(folder: Path, *, slow_s: int = 0, broken: bool = False) -> Path:
    """A llama.cpp in shape only, in a git checkout of its own: `slow_s` makes its build take that long."""
    folder.mkdir()
    (folder / "CMakeLists.txt").write_text(FAKE_CMAKE.replace("${SLOW}", str(slow_s)))
    (folder / "llama.cpp").write_text("int llama_answer() { return 42; }\n")
    tool = "int llama_answer();\nint main() { return llama_answer() == 42 ? 0 : 1; }\n"
    (folder / "tool.cpp").write_text(tool.replace("return", "retrun x") if broken else tool)
    for argv in (["init", "-q"], ["add", "."], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "fake"]):
        subprocess.run(["git", "-C", str(folder), *argv], check=True, capture_output=True)
    return folder


def device_python(tmp_path: Path, *, cache: Path | None = None, path: str | None = None) -> str:
    """The device's interpreter: this Python, with the device's build cache and PATH as given."""
    wrapper = tmp_path / "device-python"
    lines = ["#!/bin/sh"]
    if cache:
        lines.append(f"export XDG_CACHE_HOME='{cache}'")
    if path is not None:
        lines.append(f"export PATH='{path}'")
    wrapper.write_text("\n".join([*lines, f'exec {sys.executable} "$@"', ""]))
    wrapper.chmod(0o755)
    return str(wrapper)


def work_for(tmp_path: Path, sshd, python: str = sys.executable, own_cache: bool = True) -> tuple[Path, dict]:
    """A work folder with devices/box.yaml; `own_cache`: the controller's cache in it too (the real build
    keeps the user's, where the pinned source already is)."""
    trust(sshd)
    work = tmp_path / "work"
    (work / "devices").mkdir(parents=True)
    (work / "devices" / "box.yaml").write_text(device_yaml(sshd, python=python))
    # this checkout's edgebench, whatever the work folder is
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {"EDGEBENCH_STATE": str(work / "state"), "PYTHONPATH": path}
    return work, {**env, "EDGEBENCH_CACHE": str(work / "cache")} if own_cache else env


def edgebench(*args, cwd: Path, env: dict, timeout: float = 3600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgebench", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **env})


def installed_manifest(sshd) -> dict:
    return json.loads((sshd.device_dir / "engine" / "build.json").read_text())


# the first run on a machine is a cold build of llama.cpp (10 min on 2 idle cores, more when they are
# shared); every later run finds it in the device's cache
@pytest.mark.llama
@pytest.mark.timeout(3600)
def test_on_device_builds_installs_and_runs_llama_cpp_then_a_second_install_is_a_cache_hit(sshd, tmp_path):
    work, env = work_for(tmp_path, sshd, own_cache=False)
    started = time.monotonic()
    first = edgebench("install-engine", "-d", "box", "--on-device", cwd=work, env=env)
    cold_s = time.monotonic() - started
    assert first.returncode == 0, first.stdout + first.stderr
    assert "x86_64 Linux (glibc" in first.stdout and "-DGGML_NATIVE=OFF" in first.stdout + first.stderr or \
        "already built there" in first.stdout
    assert "engines: llama-bench and llama.cpp (in-process)" in first.stdout
    engine = (sshd.device_dir / "engine").resolve()
    assert engine.parent == sshd.device_dir / "engines"
    assert {"llama-bench", "llama-perplexity", "llama-fit-params", "libllama.so"} <= set(os.listdir(engine / "bin"))
    manifest = installed_manifest(sshd)
    assert manifest["built_on_device"] and manifest["compiler"] == "the device's own compiler"
    assert "-DGGML_NATIVE=OFF" in manifest["cmake_flags"] and "-DGGML_AMX_INT8=OFF" in manifest["cmake_flags"]
    assert manifest["triple"] == "x86_64-linux-gnu" and manifest["glibc_needed"]
    # what llama.cpp's CMake records on a checkout of the pinned source: the commit the controller's git read
    from test_device_build import _git_build_info
    assert (manifest["build_commit"], manifest["build_number"]) == _git_build_info(Path(manifest["source"]["path"]))
    assert manifest["in_process_unavailable"] is None and (engine / "python" / "llama_cpp" / "llama_cpp.py").is_file()

    profile = work / "profile.yaml"
    profile.write_text("models: ['synthetic:tiny-llama@Q4_K_M']\ntests: [pp16, tg4]\nrepetitions: 2\nwarmup: 0\n"
                       "engine: {name: llama-bench, threads: 1}\ntelemetry: {enabled: false}\n")
    ran = edgebench("run", profile, "-d", "box", "-o", work / "results", cwd=work, env=env, timeout=900)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    (run,) = [p for p in (work / "results").iterdir() if p.is_dir()]
    rows = run_rows(run)
    assert {(r["test"], r["status"]) for r in rows} == {("pp16", "done"), ("tg4", "done")}
    assert all(r["build_target"] == "x86_64-linux-gnu" and r["build_commit"] == manifest["build_commit"]
               for r in rows)

    started = time.monotonic()
    again = edgebench("install-engine", "-d", "box", "--on-device", cwd=work, env=env)
    warm_s = time.monotonic() - started
    assert again.returncode == 0, again.stdout + again.stderr
    assert "is already built there" in again.stdout and "llama.cpp source" not in again.stdout  # nothing sent
    assert (sshd.device_dir / "engine").resolve() == engine
    print(f"\non-device install: first {cold_s:.0f} s, second {warm_s:.1f} s")


def test_a_device_without_cmake_is_told_which_packages_to_install(sshd, tmp_path):
    tools = tmp_path / "device-bin"  # a compiler and make, but no cmake
    tools.mkdir()
    for name in ("c++", "g++", "cc", "gcc", "make", "sh"):
        if shutil.which(name):
            (tools / name).symlink_to(shutil.which(name))
    work, env = work_for(tmp_path, sshd, device_python(tmp_path, cache=tmp_path / "device-cache", path=str(tools)))
    done = edgebench("install-engine", "-d", "box", "--on-device", "--source", fake_source(tmp_path / "src"),
                     cwd=work, env=env)
    assert done.returncode == EXIT_ERROR, done.stdout + done.stderr
    error = done.stderr.strip()
    assert error.count("\n") == 0 and "Traceback" not in error
    assert "box has no cmake to build llama.cpp with: install it there (`sudo apt install cmake g++ make`" in error
    assert "`pkg install cmake clang make` in Termux" in error and "leave out --on-device" in error
    assert not (sshd.device_dir / "engine").exists()


def test_a_broken_source_names_the_device_log_and_its_error_and_fetches_the_log(sshd, tmp_path):
    work, env = work_for(tmp_path, sshd, device_python(tmp_path, cache=tmp_path / "device-cache"))
    cache = Path(env["EDGEBENCH_CACHE"])
    source = fake_source(tmp_path / "src", broken=True)
    done = edgebench("install-engine", "-d", "box", "--on-device", "--source", source, cwd=work, env=env)
    assert done.returncode == EXIT_ERROR, done.stdout + done.stderr
    error = " ".join(done.stderr.split())  # one sentence, however the terminal wrapped it
    assert "building llama.cpp on box failed while compiling with:" in error
    assert "tool.cpp" in error and "error:" in error
    logs = list((cache / "device-engines" / "logs").glob("*-on-box.log"))
    assert len(logs) == 1 and f"fetched to {logs[0]}" in error and "error:" in logs[0].read_text()
    remote_log = tmp_path / "device-cache" / "edgebench-device" / "engine-builds" / "logs"
    assert f"the log is {next(remote_log.iterdir())} on the device" in error
    assert not (sshd.device_dir / "engine").exists()
    # nothing half-built is left to be taken for a build
    assert not [p for p in (tmp_path / "device-cache" / "edgebench-device" / "engine-builds").iterdir()
                if p.name.startswith(".work-")]


def interrupted(work: Path, env: dict, source: Path, sshd, interrupt) -> tuple[subprocess.Popen, str, str]:
    """install-engine --on-device started, then `interrupt(controller)` once the build is at its slow step;
    its output, once every process of the build on the device has ended."""
    args = [sys.executable, "-m", "edgebench", "install-engine", "-d", "box", "--on-device", "--source", str(source)]
    controller = subprocess.Popen(args, cwd=work, env={**os.environ, **env}, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: [pid for pid in sshd.children(include_sshd=False) if _cmdline(pid)[1:3] == ["-E", "sleep"]],
                 timeout=180, what="the slow build step")
        device_side = sshd.children(include_sshd=False)
        interrupt(controller)
        out, err = controller.communicate(timeout=120)
    finally:
        if controller.poll() is None:
            controller.kill()
    # the build's own end: no compiler job keeps running without a controller
    wait_for(lambda: not [pid for pid in device_side if _cmdline(pid)], timeout=30,
             what="the device's build processes to stop")
    return controller, out, " ".join(err.split())


def test_ctrl_c_or_a_dropped_connection_stops_the_build_and_the_next_call_goes_on(sshd, tmp_path):
    work, env = work_for(tmp_path, sshd, device_python(tmp_path, cache=tmp_path / "device-cache"))
    source = fake_source(tmp_path / "src", slow_s=15)
    controller, out, err = interrupted(work, env, source, sshd, lambda process: process.send_signal(signal.SIGINT))
    assert controller.returncode == EXIT_INTERRUPTED, out + err
    assert "the build stopped; run the same command again to go on from where it stopped" in out, out + err
    # the network drops; the device's processes live on, and end themselves
    controller, out, err = interrupted(work, env, source, sshd, lambda _: sshd.kill_connections(keep_commands=True))
    assert controller.returncode == EXIT_ERROR, out + err
    assert "the connection dropped during the build" in err and "run the same command again" in err, out + err
    again = edgebench("install-engine", "-d", "box", "--on-device", "--source", source, cwd=work, env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    manifest = installed_manifest(sshd)
    assert manifest["resumed"] is True
    commit = subprocess.run(["git", "-C", str(source), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    assert (manifest["build_commit"], manifest["build_number"]) == (commit, 1)  # git's answers, from the controller
    assert manifest["llama_cpp_python"] is None and "in-process engine not offered" in again.stdout
    # the install links the device's cached build; what it adds to build.json stays out of the cache
    (cached,) = (tmp_path / "device-cache" / "edgebench-device" / "engine-builds").glob("*/build.json")
    assert "in_process_unavailable" not in json.loads(cached.read_text())


def _cmdline(pid: int) -> list[str]:
    try:
        return [a for a in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0") if a]
    except OSError:
        return []


def test_the_missing_tools_sentence_names_each_and_the_packages_for_the_device():
    from edgebench.transport.device_compile import _missing_sentence

    both = _missing_sentence("pi", ["cmake", "C++ compiler"], termux=False)
    assert both.startswith("pi has no cmake and no C++ compiler to build llama.cpp with: install them there")
    assert "sudo apt install cmake g++ make" in both
    phone = _missing_sentence("pixel8", ["make or ninja"], termux=True)
    assert "install it there (`pkg install cmake clang make` in Termux)" in phone and "apt" not in phone
