"""A real cross-build of llama.cpp's tools for the emulated Arm board (issue 25): what lands in bin/, the
manifest, the cache, and what a failing build says. The first run builds (minutes on two cores); later runs
find the build in the edgebench cache."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import time
from dataclasses import asdict
from pathlib import Path

import pytest
from missing_parts import missing
from test_engine_target import BOARD_ARCH, BOARD_FEATURES, debian_arm

from edgebench.errors import EdgebenchError
from edgebench.toolchain import device_build
from edgebench.toolchain.device_build import BASE_SYSTEM, TOOLS, build_engine, engines_root
from edgebench.toolchain.elf import read_elf
from edgebench.toolchain.source_identity import identify
from edgebench.toolchain.target import target_from_probe

BOARD = target_from_probe(debian_arm(BOARD_FEATURES))


def need_cross_tools() -> None:
    for tool in ("cmake", "readelf", "aarch64-linux-gnu-gcc", "aarch64-linux-gnu-g++"):
        if shutil.which(tool) is None:
            missing(f"{tool} (apt-get install cmake binutils gcc-aarch64-linux-gnu g++-aarch64-linux-gnu)")


@pytest.fixture(scope="module")
def board_build():
    need_cross_tools()
    said: list[str] = []
    return build_engine(BOARD, log=said.append), said


def test_the_board_build_holds_aarch64_tools_that_find_their_libraries_beside_them(board_build):
    built, _ = board_build
    names = set(os.listdir(built.bin))
    assert set(TOOLS) <= names
    # the board has no OpenMP runtime (arm-board.md): the build carries the cross compiler's
    assert "libgomp.so.1" in names
    assert {"libllama.so", "libggml.so", "libggml-base.so", "libggml-cpu.so"} <= {_unversioned(n) for n in names}
    for name in sorted(names):
        info = read_elf(built.bin / name)
        assert info.machine == "AArch64", name
        if name in TOOLS or name.startswith(("libllama", "libggml", "libmtmd")):
            assert info.runpath == "$ORIGIN", name
        for needed in info.needed:
            assert needed in names or BASE_SYSTEM["linux"].fullmatch(needed), f"{name} needs {needed}"
    assert all(not (built.bin / n).is_symlink() for n in names)


def test_the_board_builds_llama_bench_runs_from_a_copy_under_qemu(board_build, tmp_path):
    built, _ = board_build
    qemu = shutil.which("qemu-aarch64-static")
    if qemu is None:
        missing("qemu-aarch64-static (apt-get install qemu-user-static)")
    elsewhere = shutil.copytree(built.bin, tmp_path / "copied")
    # only the C library comes from the sysroot (-L); llama.cpp's libraries and libgomp from beside it
    done = subprocess.run([qemu, "-L", "/usr/aarch64-linux-gnu", str(elsewhere / "llama-bench"), "--help"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout + done.stderr


def test_the_board_builds_manifest(board_build):
    built, _ = board_build
    manifest = built.manifest
    assert built.directory == engines_root() / built.key
    assert manifest == device_build.load_build(built.directory).manifest
    assert manifest["key"] == built.key
    assert manifest["source"]["description"] == "llama.cpp vendored in llama-cpp-python 0.3.36"
    assert manifest["llama_cpp_python"] == "0.3.36"
    # what llama.cpp's cmake/build-info.cmake records: the sdist has no .git, so "unknown" and 0, unless a
    # git repository encloses the unpacked source (then its HEAD and commit count)
    assert (manifest["build_commit"], manifest["build_number"]) == _git_build_info(Path(manifest["source"]["path"]))
    assert "-DGGML_NATIVE=OFF" in manifest["cmake_flags"] and BOARD_ARCH in manifest["cmake_flags"]
    assert "-DBUILD_SHARED_LIBS=ON" in manifest["cmake_flags"] and "-DLLAMA_CURL=OFF" in manifest["cmake_flags"]
    assert manifest["target"] == {**asdict(BOARD), "features": list(BOARD.features)}  # as JSON keeps it
    assert manifest["triple"] == "aarch64-linux-gnu"
    assert manifest["machine"] == ["AArch64"]
    assert manifest["compiler"] == "Debian's aarch64-linux-gnu cross gcc"
    assert manifest["compiler_version"].startswith("aarch64-linux-gnu-gcc")
    # Debian 12's cross sysroot is glibc 2.36: the build cannot need more, and surely needs some 2.x
    assert re.fullmatch(r"2\.\d+", manifest["glibc_needed"])
    assert (2, 17) <= tuple(map(int, manifest["glibc_needed"].split("."))) <= (2, 36)
    assert manifest["glibcxx_needed"].startswith("3.4.")
    assert built.files == manifest["files"]
    assert set(built.files) == set(os.listdir(built.bin))
    for name, digest in built.files.items():
        assert hashlib.sha256((built.bin / name).read_bytes()).hexdigest() == digest, name
    assert manifest["build_seconds"] > 0 and manifest["built_at"].endswith("+00:00")


def test_a_second_build_is_a_cache_hit_that_builds_nothing(board_build):
    built, _ = board_build
    log_file = engines_root() / "logs" / f"{built.key}.log"
    logged_at = log_file.stat().st_mtime_ns if log_file.exists() else None
    said: list[str] = []
    started = time.monotonic()
    again = build_engine(BOARD, log=said.append)
    assert time.monotonic() - started < 60  # hashing the source; a build takes minutes
    assert again == built
    assert said == [f"llama.cpp for {BOARD.describe()} is already built: {built.directory}"]
    assert (log_file.stat().st_mtime_ns if log_file.exists() else None) == logged_at


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def fake_source(folder: Path, cmake: str, files: dict[str, str] | None = None) -> Path:
    folder.mkdir()
    (folder / "CMakeLists.txt").write_text(cmake)
    for name, text in (files or {}).items():
        (folder / name).write_text(text)
    return folder


OPENMP_PROJECT = """\
cmake_minimum_required(VERSION 3.14)
project(openmp_tools C)
find_package(OpenMP REQUIRED)
set(CMAKE_RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)
set(CMAKE_LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)
add_library(work SHARED work.c)
set_target_properties(work PROPERTIES VERSION 0.1 SOVERSION 0)
target_link_libraries(work PRIVATE OpenMP::OpenMP_C)
foreach(tool llama-bench llama-perplexity llama-fit-params)
  add_executable(${tool} main.c)
  target_link_libraries(${tool} PRIVATE work)
endforeach()
"""
OPENMP_WORK = """int work(void) {
  int sum = 0;
#pragma omp parallel for reduction(+:sum)
  for (int i = 0; i < 8; i++) sum += i;
  return sum;
}
"""


def test_a_small_openmp_project_gets_its_runtime_and_runs_from_anywhere(tmp_path, private_cache):
    """The collection rules on a project that builds in seconds: a versioned library of its own, the
    cross compiler's libgomp (its path is in no CMakeCache.txt), $ORIGIN, then a run under qemu-user
    from another folder."""
    need_cross_tools()
    source = fake_source(tmp_path / "openmp", OPENMP_PROJECT,
                         {"work.c": OPENMP_WORK,
                          "main.c": "int work(void);\nint main(void) { return work() != 28; }\n"})
    built = build_engine(BOARD, source=source, log=lambda text: None)
    assert set(built.files) == {*TOOLS, "libwork.so.0", "libgomp.so.1"}
    assert read_elf(built.bin / "libwork.so.0").needed[0] == "libgomp.so.1"
    assert (built.manifest["llama_cpp_python"], built.manifest["build_commit"]) == (None, None)
    assert built.manifest["source"]["description"] == f"llama.cpp source {source}"
    elsewhere = shutil.copytree(built.bin, tmp_path / "elsewhere")
    qemu = shutil.which("qemu-aarch64-static")
    if qemu is None:
        missing("qemu-aarch64-static (apt-get install qemu-user-static)")
    # -L: the C library from the cross compiler's sysroot; libwork and libgomp from beside the binary
    done = subprocess.run([qemu, "-L", "/usr/aarch64-linux-gnu", str(elsewhere / "llama-bench")])
    assert done.returncode == 0


def test_a_compile_error_is_one_sentence_with_the_log_and_leaves_nothing_cached(tmp_path, private_cache):
    need_cross_tools()
    source = fake_source(tmp_path / "broken", "cmake_minimum_required(VERSION 3.14)\nproject(broken C)\n"
                         "add_executable(llama-bench bench.c)\nadd_executable(llama-perplexity ok.c)\n"
                         "add_executable(llama-fit-params ok.c)\n",
                         {"bench.c": "int main(void) { return undeclared_thing; }\n",
                          "ok.c": "int main(void) { return 0; }\n"})
    with pytest.raises(EdgebenchError) as raised:
        build_engine(BOARD, source=source, log=lambda text: None)
    message = str(raised.value)
    logs = list((private_cache / "device-engines" / "logs").iterdir())
    assert len(logs) == 1
    assert "\n" not in message
    assert re.fullmatch(r"compiling llama.cpp failed with: \S*bench\.c:1:\d+: error: 'undeclared_thing' undeclared "
                        rf".* \(the full log is {re.escape(str(logs[0]))}\)", message), message
    # nothing half-built: only the log is left
    assert sorted(os.listdir(private_cache / "device-engines")) == ["logs"]


def test_a_cmake_error_names_cmakes_reason(tmp_path, private_cache):
    need_cross_tools()
    source = fake_source(tmp_path / "refuses", "cmake_minimum_required(VERSION 3.14)\nproject(refuses C)\n"
                         'message(FATAL_ERROR "this is no llama.cpp")\n')
    with pytest.raises(EdgebenchError) as raised:
        build_engine(BOARD, source=source, log=lambda text: None)
    assert re.fullmatch(r"configuring llama.cpp failed with: CMake Error at CMakeLists.txt:3 \(message\): this is no "
                        r"llama.cpp \(the full log is .*/device-engines/logs/\w+\.log\)", str(raised.value))
    assert sorted(os.listdir(private_cache / "device-engines")) == ["logs"]


def test_a_folder_without_cmakelists_is_no_source(tmp_path, private_cache):
    need_cross_tools()
    with pytest.raises(EdgebenchError, match=r"^\S+/empty is not a llama.cpp source folder: it has no "
                                             r"CMakeLists.txt$"):
        build_engine(BOARD, source=tmp_path / "empty", log=lambda text: None)


def test_a_git_checkout_is_known_by_its_commit_and_its_uncommitted_changes(tmp_path):
    if shutil.which("git") is None:
        missing("git")
    source = fake_source(tmp_path / "checkout", "project(x C)\n", {"a.c": "int a;\n"})
    git = ["git", "-C", str(source), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    clean = identify(source)
    assert (clean.commit, clean.changed, clean.identity) == (commit, False, f"git {commit} clean")
    assert clean.description == f"llama.cpp checkout {source} at {commit[:12]}"
    (source / "a.c").write_text("int a = 1;\n")
    edited = identify(source)
    assert edited.changed and edited.identity != clean.identity
    assert edited.description.endswith("with uncommitted changes")
    (source / "b.c").write_text("int b;\n")
    assert identify(source).identity != edited.identity  # an untracked file counts too
    # the same files outside git are known by their content
    assert identify(source, use_git=False).identity.startswith("content ")


def _git_build_info(source: Path) -> tuple[str, int]:
    def git(*args: str) -> str | None:
        done = subprocess.run(["git", "-C", str(source), *args], capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else None
    commit, count = git("rev-parse", "--short", "HEAD"), git("rev-list", "--count", "HEAD")
    return commit or "unknown", int(count) if count else 0


def _unversioned(name: str) -> str:
    return re.sub(r"(\.so)(\.\d+)+$", r"\1", name)
