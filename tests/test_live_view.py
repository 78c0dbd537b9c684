"""The live view of a fleet run: one line per device with what it does, its temperature and its counts."""

from __future__ import annotations

import io

from rich.console import Console

from edgebench.cli.ui import RunDisplay
from edgebench.config import parse_device, parse_profile
from edgebench.results.records import Sample
from edgebench.sweep.cells import Cell


def render(display: RunDisplay) -> str:
    out = Console(file=io.StringIO(), width=140, color_system=None)
    out.print(display.__rich__())
    return out.file.getvalue()


def test_each_device_shows_its_state_temperature_and_counts(tmp_path):
    profile = parse_profile("models: [m.gguf]\ntests: [tg16]\n", file=str(tmp_path / "p.yaml"))
    pi, phone = (parse_device(f"name: {n}\ntransport: local\n", file=f"{n}.yaml") for n in ("pi5", "phone"))
    display = RunDisplay(Console(file=io.StringIO()), total=4)
    cell = Cell(pi, profile.models[0], profile.tests[0], None)
    display.cell_started(cell)
    display.sample(cell, Sample(cell=cell.id, n_tokens=16, rep=0, t_ns=1_296_000_000, ts=12.345))
    display.temperature("pi5", 61.25)
    display.cell_finished(cell, None)
    display.device_state("phone", "waiting for the device lock (controller ci pid 7)")
    display.cell_finished(Cell(phone, profile.models[0], profile.tests[0], None), "runner died from signal 9")
    display.push_progress("pi5", "m")(50 << 20, 100 << 20)
    lines = render(display).splitlines()
    assert lines[0].startswith("2/4 cells · 1 failed")
    pi_line = next(line for line in lines if line.startswith("pi5"))
    assert "pushing m 50% (50 MiB)" in pi_line and "61.2" in pi_line and pi_line.split()[-2:] == ["1", "0"]
    phone_line = next(line for line in lines if line.startswith("phone"))
    assert "waiting for the device lock" in phone_line and phone_line.split()[-2:] == ["0", "1"]
    display.push_progress("pi5", "m")(100 << 20, 100 << 20)  # done: the line shows the state again
    assert "m tg16 rep 1: 12.35 t/s" in next(line for line in render(display).splitlines() if line.startswith("pi5"))


def test_a_synthetic_model_shows_its_quantize_progress_in_tensors(tmp_path):
    display = RunDisplay(Console(file=io.StringIO()), total=1)
    build = display.model_progress("qwen3.5-4b@Q4_K_M")
    build(3 << 20, 6 << 20)
    assert "building qwen3.5-4b@Q4_K_M 50% (3 MiB)" in render(display)
    build(6 << 20, 6 << 20)
    build(11, 55, "tensors")  # the slowest part: llama.cpp quantizing tensor by tensor
    assert "quantizing qwen3.5-4b@Q4_K_M 20% (11/55 tensors)" in render(display)
    build(55, 55, "tensors")
    assert "qwen3.5-4b" not in render(display)
