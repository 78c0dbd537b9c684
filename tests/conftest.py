"""Shared fixtures: real GGUF models written by edgebench itself, and the real tools the tests need.

On CI (CI=true) a missing part (llama-cpp-python, a llama-bench binary, sshd)
fails the test that needs it; elsewhere it skips with the reason.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest
from missing_parts import missing

REPO = Path(__file__).resolve().parent.parent

# Real OpenSSH servers for the SSH tests (tests/sshd_fixtures.py), real PostgreSQL servers, the
# emulated Arm board (tests/board_fixtures.py) and labgrid labs (tests/labgrid_fixtures.py).
pytest_plugins = ["sshd_fixtures", "postgres_fixtures", "board_fixtures", "labgrid_fixtures"]


def pytest_configure(config):
    # a suite started in the background (nohup, `cmd &` in a script) inherits SIGINT ignored, and so would
    # every controller a test starts (an ignored signal stays ignored across exec): the tests that press
    # Ctrl-C need it delivered. A handler, unlike SIG_IGN, is reset to the default in each child.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def private_state(tmp_path_factory, monkeypatch):
    """What a command keeps between commands (a device's last probe) stays with the test that made it."""
    monkeypatch.setenv("EDGEBENCH_STATE", str(tmp_path_factory.mktemp("state")))


def require(available: bool, what: str) -> None:
    if not available:
        missing(what)


def _require_llama_cpp() -> None:
    import importlib.util
    import sys
    # the engine, once loaded in this process, stands in a bare package of its own (no __spec__)
    found = "llama_cpp" in sys.modules or importlib.util.find_spec("llama_cpp") is not None
    require(found, "llama-cpp-python (edgebench install-engine)")


@pytest.fixture(scope="session")
def llama_cpp():
    _require_llama_cpp()


def pytest_runtest_setup(item):
    # a test marked `llama` needs the engine even when it takes none of the fixtures that check
    if item.get_closest_marker("llama"):
        _require_llama_cpp()


def _llama_cpp_root() -> Path | None:
    try:
        import importlib.metadata as metadata
        version = metadata.version("llama_cpp_python")
    except Exception:
        return None
    from edgebench.paths import cache_root
    return cache_root() / f"llama.cpp-{version}"


@pytest.fixture(scope="session")
def llama_bench_binary() -> str:
    candidates = [os.environ.get("EDGEBENCH_LLAMA_BENCH"), shutil.which("llama-bench")]
    root = _llama_cpp_root()
    if root:
        # only a build with the engine's own flags is a fair anchor (tests/perf/build_llama_bench.sh)
        from edgebench.toolchain.llama_cpp_wheel import cmake_args, flags_key
        candidates.append(str(root / f"build-{flags_key(root.name.split('-', 1)[1], cmake_args())}" / "bin"
                              / "llama-bench"))
    found = next((c for c in candidates if c and os.access(c, os.X_OK)), None)
    require(found is not None, "a llama-bench binary (tests/perf/build_llama_bench.sh builds one)")
    return found


def _beside_llama_bench(llama_bench_binary: str, tool: str) -> str:
    """llama.cpp's other tools, built with llama-bench from the same source and flags."""
    path = Path(llama_bench_binary).with_name(tool)
    require(os.access(path, os.X_OK), f"{tool} beside {llama_bench_binary} (tests/perf/build_llama_bench.sh builds it)")
    return str(path)


@pytest.fixture(scope="session")
def llama_fit_params_binary(llama_bench_binary) -> str:
    return _beside_llama_bench(llama_bench_binary, "llama-fit-params")


@pytest.fixture(scope="session")
def llama_perplexity_binary(llama_bench_binary) -> str:
    configured = os.environ.get("EDGEBENCH_LLAMA_PERPLEXITY")
    if configured:
        require(os.access(configured, os.X_OK), f"$EDGEBENCH_LLAMA_PERPLEXITY ({configured}) as an executable")
        return configured
    return _beside_llama_bench(llama_bench_binary, "llama-perplexity")


@pytest.fixture(scope="session")
def compare_llama_bench_script() -> Path:
    root = _llama_cpp_root()
    script = root / "src" / "vendor" / "llama.cpp" / "scripts" / "compare-llama-bench.py" if root else None
    require(script is not None and script.is_file(),
            "llama.cpp's compare-llama-bench.py (tests/perf/build_llama_bench.sh fetches it)")
    return script


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


def _synth(model_dir: Path, spec_text: str) -> Path:
    from edgebench.models.synth.build import build_synthetic
    from edgebench.models.synth.spec import parse_synth_spec
    spec = parse_synth_spec(spec_text)
    path = model_dir / spec.file_name()
    if not path.exists():
        build_synthetic(spec, path)
    return path


@pytest.fixture(scope="session")
def tiny_qwen35(llama_cpp, model_dir) -> Path:
    return _synth(model_dir, "tiny-qwen35@Q8_0")


@pytest.fixture(scope="session")
def tiny_llama(llama_cpp, model_dir) -> Path:
    return _synth(model_dir, "tiny-llama@Q8_0")


@pytest.fixture
def local_device_file(tmp_path) -> Path:
    """A local device whose workdir is private to the test."""
    path = tmp_path / "devices" / "testbox.yaml"
    path.parent.mkdir()
    path.write_text(f"name: testbox\ntransport: local\nclass: desktop\nworkdir: {tmp_path / 'work'}\n")
    return path


def assert_at(err, path: Path, line: int, key: str | None, *fragments: str) -> None:
    """A config error names file, line and key exactly as a user sees them, plus what went wrong."""
    where = f"{path}:{line}: {key}: " if key else f"{path}:{line}: "
    assert str(err).startswith(where), str(err)
    assert (err.file, err.line, err.key) == (str(path), line, key)
    for fragment in fragments:
        assert fragment in str(err), str(err)
