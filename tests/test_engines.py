"""Engines declare themselves in their own module (edgebench/runner/engines/*_engine.py): the options a
profile may give them, the test kinds they run, the facts they record, their row fields and their compare
keys. The profile, the jobs, cells.jsonl, rows and compare read those declarations, so an option of
another engine is refused and a new engine is one file."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import assert_at

from edgebench.cli import EXIT_ERROR, EXIT_OK, main
from edgebench.config import load_profile, parse_profile
from edgebench.config.engine import default, reader
from edgebench.config.fields import Where, read_value
from edgebench.config.yamlsource import parse_yaml
from edgebench.errors import ConfigError
from edgebench.results.aggregate import FIELDS
from edgebench.runner import engines
from edgebench.runner.testspec import KINDS
from edgebench.sweep.ab import variant_profile
from edgebench.toolchain import runner_zipapp as zipapp

REPO = Path(__file__).resolve().parent.parent
TOY_ENGINE = Path(__file__).parent / "fixtures" / "engines" / "toy_engine.py"
MODELS = "models: [synthetic:tiny-qwen35]\n"


def write(tmp_path: Path, text: str, name: str = "bench.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ---- the profile holds an engine to its own options ------------------------------------------------------

def test_providers_given_to_llama_cpp_are_refused_naming_file_line_and_key(tmp_path, capsys):
    path = write(tmp_path, MODELS + "tests: [tg16]\nengine:\n  name: llama.cpp\n  providers: [CUDAExecutionProvider]\n")
    assert main(["run", str(path), "-o", str(tmp_path / "results")]) == EXIT_ERROR
    err = capsys.readouterr().err.strip()
    assert err == f"error: {path}:5: engine.providers: only the onnxruntime engine takes providers"
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("engine, option, takers", [
    ("sleep", "n_batch: 512", "only the llama-bench and llama.cpp engines take n_batch"),
    ("onnxruntime", "n_ctx: 4096", "only the llama.cpp engine takes n_ctx"),
    ("llama-bench", "use_mmap: false", "only the llama.cpp engine takes use_mmap"),
    ("llama.cpp", "simulate_ts: 100", "only the sleep engine takes simulate_ts"),
    ("llama.cpp", "binary: /opt/llama-bench", "only the llama-bench engine takes binary"),
    ("sleep", "dims: {seq: 4}", "only the onnxruntime engine takes dims"),
])
def test_an_option_of_another_engine_is_refused(tmp_path, engine, option, takers):
    path = write(tmp_path, MODELS + f"tests: [tg16]\nengine:\n  name: {engine}\n  threads: 2\n  {option}\n")
    with pytest.raises(ConfigError) as caught:
        load_profile(path)
    assert_at(caught.value, path, 6, "engine." + option.split(":")[0], takers)


def test_an_engine_is_checked_against_its_own_options_only(tmp_path):
    engine = parse_profile(MODELS + "tests: [b4]\nengine: {name: onnxruntime, providers: [CUDAExecutionProvider, "
                           "CPUExecutionProvider], graph_optimization: Basic, dims: {seq: 8}}\n").engine
    assert dict(engine) == {"name": "onnxruntime", "threads": (), "providers": ("CUDAExecutionProvider",
                            "CPUExecutionProvider"), "inter_op_threads": 0, "graph_optimization": "basic",
                            "dims": {"seq": 8}}
    with pytest.raises(AttributeError):
        engine.n_batch  # noqa: B018 - an option of another engine is not even an attribute
    path = write(tmp_path, MODELS + "tests: [b4]\nengine:\n  name: onnxruntime\n  graph_optimization: most\n")
    with pytest.raises(ConfigError) as caught:
        load_profile(path)
    assert_at(caught.value, path, 5, "engine.graph_optimization", "must be one of disable, basic, extended, all")


def test_test_kinds_come_from_the_engine(tmp_path):
    path = write(tmp_path, MODELS + "tests: [tg16, b8]\nengine: {name: llama-bench}\n")
    with pytest.raises(ConfigError) as caught:
        load_profile(path)
    assert_at(caught.value, path, 2, "tests[1]", "b8 is a batch test for generic ONNX models; "
                                                 "engine llama-bench runs pp/tg/pp+tg/ppl tests")


def test_an_ab_variant_on_another_engine_keeps_only_the_settings_that_engine_takes(tmp_path):
    base = parse_profile(MODELS + "tests: [tg16]\nengine: {name: llama.cpp, n_ctx: 4096, threads: 2}\n",
                         file=str(tmp_path / "p.yaml"))
    variant = variant_profile(base, "B", ["engine.name=llama-bench", "engine.n_batch=64"], None)
    assert dict(variant.engine) == {"name": "llama-bench", "threads": (2,), "n_batch": 64, "n_ubatch": 512,
                                    "type_k": "f16", "type_v": "f16", "flash_attn": "auto", "n_gpu_layers": 0,
                                    "n_cpu_moe": 0, "repack": True, "cpu_mask": "0x0", "cpu_strict": False,
                                    "cores": "all", "binary": None, "source": None, "ref": None,
                                    "perplexity_binary": None}
    with pytest.raises(ConfigError, match="only the llama.cpp engine takes n_ctx"):
        variant_profile(base, "B", ["engine.name=llama-bench", "engine.n_ctx=512"], None)


# ---- the declarations themselves -------------------------------------------------------------------------

@pytest.mark.parametrize("name", engines.names())
def test_each_declaration_is_consistent(name):
    declared = engines.declared(name)
    module = Path(engines.__file__).parent / f"{engines.module_name(name)}.py"
    assert module.is_file() and declared.name == name
    options = [o.name for o in declared.options]
    assert "threads" in options and len(set(options)) == len(options)
    assert set(declared.facts) <= set(options) - {"threads"}
    assert set(declared.compare_keys) <= set(options) | set(FIELDS)
    assert declared.test_kinds and set(declared.test_kinds) <= set(KINDS)
    doc = parse_yaml("{}", "decl.yaml")
    for option in declared.options:  # every default passes the option's own check
        if option.default not in (None, ()):
            value = json.loads(json.dumps(option.default))
            assert read_value(Where(doc, ("engine", option.name)), value, *reader(option)) == default(option)
    assert set(declared.row_fields(declared.defaults())) <= set(FIELDS)


def test_the_declarations_import_no_engine_library():
    # a device without llama-cpp-python or onnxruntime (and the controller) reads every declaration
    code = ("import sys\n"
            "sys.modules.update(llama_cpp=None, onnxruntime=None, numpy=None)\n"
            "from edgebench.runner import engines\n"
            "print(sorted(engines.declarations()))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["['llama-bench',", "'llama.cpp',", "'onnxruntime',", "'sleep']"]


def test_the_readme_lists_every_option_of_every_engine():
    text = (REPO / "README.md").read_text()
    section = re.search(r"## Benchmark profiles.*?```yaml\n(.*?)```", text, re.S).group(1)
    engine_block = re.search(r"^engine:.*?\n(.*?)\ntests:", section, re.S | re.M).group(1)
    listed = set(re.findall(r"^  (\w+):", engine_block, re.M))
    declared = {o.name for d in engines.declarations().values() for o in d.options}
    assert listed == declared | {"name"}
    assert all(name in engine_block for name in engines.names())


# ---- a new engine is one file ----------------------------------------------------------------------------

@pytest.fixture
def toy_engine(tmp_path, monkeypatch):
    """tests/fixtures/engines/toy_engine.py added to the engines folder and nowhere else: to the controller's
    (its package path) and to the runner's (a copy of the runner's source that the zipapp is built from)."""
    folder = tmp_path / "added-engines"
    folder.mkdir()
    shutil.copy(TOY_ENGINE, folder / TOY_ENGINE.name)
    runner_source = tmp_path / "runner-source"
    shutil.copytree(zipapp.RUNNER_SOURCE, runner_source, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(TOY_ENGINE, runner_source / "engines" / TOY_ENGINE.name)
    monkeypatch.setattr(engines, "__path__", [*engines.__path__, str(folder)])
    monkeypatch.setattr(zipapp, "RUNNER_SOURCE", runner_source)
    zipapp.runner_bytes.cache_clear()
    yield
    zipapp.runner_bytes.cache_clear()
    sys.modules.pop(f"{engines.__name__}.toy_engine", None)


def toy_run(tmp_path, device, name: str, engine: str, tests: str = "[tg8]") -> tuple[int, Path]:
    model = tmp_path / "model.bin"
    model.write_bytes(b"toy" * 100)  # the toy engine never reads it
    path = write(tmp_path, f"models: [{json.dumps(str(model))}]\ntests: {tests}\nrepetitions: 3\nwarmup: 0\n"
                           f"engine:\n  name: toy\n{engine}telemetry: {{enabled: false}}\n", f"{name}.yaml")
    results = tmp_path / name
    return main(["run", str(path), "-d", str(device), "-o", str(results)]), results


def test_a_new_engine_is_its_module_alone(toy_engine, tmp_path, local_device_file, capsys):
    code, fast = toy_run(tmp_path, local_device_file, "fast", "  speed: 400\n  mode: bursty\n")
    assert code == EXIT_OK, capsys.readouterr()
    (run,) = fast.iterdir()
    started = [r for r in map(json.loads, (run / "cells.jsonl").read_text().splitlines()) if r["state"] == "started"]
    assert [(r["engine"], r["engine_options"]) for r in started] == [("toy", {"speed": 400.0, "mode": "bursty"})]
    capsys.readouterr()
    assert main(["show", str(run), "--format", "jsonl"]) == EXIT_OK
    (row,) = map(json.loads, capsys.readouterr().out.splitlines())
    assert (row["engine"], row["engine_version"], row["backends"], row["n_samples"]) == \
        ("toy", "toy 1", "toy-bursty", 3)
    assert row["n_batch"] is None and row["type_k"] is None  # llama.cpp's settings are not the toy's

    code, slow = toy_run(tmp_path, local_device_file, "slow", "  speed: 300\n")
    assert code == EXIT_OK
    capsys.readouterr()
    main(["compare", str(next(fast.iterdir())), str(next(slow.iterdir()))])
    assert "not the same experiment: testbox/model/tg8/tauto: speed 400.0 vs 300.0" in capsys.readouterr().out

    for engine, tests, complaint in (("  n_batch: 8\n", "[tg8]", "engine.n_batch: only the llama-bench and llama.cpp "
                                                                 "engines take n_batch"),
                                     ("", "[tg8, pp8]", "tests[1]: pp8 is a pp test; engine toy runs tg tests")):
        assert toy_run(tmp_path, local_device_file, "refused", engine, tests)[0] == EXIT_ERROR
        assert complaint in capsys.readouterr().err


def test_the_runner_refuses_a_test_kind_its_engine_does_not_declare(tmp_path, tiny_qwen35):
    job = {"engine": "llama.cpp", "model_path": str(tiny_qwen35), "repetitions": 1, "warmup": 0,
           "test": {"n_prompt": 0, "n_gen": 0, "n_depth": 0, "batch": 2}, "engine_options": {},
           "telemetry": {"enabled": False}}
    done = subprocess.run([sys.executable, str(zipapp.write_runner(tmp_path)), "run"], input=json.dumps(job),
                          capture_output=True, text=True, timeout=60)
    error = json.loads(done.stdout.splitlines()[-1])
    assert (error["event"], error["kind"]) == ("error", "job")
    assert error["message"] == "engine llama.cpp runs pp/tg/pp+tg/ppl/kld tests, not b (b2)"
