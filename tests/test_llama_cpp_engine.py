"""Real llama.cpp (llama-cpp-python) through the runner zipapp, on GGUF files edgebench wrote."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgebench.toolchain.runner_zipapp import write_runner

FIXTURES = Path(__file__).parent / "fixtures" / "telemetry"


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    return write_runner(tmp_path_factory.mktemp("runner"))


def run_job(runner, model, test, reps=2, warmup=1, telemetry=None, **options):
    job = {"engine": "llama.cpp", "model_path": str(model), "test": test, "repetitions": reps, "warmup": warmup,
           "engine_options": {"threads": 2, **options},
           "telemetry": telemetry or {"enabled": True, "interval_s": 0.05}}
    proc = subprocess.run([sys.executable, str(runner), "run"], input=json.dumps(job), capture_output=True,
                          text=True, timeout=300)
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert proc.returncode == 0, (events[-1:], proc.stderr[-2000:])
    return events


def by_kind(events, kind):
    return [e for e in events if e["event"] == kind]


@pytest.mark.parametrize("fixture", ["tiny_qwen35", "tiny_llama"])
def test_pp_tg_and_combined_tests_give_one_sample_per_repetition(runner, fixture, request):
    model = request.getfixturevalue(fixture)
    for test, has_ttft in (({"n_prompt": 32, "n_gen": 0, "n_depth": 0}, True),
                           ({"n_prompt": 0, "n_gen": 8, "n_depth": 0}, False),
                           ({"n_prompt": 32, "n_gen": 8, "n_depth": 16}, True)):
        events = run_job(runner, model, test, reps=3)
        start, samples = by_kind(events, "start")[0], by_kind(events, "sample")
        assert start["info"]["model_type"].startswith("qwen35" if "qwen" in fixture else "llama")
        assert start["info"]["model_n_params"] > 0 and start["info"]["n_threads"] == 2
        assert [s["rep"] for s in samples] == [0, 1, 2]
        n_tokens = test["n_prompt"] + test["n_gen"]
        for s in samples:
            assert s["t_ns"] > 0
            assert s["ts"] == pytest.approx(n_tokens * 1e9 / s["t_ns"])
            assert (s["ttft_ns"] is not None) == has_ttft
            if has_ttft and test["n_gen"]:
                assert 0 < s["ttft_ns"] < s["t_ns"]  # TTFT is the prompt only, not the generation
            elif has_ttft:
                assert s["ttft_ns"] <= s["t_ns"]  # pp only: the prompt is all of it
        assert by_kind(events, "done")[0]["peak_rss_kb"] > 0


def test_every_sample_window_has_memory_readings(runner, tiny_qwen35):
    events = run_job(runner, tiny_qwen35, {"n_prompt": 16, "n_gen": 4, "n_depth": 0})
    telemetry = by_kind(events, "telemetry")
    assert telemetry and all("rss_kb" in t for t in telemetry)
    for s in by_kind(events, "sample"):
        window = s["window"]
        assert window["peak_rss_kb"] > 0
        # this machine has no sensors: unavailable, never a made-up 0
        assert window["max_temp_c"] is None and window["energy_j"] is None and window["j_per_token"] is None


def test_telemetry_from_a_device_tree_reaches_the_sample_summary(runner, tiny_qwen35):
    events = run_job(runner, tiny_qwen35, {"n_prompt": 16, "n_gen": 4, "n_depth": 0},
                     telemetry={"enabled": True, "interval_s": 0.05, "root": str(FIXTURES / "rpi5")})
    start = by_kind(events, "start")[0]
    assert start["telemetry"]["thermal"] == "ok"
    assert start["telemetry"]["rapl"].startswith("unavailable")
    for s in by_kind(events, "sample"):
        assert s["window"]["max_temp_c"] == pytest.approx(52.3)


def test_telemetry_off_means_no_telemetry_events(runner, tiny_qwen35):
    events = run_job(runner, tiny_qwen35, {"n_prompt": 0, "n_gen": 4, "n_depth": 0},
                     telemetry={"enabled": False})
    assert not by_kind(events, "telemetry") and len(by_kind(events, "sample")) == 2


def test_kv_cache_type_and_flash_attention_options_are_applied(runner, tiny_llama):
    events = run_job(runner, tiny_llama, {"n_prompt": 16, "n_gen": 4, "n_depth": 0},
                     type_k="q8_0", type_v="q8_0", flash_attn="on")
    assert len(by_kind(events, "sample")) == 2


def test_the_shared_kv_and_flash_attention_names_are_llama_cpps_own_numbers(llama_cpp):
    # the profile, both llama engines and the rows read these tables; the in-process engine hands the
    # numbers to llama.cpp as they are, so they must be llama.cpp's
    import llama_cpp.llama_cpp as lib

    from edgebench.runner.engines.llama_settings import FLASH_ATTN, KV_CACHE_TYPES

    known = {name: getattr(lib, f"GGML_TYPE_{name.upper()}") for name in KV_CACHE_TYPES
             if hasattr(lib, f"GGML_TYPE_{name.upper()}")}  # this binding lacks some (bf16)
    assert len(known) >= 8 and known == {name: KV_CACHE_TYPES[name] for name in known}
    assert FLASH_ATTN == {"auto": lib.LLAMA_FLASH_ATTN_TYPE_AUTO, "on": lib.LLAMA_FLASH_ATTN_TYPE_ENABLED,
                          "off": lib.LLAMA_FLASH_ATTN_TYPE_DISABLED}


@pytest.mark.parametrize("test, cells", [({"n_prompt": 512, "n_gen": 0, "n_depth": 0}, 512),
                                         ({"n_prompt": 0, "n_gen": 16, "n_depth": 496}, 512),
                                         ({"n_prompt": 500, "n_gen": 13, "n_depth": 0}, 768)])
def test_the_context_is_llama_benchs_prompt_plus_gen_plus_depth(runner, tiny_llama, test, cells):
    """llama-bench's to_llama_cparams: n_ctx = n_prompt + n_gen + n_depth (llama.cpp pads it to 256), so a
    pp512 allocates 512 KV cells in both engines, not 768 for one more token."""
    done = by_kind(run_job(runner, tiny_llama, test, reps=1, warmup=0), "done")[0]["info"]
    assert done["n_ctx"] == cells
    assert [c["cells"] for c in done["kv_caches"]] == [cells]
    # llama.cpp's own account of the context's buffers
    assert done["context_buffers_mib"]["CPU KV"] > 0 and done["context_buffers_mib"]["CPU compute"] > 0


def test_an_explicit_n_ctx_sizes_the_cache(runner, tiny_qwen35):
    done = by_kind(run_job(runner, tiny_qwen35, {"n_prompt": 16, "n_gen": 0, "n_depth": 0}, reps=1, warmup=0,
                           n_ctx=2048), "done")[0]["info"]
    assert done["n_ctx"] == 2048 and [c["cells"] for c in done["kv_caches"]] == [2048]
    # a hybrid model's recurrent state is a buffer of its own
    assert done["context_buffers_mib"]["CPU RS"] > 0


def test_stdout_carries_only_events(runner, tiny_qwen35):
    events = run_job(runner, tiny_qwen35, {"n_prompt": 8, "n_gen": 2, "n_depth": 0})
    assert events[0]["event"] == "hello" and events[-1]["event"] == "done"


@pytest.fixture(scope="module")
def tiny_llama_q4k(llama_cpp, model_dir):
    """A K-quant: on x86 and ARM llama.cpp repacks its weights into the CPU_REPACK buffer."""
    from conftest import _synth
    return _synth(model_dir, "tiny-llama@Q4_K_M")


@pytest.mark.parametrize("repack", [True, False])
def test_repack_decides_whether_llama_cpp_repacks_the_weights(runner, tiny_llama_q4k, repack):
    events = run_job(runner, tiny_llama_q4k, {"n_prompt": 32, "n_gen": 0, "n_depth": 0}, reps=1, warmup=0,
                     repack=repack)
    info = by_kind(events, "start")[0]["info"]
    assert info["repack"] is repack
    # llama.cpp's own account of where the weights went
    assert ("CPU_REPACK" in info["model_buffers_mib"]) is repack
    assert info["model_buffers_mib"]["CPU_Mapped"] > 0
    assert len(by_kind(events, "sample")) == 1


def test_the_engine_reports_its_build_as_llama_cpp_describes_it(runner, tiny_qwen35):
    info = by_kind(run_job(runner, tiny_qwen35, {"n_prompt": 8, "n_gen": 0, "n_depth": 0}, reps=1), "start")[0]["info"]
    assert info["system_info"].startswith("CPU : ") and "REPACK = 1" in info["system_info"]


def test_the_installed_engine_was_built_without_instructions_this_cpu_may_fault_on(runner, tiny_qwen35):
    """`edgebench install-engine` (what .ci/run and the README use) builds without AMX anywhere, and on
    x86-64 as the portable AVX2 build."""
    import platform
    info = by_kind(run_job(runner, tiny_qwen35, {"n_prompt": 8, "n_gen": 0, "n_depth": 0}, reps=1), "start")[0]["info"]
    assert "AMX_INT8 = 1" not in info["system_info"]
    if platform.machine() in ("x86_64", "AMD64"):
        assert "AVX2 = 1" in info["system_info"] and "AVX512 = 1" not in info["system_info"]


@pytest.fixture(scope="module")
def tiny_gemma3(llama_cpp, model_dir):
    from conftest import _synth
    return _synth(model_dir, "tiny-gemma3@Q4_K_M")


@pytest.mark.parametrize("swa_full, swa_cells", [(False, 768), (True, 4096)])
def test_swa_full_decides_the_sliding_window_cache(runner, tiny_gemma3, swa_full, swa_cells):
    """llama-bench's setting (false) keeps PAD(window + n_ubatch, 256) = PAD(128 + 512) cells on the
    sliding-window layers; llama.cpp's library default (true) would give them the whole context."""
    done = by_kind(run_job(runner, tiny_gemma3, {"n_prompt": 16, "n_gen": 0, "n_depth": 0}, reps=1, warmup=0,
                           n_ctx=4096, swa_full=swa_full), "done")[0]["info"]
    cells = sorted(c["cells"] for c in done["kv_caches"])
    assert cells == sorted([4096, swa_cells])


def test_n_cpu_moe_keeps_the_first_layers_experts_on_the_cpu(runner, llama_cpp, model_dir):
    from conftest import _synth
    moe = _synth(model_dir, "tiny-qwen3moe@Q4_K_M")
    events = run_job(runner, moe, {"n_prompt": 16, "n_gen": 2, "n_depth": 0}, reps=1, warmup=0, n_cpu_moe=2)
    info = by_kind(events, "start")[0]["info"]
    # llama-bench's -ncmoe 2: the gate, up and down experts of layers 0 and 1 were placed by the override
    # (in CPU memory; on a CPU-only build some land in its repacked variant)
    assert sum(info["overridden_tensors"].values()) == 6
    assert set(info["overridden_tensors"]) <= {"CPU", "CPU_REPACK"}
    assert len(by_kind(events, "sample")) == 1


@pytest.mark.llama
def test_the_engine_gives_its_context_a_threadpool_as_llama_bench_does(tiny_llama):
    from edgebench.runner.engines.llama_cpp_engine import LlamaCppEngine
    from edgebench.runner.testspec import TestSpec
    engine = LlamaCppEngine()
    try:
        engine.open(str(tiny_llama), {"threads": 2})
        samples = list(engine.measure(TestSpec(32, 0, 0), 2, 0, lambda: None))
        assert len(samples) == 2 and engine.threadpool.attached
    finally:
        engine.close()
    assert not engine.threadpool.attached
