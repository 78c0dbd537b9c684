"""The llama-bench engine: a real llama-bench binary, built from the llama.cpp that llama-cpp-python vendors."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from edgebench.toolchain.runner_zipapp import write_runner


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    return write_runner(tmp_path_factory.mktemp("runner"))


def run_job(runner, model, binary, test, reps=2, warmup=1, engine="llama-bench", **options):
    job = {"engine": engine, "model_path": str(model), "test": test, "repetitions": reps,
           "warmup": warmup, "engine_options": {"threads": 2, "binary": binary, **options},
           "telemetry": {"enabled": True, "interval_s": 0.05}}
    proc = subprocess.run([sys.executable, str(runner), "run"], input=json.dumps(job), capture_output=True,
                          text=True, timeout=300)
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines()]


@pytest.mark.parametrize("test", [
    {"n_prompt": 32, "n_gen": 0, "n_depth": 0},
    {"n_prompt": 0, "n_gen": 8, "n_depth": 16},
    {"n_prompt": 16, "n_gen": 4, "n_depth": 0},
])
def test_llama_bench_results_become_samples(runner, tiny_qwen35, llama_bench_binary, test):
    code, events = run_job(runner, tiny_qwen35, llama_bench_binary, test, reps=3)
    assert code == 0, events[-1]
    samples = [e for e in events if e["event"] == "sample"]
    assert [s["rep"] for s in samples] == [0, 1, 2]
    n_tokens = test["n_prompt"] + test["n_gen"]
    for s in samples:
        assert s["t_ns"] > 0 and s["ts"] == pytest.approx(n_tokens * 1e9 / s["t_ns"])
        assert s["ttft_ns"] is None  # llama-bench does not time the first token apart
    info = events[-1]["info"]
    assert info["model_n_params"] > 0 and info["n_threads"] == 2 and "build_commit" in info


def test_llama_bench_memory_is_read_from_its_own_process(runner, tiny_qwen35, llama_bench_binary):
    code, events = run_job(runner, tiny_qwen35, llama_bench_binary, {"n_prompt": 0, "n_gen": 64, "n_depth": 0})
    assert code == 0
    pids = {e["pid"] for e in events if e["event"] == "telemetry" and "pid" in e}
    runner_pid = events[0]["pid"]
    assert pids - {runner_pid}, "telemetry never watched the llama-bench process"


def test_a_failing_llama_bench_reports_its_exit_code_and_stderr(runner, tmp_path, llama_bench_binary):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 64)
    code, events = run_job(runner, broken, llama_bench_binary, {"n_prompt": 8, "n_gen": 0, "n_depth": 0})
    assert code == 1
    error = events[-1]
    assert error["kind"] == "engine" and error["exit_code"] != 0 and error["stderr_tail"]


def start_info(events):
    return next(e for e in events if e["event"] == "start")["info"]


def test_the_anchor_is_the_same_build_as_the_engine(runner, tiny_qwen35, llama_bench_binary):
    """llama-bench is only a fair anchor when its kernels are the engine's: llama.cpp's own description
    of both builds (CPU features and build options) is the same string."""
    test = {"n_prompt": 8, "n_gen": 0, "n_depth": 0}
    code, bench = run_job(runner, tiny_qwen35, llama_bench_binary, test, reps=1, warmup=0)
    assert code == 0, bench[-1]
    code, engine = run_job(runner, tiny_qwen35, None, test, reps=1, warmup=0, engine="llama.cpp")
    assert code == 0, engine[-1]
    assert start_info(bench)["system_info"] == start_info(engine)["system_info"]
    assert start_info(bench)["system_info"].startswith("CPU : ")


@pytest.mark.parametrize("repack", [True, False])
def test_repack_reaches_llama_bench(runner, tiny_qwen35, llama_bench_binary, repack):
    code, events = run_job(runner, tiny_qwen35, llama_bench_binary, {"n_prompt": 8, "n_gen": 0, "n_depth": 0},
                           reps=1, warmup=0, repack=repack)
    assert code == 0, events[-1]
    # llama-bench's own row says which it ran with
    assert events[-1]["info"]["repack"] is repack


def _fake_llama_perplexity(tmp_path, lines_per_run) -> str:
    """A stand-in for llama-perplexity that prints, run after run, the given messages of its log: it
    replays the loss of its last lines at exit (ggml-org/llama.cpp#22142), which a real one shows only
    now and then."""
    runs = tmp_path / "runs"
    script = tmp_path / "llama-perplexity"
    script.write_text(f"""#!{sys.executable}
import json, pathlib
runs = pathlib.Path({str(runs)!r})
n = int(runs.read_text()) if runs.exists() else 0
runs.write_text(str(n + 1))
for time, msg in {lines_per_run!r}[min(n, {len(lines_per_run) - 1})]:
    print(json.dumps({{"type": "log", "time": time, "level": "none", "msg": msg}}))
""")
    script.chmod(0o755)
    return str(script)


PASS = [(1000, "perplexity: calculating perplexity over 2 chunks, n_ctx=16, batch_size=2048, n_seq=2\n"),
        (5000, "       0  9.9999  2.000000  0.100000\n"), (9000, "       0  7.3891  2.000000  0.050000\n")]


def test_a_llama_perplexity_pass_that_lost_its_last_chunk_is_run_again(tmp_path):
    from edgebench.runner.engines.llama_perplexity import measure_perplexity

    binary = _fake_llama_perplexity(tmp_path, [PASS[:2], PASS])
    quality = {"n_ctx": 16, "chunks": 2, "text": "unused.txt"}
    elapsed_ns, n_tokens, summary = measure_perplexity(binary, "m.gguf", quality, {}, lambda: None)
    assert (tmp_path / "runs").read_text() == "2"
    assert summary == {"ppl": pytest.approx(math.exp(2.0)), "ppl_stderr": pytest.approx(0.05 * math.exp(2.0)),
                       "n_scored": 2 * (16 - 1 - 8)}
    assert (elapsed_ns, n_tokens) == (8_000_000, 32)


def test_a_llama_perplexity_that_never_finishes_fails_in_one_sentence(tmp_path):
    from edgebench.runner.engines.llama_perplexity import PASS_TRIES, measure_perplexity
    from edgebench.runner.protocol import RunnerFailure

    binary = _fake_llama_perplexity(tmp_path, [PASS[:2]])
    with pytest.raises(RunnerFailure) as caught:
        measure_perplexity(binary, "m.gguf", {"n_ctx": 16, "chunks": 2, "text": "t.txt"}, {}, lambda: None)
    assert caught.value.message == ("llama-perplexity's log lost its last chunk in each of 3 runs (llama.cpp drops "
                                    "unwritten log lines at exit)")
    assert (tmp_path / "runs").read_text() == str(PASS_TRIES)
