"""The synth families beyond qwen35/llama: gemma3 (sliding window), qwen3moe (MoE), lfm2 (short
convolution hybrid) and deepseek2 (MLA + MoE with shared experts).

The judge is llama.cpp's loader: each tiny preset is built by `edgebench run` from its
`synthetic:` spec and benchmarked through the real runner with both llama.cpp engines.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gguf
import pytest

from edgebench.errors import SynthError
from edgebench.models.synth.shapes import PRESETS
from edgebench.models.synth.writer import write_gguf

TINY = ["tiny-gemma3", "tiny-qwen3moe", "tiny-lfm2", "tiny-deepseek2"]
PUBLISHED = ["gemma-3-270m", "gemma-3-1b", "qwen3-30b-a3b", "lfm2-350m", "lfm2-1.2b", "deepseek-v2-lite"]


def _metadata(path: Path) -> dict:
    reader = gguf.GGUFReader(path)
    return {k: f.contents() for k, f in reader.fields.items() if not k.startswith("tokenizer.")}


def _tensors(path: Path) -> dict[str, tuple[int, ...]]:
    return {t.name: tuple(int(x) for x in t.shape) for t in gguf.GGUFReader(path).tensors}


# ------------------------------------------------------------------------------------------------
# shapes and the keys llama.cpp's loaders read

def test_published_presets_have_the_published_parameter_counts():
    # text decoder as written to GGUF; the published totals (model cards / safetensors metadata)
    counts = {name: PRESETS[name].n_params() for name in PUBLISHED}
    assert counts == {
        "gemma-3-270m": 268_098_176, "gemma-3-1b": 999_885_952, "qwen3-30b-a3b": 30_532_122_624,
        "lfm2-350m": 354_483_968, "lfm2-1.2b": 1_170_340_608, "deepseek-v2-lite": 15_706_484_224,
    }
    for name in PUBLISHED + TINY:
        assert PRESETS[name].source


def test_tiny_presets_are_small_and_kquant_friendly():
    for name in TINY:
        shape = PRESETS[name]
        assert shape.f16_bytes() < 10_000_000
        for t in shape.tensors():
            # every K-quant-eligible row is whole 256-blocks, except MLA's per-head key decompression,
            # whose rows are qk_nope wide (128) in the published model too
            if t.dtype == "F16" and not t.name.endswith("attn_k_b.weight"):
                assert t.ne[0] % 256 == 0, (name, t.name, t.ne)


def test_gemma3_is_five_local_layers_to_one_global(tmp_path):
    shape = PRESETS["gemma-3-270m"]
    assert [i for i, k in enumerate(shape.layer_kinds()) if k == "attention"] == [5, 11, 17]
    assert shape.layer_kinds().count("swa") == 15 and shape.n_attention_layers == 18
    path = write_gguf(PRESETS["tiny-gemma3"], tmp_path / "g.gguf")
    meta, tensors = _metadata(path), _tensors(path)
    assert meta["gemma3.attention.sliding_window"] == 128
    assert meta["gemma3.rope.freq_base"] == 1_000_000.0 and meta["gemma3.rope.freq_base_swa"] == 10_000.0
    assert "gemma3.attention.sliding_window_pattern" not in meta  # llama.cpp's default rule, as real files
    for name in ("post_attention_norm", "post_ffw_norm", "attn_q_norm", "attn_k_norm"):
        assert f"blk.5.{name}.weight" in tensors
    assert "output.weight" not in tensors  # tied head


def test_qwen3moe_experts_are_3d_tensors(tmp_path):
    path = write_gguf(PRESETS["tiny-qwen3moe"], tmp_path / "q.gguf")
    meta, tensors = _metadata(path), _tensors(path)
    assert (meta["qwen3moe.expert_count"], meta["qwen3moe.expert_used_count"],
            meta["qwen3moe.expert_feed_forward_length"]) == (4, 2, 256)
    assert tensors["blk.1.ffn_gate_inp.weight"] == (256, 4)  # ggml ne {n_embd, n_expert}
    assert tensors["blk.1.ffn_gate_exps.weight"] == (256, 256, 4)
    assert tensors["blk.1.ffn_down_exps.weight"] == (256, 256, 4)
    assert not any(n.endswith("ffn_gate.weight") for n in tensors)
    real = PRESETS["qwen3-30b-a3b"].gguf_metadata()
    assert (real["qwen3moe.expert_count"], real["qwen3moe.expert_used_count"]) == (128, 8)


def test_lfm2_marks_conv_layers_with_zero_kv_heads(tmp_path):
    assert PRESETS["lfm2-350m"].gguf_metadata()["lfm2.attention.head_count_kv"] == [
        0, 0, 8, 0, 0, 8, 0, 0, 8, 0, 8, 0, 8, 0, 8, 0]
    path = write_gguf(PRESETS["tiny-lfm2"], tmp_path / "l.gguf")
    meta, tensors = _metadata(path), _tensors(path)
    assert meta["lfm2.attention.head_count_kv"] == [0, 0, 2, 0]  # an ARRAY, per layer
    assert meta["lfm2.shortconv.l_cache"] == 3
    assert tensors["blk.0.shortconv.conv.weight"] == (3, 256)
    assert tensors["blk.0.shortconv.in_proj.weight"] == (256, 768)
    assert "blk.2.attn_k.weight" in tensors and "blk.2.shortconv.conv.weight" not in tensors
    assert "token_embd_norm.weight" in tensors and "output_norm.weight" not in tensors


def test_deepseek2_writes_compressed_kv_and_shared_experts(tmp_path):
    meta = PRESETS["deepseek-v2-lite"].gguf_metadata()
    a = "deepseek2."
    assert (meta[a + "attention.head_count_kv"], meta[a + "attention.key_length"],
            meta[a + "attention.value_length"]) == (1, 576, 512)
    assert (meta[a + "attention.key_length_mla"], meta[a + "attention.value_length_mla"],
            meta[a + "rope.dimension_count"], meta[a + "attention.kv_lora_rank"]) == (192, 128, 64, 512)
    assert (meta[a + "expert_count"], meta[a + "expert_used_count"], meta[a + "expert_shared_count"],
            meta[a + "leading_dense_block_count"], meta[a + "expert_feed_forward_length"]) == (64, 6, 2, 1, 1408)
    path = write_gguf(PRESETS["tiny-deepseek2"], tmp_path / "d.gguf")
    tensors = _tensors(path)
    assert tensors["blk.0.ffn_up.weight"] == (256, 512)  # the leading dense layer
    assert "blk.0.ffn_gate_inp.weight" not in tensors
    assert tensors["blk.1.attn_kv_a_mqa.weight"] == (256, 256 + 64)
    assert tensors["blk.1.attn_k_b.weight"] == (128, 256, 2)
    assert tensors["blk.1.attn_v_b.weight"] == (256, 128, 2)
    assert tensors["blk.2.ffn_down_shexp.weight"] == (256, 256)
    assert tensors["blk.2.ffn_up_exps.weight"] == (256, 256, 4)


def test_layers_cut_keeps_each_familys_pattern():
    gemma = PRESETS["gemma-3-1b"].with_layers(12)
    assert gemma.layer_kinds() == (["swa"] * 5 + ["attention"]) * 2
    lfm2 = PRESETS["lfm2-350m"].with_layers(6)
    assert lfm2.layer_kinds() == ["shortconv", "shortconv", "attention", "shortconv", "shortconv", "attention"]
    assert lfm2.gguf_metadata()["lfm2.attention.head_count_kv"] == [0, 0, 8, 0, 0, 8]
    ds = PRESETS["deepseek-v2-lite"].with_layers(2)
    assert [n for n in (t.name for t in ds.tensors()) if "ffn_gate_inp" in n] == ["blk.1.ffn_gate_inp.weight"]
    assert PRESETS["gemma-3-270m"].with_layers(2).layer_kinds() == ["swa", "swa"]  # llama.cpp runs it


def test_a_cut_llama_cpp_cannot_run_is_one_sentence(tmp_path):
    # an lfm2 model of short convolutions only aborts in llama.cpp (GGML_ASSERT(buffer))
    with pytest.raises(SynthError, match="would have only short-convolution layers; its first attention layer "
                                         "is layer 2, so keep at least 3 layers"):
        PRESETS["lfm2-350m"].with_layers(2)
    proc = subprocess.run([sys.executable, "-m", "edgebench", "synth", "--like", "tiny-lfm2", "--layers", "2",
                           "-o", tmp_path / "x.gguf"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 3
    (line,) = proc.stderr.strip().splitlines()
    assert "keep at least 3 layers" in line and "Traceback" not in proc.stderr
    assert not (tmp_path / "x.gguf").exists()


# ------------------------------------------------------------------------------------------------
# llama.cpp is the judge: each family built, loaded and benchmarked through `edgebench run`

MODELS = [f"synthetic:{name}@Q4_K_M" for name in TINY] + ["synthetic:tiny-deepseek2@Q8_0"]


def _run(tmp_path: Path, engine_lines: list[str]) -> list[dict]:
    device = tmp_path / "devices" / "box.yaml"
    device.parent.mkdir(exist_ok=True)
    device.write_text(f"name: box\ntransport: local\nclass: desktop\nworkdir: {tmp_path / 'work'}\n")
    lines = ["models:"] + [f"  - {m}" for m in MODELS] + ["tests: [pp32, tg8]", "repetitions: 1", "warmup: 0",
                                                         "engine:", "  threads: 2", *engine_lines]
    profile = tmp_path / "p.yaml"
    profile.write_text("\n".join(lines) + "\n")
    env = {**os.environ, "EDGEBENCH_CACHE": os.environ.get("EDGEBENCH_CACHE", str(tmp_path.parent / "cache"))}
    proc = subprocess.run([sys.executable, "-m", "edgebench", "run", profile, "-d", "box", "-o", tmp_path / "r"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    (run_dir,) = (tmp_path / "r").iterdir()
    return json.loads((run_dir / "summary.json").read_text())["rows"]


def _assert_every_cell_ran(rows: list[dict]) -> None:
    assert len(rows) == len(MODELS) * 2
    for row in rows:
        assert row["status"] == "done", row
        assert row["avg_ts"] > 0, row
    assert {r["model_type"].split()[0] for r in rows} >= {"gemma3", "qwen3moe", "lfm2", "deepseek2"}


@pytest.mark.llama
def test_every_family_runs_in_process(tmp_path):
    _assert_every_cell_ran(_run(tmp_path, ["  name: llama.cpp"]))


@pytest.mark.llama
def test_every_family_runs_in_llama_bench(tmp_path, llama_bench_binary):
    _assert_every_cell_ran(_run(tmp_path, ["  name: llama-bench", f"  binary: {llama_bench_binary}"]))


@pytest.mark.llama
@pytest.mark.parametrize("spec", ["gemma-3-270m@Q4_K_M?layers=2", "lfm2-350m@Q4_K_M?layers=3"])
def test_published_shapes_cut_to_a_few_layers_load_in_llama_cpp(spec, model_dir):
    """The real widths (Gemma 3's 640, LFM2's 1024 and its 65536 vocabulary), which the tiny presets do
    not exercise, under 300 MB once cut; qwen3-30b-a3b and deepseek-v2-lite cut to 1-2 layers are
    400-600 MB of embeddings and were checked by hand (README)."""
    from llama_cpp import Llama

    from edgebench.models.synth.build import build_synthetic
    from edgebench.models.synth.spec import parse_synth_spec

    parsed = parse_synth_spec(spec)
    path = model_dir / parsed.file_name()
    if not path.exists():
        build_synthetic(parsed, path)
    assert path.stat().st_size < 300_000_000
    llm = Llama(model_path=str(path), n_ctx=64, n_batch=16, n_threads=2, verbose=False)
    try:
        llm.eval([1, 300, 301, 5])
        assert llm.n_vocab() == PRESETS[parsed.preset].n_vocab
    finally:
        llm.close()


@pytest.mark.llama
def test_eight_experts_get_llama_cpps_extra_attention_bits(tmp_path):
    """llama.cpp's quantizer singles out models of exactly 8 experts (attn_k/attn_v to Q8_0, attn_output to
    Q5_K at Q4_K_M); the prediction a plan uses follows it."""
    import dataclasses

    from edgebench.models.gguf_quants import tensor_types
    from edgebench.models.synth.experts import Experts
    from edgebench.models.synth.quantize import quantize

    shape = dataclasses.replace(PRESETS["tiny-qwen3moe"], experts=Experts(n_expert=8, n_expert_used=2, n_ff_exp=256))
    f16 = write_gguf(shape, tmp_path / "m-f16.gguf")
    real = quantize(f16, tmp_path / "m.gguf", "Q4_K_M", n_threads=2)
    file_types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(real).tensors}
    predicted = {t.name: kind.name for t, kind in tensor_types(shape, "Q4_K_M")}
    assert predicted == file_types
    assert (file_types["blk.0.attn_k.weight"], file_types["blk.0.attn_output.weight"]) == ("Q8_0", "Q5_K")
    assert file_types["blk.0.ffn_gate_inp.weight"] == "F32"
