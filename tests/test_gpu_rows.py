"""GPU facts and telemetry in the rows, through the command line with the real runner and llama.cpp:
`backends` and `gpu_info` as llama-bench fills them, and the GPU columns from the nvidia_smi source
(nvidia-smi replayed from an H200 recording: CI has no GPU)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from edgebench.cli import main
from edgebench.runner.telemetry.gpu import SAMPLED

FAKE_SMI = Path(__file__).parent / "fixtures" / "telemetry" / "nvidia_smi" / "nvidia-smi"
GPU_COLUMNS = ("peak_vram_mib", "peak_vram_method", "sampled_peak_vram_mib", "max_vram_used_mib", "vram_total_mib",
               "max_gpu_temp_c", "min_gpu_clock_ratio", "gpu_power_w", "gpu_j_per_token")


def run_rows(tmp_path, device_file, model, engine: str, telemetry: str, capsys, name: str):
    profile = tmp_path / f"{name}.yaml"
    profile.write_text(f"models: [{json.dumps(str(model))}]\ntests: [tg64]\nrepetitions: 4\nwarmup: 1\n"
                       f"engine:\n{engine}telemetry: {telemetry}\n")
    results = tmp_path / name
    assert main(["run", str(profile), "-d", str(device_file), "-o", str(results)]) == 0, capsys.readouterr()
    capsys.readouterr()
    (run,) = results.iterdir()
    assert main(["show", str(run), "--format", "jsonl"]) == 0
    (row,) = map(json.loads, capsys.readouterr().out.splitlines())
    return row


@pytest.mark.llama
def test_backends_and_gpu_info_as_llama_bench_fills_them(tmp_path, local_device_file, tiny_llama,
                                                          llama_bench_binary, capsys):
    # n_gpu_layers asks for offload; what llama-bench reports is the build's backends, not the request
    ours = run_rows(tmp_path, local_device_file, tiny_llama, "  name: llama.cpp\n  n_gpu_layers: 99\n",
                    "{enabled: false}", capsys, "ours")
    theirs = run_rows(tmp_path, local_device_file, tiny_llama,
                      f"  name: llama-bench\n  binary: {json.dumps(llama_bench_binary)}\n  n_gpu_layers: 99\n",
                      "{enabled: false}", capsys, "theirs")
    assert (ours["backends"], ours["gpu_info"]) == (theirs["backends"], theirs["gpu_info"])
    assert ours["backends"] == "CPU" and ours["gpu_info"] == ""  # this machine's build has no GPU backend


@pytest.mark.llama
def test_gpu_columns_from_nvidia_smi(tmp_path, local_device_file, tiny_llama, monkeypatch, capsys):
    # the fake lists its parent, the runner that holds the in-process engine, as the process on the GPU
    monkeypatch.setenv("FAKE_SMI_PID", "parent")
    smi = f"telemetry:\n  nvidia_smi: {json.dumps(str(FAKE_SMI))}\n"
    local_device_file.write_text(local_device_file.read_text() + smi)
    row = run_rows(tmp_path, local_device_file, tiny_llama, "  name: llama.cpp\n", "{interval_s: 0.05}", capsys, "gpu")
    # the recorded llama-bench process's memory, as far as the replay got in this short run; this machine's
    # engine has no GPU to read, so the row says its peak is nvidia-smi's sample
    assert row["peak_vram_mib"] in (14, 518, 1530, 2130, 1740)
    assert row["sampled_peak_vram_mib"] == row["peak_vram_mib"] and row["peak_vram_method"] == SAMPLED
    # the whole card's use and size (the H200's 143771 MiB), documented row fields that were empty
    assert row["max_vram_used_mib"] is not None and row["vram_total_mib"] == 143771
    assert 36 <= row["max_gpu_temp_c"] <= 46
    assert row["min_gpu_clock_ratio"] in (345 / 1980, 1.0)
    assert row["gpu_power_w"] > 70 and row["gpu_j_per_token"] > 0
    assert row["throttled"] is False


@pytest.mark.llama
def test_gpu_columns_from_tegrastats(tmp_path, local_device_file, tiny_llama, capsys):
    # a Jetson whose devfreq node is hidden (this machine has none): tegrastats's Orin layout
    tegrastats = Path(__file__).parent / "fixtures" / "telemetry" / "tegrastats" / "tegrastats"
    local_device_file.write_text(local_device_file.read_text() + "telemetry:\n  nvidia_smi: /nonexistent\n"
                                 f"  tegrastats: {json.dumps(str(tegrastats))}\n")
    row = run_rows(tmp_path, local_device_file, tiny_llama, "  name: llama.cpp\n", "{interval_s: 0.1}", capsys,
                   "jetson")
    assert row["max_gpu_temp_c"] in (41.375, 48.781)
    assert 2.386 <= row["gpu_power_w"] <= 11.942 and row["gpu_j_per_token"] > 0
    # an integrated GPU's memory is the process's RAM, and tegrastats prints no clock maximum
    assert row["peak_vram_mib"] is None and row["min_gpu_clock_ratio"] is None


@pytest.mark.llama
def test_no_gpu_leaves_the_gpu_columns_null(tmp_path, local_device_file, tiny_llama, capsys):
    local_device_file.write_text(local_device_file.read_text() + "telemetry:\n  nvidia_smi: /nonexistent/nvidia-smi\n")
    row = run_rows(tmp_path, local_device_file, tiny_llama, "  name: llama.cpp\n", "{interval_s: 0.05}", capsys,
                   "nogpu")
    assert [row[c] for c in GPU_COLUMNS] == [None] * len(GPU_COLUMNS)


@pytest.mark.llama
def test_the_report_draws_vram_against_the_card_and_gpu_traces_with_throttling(tmp_path, local_device_file,
                                                                               tiny_llama, monkeypatch, capsys):
    from xml.etree import ElementTree as ET
    monkeypatch.setenv("FAKE_SMI_PID", "parent")
    monkeypatch.setenv("FAKE_SMI_THROTTLE", "0x20")  # sw_thermal_slowdown, in every other line
    monkeypatch.setenv("FAKE_SMI_THROTTLE_PERIOD", "1")
    local_device_file.write_text(local_device_file.read_text() +
                                 f"telemetry:\n  nvidia_smi: {json.dumps(str(FAKE_SMI))}\n")
    profile = tmp_path / "p.yaml"
    profile.write_text(f"models: [{json.dumps(str(tiny_llama))}]\ntests: [tg128, pp512]\nrepetitions: 5\n"
                       "warmup: 1\nengine: {name: llama.cpp, threads: 2}\ntelemetry: {interval_s: 0.05}\n")
    assert main(["run", str(profile), "-d", str(local_device_file), "-o", str(tmp_path / "results")]) in (0, 1)
    (run,) = (tmp_path / "results").iterdir()
    out = tmp_path / "report.html"
    assert main(["report", str(run), "-o", str(out)]) == 0, capsys.readouterr()
    html = out.read_text()
    assert ">GPU</h3>" in html
    ns = {"s": "http://www.w3.org/2000/svg"}
    charts = {c.get("aria-label"): c for c in map(ET.fromstring, re.findall(r"<svg .*?</svg>", html, flags=re.S))}
    vram = charts["testbox: peak VRAM per model"]
    assert "GPU memory 140.4 GiB" in ET.tostring(vram, encoding="unicode")  # the H200's 143771 MiB
    traces = [c for title, c in charts.items() if title.endswith("GPU temperature and clock")]
    assert traces and any(c.findall(".//s:rect[@class='throttled']", ns) for c in traces)


def test_a_run_without_a_gpu_has_no_gpu_section(tmp_path, local_device_file, tiny_llama, capsys):
    local_device_file.write_text(local_device_file.read_text() + "telemetry:\n  nvidia_smi: /nonexistent\n")
    profile = tmp_path / "p.yaml"
    profile.write_text(f"models: [{json.dumps(str(tiny_llama))}]\ntests: [tg16]\nrepetitions: 2\nwarmup: 0\n"
                       "engine: {name: llama.cpp}\n")
    assert main(["run", str(profile), "-d", str(local_device_file), "-o", str(tmp_path / "results")]) == 0
    (run,) = (tmp_path / "results").iterdir()
    assert main(["report", str(run), "-o", str(tmp_path / "r.html")]) == 0
    assert ">GPU</h3>" not in (tmp_path / "r.html").read_text()
