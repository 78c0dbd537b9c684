"""`devices check` tests the device's engine before a long run: a short pp and tg on a few-MB
synthetic model through the real runner, and a clear failure when the engine cannot run there."""

from __future__ import annotations

import json

from edgebench.cli import main


def device_file(tmp_path, extra: str = "") -> None:
    (tmp_path / "devices").mkdir(exist_ok=True)
    (tmp_path / "devices" / "box.yaml").write_text(
        f"name: box\ntransport: local\nworkdir: {tmp_path / 'work'}\n{extra}")


def check(tmp_path, *extra) -> int:
    return main(["devices", "check", "box", "--devices-dir", str(tmp_path / "devices"), *extra])


def test_a_working_engine_passes_its_self_test(tmp_path, llama_cpp, capsys):
    device_file(tmp_path)
    assert check(tmp_path, "--json") == 0
    result = json.loads(capsys.readouterr().out)["self_test"]
    assert list(result) == ["llama.cpp"]
    assert result["llama.cpp"]["ok"] is True and result["llama.cpp"]["pp_ts"] > 0 and result["llama.cpp"]["tg_ts"] > 0
    assert result["llama.cpp"]["system_info"].startswith("CPU : ")
    assert check(tmp_path) == 0
    out = capsys.readouterr().out
    assert "self-test llama.cpp" in out and "ok: pp64 " in out


def test_an_engine_that_dies_on_the_device_fails_the_check_with_the_reason(tmp_path, llama_cpp, capsys):
    tool = tmp_path / "llama-bench"
    tool.write_text("#!/bin/sh\nkill -ILL $$\n")  # a build whose CPU instructions this machine cannot run
    tool.chmod(0o755)
    device_file(tmp_path, f"llama_bench: {tool}\n")
    assert check(tmp_path, "--json") == 1
    result = json.loads(capsys.readouterr().out)["self_test"]
    assert result["llama.cpp"]["ok"] is True
    failed = result["llama-bench"]
    assert failed["ok"] is False and failed["test"] == "pp64"
    assert "illegal instruction in the engine (SIGILL)" in failed["error"]
    assert check(tmp_path) == 1
    assert "FAILED in pp64: llama-bench died from signal 4: illegal instruction" in capsys.readouterr().out


def test_the_self_test_can_be_left_out(tmp_path, capsys):
    device_file(tmp_path)
    assert check(tmp_path, "--json", "--no-self-test") == 0
    assert "self_test" not in json.loads(capsys.readouterr().out)


def _path_without_llama_bench(tmp_path) -> str:
    """PATH with any llama-bench hidden, as on a device that has none."""
    import os
    import shutil

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kept = [d for d in os.environ["PATH"].split(os.pathsep) if d and not shutil.which("llama-bench", path=d)]
    return os.pathsep.join([str(bin_dir), *kept])


def test_check_reports_llama_bench_missing_when_no_binary_exists(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", _path_without_llama_bench(tmp_path))
    device_file(tmp_path)  # no llama_bench: in the profile
    assert check(tmp_path, "--json", "--no-self-test") == 0
    engines = json.loads(capsys.readouterr().out)["runner"]["engines"]
    assert engines["llama-bench"].startswith("no llama-bench binary: none is configured (llama_bench in the "
                                             "device profile")
    assert check(tmp_path, "--no-self-test") == 0
    assert "llama-bench=no llama-bench binary" in capsys.readouterr().out

    # a configured path that is not there is named; one that is there is ok
    device_file(tmp_path, f"llama_bench: {tmp_path / 'gone' / 'llama-bench'}\n")
    assert check(tmp_path, "--json", "--no-self-test") == 0
    engines = json.loads(capsys.readouterr().out)["runner"]["engines"]
    assert engines["llama-bench"] == f"llama-bench binary {tmp_path / 'gone' / 'llama-bench'} is not an executable file"
    tool = tmp_path / "bin" / "llama-bench"
    tool.write_text("#!/bin/sh\nexit 0\n")
    tool.chmod(0o755)
    device_file(tmp_path, f"llama_bench: {tool}\n")
    assert check(tmp_path, "--json", "--no-self-test") == 0
    assert json.loads(capsys.readouterr().out)["runner"]["engines"]["llama-bench"] == "ok"


def test_check_shows_the_configured_python_not_the_one_on_path(tmp_path, capsys):
    import sys

    configured = tmp_path / "device-python" / "python3"
    configured.parent.mkdir()
    configured.symlink_to(sys.executable)  # an interpreter PATH does not lead to, like Termux's
    device_file(tmp_path, f"python: {configured}\n")
    assert check(tmp_path, "--json", "--no-self-test") == 0
    python = json.loads(capsys.readouterr().out)["facts"]["python"]
    assert python["path"] == str(configured)
    assert python["version"] == ".".join(map(str, sys.version_info[:3]))
    assert check(tmp_path, "--no-self-test") == 0
    assert f"path={configured}" in capsys.readouterr().out


def _python_without_engines(tmp_path) -> str:
    """A device's Python with no engine library (no llama-cpp-python, no onnxruntime): a venv of its own."""
    import subprocess
    import sys

    venv = tmp_path / "bare-python"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    return str(venv / "bin" / "python")


def test_a_device_that_can_run_no_engine_fails_the_check(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", _path_without_llama_bench(tmp_path))
    device_file(tmp_path, f"python: {_python_without_engines(tmp_path)}\n")
    assert check(tmp_path) == 1
    out = capsys.readouterr().out
    assert "FAILED: no engine can run on this device" in out and "no llama.cpp engine on this device" not in out
    assert check(tmp_path, "--json") == 1
    assert json.loads(capsys.readouterr().out)["self_test"] == {}
    assert check(tmp_path, "--no-self-test") == 0  # only probing: what it lacks is shown, not judged
    capsys.readouterr()


def test_the_build_line_keeps_the_markdown_table_whole(tmp_path, llama_cpp, capsys):
    device_file(tmp_path)
    assert check(tmp_path) == 0  # piped (captured): a markdown table
    (build,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| llama.cpp build |")]
    assert build.count(" | ") == 1 and "\\|" in build, build  # two cells: every `|` of the value escaped
