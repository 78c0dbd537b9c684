"""`install-engine -d`'s device half on this machine, with real llama.cpp binaries: an engine that starts is
installed and found by the runner; one that cannot start (a library missing, a build for another CPU) is
refused in one sentence and leaves the previous engine in place. The board's tests (test_board.py) run
the whole command against an Arm device."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edgebench.config.device import parse_device
from edgebench.errors import EdgebenchError
from edgebench.runner.engines import installed
from edgebench.toolchain.device_build import EngineBuild
from edgebench.transport.engine_push import EngineCannotRun, install_engine
from edgebench.transport.local import LocalTransport
from edgebench.transport.remote_store import install_runner
from edgebench.transport.runner_session import run_runner

pytestmark = pytest.mark.llama


def build_of(tmp_path: Path, llama_bench_binary: str, name: str, *, leave_out=(), features=("avx2",)) -> EngineBuild:
    """A build folder as device_build.py makes one, from this machine's own llama.cpp tools and libraries."""
    folder = tmp_path / name
    (folder / "bin").mkdir(parents=True)
    built = Path(llama_bench_binary).parent
    files = {}
    for path in sorted(built.iterdir()):
        keep = path.name.startswith(("llama-bench", "llama-perplexity", "llama-fit-params", "lib"))
        if keep and path.name not in leave_out and path.is_file():
            shutil.copy(path, folder / "bin" / path.name, follow_symlinks=True)
            files[path.name] = "-"
    manifest = {"key": name, "llama_cpp_python": None, "triple": "x86_64-linux-gnu", "files": files,
                "cmake_flags": ["-DBUILD_SHARED_LIBS=ON", "-DGGML_NATIVE=OFF", "-DGGML_AVX2=ON"],
                "target": {"arch": "x86_64", "os": "linux", "libc": "glibc", "libc_version": None,
                           "features": list(features)}}
    (folder / "build.json").write_text(json.dumps(manifest))
    return EngineBuild(folder, name, files, manifest)


@pytest.fixture
def device(tmp_path):
    transport = LocalTransport(parse_device(f"name: box\ntransport: local\nworkdir: {tmp_path / 'device'}\n"))
    yield transport
    transport.close()


def capabilities(transport) -> dict:
    return run_runner(transport, install_runner(transport), "capabilities", {}, 120, lambda event: None)["info"]


def test_an_installed_engine_is_the_runners_llama_bench(tmp_path, device, llama_bench_binary):
    done = install_engine(device, build_of(tmp_path, llama_bench_binary, "good"))
    assert Path(done.path).parent == tmp_path / "device" / "engines" and Path(done.path).name.startswith("good-")
    assert (tmp_path / "device" / "engine").resolve() == Path(done.path)
    assert not done.bindings and "not the llama.cpp that llama-cpp-python pins" in done.build["in_process_unavailable"]
    assert capabilities(device)["engines"]["llama-bench"] == "ok"  # no binary configured: the installed one


def test_a_commits_build_is_installed_beside_the_engine_and_only_a_job_naming_that_commit_runs_it(tmp_path, device,
                                                                                                   llama_bench_binary):
    current = install_engine(device, build_of(tmp_path, llama_bench_binary, "current"))
    commit = "51beffa3a88ee6253c736f05fd99e13b2e91a891"
    done = install_engine(device, build_of(tmp_path, llama_bench_binary, "at-commit"),
                          link=installed.commit_link(commit))
    engines = tmp_path / "device" / "engines"
    assert (tmp_path / "device" / "engine").resolve() == Path(current.path)  # not switched
    assert (engines / f"commit-{commit}").resolve() == Path(done.path)
    found = capabilities(device)["engines"]
    assert found["llama-bench"] == "ok"
    from edgebench.runner.engines.llama_bench_engine import LlamaBenchEngine

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(installed.HOME_ENV, str(tmp_path / "device" / "engine"))
        assert LlamaBenchEngine.binary_for({"ref": commit}) == str(Path(done.path) / "bin" / "llama-bench")
        assert LlamaBenchEngine.binary_for({}) == str(Path(current.path) / "bin" / "llama-bench")
        assert "no llama-bench of llama.cpp 0123abcd is installed" in LlamaBenchEngine.missing({"ref": "0123abcd"})


def test_a_build_for_another_machine_is_refused_and_the_previous_engine_stays(tmp_path, device, llama_bench_binary):
    from test_device_build import BOARD, need_cross_tools

    from edgebench.toolchain.device_build import build_engine

    need_cross_tools()
    install_engine(device, build_of(tmp_path, llama_bench_binary, "good"))
    board = build_engine(BOARD, log=lambda text: None)  # the Arm board's build (cached; test_device_build.py)
    with pytest.raises(EngineCannotRun) as refused:
        install_engine(device, board)
    message = str(refused.value)
    assert "the engine built for aarch64-linux-gnu does not start there" in message and "previous engine" in message
    assert (tmp_path / "device" / "engine").resolve().name.startswith("good-")
    assert not list((tmp_path / "device" / "engines").glob(f"{board.key}*"))
    assert not list((tmp_path / "device" / "engines").glob(".*partial"))


def test_a_build_for_features_the_cpu_lacks_is_refused_by_both_engines_before_it_runs(tmp_path, device,
                                                                                        llama_bench_binary):
    install_engine(device, build_of(tmp_path, llama_bench_binary, "arm", features=("asimddp", "i8mm")))
    engines = capabilities(device)["engines"]
    assert "built for CPU features this CPU lacks (asimddp, i8mm)" in engines["llama-bench"]


def test_the_runner_finds_no_engine_where_none_was_installed(tmp_path, monkeypatch):
    monkeypatch.setenv(installed.HOME_ENV, str(tmp_path / "nothing"))
    assert installed.home() is None and installed.tool("llama-bench") is None and installed.build_fields() == {}


def test_a_glibc_older_than_the_build_needs_is_one_sentence_with_both_versions():
    from edgebench.toolchain.libc_check import check_libc
    from edgebench.toolchain.target import BuildTarget

    old = BuildTarget(arch="aarch64", os="linux", libc="glibc", libc_version="2.31", features=())
    with pytest.raises(EdgebenchError, match=r"glibc 2\.31\) is older than the glibc 2\.34 this build needs"):
        check_libc(old, {"glibc_needed": "2.34"})
    check_libc(old, {"glibc_needed": "2.17"})  # older is fine
