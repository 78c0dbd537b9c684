"""ONNX models through the whole controller path: generic and decoder models built by the tests,
fp32 against int8, locally and over a real sshd, and the files that go wrong."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import onnx_models
import pytest

from edgebench.cli import EXIT_ERROR, EXIT_FAILED_CELLS, EXIT_OK, main
from edgebench.config import parse_device, parse_profile
from edgebench.errors import ModelFileError
from edgebench.models.onnx_files import describe
from edgebench.models.resolve import resolve_model
from edgebench.sweep.execute import run_cells


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx")
    found = {"mlp": onnx_models.mlp(root / "mlp.onnx"), "decoder": onnx_models.decoder(root / "decoder.onnx")}
    external = root / "external"
    external.mkdir()
    found["decoder_ext"] = onnx_models.decoder(external / "decoder.onnx", external_data=True)
    assert main(["quantize", str(found["mlp"]), "--int8", "-o", str(root / "mlp.int8.onnx")]) == EXIT_OK
    found["mlp_int8"] = root / "mlp.int8.onnx"
    return found


def local(tmp_path):
    return parse_device(f"name: box\ntransport: local\nworkdir: {tmp_path / 'work'}\n", file="box.yaml")


def profile(tmp_path, models: list[Path], tests: str, engine: str = "") -> object:
    listed = ", ".join(json.dumps(str(m)) for m in models)
    return parse_profile(f"models: [{listed}]\ntests: {tests}\nrepetitions: 3\nwarmup: 1\n"
                         f"engine: {{name: onnxruntime, threads: 1{engine}}}\ntelemetry: {{interval_s: 0.05}}\n",
                         file=str(tmp_path / "onnx.yaml"))


def test_fp32_and_int8_of_a_generic_model_in_one_table(tmp_path, models, capsys):
    outcome = run_cells(profile(tmp_path, [models["mlp"], models["mlp_int8"]], "[b1, b16]"), [local(tmp_path)],
                        tmp_path / "results")
    assert [(r["model"], r["test"], r["status"]) for r in outcome.rows] == [
        ("mlp", "b1", "done"), ("mlp", "b16", "done"), ("mlp.int8", "b1", "done"), ("mlp.int8", "b16", "done")]
    for row in outcome.rows:
        assert row["n_samples"] == 3 and row["avg_ts"] > 0 and row["peak_rss_mib"] > 0
        assert row["latency_p50_ms"] <= row["latency_p90_ms"] <= row["latency_p99_ms"]
        assert row["engine_version"].startswith("onnxruntime ") and row["backends"] == "CPUExecutionProvider"
    assert outcome.rows[2]["model_size"] < outcome.rows[0]["model_size"]  # int8 weights are smaller
    assert main(["show", str(outcome.store.path)]) == EXIT_OK
    table = capsys.readouterr().out
    # the gate reads generic-model runs too (b<N> tests, items/s)
    assert main(["compare", str(outcome.store.path), str(outcome.store.path), "--inconclusive", "pass"]) == EXIT_OK
    assert "mlp.int8/b16" in capsys.readouterr().out
    assert "| mlp.int8 |" in table and "| mlp |" in table and "b16" in table


def test_a_decoder_reports_pp_tg_and_ttft_like_the_gguf_engines(tmp_path, models):
    outcome = run_cells(profile(tmp_path, [models["decoder"]], "[pp32, tg16, pp32+tg8@d64]"), [local(tmp_path)],
                        tmp_path / "results")
    rows = {r["test"]: r for r in outcome.rows}
    assert all(r["status"] == "done" and r["avg_ts"] > 0 for r in rows.values())
    assert rows["pp32"]["ttft_ms"] > 0 and rows["tg16"]["ttft_ms"] is None
    assert (rows["pp32+tg8@d64"]["n_prompt"], rows["pp32+tg8@d64"]["n_gen"], rows["pp32+tg8@d64"]["n_depth"]) == \
        (32, 8, 64)
    assert rows["pp32"]["engine_version"].startswith("onnxruntime")


def test_wrong_test_kinds_and_missing_providers_fail_clearly(tmp_path, models):
    outcome = run_cells(profile(tmp_path, [models["decoder"], models["mlp"]], "[b1, tg4]"),
                        [local(tmp_path)], tmp_path / "results")
    errors = {(r["model"], r["test"]): r["error"] for r in outcome.rows}
    assert "decoder LLM: use pp/tg tests" in errors[("decoder", "b1")]
    assert "not a decoder LLM" in errors[("mlp", "tg4")]
    assert errors[("decoder", "tg4")] is None and errors[("mlp", "b1")] is None
    gpu = run_cells(profile(tmp_path, [models["mlp"]], "[b1]", ", providers: [CUDAExecutionProvider]"),
                    [local(tmp_path)], tmp_path / "results")
    assert "CUDAExecutionProvider is not available on this device" in gpu.rows[0]["error"]


def test_a_corrupt_model_and_missing_external_data_are_clear_errors(tmp_path, models):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(models["decoder"].read_bytes()[:300])
    with pytest.raises(ModelFileError, match="not a readable ONNX model"):
        resolve_model(parse_profile(f"models: [{corrupt}]\ntests: [b1]\nengine: {{name: onnxruntime}}\n").models[0])
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    (lonely / "decoder.onnx").write_bytes(models["decoder_ext"].read_bytes())  # without its .data file
    outcome = run_cells(profile(tmp_path, [corrupt, lonely / "decoder.onnx"], "[tg4]"), [local(tmp_path)],
                        tmp_path / "results")
    errors = [r["error"] for r in outcome.rows]
    assert "not a readable ONNX model" in errors[0]
    assert "external-data file decoder.onnx.data is missing" in errors[1]


def test_a_model_with_external_data_is_pushed_as_one_bundle_over_ssh(sshd, tmp_path, models, private_known_hosts):
    from edgebench.transport.trust import presented_key, record_presented

    device = parse_device(f"name: pi\ntransport: ssh\nhost: {sshd.host}\nport: {sshd.port}\nuser: {sshd.user}\n"
                          f"identity: {sshd.client_key}\nworkdir: {sshd.device_dir}\npython: {sys.executable}\n",
                          file="pi.yaml")
    record_presented(presented_key(device), replace=False)
    bench = profile(tmp_path, [models["decoder_ext"], models["mlp_int8"]], "[tg8, b4]")
    outcome = run_cells(bench, [device], tmp_path / "results")
    done = {(r["model"], r["test"]) for r in outcome.rows if r["status"] == "done"}  # (the others: wrong kind)
    assert done == {("decoder", "tg8"), ("mlp.int8", "b4")}
    bundles = list((sshd.device_dir / "bundles").iterdir())
    assert len(bundles) == 1 and sorted(p.name for p in bundles[0].iterdir()) == ["decoder.onnx", "decoder.onnx.data"]
    assert all((bundles[0] / name).stat().st_nlink == 2 for name in ("decoder.onnx", "decoder.onnx.data"))
    started = [json.loads(line) for line in (outcome.store.path / "cells.jsonl").read_text().splitlines()]
    sizes = {c["model"]: c["model_bytes"] for c in started if c.get("state") == "started"}
    assert sizes["decoder"] == sum(p.stat().st_size for p in models["decoder_ext"].parent.iterdir())


def test_quantize_refuses_what_it_cannot_do(tmp_path, models, capsys):
    not_onnx = tmp_path / "x.onnx"
    not_onnx.write_text("hello")
    assert main(["quantize", str(not_onnx), "--int8", "-o", str(tmp_path / "y.onnx")]) == EXIT_ERROR
    assert "not a readable ONNX model" in capsys.readouterr().err and not (tmp_path / "y.onnx").exists()
    assert main(["quantize", str(models["mlp"]), "--int8", "-o", str(models["mlp"])]) == EXIT_ERROR


def test_describe_lists_the_signature_opsets_and_external_data(models):
    found = describe(models["decoder_ext"])
    assert found["kind"] == "decoder LLM (past_key_values)" and found["opsets"] == {"ai.onnx": onnx_models.OPSET}
    assert found["inputs"][0] == {"name": "input_ids", "type": "int64", "dims": ["batch", "seq"]}
    assert found["external_data"][0]["file"] == "decoder.onnx.data" and found["initializer_bytes"]["float"] > 0
    assert describe(models["mlp"])["kind"] == "generic" and describe(models["mlp"])["external_data"] == []


def test_batch_tests_need_an_onnx_engine(tmp_path):
    with pytest.raises(Exception, match="batch test for generic ONNX models"):
        parse_profile("models: [m.gguf]\ntests: [b8]\n", file=str(tmp_path / "p.yaml"))


def test_a_failed_cell_gives_exit_1_through_the_cli(tmp_path, models, capsys):
    path = tmp_path / "p.yaml"
    path.write_text(f"models: [{models['mlp']}]\ntests: [tg4]\nengine: {{name: onnxruntime}}\n")
    assert main(["run", str(path), "-o", str(tmp_path / "r")]) == EXIT_FAILED_CELLS


def test_inspect_prints_an_onnx_model_and_refuses_a_corrupt_one(tmp_path, models, capsys):
    assert main(["inspect", str(models["decoder_ext"])]) == EXIT_OK
    out = capsys.readouterr().out
    assert "decoder LLM (past_key_values)" in out and "decoder.onnx.data" in out and "ai.onnx 17" in out
    assert main(["inspect", str(models["mlp"]), "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["inputs"][0]["dims"] == ["batch", 64]
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07garbage")
    assert main(["inspect", str(broken)]) == EXIT_ERROR
    assert "not a readable ONNX model" in capsys.readouterr().err


def onnx_run(tmp_path, device, model: Path, name: str, providers: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"models: [{json.dumps(str(model))}]\ntests: [b1]\nrepetitions: 3\nwarmup: 0\n"
                    f"engine: {{name: onnxruntime, threads: 1, providers: {providers}}}\n"
                    f"telemetry: {{enabled: false}}\n")
    main(["run", str(path), "-d", str(device), "-o", str(tmp_path / name)])
    (run,) = (tmp_path / name).iterdir()
    return run


def started(run: Path) -> list[dict]:
    return [r for r in map(json.loads, (run / "cells.jsonl").read_text().splitlines()) if r["state"] == "started"]


# what edgebench 2aee22c recorded for every engine, and the engine section its run.json stored
OLD_ENGINE_OPTIONS = {"n_ctx": 0, "n_batch": 2048, "n_ubatch": 512, "type_k": "f16", "type_v": "f16",
                      "flash_attn": "auto", "n_gpu_layers": 0, "use_mmap": True}
OLD_PROFILE_ENGINE = {**OLD_ENGINE_OPTIONS, "binary": None, "simulate_ts": 1000.0, "inter_op_threads": 0,
                      "graph_optimization": "all", "dims": {}}


def as_written_before_engines_recorded_their_options(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest)
    records = [json.loads(line) for line in (dest / "cells.jsonl").read_text().splitlines()]
    for record in records:
        record["v"] = 1  # what an edgebench of that time wrote: the loader converts version-1 records
        if "engine_options" in record:
            record["engine_options"] = dict(OLD_ENGINE_OPTIONS)
    (dest / "cells.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    meta = json.loads((dest / "run.json").read_text())
    meta["profile"]["engine"] = {**OLD_PROFILE_ENGINE, **meta["profile"]["engine"]}
    (dest / "run.json").write_text(json.dumps(meta))
    return dest


def test_providers_are_recorded_and_runs_on_other_providers_are_not_the_same_experiment(tmp_path, models,
                                                                                         local_device_file, capsys):
    cpu = onnx_run(tmp_path, local_device_file, models["mlp"], "cpu", "[CPUExecutionProvider]")
    cuda = onnx_run(tmp_path, local_device_file, models["mlp"], "cuda", "[CUDAExecutionProvider]")
    assert [r["engine_options"] for r in started(cuda)] == [
        {"providers": ["CUDAExecutionProvider"], "inter_op_threads": 0, "graph_optimization": "all", "dims": {}}]
    capsys.readouterr()
    main(["compare", str(cpu), str(cuda)])
    differs = ('not the same experiment: testbox/mlp/b1/t1: providers ["CPUExecutionProvider"] vs '
               '["CUDAExecutionProvider"]')
    assert differs in capsys.readouterr().out
    assert main(["show", str(cpu), "--format", "jsonl"]) == EXIT_OK
    (row,) = map(json.loads, capsys.readouterr().out.splitlines())
    assert row["backends"] == "CPUExecutionProvider" and row["n_batch"] is None  # no llama.cpp setting

    # runs written before the engine recorded its providers: their run.json says which they were
    old_cpu = as_written_before_engines_recorded_their_options(cpu, tmp_path / "old-cpu")
    old_cuda = as_written_before_engines_recorded_their_options(cuda, tmp_path / "old-cuda")
    main(["compare", str(old_cpu), str(old_cuda)])
    assert differs in capsys.readouterr().out
    assert main(["compare", str(old_cpu), str(cpu), "--inconclusive", "pass"]) == EXIT_OK
    assert "not the same experiment" not in capsys.readouterr().out
    assert main(["show", str(old_cpu), "--format", "jsonl"]) == EXIT_OK
    (row,) = map(json.loads, capsys.readouterr().out.splitlines())
    assert row["n_batch"] == 2048  # an old run's rows read as they always did
