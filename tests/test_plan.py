"""Capacity planning: `edgebench inspect` and `edgebench plan` on real GGUF files the project writes."""

from __future__ import annotations

import json
import shutil

import pytest

from edgebench.cli import main
from edgebench.errors import ModelFileError
from edgebench.models.gguf_info import info_from_preset, read_gguf
from edgebench.models.synth.shapes import PRESETS
from edgebench.plan.calibrate import calibrate
from edgebench.plan.memory import MIB, Affine, Runtime, max_context, memory_items, padded
from edgebench.plan.speed import bytes_per_token
from edgebench.results.header import PlannedCell
from edgebench.results.records import CellEnd, CellFacts, CellStart, DeviceProbe, Sample
from edgebench.results.store import RunStore

GIB = 1 << 30


@pytest.fixture
def devices_dir(tmp_path):
    d = tmp_path / "devices"
    d.mkdir()
    (d / "pi.yaml").write_text("name: pi\ntransport: local\nfacts:\n  ram_gb: 8\n  reserve_gb: 1\n"
                               "  mem_bandwidth_gbs: 17\n  peak_gflops: 150\n")
    (d / "phone.yaml").write_text("name: phone\ntransport: local\nfacts:\n  ram_gb: 5\n  reserve_gb: 0.5\n")
    return d


def plan_json(capsys, *args) -> dict:
    code = main(["plan", *map(str, args), "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


def test_hybrid_kv_only_on_attention_layers_at_262k(capsys, devices_dir, tmp_path):
    report = plan_json(capsys, "--like", "qwen3.5-4b", "--quant", "Q4_K_M", "--ctx", "262144",
                       "-d", "pi", "--devices-dir", devices_dir, "--results", tmp_path / "none")
    (cell,) = report["cells"]
    kv, state = cell["memory"]["KV cache"], cell["memory"]["recurrent state"]
    assert kv == 8 * GIB                       # 8 attention layers x 32 KiB/token, not 32 GiB for all 32
    assert state == pytest.approx(50.25 * MIB, rel=1e-3)
    assert cell["fits"] is False and 0 < cell["max_ctx"] < 262144


def test_inspect_reads_the_files_synth_writes(capsys, tiny_qwen35, tiny_llama):
    assert main(["inspect", str(tiny_qwen35), "--json"]) == 0
    q = json.loads(capsys.readouterr().out)
    shape = PRESETS["tiny-qwen35"]
    assert (q["arch"], q["file_type"], q["n_params"]) == ("qwen35", "Q8_0", shape.n_params())
    assert q["layer_kinds"] == ["recurrent", "recurrent", "recurrent", "attention"]
    assert (q["context_length"], q["n_vocab"]) == (4096, 2048)
    assert sum(q["bytes_by_type"].values()) == q["tensor_bytes"] and "Q8_0" in q["bytes_by_type"]
    assert 8 < q["bpw"] < 9

    assert main(["inspect", str(tiny_llama)]) == 0
    out = capsys.readouterr().out
    assert "| architecture | llama |" in out and "| layers | 4 = 4 full attention |" in out


_ALL_QUANTS = ["F16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q3_K_S"]
_NEW_FAMILIES = ["tiny-gemma3", "tiny-qwen3moe", "tiny-lfm2", "tiny-deepseek2"]


@pytest.mark.parametrize("preset, quant", [(p, q) for p in ("tiny-qwen35", "tiny-llama") for q in _ALL_QUANTS]
                         + [(p, q) for p in _NEW_FAMILIES for q in ("Q4_K_M", "Q8_0")])
def test_like_sizes_match_the_file_synth_writes(preset, quant, llama_cpp, model_dir):
    from edgebench.models.synth.build import build_synthetic
    from edgebench.models.synth.spec import parse_synth_spec

    spec = parse_synth_spec(f"{preset}@{quant}")
    path = model_dir / spec.file_name()
    if not path.exists():
        build_synthetic(spec, path)
    real, predicted = read_gguf(path), info_from_preset(preset, quant)
    assert {t.name: t.type for t in predicted.tensors} == {t.name: t.type for t in real.tensors}
    assert predicted.weight_bytes == real.weight_bytes


def test_truncated_and_foreign_files_are_clear_errors(tmp_path, tiny_qwen35, capsys):
    data = tiny_qwen35.read_bytes()
    cut_data, cut_header = tmp_path / "cut-data.gguf", tmp_path / "cut-header.gguf"
    cut_data.write_bytes(data[: len(data) // 2])
    cut_header.write_bytes(data[:200])
    foreign = tmp_path / "notes.gguf"
    foreign.write_text("this is not a model\n")
    for path, words in ((cut_data, "truncated"), (cut_header, "truncated"), (foreign, "not a GGUF file"),
                        (tmp_path / "missing.gguf", "no such")):
        with pytest.raises(ModelFileError) as err:
            read_gguf(path)
        assert str(path) in str(err.value) and words in str(err.value)
        assert main(["inspect", str(path)]) == 3
        assert str(path) in capsys.readouterr().err


def test_solved_max_context_equals_brute_force():
    info = info_from_preset("qwen3.5-4b", "Q4_K_M")
    from edgebench.plan.memory import memory_items, total
    mem = total(memory_items(info, Runtime(kv_type="q8_0")))
    for budget in (mem.at(256) - 1, mem.at(256), 3 * GIB, 4 * GIB + 12345, 6 * GIB, 64 * GIB):
        brute = 0
        for n in range(256, info.context_length + 1, 256):
            if mem.at(n) <= budget:
                brute = n
        assert max_context(mem, budget, info.context_length) == brute
    assert max_context(Affine(100, 0.0), 1000, 4096) == 4096  # no KV cache: the native context
    assert padded(4097) == 4352


def test_recommends_the_highest_quality_quant_that_fits(capsys, devices_dir, tmp_path):
    report = plan_json(capsys, "--like", "qwen3.5-4b", "--quant", "Q3_K_S,Q4_K_M,Q8_0", "--ctx", "4096,32768",
                       "-d", "phone", "--devices-dir", devices_dir, "--results", tmp_path / "none")
    cells = report["cells"]
    for n_ctx in (4096, 32768):
        group = [c for c in cells if c["n_ctx"] == n_ctx]
        fitting = [c for c in group if c["fits"]]
        best = max(fitting, key=lambda c: c["bpw"])
        assert [c["model"] for c in group if c["recommended"]] == [best["model"]]
        assert any(not c["fits"] for c in group)     # the phone cannot hold every quant
    assert any("best quant that fits" in line for line in report["recommendations"])


def fake_tg_run(root, device: str, spec: str, ts: float, depth: int = 0, arch: str = "aarch64", n_gen: int = 128,
                threads: int = 4, host: dict | None = None, sha: str = "cd"):
    """A stored run of one generation cell, as the runner writes it: `host` is each sample's steal and load."""
    test = f"tg{n_gen}"
    cell = f"{device}/m/{test}/t{threads}"
    store = RunStore.create(root, profile={"name": "cal", "models": [
        {"name": "m", "path": None, "synthetic": f"synthetic:{spec}", "sha256": None}]},
        devices={}, cells=[PlannedCell(cell)])
    store.append(DeviceProbe(device=device, facts={"arch": arch, "memory": {"total_bytes": 4 * GIB}}))
    store.append(CellStart(cell=cell, model_sha256=sha * 32, facts=CellFacts(
        device=device, model="m", test=test, engine="llama.cpp", n_prompt=0, n_gen=n_gen, n_depth=depth,
        n_threads=threads, engine_options={"type_k": "f16", "n_ubatch": 512})))
    for rep in range(3):
        store.append(Sample(cell=cell, rep=rep, ts=ts, n_tokens=n_gen, t_ns=int(n_gen / ts * 1e9),
                            window={"peak_rss_kb": 900_000}, host=host or {}))
    store.append(CellEnd.done(cell, 1, {"n_threads": threads}, None, False))
    store.finish("complete", [])
    return store.path


def test_calibration_costs_tokens_on_the_probed_cpu(tmp_path):
    # x86 repacks fewer weight types than arm64, so the same t/s means more bandwidth there
    fake_tg_run(tmp_path / "x86", "laptop", "qwen3.5-0.8b@Q4_K_M?layers=4", ts=12.0, arch="x86_64")
    fake_tg_run(tmp_path / "arm", "pi", "qwen3.5-0.8b@Q4_K_M?layers=4", ts=12.0)
    info = info_from_preset("qwen3.5-0.8b", "Q4_K_M", 4)
    x86 = calibrate(tmp_path / "x86")["laptop"].effective_bandwidth
    arm = calibrate(tmp_path / "arm")["pi"].effective_bandwidth
    assert x86 == pytest.approx(12.0 * bytes_per_token(info, Runtime(cpu_arch="x86_64"), 64))
    assert arm == pytest.approx(12.0 * bytes_per_token(info, Runtime(cpu_arch="aarch64"), 64))
    assert x86 > arm


def test_calibration_from_a_stored_run(capsys, devices_dir, tmp_path):
    results = tmp_path / "results"
    fake_tg_run(results, "pi", "qwen3.5-0.8b@Q4_K_M?layers=4", ts=12.0)
    info = info_from_preset("qwen3.5-0.8b", "Q4_K_M", 4)
    cal = calibrate(results)["pi"]
    assert cal.effective_bandwidth == pytest.approx(12.0 * bytes_per_token(info, Runtime(), 64))

    report = plan_json(capsys, "--like", "qwen3.5-0.8b", "--quant", "Q4_K_M", "--layers", "4",
                       "-d", "pi", "-d", "phone", "--devices-dir", devices_dir, "--results", results)
    pi, phone = report["devices"]
    assert pi["eta_tg"]["source"].startswith("calibrated from 1 tg cell")
    assert pi["eta_tg"]["value"] == pytest.approx(cal.effective_bandwidth / 17e9)
    assert phone["eta_tg"]["source"] == "default" and phone["effective_bandwidth_bytes_s"]["value"] is None
    (cell,) = [c for c in report["cells"] if c["device"] == "pi"]
    assert cell["tg_ts"] == pytest.approx(12.0 * bytes_per_token(info, Runtime(), 64)
                                          / bytes_per_token(info, Runtime(), 0))

    # a device without ram_gb falls back to the RAM its stored probe found, and says so
    (devices_dir / "bare.yaml").write_text("name: bare\ntransport: local\n")
    fake_tg_run(results, "bare", "qwen3.5-0.8b@Q4_K_M?layers=4", ts=5.0)
    report = plan_json(capsys, "--like", "qwen3.5-0.8b", "--quant", "Q4_K_M", "-d", "bare",
                       "--devices-dir", devices_dir, "--results", results)
    (bare,) = report["devices"]
    assert bare["ram_bytes"]["value"] == 4 * GIB and bare["ram_bytes"]["source"].startswith("probe in results/")
    assert bare["cpu_arch"]["value"] == "aarch64"


def test_fleet_plans_every_model_of_a_profile(capsys, devices_dir, tmp_path):
    report = plan_json(capsys, "--fleet", "profiles/qwen35-quant-sweep.yaml", "-d", "all", "--devices-dir",
                       devices_dir, "--results", tmp_path / "none")
    models = {c["model"] for c in report["cells"]}
    assert len(models) == 5 and {c["device"] for c in report["cells"]} == {"phone", "pi"}
    assert all(c["max_ctx"] and c["tg_ts"] is not None for c in report["cells"] if c["device"] == "pi")


def test_plan_table_says_where_figures_come_from(capsys, devices_dir, tmp_path):
    assert main(["plan", "--like", "qwen3.5-4b", "--quant", "Q4_K_M,Q8_0", "--ctx", "4k,32k", "-d", "pi",
                 "--devices-dir", str(devices_dir), "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| KV cache |" in out and "8 full-attention layers of 32" in out
    assert "default eta" in out and "profile" in out and "best quant that fits" in out


@pytest.mark.parametrize("args, words", [
    (["--like", "qwen9", "--quant", "Q4_K_M"], "unknown synthetic preset"),
    (["--like", "qwen3.5-4b", "--quant", "Q2_K"], "unknown quant"),
    (["--like", "qwen3.5-4b"], "needs --quant"),
    (["--like", "qwen3.5-4b", "--quant", "Q4_K_M", "--ctx", "4096,lots"], "--ctx"),
    (["--like", "qwen3.5-4b", "--quant", "Q4_K_M", "--ctx", "0"], "--ctx"),
    (["--like", "qwen3.5-4b", "--quant", "Q4_K_M", "--kv", "q3"], "KV cache type"),
    ([], "exactly one of"),
])
def test_cli_errors_exit_3_with_a_message(args, words, capsys, devices_dir, tmp_path):
    code = main(["plan", *args, "--devices-dir", str(devices_dir), "--results", str(tmp_path)])
    assert code == 3 and words in capsys.readouterr().err


def test_plan_of_a_file_copied_anywhere(capsys, tiny_qwen35, devices_dir, tmp_path):
    copy = tmp_path / "model.gguf"
    shutil.copy(tiny_qwen35, copy)
    report = plan_json(capsys, copy, "-d", "pi", "--ctx", "4096,8192", "--devices-dir", devices_dir,
                       "--results", tmp_path / "none")
    # beyond the model's native context it is planned as asked (llama.cpp runs it), with a note;
    # the largest context that fits stays within the native one
    assert [c["n_ctx"] for c in report["cells"]] == [4096, 8192]
    assert report["cells"][1]["total_bytes"] > report["cells"][0]["total_bytes"]
    assert report["cells"][0]["fits"] and report["cells"][0]["max_ctx"] == 4096
    assert any("trained for 4096 tokens; 8192 is beyond" in n for n in report["cells"][1]["notes"])


def test_plan_with_unknown_ram_says_fit_is_unknown_and_how_to_give_it(capsys, devices_dir, tmp_path):
    (devices_dir / "bare.yaml").write_text("name: bare\ntransport: ssh\nhost: 192.0.2.1\n")
    assert main(["plan", "--like", "tiny-llama", "--quant", "Q4_K_M,Q8_0", "-d", "bare", "--devices-dir",
                 str(devices_dir), "--results", str(tmp_path / "none")]) == 0
    out = capsys.readouterr().out
    assert "none of" not in out  # nothing is known not to fit
    assert ("bare: whether a model fits is unknown, because its RAM is unknown; give it in the device's file "
            "(facts: ram_gb: N), or plan for this machine with -d local, which is probed") in out
    # each table stands apart: piped, two adjacent markdown tables would read as one
    assert "\n\nmemory of tiny-llama@Q8_0" in out and "\n\n| device | model |" in out
    assert out.count("\n\n") >= 3


def test_plan_of_an_onnx_model_points_to_inspect(capsys, tmp_path):
    import onnx_models

    model = onnx_models.mlp(tmp_path / "model.onnx")
    assert main(["plan", str(model), "--results", str(tmp_path)]) == 3
    err = capsys.readouterr().err
    assert f"{model} is an ONNX model: plan sizes GGUF models" in err
    assert f"`edgebench inspect {model}`" in err and err.count("\n") == 1


def test_inspect_and_plan_warn_of_a_qwen35_file_without_an_attention_layer(capsys, tmp_path, devices_dir):
    import dataclasses

    from edgebench.models.synth.writer import write_gguf

    # a file older edgebench versions wrote for `synth --like tiny-qwen35 --layers 3` (pattern RRR)
    path = write_gguf(dataclasses.replace(PRESETS["tiny-qwen35"], n_layer=3), tmp_path / "rrr.gguf")
    assert main(["inspect", str(path)]) == 0
    assert "no full-attention layer; llama.cpp aborts" in capsys.readouterr().out
    report = plan_json(capsys, path, "-d", "pi", "--devices-dir", devices_dir, "--results", tmp_path / "none")
    assert any("no full-attention layer" in note for note in report["cells"][0]["notes"])


def test_the_planner_knows_the_size_of_every_kv_type_a_profile_accepts():
    from edgebench.plan.memory import KV_TYPES, kv_element_bytes
    from edgebench.runner.engines.llama_settings import KV_CACHE_TYPES

    assert KV_TYPES == tuple(KV_CACHE_TYPES)
    assert all(kv_element_bytes(kv) > 0 for kv in KV_TYPES)


def test_only_repacked_tensors_inside_the_mapped_span_stay_in_rss():
    """llama.cpp unmaps the file outside the span of the tensors it uses in place (unmap_fragment), so the
    pages it read to repack a tensor after that span leave RSS; inside the span they stay."""
    from dataclasses import replace

    from edgebench.models.gguf_info import TensorInfo
    from edgebench.plan.memory import mapped_original_bytes

    info = info_from_preset("tiny-llama", "Q8_0")
    embd = TensorInfo("token_embd.weight", "Q8_0", 1, 100, 8)
    norm = TensorInfo("output_norm.weight", "F32", 1, 10, 1)

    def q4k(name, n_bytes):
        return TensorInfo(name, "Q4_K", 1, n_bytes, 256)

    inside = replace(info, tensors=(embd, q4k("blk.0.ffn_up.weight", 1000), norm, q4k("blk.0.ffn_down.weight", 7)))
    assert mapped_original_bytes(inside, "x86_64") == 1000  # the tail tensor's pages were unmapped
    assert mapped_original_bytes(inside, "aarch64") == 1000
    assert mapped_original_bytes(replace(info, tensors=(q4k("blk.0.a", 5), embd, norm)), "x86_64") == 0


def test_the_output_matmul_gets_its_own_repacked_copy_where_the_cpu_repacks_its_type():
    """llama.cpp creates the output layer's weight with the output layer's buffer types; on an Arm CPU with
    dotprod a Q6_K table is repacked (measured on the emulated board: "repack tensor token_embd.weight with
    q6_K_8x8", CPU_REPACK 246.9 MiB of which 198.9 the tied table), on x86 with AVX2 Q6_K is not."""
    from dataclasses import replace

    from edgebench.models.gguf_info import TensorInfo
    from edgebench.plan.memory import output_copy_bytes, repacked_bytes

    dotprod = frozenset({"asimd", "asimddp"})
    info = info_from_preset("tiny-llama", "Q8_0")
    embd = TensorInfo("token_embd.weight", "Q6_K", 1, 5000, 256)
    layer = TensorInfo("blk.0.ffn_up.weight", "Q4_K", 1, 1000, 256)
    tied = replace(info, tensors=(embd, layer), tied_embeddings=True)
    assert output_copy_bytes(tied, "aarch64", dotprod) == 5000
    assert output_copy_bytes(tied, "aarch64", frozenset({"asimd"})) == 0   # plain NEON repacks nothing
    assert output_copy_bytes(tied, "x86_64", frozenset({"avx2"})) == 0     # no Q6_K layout for AVX2
    assert repacked_bytes(tied, "aarch64", features=dotprod) == 1000       # the lookup table stays mapped
    untied = replace(info, tensors=(embd, layer, TensorInfo("output.weight", "Q6_K", 1, 4000, 256)),
                     tied_embeddings=False)
    assert output_copy_bytes(untied, "aarch64", dotprod) == 0
    assert repacked_bytes(untied, "aarch64", features=dotprod) == 5000     # the output's own weight is repacked
    rss = {i.name: i.at(512) for i in memory_items(tied, Runtime(cpu_arch="aarch64", cpu_features=dotprod))}
    assert rss["repacked weights"] == 6000 and rss["weights"] == tied.weight_bytes - 1000
