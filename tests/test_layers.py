"""The architecture model: per-layer kinds from GGUF metadata and tensor tables built here, with
the expected layouts derived by hand from the vendored llama.cpp (paths under src/ of
llama-cpp-python 0.3.36's vendor/llama.cpp, cited per case)."""

from __future__ import annotations

import json

import pytest

from edgebench.cli import main
from edgebench.models.gguf_info import TensorInfo, info_from_metadata
from edgebench.plan.memory import MIB, Runtime, max_context, memory_items, total
from edgebench.plan.speed import weights_read_per_token


def tensor(name: str, n: int = 1024, n_bytes: int | None = None) -> TensorInfo:
    return TensorInfo(name, "F16", n, n * 2 if n_bytes is None else n_bytes, 8)


def model(arch: str, n_layer: int, per_layer: list[str] | None = None, extra_tensors=(), **keys):
    meta = {"general.architecture": arch, f"{arch}.block_count": n_layer, f"{arch}.embedding_length": 640,
            f"{arch}.context_length": 32768}
    meta.update({f"{arch}.{k.replace('__', '.')}": v for k, v in keys.items()})
    tensors = [tensor("token_embd.weight", 640 * 1000)]
    for il in range(n_layer):
        for name in per_layer or ["attn_k.weight", "attn_v.weight", "ffn_up.weight"]:
            tensors.append(tensor(f"blk.{il}.{name}"))
    tensors += list(extra_tensors)
    return info_from_metadata(meta, tuple(tensors), name=arch, source=f"{arch}.gguf", file_size=None)


def kinds(info) -> list[str]:
    return [x.kind for x in info.layers]


def test_gemma3_five_local_layers_to_one_global():
    # src/models/gemma3.cpp:4-7: SWA when sliding_window > 0, load_swa_pattern(ml, 6);
    # src/llama-hparams.cpp set_swa_pattern: is_swa = il % 6 < 5
    info = model("gemma3", 18, attention__head_count=4, attention__head_count_kv=1, attention__key_length=256,
                 attention__value_length=256, attention__sliding_window=512, feed_forward_length=2048)
    full = [x.index for x in info.layers if x.attention == "full"]
    assert full == [5, 11, 17]
    assert all(x.window == 512 for x in info.layers if x.attention == "sliding")
    assert info.layers[0].n_embd_k_gqa == 256 and info.layers[0].n_embd_v_gqa == 256
    assert info.arch_known and info.n_swa == 512


def test_gemma3_without_window_is_all_full():
    # src/models/gemma3.cpp:10-11: no sliding_window key -> LLAMA_SWA_TYPE_NONE
    info = model("gemma3", 6, attention__head_count=4)
    assert set(kinds(info)) == {"full attention"}


def test_gemma2_alternates_with_its_default_window():
    # src/models/gemma2.cpp:4-6: n_swa = 4096 default, load_swa_pattern(ml, 2): even layers local
    info = model("gemma2", 4, attention__head_count=8, attention__head_count_kv=4)
    assert [x.attention for x in info.layers] == ["sliding", "full", "sliding", "full"]
    assert info.n_swa == 4096


def test_lfm2_short_conv_where_head_count_kv_is_zero():
    # src/models/lfm2.cpp:11-13: is_recr = head_count_kv[il] == 0, read per layer;
    # src/llama-hparams.cpp n_embd_r: n_embd * (l_cache - 1) for LFM2, n_embd_s: 0
    kv = [0, 0, 8, 0, 0, 8]
    info = model("lfm2", 6, attention__head_count=16, attention__head_count_kv=kv, shortconv__l_cache=3,
                 feed_forward_length=4608)
    assert [bool(x.recurrent) for x in info.layers] == [True, True, False, True, True, False]
    assert kinds(info)[0] == "recurrent (lfm2 short conv)"
    assert info.layers[2].n_embd_k_gqa == 8 * 40  # n_head_kv of that layer x (640 / 16)
    assert (info.layers[0].r_size, info.layers[0].s_size) == (640 * 2, 0)
    # read per layer, never at index 0 only: the KV cache is not zero
    kv = next(i for i in memory_items(info, Runtime()) if i.name == "KV cache")
    assert kv.per_token == 2 * (2 * 8 * 40) * 2


def test_qwen3moe_experts_apart_from_dense_bytes():
    # src/llama-model.cpp load_hparams: expert_count / expert_used_count; routed experts are *_exps
    per_layer = ["attn_k.weight", "attn_v.weight", "ffn_gate_inp.weight"]
    experts = [TensorInfo(f"blk.{il}.ffn_{w}_exps.weight", "F16", 128 * 1000, 128 * 2000, 8)
               for il in range(4) for w in ("gate", "up", "down")]
    info = model("qwen3moe", 4, per_layer, experts, attention__head_count=16, attention__head_count_kv=4,
                 expert_count=128, expert_used_count=8, expert_feed_forward_length=768)
    assert info.n_expert == 128 and info.n_expert_used == 8 and info.n_expert_shared == 0
    assert info.expert_bytes == 12 * 128 * 2000
    assert info.active_expert_bytes == pytest.approx(info.expert_bytes * 8 / 128)
    # a token reads the dense part and 8 of 128 experts
    assert weights_read_per_token(info) < info.weight_bytes - info.expert_bytes * 0.9


def test_deepseek2_mla_caches_the_compressed_k_only():
    # src/models/deepseek2.cpp:15-16 key_length_mla / value_length_mla -> is_mla();
    # src/llama-kv-cache.cpp:231 has_v = !is_mla: the cache holds K = head_count_kv x key_length only
    info = model("deepseek2", 3, ["attn_kv_a_mqa.weight", "ffn_up.weight"], attention__head_count=16,
                 attention__head_count_kv=1, attention__key_length=576, attention__value_length=512,
                 attention__key_length_mla=192, attention__value_length_mla=128, attention__kv_lora_rank=512)
    assert info.is_mla
    assert [(x.n_embd_k_gqa, x.n_embd_v_gqa) for x in info.layers] == [(576, 0)] * 3


def test_mamba2_state_per_llama_hparams():
    # src/llama-arch.cpp llm_arch_is_recurrent(MAMBA2); src/llama-hparams.cpp n_embd_r / n_embd_s
    info = model("mamba2", 2, ["ssm_in.weight", "ssm_out.weight"], ssm__conv_kernel=4, ssm__inner_size=1536,
                 ssm__state_size=128, ssm__group_count=1, attention__head_count=0)
    assert kinds(info) == ["recurrent (mamba2)"] * 2
    assert info.layers[0].r_size == 3 * (1536 + 2 * 1 * 128) and info.layers[0].s_size == 128 * 1536
    assert not any(x.has_kv for x in info.layers)


def test_rwkv7_state_from_token_shift_and_wkv_heads():
    # src/models/rwkv7.cpp:6,11 wkv.head_size, token_shift_count (default 2);
    # src/llama-hparams.cpp n_embd_r = token_shift_count * n_embd, n_embd_s = n_embd * wkv_head_size
    info = model("rwkv7", 3, ["time_mix_key.weight"], wkv__head_size=64, attention__head_count=0)
    assert kinds(info) == ["recurrent (rwkv7)"] * 3
    assert (info.layers[0].r_size, info.layers[0].s_size) == (2 * 640, 640 * 64)


def test_unknown_arch_is_named_not_taken_for_attention():
    info = model("wonderformer", 2, attention__head_count=4)
    assert not info.arch_known
    assert info.unknown_arch.startswith("unknown architecture wonderformer")


def test_sliding_window_caps_the_plan_and_max_context_stays_exact():
    info = model("gemma3", 18, attention__head_count=4, attention__head_count_kv=1, attention__key_length=256,
                 attention__value_length=256, attention__sliding_window=512)
    items = {i.name: i for i in memory_items(info, Runtime())}
    swa = items["KV cache, sliding window"]
    # src/llama-kv-cache-iswa.cpp: PAD(min(n_ctx, n_swa + n_ubatch), 256) = 1024 cells
    per_cell = 15 * 2 * 256 * 2
    assert swa.at(32768) == swa.at(4096) == 1024 * per_cell
    assert items["KV cache"].at(32768) == 32768 * 3 * 2 * 256 * 2
    full = {i.name: i for i in memory_items(info, Runtime(swa_full=True))}
    assert full["KV cache, sliding window"].at(32768) == 32768 * per_cell
    mem = total(memory_items(info, Runtime()))
    budget = mem.at(20000)
    n = max_context(mem, budget, 1 << 20)
    assert mem.at(n) <= budget < mem.at(n + 256)


def _write_gguf(path, arch: str, meta: dict, tensors: dict):
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(meta.pop("block_count"))
    for key, value in meta.items():
        full = f"{arch}.{key}"
        if isinstance(value, list):
            writer.add_array(full, value)
        else:
            writer.add_uint32(full, value)
    for name, n in tensors.items():
        writer.add_tensor(name, np.zeros((8, n // 8), dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.fixture
def gemma3_file(tmp_path):
    path = tmp_path / "gemma3-mini.gguf"
    tensors = {"token_embd.weight": 64 * 1024}
    for il in range(18):
        tensors.update({f"blk.{il}.attn_k.weight": 64 * 256, f"blk.{il}.attn_v.weight": 64 * 256})
    _write_gguf(path, "gemma3", {"block_count": 18, "embedding_length": 640, "context_length": 32768,
                                 "attention.head_count": 4, "attention.head_count_kv": 1,
                                 "attention.key_length": 256, "attention.value_length": 256,
                                 "attention.sliding_window": 512, "feed_forward_length": 2048}, tensors)
    return path


def test_inspect_shows_the_window_and_which_layers(capsys, gemma3_file):
    assert main(["inspect", str(gemma3_file)]) == 0
    out = capsys.readouterr().out
    assert "18 = 15 sliding-window (window 512) + 3 full attention [5, 11, 17]" in out
    assert main(["inspect", str(gemma3_file), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["n_swa"] == 512 and [x["attention"] for x in data["layers"]].count("full") == 3


def test_plan_charges_kv_only_where_llama_cpp_allocates(capsys, gemma3_file, tmp_path):
    args = ["plan", str(gemma3_file), "--ctx", "32k", "--json", "--results", str(tmp_path)]
    assert main(args) == 0
    cell = json.loads(capsys.readouterr().out)["cells"][0]
    assert cell["memory"]["KV cache"] == 32768 * 3 * 2 * 256 * 2
    assert cell["memory"]["KV cache, sliding window"] == 1024 * 15 * 2 * 256 * 2
    assert cell["swa_full"] is False
    assert main(args + ["--swa-full"]) == 0
    cell = json.loads(capsys.readouterr().out)["cells"][0]
    assert cell["memory"]["KV cache, sliding window"] == 32768 * 15 * 2 * 256 * 2 and cell["swa_full"] is True
    assert cell["memory"]["KV cache, sliding window"] / MIB == 480


def test_plan_names_an_unknown_arch(capsys, tmp_path):
    path = tmp_path / "odd.gguf"
    _write_gguf(path, "wonderformer", {"block_count": 2, "embedding_length": 64, "attention.head_count": 4},
                {"token_embd.weight": 64 * 16, "blk.0.attn_k.weight": 64 * 8, "blk.1.attn_k.weight": 64 * 8})
    assert main(["plan", str(path), "--results", str(tmp_path)]) == 0
    assert "unknown architecture wonderformer" in capsys.readouterr().out
    assert main(["inspect", str(path)]) == 0
    assert "unknown architecture wonderformer" in capsys.readouterr().out
