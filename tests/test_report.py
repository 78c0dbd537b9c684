"""`edgebench report`: one self-contained HTML file whose plots a real browser draws.

The run behind it is real: two synthetic GGUF models measured by llama.cpp on the local device,
with sensors from a fixture tree (this machine has none) whose CPU clock drops for a while, so the
temperature trace has a throttled stretch to shade. Chromium renders each chart headless to a PNG,
and the test reads the pixels back.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import struct
import subprocess
import threading
import zlib
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from conftest import require

from edgebench.cli import EXIT_OK, main
from edgebench.config import parse_device, parse_profile
from edgebench.report.svg import PALETTE
from edgebench.sweep.execute import run_cells

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


def sensor_tree(root: Path) -> tuple[Path, Path]:
    zone = root / "sys/class/thermal/thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "type").write_text("cpu-thermal\n")
    (zone / "temp").write_text("55000\n")
    policy = root / "sys/devices/system/cpu/cpufreq/policy0"
    policy.mkdir(parents=True)
    for name, value in (("cpuinfo_max_freq", 2400000), ("scaling_max_freq", 2400000), ("scaling_cur_freq", 2400000),
                        ("affected_cpus", "0 1")):
        (policy / name).write_text(f"{value}\n")
    (root / "power_uw").write_text("5000000\n")  # a board power sensor reading 5 W, in microwatts
    return zone / "temp", policy / "scaling_cur_freq"


@pytest.fixture(scope="module")
def measured_run(tmp_path_factory, tiny_qwen35, tiny_llama):
    work = tmp_path_factory.mktemp("report")
    temp, clock = sensor_tree(work / "sensors")
    stop = threading.Event()

    def weather():  # warms up; the clock drops to 60% for a stretch, then recovers
        step = 0
        while not stop.wait(0.05):
            step += 1
            temp.write_text(f"{55000 + 300 * min(step, 60)}\n")
            clock.write_text(f"{1440000 if 20 <= step % 60 < 35 else 2400000}\n")
    thread = threading.Thread(target=weather, daemon=True)
    thread.start()
    device = parse_device(f"name: box\ntransport: local\nworkdir: {work / 'device'}\n"
                          f"telemetry: {{root: {json.dumps(str(work / 'sensors'))}, extra_power_paths: [/power_uw]}}\n",
                          file="box.yaml")
    profile = parse_profile(f"models: [{json.dumps(str(tiny_qwen35))}, {json.dumps(str(tiny_llama))}]\n"
                            "tests: [pp64, tg16, tg16@d256]\nrepetitions: 3\nwarmup: 1\nengine: {threads: 2}\n"
                            "telemetry: {interval_s: 0.05}\n", file=str(work / "p.yaml"))
    try:
        outcome = run_cells(profile, [device], work / "results")
        other = run_cells(profile, [device], work / "results")
    finally:
        stop.set()
    return work, outcome.store.path, other.store.path


@pytest.fixture(scope="module")
def report(measured_run):
    work, first, second = measured_run
    out = work / "report.html"
    assert main(["report", str(first), str(second), "-o", str(out)]) == EXIT_OK
    return out


def charts(html: str) -> list[ET.Element]:
    return [ET.fromstring(m) for m in re.findall(r"<svg .*?</svg>", html, flags=re.S)]


def test_the_report_is_one_file_with_nothing_to_fetch(report):
    html = report.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<script" not in html and "@import" not in html


def test_it_has_the_overview_and_every_kind_of_plot(report):
    html = report.read_text()
    for heading in ("Devices", "Models", "Engine builds", "Speed", "Memory", "Temperature and CPU frequency",
                    "Energy", "Comparison"):
        assert f">{heading}" in html
    titles = [c.get("aria-label") for c in charts(html)]
    assert any(t.startswith("pp64: tokens/s per model and device") for t in titles)
    assert "t/s against context depth" in titles
    assert any(t == "box: peak memory per model" for t in titles)
    assert any(t.endswith("temperature and CPU frequency") for t in titles)
    assert "t/s ratio candidate / base, by verdict" in titles
    ns = {"s": "http://www.w3.org/2000/svg"}
    for chart in charts(html):
        assert chart.find("s:g[@class='axis']", ns) is not None and chart.find("s:g[@class='legend']", ns) is not None
        assert chart.findall(".//s:*[@class='series']", ns), chart.get("aria-label")
    speed = next(c for c in charts(html) if c.get("aria-label").startswith("tg16: "))
    assert speed.findall(".//s:path[@class='errorbar']", ns)  # error bars on the t/s bars
    throttled = [c for c in charts(html) if c.findall(".//s:rect[@class='throttled']", ns)]
    assert throttled  # the clock drop is shaded
    assert "energy per token" in titles  # from the fixture's 5 W power sensor


def _png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB/RGBA PNG (what Chromium writes) into rows of raw pixels."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    width, height, depth, colour = header[:4]
    assert depth == 8 and colour in (2, 6)
    bpp = 3 if colour == 2 else 4
    raw, rows, previous = zlib.decompress(idat), [], bytearray(width * bpp)
    stride = width * bpp
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up, corner = previous[i], previous[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255
        rows.append(bytes(line) if bpp == 3 else bytes(b for j in range(0, stride, 4) for b in line[j:j + 3]))
        previous = line
    return width, height, rows


def test_a_real_browser_draws_every_chart(report, tmp_path):
    require(CHROMIUM is not None, "chromium (apt-get install chromium)")
    palette = {bytes(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in PALETTE[:4]}
    html = report.read_text()
    for index, (chart, markup) in enumerate(zip(charts(html), re.findall(r"<svg .*?</svg>", html, flags=re.S))):
        page = tmp_path / f"chart{index}.html"
        page.write_text(f"<!DOCTYPE html><html><body style='margin:0'>{markup}</body></html>")
        png = tmp_path / f"chart{index}.png"
        subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--screenshot={png}", "--window-size=720,320", page.as_uri()],
                       capture_output=True, timeout=120, check=True, env={**os.environ, "HOME": str(tmp_path)})
        width, height, rows = _png_pixels(png)
        pixels = [row[i:i + 3] for row in rows for i in range(0, len(row), 3)]
        drawn = sum(p != b"\xff\xff\xff" for p in pixels)
        assert drawn > 0.01 * width * height, f"{chart.get('aria-label')}: blank"
        assert palette & set(pixels), f"{chart.get('aria-label')}: no series colour drawn"
        dark = sum(max(p) < 80 for p in pixels)  # axis lines, tick labels and legend text
        assert dark > 200, f"{chart.get('aria-label')}: no axes or text"


def test_exports_round_trip_through_sqlite_in_llama_bench_layout(measured_run, tmp_path):
    _work, first, _ = measured_run
    db = tmp_path / "runs.db"
    assert main(["show", str(first), "--format", "sqlite", "-o", str(db)]) == EXIT_OK
    rows = sqlite3.connect(db).execute("SELECT model_filename, n_prompt, n_gen, n_depth, avg_ts FROM llama_bench"
                                       ).fetchall()
    assert len(rows) == 6 and all(r[4] > 0 for r in rows)
    assert {(r[1], r[2], r[3]) for r in rows} == {(64, 0, 0), (0, 16, 0), (0, 16, 256)}


def test_without_sensors_the_report_says_so_instead_of_drawing_zeros(tmp_path, tiny_qwen35):
    empty = tmp_path / "no-sensors"
    empty.mkdir()
    device = parse_device(f"name: bare\ntransport: local\nworkdir: {tmp_path / 'w'}\n"
                          f"telemetry: {{root: {json.dumps(str(empty))}}}\n", file="bare.yaml")
    profile = parse_profile(f"models: [{json.dumps(str(tiny_qwen35))}]\ntests: [tg20]\nrepetitions: 2\nwarmup: 0\n"
                            "engine: {name: sleep, simulate_ts: 1000}\n", file=str(tmp_path / "p.yaml"))
    run = run_cells(profile, [device], tmp_path / "results").store.path
    out = tmp_path / "r.html"
    assert main(["report", str(run), "-o", str(out)]) == EXIT_OK
    html = out.read_text()
    assert "No power source was readable" in html and "No thermal or cpufreq sensors" in html
    assert not any("energy" in (c.get("aria-label") or "") for c in charts(html))
