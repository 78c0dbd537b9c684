"""The engine's own GPU memory readings (runner/engines/gpu_memory.py) and the row columns made of them,
on stages built from an H200 run's figures (CI has no GPU): the peak cannot fall between two samples,
and a row says how its peak was taken."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgebench.results.aggregate import run_rows
from edgebench.runner.engines import nvml
from edgebench.runner.engines.gpu_memory import WITH_CONTEXT, WITHOUT_CONTEXT, DeviceMemoryLog
from edgebench.runner.telemetry.gpu import SAMPLED

MIB = 1024 * 1024
DATA = Path(__file__).parent / "perf" / "data"
H200 = json.loads((DATA / "h200-vram.json").read_text())["rows"]
# an H200 as NVML and as CUDA count it (CUDA leaves out what the driver reserves)
NVML_TOTAL, CUDA_TOTAL = 143771 * MIB, 143156 * MIB
# the engine's own readings on an H100 (tests/perf/gpu.py --parts vram), and that card as NVML counts it
H100 = json.loads((DATA / "h100-vram.json").read_text())["rows"]
H100_NVML_TOTAL = 81559 * MIB


def stages_of(row: dict) -> dict:
    """What the engine reads at each stage of one H200 setting (tests/perf/data/h200-vram.json: the process's
    VRAM as nvidia-smi listed it, and llama.cpp's own CUDA0 buffers). No engine reading was recorded on a
    GPU yet (no GPU was lent since this was written): the stages are built from those figures, the GPU
    context being what the process held beyond llama.cpp's buffers, made before the first reading."""
    model = sum(v for k, v in row["model_buffers_mib"].items() if k.startswith("CUDA"))
    context = sum(v for k, v in row["context_buffers_mib"].items() if k.startswith("CUDA"))
    runtime = row["measured_mib"] - model - context
    free = CUDA_TOTAL  # nothing else on the card: NVML's free before the process is CUDA's total
    used = {"start": runtime * 0.8, "model": runtime * 0.8 + model, "context": runtime * 0.8 + model + context,
            "run": row["measured_mib"]}
    return {"nvml_before": {"0": [free, NVML_TOTAL]},
            "readings": [[stage, {"CUDA0": [free - int(mib * MIB), CUDA_TOTAL]}] for stage, mib in used.items()],
            "measured_mib": row["measured_mib"]}


def replay(process: dict, with_nvml: bool = True) -> dict:
    """A DeviceMemoryLog fed one process's readings, in its stages' order."""
    readings = [{name: tuple(v) for name, v in found.items()} for _stage, found in process["readings"]]
    log = DeviceMemoryLog(read=lambda: readings.pop(0),
                          before=lambda: {int(k): tuple(v) for k, v in process["nvml_before"].items()}
                          if with_nvml else None)
    log.read_before()
    for stage, _found in process["readings"]:
        log.read(stage)
    return log.summary()


def test_the_peak_is_the_lowest_free_memory_against_nvml_before_the_process():
    for row in H200:
        process = stages_of(row)
        (device,) = replay(process).values()
        assert device["method"] == WITH_CONTEXT
        # the whole process, its GPU context included: what nvidia-smi listed for it
        assert device["peak_mib"] == pytest.approx(process["measured_mib"], abs=0.1)
        assert [stage for stage, _ in device["readings"]] == ["start", "model", "context", "run"]


def test_without_nvml_the_peak_leaves_out_the_context_and_says_so():
    process = stages_of(H200[0])
    (device,) = replay(process, with_nvml=False).values()
    used = [(found["CUDA0"][1] - found["CUDA0"][0]) / MIB for _stage, found in process["readings"]]
    assert device["method"] == WITHOUT_CONTEXT
    assert device["peak_mib"] == round(round(max(used), 1) - round(used[0], 1), 1)


def test_a_card_is_matched_to_nvml_only_when_it_cannot_be_another():
    gib = 1024 * MIB
    # CUDA's total leaves out what the driver reserves: an H100 is 81079 MiB to CUDA and 81559 to NVML (h100-vram.json)
    assert nvml.match({0: (80 * gib, 81559 * MIB)}, {"CUDA0": 81079 * MIB}) == {"CUDA0": 80 * gib}
    # two cards of one size: which NVML index is which CUDA device cannot be told from the size
    two = {0: (80 * gib, 81559 * MIB), 1: (70 * gib, 81559 * MIB)}
    assert nvml.match(two, {"CUDA0": 81079 * MIB, "CUDA1": 81079 * MIB}) == {}
    assert nvml.match({0: (10 * gib, 24 * gib), 1: (70 * gib, 81559 * MIB)},
                      {"CUDA0": 81079 * MIB, "CUDA1": 23 * gib}) == {"CUDA0": 70 * gib}


def test_rows_take_the_engines_peak_and_keep_the_sample_beside_it(tmp_path):
    """A run directory whose cell's done event carries recorded engine readings, read back as rows."""
    run = Path(__file__).parent / "fixtures" / "golden" / "runs" / "local"
    summary = replay(stages_of(H200[-1]))
    copy = tmp_path / "run"
    copy.mkdir()
    for path in run.iterdir():
        text = path.read_text()
        if path.name == "cells.jsonl":
            lines = []
            for line in text.splitlines():
                record = json.loads(line)
                if record.get("state") == "done":
                    record["info"] = dict(record.get("info") or {}, device_memory=summary)
                lines.append(json.dumps(record))
            text = "\n".join(lines) + "\n"
        (copy / path.name).write_text(text)
    rows = run_rows(copy)
    assert rows and all(r["peak_vram_mib"] == summary["CUDA0"]["peak_mib"] for r in rows)
    assert all(r["peak_vram_method"] == WITH_CONTEXT and r["vram_total_mib"] == summary["CUDA0"]["total_mib"]
               for r in rows)
    # the nvidia-smi sample stays in its own column (this run had no nvidia-smi: null)
    assert all(r["sampled_peak_vram_mib"] is None for r in rows)


def test_the_sampled_method_is_named_only_where_a_sample_was_taken():
    from edgebench.runner.telemetry.columns import Windows
    from edgebench.runner.telemetry.gpu import peak_vram_method
    assert peak_vram_method(Windows([{"peak_vram_mib": 1488}], 128)) == SAMPLED
    assert peak_vram_method(Windows([{"peak_vram_mib": None}], 128)) is None


def recorded(row: dict) -> dict:
    """One H100 setting's recorded engine readings (MiB in use on the card at each stage) as the free memory
    the engine read, and NVML's free memory before the process."""
    device = row["device_memory"]["CUDA0"]
    total = device["total_mib"] * MIB
    return {"nvml_before": {"0": [device["before_free_mib"] * MIB, H100_NVML_TOTAL]},
            "readings": [[stage, {"CUDA0": [round(total - used * MIB), round(total)]}]
                         for stage, used in device["readings"]]}


@pytest.mark.parametrize("row", H100, ids=lambda r: f"{r['model']}-ngl{r['n_gpu_layers']}-{r['n_ctx']}")
def test_an_h100_runs_readings_give_its_true_peak(row):
    (device,) = replay(recorded(row)).values()
    assert device["method"] == WITH_CONTEXT and device["total_mib"] == 81079.0  # CUDA's total on an H100
    assert device["peak_mib"] == pytest.approx(row["true_peak_mib"], abs=0.2)
    stages = dict(device["readings"])
    # the CUDA context alone, made by the first reading: 527 MiB
    assert stages["start"] == pytest.approx(526.8, abs=0.2)
    # the peak is reached only after the repetitions: llama.cpp's pool, cuBLAS workspace and CUDA graphs
    assert stages["run"] == max(stages.values())
    # nvidia-smi's process listing shows 8.8 MiB less than the card lost (17 settings of 18 read exactly that;
    # LFM2 at ngl 8 and 32K read 12.8 less), so its sample is never above the true peak
    assert row["sampled_mib"] <= row["true_peak_mib"] - 8.6


def test_after_tg128_with_layers_on_an_h100_the_runtime_holds_598_mib_beyond_llama_cpps_buffers():
    """The planner's GPU_RUNTIME_BYTES, from the true peak less llama.cpp's CUDA0 buffers; without a layer
    on the card no graph runs there in tg and it stays near the context alone."""
    from edgebench.plan.offload import GPU_RUNTIME_BYTES
    runtime = {}
    for row in H100:
        buffers = sum(mib for key, mib in {**row["model_buffers_mib"], **row["context_buffers_mib"]}.items()
                      if key.split(" ")[0] == "CUDA0")
        runtime.setdefault(row["n_gpu_layers"] > 0, []).append(row["true_peak_mib"] - buffers)
    assert len(runtime[True]) == 12 and all(abs(r - GPU_RUNTIME_BYTES / MIB) <= 8 for r in runtime[True])
    assert len(runtime[False]) == 6 and all(527 <= r <= 534 for r in runtime[False])
