"""`edgebench init` and the examples that ship inside the package, so the quickstart works after a
plain `pip install`, from a folder that is not a clone."""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from edgebench import examples
from edgebench.config import load_device, load_profile

REPO = Path(__file__).resolve().parent.parent
# the device profiles the README's commands name (`-d rpi5`, `-d laptop`, ...)
EXAMPLE_DEVICES = ("devices/jetson-orin-nano.yaml", "devices/laptop.yaml", "devices/pixel8.yaml", "devices/rpi5.yaml")


def edgebench(*args, cwd, env=None):
    return subprocess.run([sys.executable, "-m", "edgebench", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=600, env={**os.environ, **(env or {})})


def test_init_writes_the_examples_into_an_empty_folder_and_they_parse(tmp_path):
    proc = edgebench("init", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == sorted(["devices/local.yaml", *EXAMPLE_DEVICES, "profiles/ci-smoke.yaml",
                              "profiles/onnx-sweep.yaml", "profiles/quickstart.yaml",
                              "profiles/qwen35-quant-sweep.yaml"])
    for name in written:
        assert f"wrote {name}" in proc.stdout
    for name in ("devices/local.yaml", *EXAMPLE_DEVICES):
        assert load_device(tmp_path / name).name == Path(name).stem
    for profile in (tmp_path / "profiles").iterdir():
        assert load_profile(profile).tests
    assert "next: edgebench run profiles/quickstart.yaml" in proc.stdout


def test_the_readmes_example_devices_work_after_init(tmp_path):
    assert edgebench("init", cwd=tmp_path).returncode == 0
    listed = edgebench("devices", "list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    for name in ("rpi5", "pixel8", "jetson", "laptop"):
        assert f"| {name}" in listed.stdout, listed.stdout
    # the README's plan example: a device named by its shipped profile, no device reached
    planned = edgebench("plan", "--like", "qwen3.5-4b", "--quant", "Q4_K_M", "-d", "rpi5", "-d", "laptop", cwd=tmp_path)
    assert planned.returncode == 0, planned.stderr
    assert "rpi5" in planned.stdout and "laptop" in planned.stdout


def test_init_says_how_to_make_the_onnx_sweeps_model(tmp_path):
    proc = edgebench("init", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    said = " ".join(proc.stdout.split())
    assert "profiles/onnx-sweep.yaml measures your own ONNX model: export it to models/model.onnx" in said
    assert "edgebench quantize models/model.onnx --int8 -o models/model.int8.onnx" in said


def test_init_keeps_what_is_there_unless_forced(tmp_path):
    assert edgebench("init", "work", cwd=tmp_path).returncode == 0
    mine = tmp_path / "work" / "profiles" / "quickstart.yaml"
    mine.write_text("# my own quickstart\n")
    again = edgebench("init", "work", cwd=tmp_path)
    assert again.returncode == 0 and mine.read_text() == "# my own quickstart\n"
    assert "kept work/profiles/quickstart.yaml: it already exists (--force overwrites it)" in again.stdout
    assert "0 file(s) written, 9 kept" in again.stdout
    forced = edgebench("init", "work", "--force", cwd=tmp_path)
    assert forced.returncode == 0 and "wrote work/profiles/quickstart.yaml" in forced.stdout
    assert mine.read_text() == (REPO / "profiles" / "quickstart.yaml").read_text()


def test_init_into_a_file_is_one_sentence(tmp_path):
    (tmp_path / "taken").write_text("a file")
    proc = edgebench("init", "taken", cwd=tmp_path)
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == "error: cannot use taken as the folder for the examples: it is a file, not a folder"


@pytest.mark.parametrize("command", [["run", "{p}"], ["ab", "{p}"], ["plan", "--fleet", "{p}"]])
def test_a_missing_example_profile_says_to_run_init(tmp_path, command):
    args = [a.format(p="profiles/quickstart.yaml") for a in command]
    proc = edgebench(*args, cwd=tmp_path)
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    assert "'profiles/quickstart.yaml' not found" in proc.stderr and "`edgebench init`" in proc.stderr
    other = edgebench(*[a.format(p="profiles/mine.yaml") for a in command], cwd=tmp_path)
    assert other.returncode == 3 and "not found" in other.stderr and "init" not in other.stderr


def test_the_examples_are_the_repository_files_and_declared_as_package_data():
    # one source: what the package holds is the repository's profiles/ and devices/
    assert examples.profile_names() == sorted(p.name for p in (REPO / "profiles").glob("*.yaml"))
    for relative in examples.shipped_files():
        assert examples.read(relative) == (REPO / relative).read_text()
    # and a wheel carries them: each file matches a package-data glob of its package
    # (read as text: tomllib is Python 3.11+, and edgebench supports 3.10)
    pyproject = (REPO / "pyproject.toml").read_text()
    section = pyproject.split("[tool.setuptools.package-data]", 1)[1].split("\n[", 1)[0]
    declared = re.search(r'^"edgebench\.examples"\s*=\s*\[(.*?)\]', section, re.M | re.S)
    assert declared, "pyproject.toml declares no package data for edgebench.examples"
    patterns = re.findall(r'"([^"]+)"', declared.group(1))
    for relative in examples.shipped_files():
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative
    package_dir = REPO / "edgebench" / "examples"
    assert (package_dir / "__init__.py").is_file()  # a package, so its data belongs to it


@pytest.mark.llama
def test_init_then_a_shipped_profile_runs_from_a_scratch_folder(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    assert edgebench("init", cwd=tmp_path, env={"HOME": str(home)}).returncode == 0
    # ci-smoke: the quickstart's path with a few-MB model, on the written devices/local.yaml
    proc = edgebench("run", "profiles/ci-smoke.yaml", cwd=tmp_path, env={"HOME": str(home)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "results: results/" in proc.stdout and "| local |" in proc.stdout
