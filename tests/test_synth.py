"""Synthetic models: spec parsing, shapes, the GGUF writer, llama.cpp loading/quantizing, the cache.

The llama.cpp tests (marked `llama`) run the real llama.cpp from llama-cpp-python; without it they
skip with the reason, except on CI, where a missing engine fails them (it must not look like a pass).
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import sys
import threading
from pathlib import Path

import gguf
import numpy as np
import pytest
from terminal import plain, run_in_terminal

from edgebench.errors import DiskFullError, EdgebenchError, SynthError
from edgebench.models.synth import build as build_mod
from edgebench.models.synth import writer as writer_mod
from edgebench.models.synth.build import build_synthetic, cache_path, cached_synthetic
from edgebench.models.synth.quantize import FTYPES, quantize
from edgebench.models.synth.shapes import PRESETS, ModelShape
from edgebench.models.synth.spec import QUANTS, SynthSpec, parse_synth_spec
from edgebench.models.synth.writer import write_gguf
from edgebench.paths import cache_root

QWEN_PRESETS = ["qwen3.5-0.8b", "qwen3.5-2b", "qwen3.5-4b", "qwen3.5-9b"]


# ------------------------------------------------------------------------------------------------
# fixtures

@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("synth")


@pytest.fixture(scope="module")
def tiny_qwen_f16(synth_dir) -> Path:
    return write_gguf(PRESETS["tiny-qwen35"], synth_dir / "tiny-qwen35-F16.gguf")


@pytest.fixture(scope="module")
def tiny_llama_f16(synth_dir) -> Path:
    return write_gguf(PRESETS["tiny-llama"], synth_dir / "tiny-llama-F16.gguf")


def _field(reader: gguf.GGUFReader, key: str):
    field = reader.get_field(key)
    assert field is not None, f"missing metadata key {key}"
    return field.contents()


def _tensors(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    reader = gguf.GGUFReader(path)
    return {t.name: (tuple(int(x) for x in t.shape), t.tensor_type.name) for t in reader.tensors}


# ------------------------------------------------------------------------------------------------
# spec parsing

def test_spec_defaults_and_prefix():
    spec = parse_synth_spec("synthetic:qwen3.5-4b")
    assert spec == SynthSpec(preset="qwen3.5-4b", quant="F16", layers=None)
    assert spec.canonical() == "qwen3.5-4b@F16"
    assert str(spec) == "synthetic:qwen3.5-4b@F16"
    assert spec.file_name() == "qwen3.5-4b-F16.gguf"


def test_spec_quant_is_case_insensitive_and_layers_parsed():
    spec = parse_synth_spec("qwen3.5-4b@q4_k_m?layers=8")
    assert spec == SynthSpec(preset="qwen3.5-4b", quant="Q4_K_M", layers=8)
    assert spec.canonical() == "qwen3.5-4b@Q4_K_M?layers=8"
    assert spec.file_name() == "qwen3.5-4b-L8-Q4_K_M.gguf"
    assert parse_synth_spec("  tiny-llama@Q8_0  ") == SynthSpec("tiny-llama", "Q8_0", None)
    assert parse_synth_spec("tiny-qwen35?layers=4") == SynthSpec("tiny-qwen35", "F16", 4)


@pytest.mark.parametrize("text, fragment", [
    ("nosuch-model", "unknown synthetic preset 'nosuch-model'"),
    ("qwen3.5-4b@Q2_K", "unknown quant 'Q2_K'"),
    ("qwen3.5-4b?layers=0", "layers must be a positive integer"),
    ("qwen3.5-4b?layers=-1", "layers must be a positive integer"),
    ("qwen3.5-4b?layers=abc", "layers must be a positive integer"),
    ("qwen3.5-4b?layers=33", "qwen3.5-4b has 32 layers; cannot keep 33"),
    ("qwen3.5-4b?depth=2", "unknown option 'depth'"),
    ("qwen3.5 4b", "cannot parse synthetic spec"),
    ("", "cannot parse synthetic spec"),
])
def test_spec_errors(text, fragment):
    with pytest.raises(SynthError) as info:
        parse_synth_spec(text)
    assert fragment in str(info.value)
    assert isinstance(info.value, EdgebenchError) and info.value.kind == "synth"


def test_spec_quants_match_quantizer():
    assert set(QUANTS) == set(FTYPES)
    assert FTYPES == {"F16": 1, "Q8_0": 7, "Q6_K": 18, "Q5_K_M": 17, "Q4_K_M": 15, "Q3_K_S": 11}


# ------------------------------------------------------------------------------------------------
# shapes

def test_qwen35_4b_layers_and_params():
    s = PRESETS["qwen3.5-4b"]
    assert (s.n_layer, s.n_attention_layers, s.n_deltanet_layers) == (32, 8, 24)
    assert [i for i, k in enumerate(s.layer_kinds()) if k == "attention"] == [3, 7, 11, 15, 19, 23, 27, 31]
    # Count by hand (text decoder, tied embedding counted once, no MTP layer, no vision tower).
    E, F, V = 2560, 9216, 248320
    ffn = 3 * E * F + 2 * E                               # gate/up/down + attn_norm + post norm
    attn = E * 2 * 4096 + 2 * E * 1024 + 4096 * E + 2 * 256
    conv_dim = 2 * 2048 + 4096
    delta = (E * conv_dim + E * 4096 + conv_dim * 4 + 32 + 32 + 2 * E * 32 + 128 + 4096 * E)
    expected = V * E + E + 32 * ffn + 8 * attn + 24 * delta
    assert s.n_params() == expected == 4_205_751_296
    # published ~4.2-4.7B (the upper end includes vision tower and MTP layer): within a few %
    assert 4.2e9 * 0.97 < s.n_params() < 4.7e9 * 1.03
    assert s.inner_size == 4096 and s.conv_dim == 8192 and s.key_dim == 2048
    assert s.n_rot == 64 and s.rope_sections == (11, 11, 10, 0)
    assert s.kv_bytes_per_token() == 32 * 1024  # 32 KiB/token at f16, as the reference says


def test_layer_kind_rule_for_every_qwen_preset():
    for name in QWEN_PRESETS + ["tiny-qwen35"]:
        s = PRESETS[name]
        kinds = s.layer_kinds()
        assert kinds == ["attention" if (i + 1) % 4 == 0 else "deltanet" for i in range(s.n_layer)]
        assert s.n_attention_layers == s.n_layer // 4
    assert PRESETS["tiny-qwen35"].layer_kinds() == ["deltanet"] * 3 + ["attention"]
    assert PRESETS["tiny-llama"].layer_kinds() == ["attention"] * 4


def test_with_layers_keeps_width_and_pattern():
    full = PRESETS["qwen3.5-4b"]
    cut = full.with_layers(8)
    assert cut.n_layer == 8 and cut.n_attention_layers == 2 and cut.n_deltanet_layers == 6
    assert cut.layer_kinds() == full.layer_kinds()[:8]
    for field in ("n_embd", "n_ff", "n_vocab", "n_head", "n_head_kv", "head_dim", "state_size",
                  "group_count", "time_step_rank", "tied_embeddings"):
        assert getattr(cut, field) == getattr(full, field)
    assert cut.n_params() < full.n_params()
    assert full.with_layers(32) is full
    for bad in (0, 33):
        with pytest.raises(SynthError, match="cannot keep"):
            full.with_layers(bad)


def test_presets_have_kquant_friendly_widths_and_known_params():
    expected = {
        "tiny-qwen35": 3_157_900, "tiny-llama": 3_410_176,
        "qwen3.5-0.8b": 752_393_024, "qwen3.5-2b": 1_881_825_088,
        "qwen3.5-4b": 4_205_751_296, "qwen3.5-9b": 8_953_803_264,
        "llama-3.2-1b": 1_235_814_400,
    }
    # the other families' presets are checked in tests/test_synth_families.py
    assert {k: v.n_params() for k, v in PRESETS.items() if v.arch in ("qwen35", "llama")} == expected
    for name, s in PRESETS.items():
        if s.arch not in ("qwen35", "llama"):
            continue
        assert s.name == name and s.source
        for t in s.tensors():
            if t.dtype == "F16":
                assert len(t.shape) == 2 and t.ne[0] % 256 == 0, (name, t.name, t.ne)
        if s.arch == "qwen35":
            assert sum(s.rope_sections) == s.n_rot // 2
            assert s.inner_size == s.state_size * s.time_step_rank


def test_invalid_shape_is_rejected():
    with pytest.raises(SynthError, match="n_head 6 is not a multiple of n_head_kv 4"):
        ModelShape(name="bad", arch="llama", n_vocab=1000, n_embd=256, n_layer=1, n_ff=256,
                   n_head=6, n_head_kv=4, head_dim=64, rope_theta=1e4, context_length=512,
                   tied_embeddings=True)
    with pytest.raises(SynthError, match="qwen35 needs a positive conv_kernel"):
        ModelShape(name="bad", arch="qwen35", n_vocab=1000, n_embd=256, n_layer=4, n_ff=256,
                   n_head=2, n_head_kv=1, head_dim=128, rope_theta=1e4, context_length=512,
                   tied_embeddings=True, partial_rotary_factor=0.25, state_size=128,
                   group_count=1, time_step_rank=2)
    with pytest.raises(SynthError, match="arch must be one of"):
        ModelShape(name="bad", arch="mamba", n_vocab=1000, n_embd=256, n_layer=1, n_ff=256,
                   n_head=2, n_head_kv=1, head_dim=128, rope_theta=1e4, context_length=512,
                   tied_embeddings=True)


# ------------------------------------------------------------------------------------------------
# writer

def test_tiny_qwen35_reads_back(tiny_qwen_f16):
    shape = PRESETS["tiny-qwen35"]
    reader = gguf.GGUFReader(tiny_qwen_f16)
    assert _field(reader, "general.architecture") == "qwen35"
    assert _field(reader, "general.name") == "synthetic tiny-qwen35"
    assert _field(reader, "general.file_type") == 1
    assert _field(reader, "qwen35.block_count") == 4
    assert _field(reader, "qwen35.embedding_length") == 256
    assert _field(reader, "qwen35.feed_forward_length") == 512
    assert _field(reader, "qwen35.attention.head_count") == 2
    assert _field(reader, "qwen35.attention.head_count_kv") == 1
    assert _field(reader, "qwen35.attention.key_length") == 128
    assert _field(reader, "qwen35.rope.dimension_count") == 32
    assert _field(reader, "qwen35.rope.dimension_sections") == [6, 5, 5, 0]
    assert _field(reader, "qwen35.full_attention_interval") == 4
    assert _field(reader, "qwen35.ssm.conv_kernel") == 4
    assert _field(reader, "qwen35.ssm.state_size") == 128
    assert _field(reader, "qwen35.ssm.group_count") == 1
    assert _field(reader, "qwen35.ssm.time_step_rank") == 2
    assert _field(reader, "qwen35.ssm.inner_size") == 256
    assert _field(reader, "tokenizer.ggml.model") == "llama"
    tokens = _field(reader, "tokenizer.ggml.tokens")
    assert len(tokens) == 2048 and tokens[:4] == ["<unk>", "<s>", "</s>", "<0x00>"]
    assert tokens[258] == "<0xFF>" and len(set(tokens)) == 2048
    assert bool(_field(reader, "edgebench.synthetic")) is True
    assert _field(reader, "edgebench.synth.writer_version") == writer_mod.WRITER_VERSION

    tensors = _tensors(tiny_qwen_f16)
    assert len(tensors) == len(shape.tensors()) == 55
    # ggml order {ne0, ne1}
    assert tensors["token_embd.weight"] == ((256, 2048), "F16")
    assert "output.weight" not in tensors  # tied
    assert tensors["output_norm.weight"] == ((256,), "F32")
    assert tensors["blk.0.attn_qkv.weight"] == ((256, 512), "F16")
    assert tensors["blk.0.attn_gate.weight"] == ((256, 256), "F16")
    assert tensors["blk.0.ssm_conv1d.weight"] == ((4, 512), "F32")
    assert tensors["blk.0.ssm_dt.bias"] == ((2,), "F32")
    assert tensors["blk.0.ssm_a"] == ((2,), "F32")
    assert tensors["blk.0.ssm_beta.weight"] == ((256, 2), "F16")
    assert tensors["blk.0.ssm_alpha.weight"] == ((256, 2), "F16")
    assert tensors["blk.0.ssm_norm.weight"] == ((128,), "F32")
    assert tensors["blk.0.ssm_out.weight"] == ((256, 256), "F16")
    assert tensors["blk.3.attn_q.weight"] == ((256, 512), "F16")
    assert tensors["blk.3.attn_k.weight"] == ((256, 128), "F16")
    assert tensors["blk.3.attn_v.weight"] == ((256, 128), "F16")
    assert tensors["blk.3.attn_output.weight"] == ((256, 256), "F16")
    assert tensors["blk.3.attn_q_norm.weight"] == ((128,), "F32")
    assert tensors["blk.3.attn_k_norm.weight"] == ((128,), "F32")
    assert tensors["blk.3.ffn_down.weight"] == ((512, 256), "F16")
    assert "blk.3.attn_qkv.weight" not in tensors and "blk.0.attn_q.weight" not in tensors
    assert sum(int(np.prod(t.shape)) for t in reader.tensors) == shape.n_params()

    by_name = {t.name: t for t in reader.tensors}
    a = np.asarray(by_name["blk.0.ssm_a"].data)
    assert (a < 0).all() and (a >= -16).all()
    assert np.array_equal(np.asarray(by_name["blk.0.attn_norm.weight"].data), np.ones(256, np.float32))
    w = np.asarray(by_name["blk.1.ffn_up.weight"].data, dtype=np.float32)
    assert np.isfinite(w).all() and 0.015 < w.std() < 0.025 and abs(w.mean()) < 0.002


def test_tiny_llama_reads_back(tiny_llama_f16):
    reader = gguf.GGUFReader(tiny_llama_f16)
    assert _field(reader, "general.architecture") == "llama"
    assert _field(reader, "llama.rope.dimension_count") == 64
    assert _field(reader, "llama.attention.head_count_kv") == 2
    tensors = _tensors(tiny_llama_f16)
    assert len(tensors) == 4 * 9 + 3
    assert tensors["output.weight"] == ((256, 2048), "F16")  # untied
    assert tensors["blk.2.attn_q.weight"] == ((256, 256), "F16")
    assert tensors["blk.2.attn_k.weight"] == ((256, 128), "F16")
    assert tensors["blk.2.ffn_norm.weight"] == ((256,), "F32")
    assert not any("post_attention_norm" in n or "ssm" in n for n in tensors)


def test_writer_is_deterministic_reports_progress_and_leaves_no_temp(tmp_path):
    shape = PRESETS["tiny-llama"]
    calls: list[tuple[int, int]] = []
    a = write_gguf(shape, tmp_path / "a.gguf", seed=7, progress=lambda d, t: calls.append((d, t)))
    b = write_gguf(shape, tmp_path / "b.gguf", seed=7)
    c = write_gguf(shape, tmp_path / "c.gguf", seed=8)
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    assert digest(a) == digest(b) != digest(c)
    assert calls[-1] == (shape.f16_bytes(), shape.f16_bytes())
    assert all(d2 >= d1 for (d1, _), (d2, _) in zip(calls, calls[1:]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gguf", "b.gguf", "c.gguf"]


def test_writer_failure_leaves_nothing_under_final_name(tmp_path):
    def boom(done, total):
        if done > total // 2:
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        write_gguf(PRESETS["tiny-llama"], tmp_path / "m.gguf", progress=boom)
    assert list(tmp_path.iterdir()) == []


def test_writer_disk_full_is_reported_as_such(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer_mod, "_write_data", full)
    with pytest.raises(DiskFullError, match="no space left on .* for synthetic model m.gguf"):
        write_gguf(PRESETS["tiny-llama"], tmp_path / "m.gguf")
    assert list(tmp_path.iterdir()) == []


def test_big_shape_streams_with_bounded_pool(tmp_path, monkeypatch):
    # the pool is reused across tensors: a cut-down real shape writes fine with a tiny pool
    monkeypatch.setattr(writer_mod, "POOL_ELEMENTS", 4096)
    monkeypatch.setattr(writer_mod, "CHUNK_ELEMENTS", 1000)
    shape = PRESETS["tiny-qwen35"]
    path = write_gguf(shape, tmp_path / "x.gguf")
    reader = gguf.GGUFReader(path)
    w = np.asarray({t.name: t for t in reader.tensors}["token_embd.weight"].data)
    assert w.shape == (2048, 256) and np.isfinite(w.astype(np.float32)).all()


# ------------------------------------------------------------------------------------------------
# real llama.cpp

def _decode(path: Path, n_gen: int = 4) -> tuple[int, np.ndarray]:
    """Load with llama.cpp, run a 6-token prompt and `n_gen` greedy single-token decodes.

    Returns (n_vocab, logits of every evaluated position)."""
    from llama_cpp import Llama  # must be installed: ImportError fails the test

    llm = Llama(model_path=str(path), n_ctx=64, n_batch=16, n_threads=2, logits_all=True,
                verbose=False)
    try:
        llm.eval([1, 300, 301, 5, 77, 1000])
        for _ in range(n_gen):
            llm.eval([int(np.argmax(llm.scores[llm.n_tokens - 1]))])
        return llm.n_vocab(), np.array(llm.scores[: llm.n_tokens], dtype=np.float32)
    finally:
        llm.close()


def _assert_sane_logits(logits: np.ndarray, n_vocab: int) -> None:
    assert logits.shape == (10, n_vocab)
    assert np.isfinite(logits).all()
    assert (logits.std(axis=1) > 1e-3).all()  # random weights give varied, non-degenerate logits
    assert np.abs(logits).max() < 1e3


@pytest.mark.llama
@pytest.mark.parametrize("preset", ["tiny-qwen35", "tiny-llama"])
def test_llama_cpp_loads_and_decodes_f16(preset, tiny_qwen_f16, tiny_llama_f16):
    path = tiny_qwen_f16 if preset == "tiny-qwen35" else tiny_llama_f16
    n_vocab, logits = _decode(path)
    assert n_vocab == 2048
    _assert_sane_logits(logits, 2048)


@pytest.mark.llama
@pytest.mark.parametrize("quant, ftype, weight_type", [("Q8_0", 7, "Q8_0"), ("Q4_K_M", 15, "Q4_K")])
@pytest.mark.parametrize("preset", ["tiny-qwen35", "tiny-llama"])
def test_quantize_and_load(preset, quant, ftype, weight_type, tiny_qwen_f16, tiny_llama_f16,
                           tmp_path):
    src = tiny_qwen_f16 if preset == "tiny-qwen35" else tiny_llama_f16
    stderr_before = os.fstat(2)
    dst = quantize(src, tmp_path / f"{preset}-{quant}.gguf", quant, n_threads=2)
    stderr_after = os.fstat(2)  # the log capture put fd 2 back
    assert (stderr_after.st_dev, stderr_after.st_ino) == (stderr_before.st_dev, stderr_before.st_ino)
    assert dst == tmp_path / f"{preset}-{quant}.gguf"
    assert [p.name for p in tmp_path.iterdir()] == [dst.name]  # no temp left behind
    assert dst.stat().st_size < src.stat().st_size
    reader = gguf.GGUFReader(dst)
    assert _field(reader, "general.file_type") == ftype
    assert _field(reader, "general.architecture") == PRESETS[preset].arch
    tensors = _tensors(dst)
    assert tensors["blk.1.ffn_gate.weight"][1] == weight_type
    assert tensors["blk.1.attn_norm.weight"][1] == "F32"
    if preset == "tiny-qwen35":
        assert tensors["blk.0.ssm_conv1d.weight"][1] == "F32"
        assert tensors["blk.0.ssm_a"][1] == "F32"
    n_vocab, logits = _decode(dst)
    assert n_vocab == 2048
    _assert_sane_logits(logits, 2048)


@pytest.mark.llama
def test_quantize_errors(tmp_path, tiny_llama_f16):
    with pytest.raises(SynthError, match="cannot quantize to 'Q2_K'"):
        quantize(tiny_llama_f16, tmp_path / "x.gguf", "Q2_K")
    with pytest.raises(SynthError, match="no such file"):
        quantize(tmp_path / "missing.gguf", tmp_path / "x.gguf", "Q8_0")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf file at all" * 100)
    with pytest.raises(SynthError, match=r"llama.cpp failed to quantize junk.gguf to Q8_0 \(code") as failed:
        quantize(junk, tmp_path / "x.gguf", "Q8_0")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.gguf"]
    log = Path(str(failed.value).split("its log is ")[1].split(":")[0])  # the error names llama.cpp's log
    assert log.parent == cache_root() / "logs" and "junk.gguf" in log.read_text()


@pytest.mark.llama
def test_quantize_counts_tensors_and_keeps_llama_cpps_log_in_a_file(tmp_path, tiny_qwen_f16, monkeypatch,
                                                                     capfd):
    """llama.cpp logs 40-180 lines per model; they go to <cache>/logs/, not to the terminal, and the
    tensors it reports done drive the progress."""
    monkeypatch.setenv("EDGEBENCH_CACHE", str(tmp_path / "cache"))
    seen = []
    quantize(tiny_qwen_f16, tmp_path / "m.gguf", "Q8_0", n_threads=2, progress=lambda *args: seen.append(args))
    n_tensors = len(PRESETS["tiny-qwen35"].tensors())
    assert seen == [(done, n_tensors, "tensors") for done in range(1, n_tensors + 1)]
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    (log,) = (tmp_path / "cache" / "logs").iterdir()
    text = log.read_text()
    assert "llama_model_loader: loaded meta data" in text and re.search(rf"\[\s*{n_tensors}/\s*{n_tensors}\]", text)


@pytest.mark.llama
def test_synth_on_a_terminal_shows_quantize_progress_instead_of_llama_cpps_log(tmp_path):
    code, shown = run_in_terminal(["synth", "--like", "tiny-qwen35", "--quant", "Q8_0", "-o", "m.gguf"], cwd=tmp_path,
                                  env={"EDGEBENCH_CACHE": str(tmp_path / "cache")})
    assert code == 0, plain(shown)
    assert "llama_model_loader" not in shown and "converting to q8_0" not in shown
    n_tensors = len(PRESETS["tiny-qwen35"].tensors())
    assert "quantizing tiny-qwen35@Q8_0" in plain(shown) and f"{n_tensors}/{n_tensors} tensors" in plain(shown)
    assert "wrote m.gguf" in plain(shown)
    (log,) = (tmp_path / "cache" / "logs").iterdir()
    assert "llama_model_loader" in log.read_text()


def test_quantize_without_llama_cpp_names_the_extra(tmp_path, tiny_llama_f16, monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` fail
    with pytest.raises(SynthError, match="edgebench install-engine"):
        quantize(tiny_llama_f16, tmp_path / "x.gguf", "Q8_0")


# ------------------------------------------------------------------------------------------------
# build and cache

@pytest.mark.llama
def test_build_synthetic_quantized_removes_intermediate(tmp_path):
    spec = parse_synth_spec("tiny-qwen35@Q4_K_M")
    out = build_synthetic(spec, tmp_path / "m.gguf")
    assert out == tmp_path / "m.gguf"
    assert [p.name for p in tmp_path.iterdir()] == ["m.gguf"]
    reader = gguf.GGUFReader(out)
    assert _field(reader, "general.file_type") == 15
    assert _field(reader, "qwen35.block_count") == 4


def test_build_synthetic_f16_with_layers(tmp_path):
    out = build_synthetic(parse_synth_spec("tiny-llama?layers=2"), tmp_path / "m.gguf")
    reader = gguf.GGUFReader(out)
    assert _field(reader, "llama.block_count") == 2
    names = {t.name for t in reader.tensors}
    assert "blk.1.attn_q.weight" in names and "blk.2.attn_norm.weight" not in names


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_a_qwen35_cut_without_a_full_attention_layer_is_refused(layers):
    # llama.cpp aborts (signal 6) on a qwen35 graph with no attention layer: refuse it up front
    with pytest.raises(SynthError, match=r"no full-attention layer.*every 4th layer is attention.*at least 4"):
        parse_synth_spec(f"qwen3.5-0.8b@Q4_K_M?layers={layers}")
    assert parse_synth_spec("qwen3.5-0.8b@Q4_K_M?layers=4").layers == 4


def _counting_build(monkeypatch) -> list[SynthSpec]:
    built: list[SynthSpec] = []
    real = build_mod.build_synthetic

    def counting(spec, out_path, *, progress=None):
        built.append(spec)
        return real(spec, out_path, progress=progress)

    monkeypatch.setattr(build_mod, "build_synthetic", counting)
    return built


def test_cached_synthetic_reuses_and_rebuilds_corrupt(tmp_path, monkeypatch):
    built = _counting_build(monkeypatch)
    spec = parse_synth_spec("tiny-llama")
    p1 = cached_synthetic(spec, cache_dir=tmp_path)
    st1 = p1.stat()
    p2 = cached_synthetic(spec, cache_dir=tmp_path)
    st2 = p2.stat()
    assert p1 == p2 == cache_path(spec, tmp_path)
    assert (st1.st_ino, st1.st_mtime_ns, st1.st_size) == (st2.st_ino, st2.st_mtime_ns, st2.st_size)
    assert built == [spec]
    assert p1.name.startswith("tiny-llama-F16-w1-") and p1.suffix == ".gguf"

    good = p1.read_bytes()
    p1.write_bytes(b"GARBAGE" + good[7:])  # wrong magic
    p3 = cached_synthetic(spec, cache_dir=tmp_path)
    assert p3 == p1 and p3.read_bytes() == good
    assert len(built) == 2

    p1.write_bytes(b"")  # empty
    assert cached_synthetic(spec, cache_dir=tmp_path).read_bytes() == good
    assert len(built) == 3
    # only the model and its lock file: no temp files
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([p1.name, p1.name + ".lock"])


def test_cache_key_depends_on_spec_and_writer_version(tmp_path, monkeypatch):
    a = cache_path(parse_synth_spec("qwen3.5-4b@Q4_K_M?layers=8"), tmp_path)
    b = cache_path(parse_synth_spec("qwen3.5-4b@q4_k_m?layers=8"), tmp_path)
    c = cache_path(parse_synth_spec("qwen3.5-4b@Q4_K_M?layers=7"), tmp_path)
    d = cache_path(parse_synth_spec("qwen3.5-4b@Q4_K_M"), tmp_path)
    assert a == b and len({a, c, d}) == 3
    assert a.name.startswith("qwen3.5-4b-L8-Q4_K_M-w1-")
    monkeypatch.setattr(writer_mod, "WRITER_VERSION", 2)
    e = cache_path(parse_synth_spec("qwen3.5-4b@Q4_K_M?layers=8"), tmp_path)
    assert e != a and e.name.startswith("qwen3.5-4b-L8-Q4_K_M-w2-")


def test_cache_dir_defaults_to_env(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEBENCH_CACHE", str(tmp_path / "cache"))
    p = cached_synthetic(parse_synth_spec("tiny-llama?layers=1"))
    assert p.parent == tmp_path / "cache" / "models" and p.is_file()
    monkeypatch.delenv("EDGEBENCH_CACHE")
    assert build_mod.default_cache_dir() == Path.home() / ".cache" / "edgebench" / "models"


def test_concurrent_cached_synthetic_builds_once(tmp_path, monkeypatch):
    built = _counting_build(monkeypatch)
    spec = parse_synth_spec("tiny-qwen35")
    results: list[Path] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def worker():
        try:
            barrier.wait()
            results.append(cached_synthetic(spec, cache_dir=tmp_path))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(results) == 4 and len(set(results)) == 1
    assert built == [spec]
    assert writer_mod.is_gguf_file(results[0])
    assert os.path.getsize(results[0]) > PRESETS["tiny-qwen35"].f16_bytes()


# ------------------------------------------------------------------------------------------------
# the CLI: what the user is told


def _cli(capsys, *args) -> tuple[int, str, str]:
    from edgebench.cli import main
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", [
    ["synth", "--like", "qwen3.5-0.8b", "--quant", "Q4_K_M", "--layers", "2", "-o", "{tmp}/m.gguf"],
    ["plan", "--like", "qwen3.5-0.8b", "--quant", "Q4_K_M", "--layers", "2"],
])
def test_cli_refuses_a_qwen35_model_llama_cpp_cannot_run(capsys, tmp_path, command):
    code, _out, err = _cli(capsys, *(a.format(tmp=tmp_path) for a in command))
    assert code == 3
    assert err.count("\n") == 1 and "qwen3.5-0.8b with 2 layers would have no full-attention layer" in err
    assert "keep at least 4 layers" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("layers", ["0", "-3"])
@pytest.mark.parametrize("command", [["synth", "-o", "{tmp}/m.gguf"], ["plan", "--quant", "Q8_0"]])
def test_cli_refuses_fewer_than_one_layer(capsys, tmp_path, layers, command):
    args = [command[0], "--like", "tiny-llama", "--layers", layers, *command[1:]]
    code, _out, err = _cli(capsys, *(a.format(tmp=tmp_path) for a in args))
    assert code == 3 and "layers must be a positive integer" in err
    assert list(tmp_path.iterdir()) == []


def test_a_profile_with_such_a_model_is_a_config_error_at_its_line(capsys, tmp_path):
    profile = tmp_path / "p.yaml"
    profile.write_text("tests: [tg4]\nmodels:\n  - synthetic:qwen3.5-0.8b@Q4_K_M?layers=3\n")
    code, _out, err = _cli(capsys, "run", profile, "-o", tmp_path / "results")
    assert code == 3
    assert err.startswith(f"error: {profile}:3: models[0]: ") and "no full-attention layer" in err
    assert not (tmp_path / "results").exists()


def test_synth_into_a_folder_writes_the_specs_file_name(capsys, tmp_path, llama_cpp):
    code, out, _err = _cli(capsys, "synth", "--like", "tiny-llama", "--quant", "Q8_0", "--layers", "2",
                           "-o", tmp_path)
    assert code == 0
    assert [p.name for p in tmp_path.iterdir()] == ["tiny-llama-L2-Q8_0.gguf"]  # no temporary file left
    assert f"wrote {tmp_path / 'tiny-llama-L2-Q8_0.gguf'}" in out
