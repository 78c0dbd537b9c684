"""The generation cost model (plan/speed.py): what a token reads, and the work it costs beyond that,
on presets of the architectures the constants were fitted on (tests/perf/speed_constants.py); and a
real run through the runner calibrating the plan on the CPU its probe found."""

from __future__ import annotations

import json
import platform
from dataclasses import replace

import pytest

from edgebench.cli import main
from edgebench.models.gguf_info import info_from_preset, read_gguf
from edgebench.plan import speed
from edgebench.plan.memory import Runtime
from edgebench.plan.speed import bytes_per_token, bytes_read_per_token, repacked_read_per_token

X86, ARM = Runtime(cpu_arch="x86_64"), Runtime(cpu_arch="aarch64")


def test_repacked_weights_cost_less_than_their_bytes():
    info = info_from_preset("qwen3.5-0.8b", "Q4_K_M", 8)
    # arm64 repacks Q6_K and Q8_0 as well as x86's Q4_K: the same bytes, read by faster kernels
    assert bytes_read_per_token(info, X86, 0) == bytes_read_per_token(info, ARM, 0)
    more = repacked_read_per_token(info, "aarch64") - repacked_read_per_token(info, "x86_64")
    assert more > 0
    assert bytes_per_token(info, X86, 0) - bytes_per_token(info, ARM, 0) == \
        pytest.approx((1 - speed.REPACKED_WEIGHT_COST) * more)


def test_only_the_active_experts_repacked_weights_count():
    info = info_from_preset("qwen3-30b-a3b", "Q4_K_M", 1)
    experts = sum(t.n_bytes for t in info.tensors if "_exps" in t.name and t.type == "Q4_K")
    assert experts > 0
    # 8 of 128 experts are read; the dense Q4_K tensors are read whole
    dense = sum(t.n_bytes for t in info.tensors if t.name.startswith("blk.") and "_exps" not in t.name
                and t.type == "Q4_K" and t.rows % 8 == 0)
    assert repacked_read_per_token(info, "x86_64") == pytest.approx(dense + experts * 8 / 128)


def test_a_narrow_deep_model_costs_more_than_its_bytes():
    shallow, deep = info_from_preset("gemma-3-270m", "Q4_K_M", 6), info_from_preset("gemma-3-270m", "Q4_K_M")
    extra = [bytes_per_token(i, X86, 0) - bytes_read_per_token(i, X86, 0) for i in (shallow, deep)]
    # the 12 layers more cost their fixed work, whatever they read
    assert extra[1] - extra[0] == pytest.approx(12 * speed.LAYER_BYTES - (1 - speed.REPACKED_WEIGHT_COST) * (
        repacked_read_per_token(deep, "x86_64") - repacked_read_per_token(shallow, "x86_64")))


def test_depth_costs_stop_growing_at_the_sliding_window():
    info = info_from_preset("gemma-3-270m", "Q4_K_M")
    full = [layer for layer in info.layers if layer.attention and not layer.window]
    grow = bytes_per_token(info, X86, 20000) - bytes_per_token(info, X86, 10000)
    read = bytes_read_per_token(info, X86, 20000) - bytes_read_per_token(info, X86, 10000)
    # beyond the 512-token window only the 3 full-attention layers and their cache grow
    assert grow - read == pytest.approx(10000 * (speed.CACHE_CELL_BYTES
                                                 + speed.HEAD_POSITION_BYTES * sum(x.n_head for x in full)))


def test_attention_work_does_not_follow_the_heads_width():
    # deepseek2's MLA heads are 576 + 512 wide, llama's 64 + 64: per head and position the same work
    mla, gqa = info_from_preset("deepseek-v2-lite", "Q4_K_M", 2), info_from_preset("llama-3.2-1b", "Q4_K_M", 2)
    for info in (mla, gqa):
        heads = sum(layer.n_head for layer in info.layers if layer.attention)
        work = (bytes_per_token(info, X86, 4096) - bytes_read_per_token(info, X86, 4096)) - \
            (bytes_per_token(info, X86, 0) - bytes_read_per_token(info, X86, 0))
        assert work == pytest.approx(4096 * (speed.CACHE_CELL_BYTES + speed.HEAD_POSITION_BYTES * heads))


def test_a_matrix_state_costs_more_than_a_convolution_state():
    # a DeltaNet layer holds a convolution state (r) and a matrix state (s); lfm2's short conv only r
    for preset in ("qwen3.5-0.8b", "lfm2-350m"):
        info = info_from_preset(preset, "Q4_K_M", 4)
        stateless = replace(info, layers=tuple(replace(layer, r_size=0, s_size=0) for layer in info.layers))
        r = sum(layer.r_size for layer in info.layers)
        s = sum(layer.s_size for layer in info.layers)
        assert r > 0
        state = bytes_per_token(info, X86, 0) - bytes_per_token(stateless, X86, 0)
        assert state == pytest.approx(8 * r + speed.STATE_ELEMENT_BYTES * s)
        assert (s > 0) == (preset == "qwen3.5-0.8b")


@pytest.mark.llama
def test_a_real_run_calibrates_the_plan_on_the_probed_cpu(tmp_path, local_device_file, tiny_llama, capsys):
    profile = tmp_path / "p.yaml"
    profile.write_text(f"models: [{json.dumps(str(tiny_llama))}]\ntests: [tg32]\nrepetitions: 3\nwarmup: 1\n"
                       "engine: {name: llama.cpp, threads: 2}\ntelemetry: {enabled: false}\n")
    results = tmp_path / "results"
    assert main(["run", str(profile), "-d", str(local_device_file), "-o", str(results)]) == 0
    capsys.readouterr()
    assert main(["show", str(next(results.iterdir())), "--format", "jsonl"]) == 0
    (row,) = map(json.loads, capsys.readouterr().out.splitlines())
    assert main(["plan", str(tiny_llama), "-d", "testbox", "--devices-dir", str(local_device_file.parent),
                 "--results", str(results), "--ctx", "4096", "--json",
                 # this shared VM's load must not decide
                 "--max-load", "1000", "--max-steal", "100", "--max-cpu-wait", "100"]) == 0
    report = json.loads(capsys.readouterr().out)
    (device,) = report["devices"]
    assert device["effective_bandwidth_bytes_s"]["source"].startswith("calibrated from 1 tg cell"), device
    # the run's probe said which CPU it was, and so which weights were repacked and how fast they were read
    info, runtime = read_gguf(tiny_llama), Runtime(cpu_arch=platform.machine())
    bandwidth = row["avg_ts"] * bytes_per_token(info, runtime, 16)  # tg32 sits at depth 16 on average
    assert device["effective_bandwidth_bytes_s"]["value"] == pytest.approx(bandwidth)
    (cell,) = report["cells"]
    assert cell["tg_ts"] == pytest.approx(bandwidth / bytes_per_token(info, runtime, 0))
