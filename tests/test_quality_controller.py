"""The controller's own llama.cpp work for a quality run (the reference, the tokenizer check, the
quantizer) in one process: the engine's bindings never hide the llama_cpp package the quantizer
imports, and llama.cpp's loader log goes to the log file, not the terminal. Real llama.cpp."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.llama


def edgebench(*args, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgebench", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=600, env={**os.environ, **env})


def quality_work(tmp_path: Path, models) -> tuple[Path, dict]:
    (tmp_path / "devices").mkdir()
    (tmp_path / "devices" / "testbox.yaml").write_text(
        f"name: testbox\ntransport: local\nclass: desktop\nworkdir: {tmp_path / 'device'}\n")
    names = [f"synthetic:tiny-llama@{m}" for m in models]
    (tmp_path / "q.yaml").write_text(
        f"models: {json.dumps(names)}\nquality:\n  reference: synthetic:tiny-llama@F16\n  n_ctx: 128\n"
        f"  chunks: 2\ntests: [kld]\nengine: {{threads: 2}}\ntelemetry: {{enabled: false}}\n")
    return tmp_path, {"EDGEBENCH_CACHE": str(tmp_path / "cache")}  # a fresh cache


def test_a_quality_profile_builds_a_model_after_another_was_ready(tmp_path):
    # F16 needs no quantizer, so the reference and the tokenizer check use the in-process engine first;
    # Q4_K_M is quantized after that, in the same controller process
    work, env = quality_work(tmp_path, ("F16", "Q4_K_M"))
    proc = edgebench("run", "q.yaml", "-d", "testbox", "-o", "results", cwd=work, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "llama_model_quantize_default_params" not in proc.stdout + proc.stderr


def test_a_quality_run_sends_llama_cpps_loader_log_to_the_log_file(tmp_path):
    work, env = quality_work(tmp_path, ("Q8_0", "Q4_K_M"))
    proc = edgebench("run", "q.yaml", "-d", "testbox", "-o", "results", cwd=work, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    said = proc.stdout + proc.stderr
    assert "llama_model_loader" not in said and "print_info:" not in said, said
    logs = "".join(p.read_text(errors="replace") for p in (tmp_path / "cache" / "logs").glob("*.log"))
    assert "llama_model_loader" in logs  # the tokenizer check's and the reference's loads, kept there


def test_the_quantizer_works_after_the_engine_ran_in_the_same_process(tmp_path):
    """In a fresh interpreter: the engine first (as the reference is computed), then the quantizer."""
    script = f"""
import sys
from edgebench.models.synth.shapes import PRESETS
from edgebench.models.synth.writer import write_gguf
from edgebench.models.synth.quantize import quantize
from edgebench.runner.engines.llama_cpp_engine import LlamaCppEngine

f16 = write_gguf(PRESETS["tiny-llama"], {str(tmp_path / "m-F16.gguf")!r})
engine = LlamaCppEngine()
engine.open(str(f16), {{"threads": 1}})
engine.close()
assert "llama_cpp" not in sys.modules or hasattr(sys.modules["llama_cpp"], "llama_model_quantize_default_params")
print(quantize(f16, {str(tmp_path / "m-Q4_K_M.gguf")!r}, "Q4_K_M", n_threads=1).stat().st_size)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "EDGEBENCH_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.split()[-1]) > 0 and (tmp_path / "m-Q4_K_M.gguf").is_file()
