"""GPU telemetry sources on recorded outputs and fixture trees: NVIDIA (nvidia-smi's looping query,
replayed from an H200 recording), Jetson and Mali (devfreq), Jetson without devfreq (tegrastats, in
the layouts of NVIDIA's tegrastats appendix), Adreno (kgsl); and the GPU window
summary. A GPU the device lacks is "unavailable" with the reason, and its keys are absent, never 0."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import psutil
import pytest

from edgebench.runner.telemetry import SOURCES, Context, Sampler, Unavailable, base, summarize_window

FIXTURES = Path(__file__).parent / "fixtures" / "telemetry"
FAKE_SMI = str(FIXTURES / "nvidia_smi" / "nvidia-smi")
RECORDED_PID = 8346  # the llama-bench process in the H200 recording


def discover(source, root="/", **settings):
    return SOURCES[source](Context(str(root), pid=settings.pop("pid", RECORDED_PID), interval_s=0.1, **settings))


def unavailable(source, root="/", **settings):
    with pytest.raises(Unavailable) as caught:
        discover(source, root, **settings)
    return caught.value.reason


def read_until(reader, *keys, timeout=10.0):
    """Reads until the looping nvidia-smi has printed what all `keys` need (its first lines take a
    moment, and its two loops start in either order)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fragment = reader.read()
        if all(key in fragment for key in keys):
            return fragment
        time.sleep(0.05)
    raise AssertionError("no %s within %ss: %r" % (", ".join(keys), timeout, fragment))


@pytest.fixture
def smi():
    readers = []

    def start(**settings):
        reader = discover("nvidia_smi", nvidia_smi=FAKE_SMI, **settings)
        readers.append(reader)
        return reader
    yield start
    for reader in readers:
        reader.close()


# ---- NVIDIA --------------------------------------------------------------------------------------

@pytest.mark.parametrize("gpu_start_s", ["0", "0.5"])
def test_nvidia_reads_the_recorded_h200(smi, monkeypatch, gpu_start_s):
    # "0.5": the GPU loop's first line after the process list's, as when its interpreter starts cold
    monkeypatch.setenv("FAKE_SMI_GPU_START_S", gpu_start_s)
    fragment = read_until(smi(), "gpu_process_mib", "gpu")
    gpu = fragment["gpu"]["nvidia0"]
    assert gpu["name"] == "NVIDIA H200"
    assert gpu["mem_total_mib"] == 143771 and gpu["clock_max_mhz"] == 1980 and gpu["mem_clock_max_mhz"] == 3201
    assert gpu["power_limit_w"] == 700 and 30 <= gpu["temp_c"] <= 50 and gpu["power_w"] > 50
    # the recording's reasons are 0x0 or 0x1 (GPU idle), which is no throttling
    assert gpu["throttle"] == []
    assert fragment["gpu_process_mib"] in (14, 518, 1530, 2130, 1740)


def test_nvidia_process_memory_is_the_measured_process_only(smi, monkeypatch):
    monkeypatch.setenv("FAKE_SMI_PID", "99999")
    reader = smi(pid=RECORDED_PID)
    fragment = read_until(reader, "gpu")
    time.sleep(0.3)
    assert "gpu_process_mib" not in reader.read() and "gpu_process_mib" not in fragment


@pytest.mark.parametrize("mask, reasons", [
    ("0x0000000000000020", ["sw_thermal_slowdown"]),
    ("0x0000000000000044", ["sw_power_cap", "hw_thermal_slowdown"]),
    ("0x0000000000000003", []),  # idle and application clocks: not throttling
])
def test_nvidia_throttle_reasons(smi, monkeypatch, mask, reasons):
    monkeypatch.setenv("FAKE_SMI_THROTTLE", mask)
    records = []
    reader = smi()
    for _ in range(2):
        records.append(dict(read_until(reader, "gpu"), t=time.monotonic()))
        time.sleep(0.15)
    assert records[-1]["gpu"]["nvidia0"]["throttle"] == reasons
    window = summarize_window(records, 100)
    assert window["throttled"] is bool(reasons)
    assert window["throttle_reasons"] == ["gpu_" + r for r in sorted(reasons)]


def test_nvidia_before_driver_535_uses_the_throttle_field_name(smi, monkeypatch):
    monkeypatch.setenv("FAKE_SMI_OLD_DRIVER", "1")
    monkeypatch.setenv("FAKE_SMI_THROTTLE", "0x8")
    assert read_until(smi(), "gpu")["gpu"]["nvidia0"]["throttle"] == ["hw_slowdown"]


def test_nvidia_unavailable_with_the_reason(monkeypatch):
    assert unavailable("nvidia_smi", nvidia_smi="/nonexistent/nvidia-smi") == "not present: /nonexistent/nvidia-smi"
    assert unavailable("nvidia_smi", nvidia_smi="no-such-nvidia-smi") == "not present: no-such-nvidia-smi"
    monkeypatch.setenv("FAKE_SMI_NO_DRIVER", "1")
    reason = unavailable("nvidia_smi", nvidia_smi=FAKE_SMI)
    assert reason.startswith("refused: ") and "couldn't communicate with the NVIDIA driver" in reason


def test_nvidia_no_reading_is_absent_not_zero():
    from edgebench.runner.telemetry.nvidia_smi import parse_gpu_line
    line = "0, GPU-1, NVIDIA GeForce RTX 4060 Laptop GPU, 512, 8188, [N/A], 210, 3105, 405, 8001, 45, [N/A], " \
           "[Not Supported], 0x0000000000000000"
    entry = parse_gpu_line(line, "clocks_event_reasons.active")
    assert "power_w" not in {k for k, v in entry.items() if v is not None}
    assert entry["util_pct"] is None and entry["mem_used_mib"] == 512


def test_the_sampler_stops_the_looping_nvidia_smi():
    def loops():
        return [c for c in psutil.Process().children() if FAKE_SMI in " ".join(c.cmdline())]
    sampler = Sampler("/", 0.1, sources=["nvidia_smi"], nvidia_smi=FAKE_SMI)
    assert sampler.availability() == {"nvidia_smi": "ok"} and loops() == []  # discovery asks once
    sampler.start()
    deadline = time.monotonic() + 10
    while not any("gpu" in r for r in sampler.records) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(loops()) == 2  # the GPUs and the processes
    sampler.stop()
    assert loops() == []


# ---- Jetson, Mali: devfreq --------------------------------------------------------------------------

def test_jetson_gpu_load_frequency_and_emc():
    fragment = discover("devfreq_gpu", FIXTURES / "jetson_orin_nano").read()
    assert fragment["gpu"] == {"17000000.gpu": {"clock_mhz": 306.0, "clock_max_mhz": 624.75, "clock_cap_mhz": 624.75,
                                                "throttle": [], "util_pct": 41.8}}
    assert fragment["emc_mhz"] == 2133.0


def test_jetson_gpu_capped_below_its_maximum_is_throttled(tmp_path):
    root = tmp_path / "root"
    shutil.copytree(FIXTURES / "jetson_orin_nano", root)
    (root / "sys/class/devfreq/17000000.gpu/max_freq").write_text("408000000\n")
    gpu = discover("devfreq_gpu", root).read()["gpu"]["17000000.gpu"]
    assert gpu["throttle"] == ["max_freq_capped"] and gpu["clock_cap_mhz"] == 408.0


def test_mali_has_no_load_file_so_no_utilisation():
    fragment = discover("devfreq_gpu", FIXTURES / "mali_rk3588").read()
    # the memory controller's devfreq node (dmc) is not a GPU
    assert fragment == {"gpu": {"fb000000.gpu": {"clock_mhz": 800.0, "clock_max_mhz": 1000.0,
                                                 "clock_cap_mhz": 1000.0, "throttle": []}}}


def test_devfreq_without_a_gpu_is_unavailable(tmp_path):
    assert unavailable("devfreq_gpu", FIXTURES / "rpi5") == "not present: sys/class/devfreq"
    (tmp_path / "sys/class/devfreq/dmc").mkdir(parents=True)
    assert unavailable("devfreq_gpu", tmp_path) == "not present: sys/class/devfreq/<gpu>"


# ---- Jetson without devfreq: tegrastats --------------------------------------------------------------

FAKE_TEGRASTATS = str(FIXTURES / "tegrastats" / "tegrastats")


@pytest.mark.parametrize("layout, gpu, emc", [
    # Orin (JetPack 5): a clock per GPC, the GPU+SOC rail in mW, powered-down CV sensors at -256C
    ("orin", {"util_pct": 0.0, "clock_mhz": 305.0, "temp_c": 41.375, "power_w": 2.386}, 2133.0),
    # JetPack 6 on Orin Nano: no GPU clock and no EMC in the line, lower-case sensor names
    ("jetpack6", {"util_pct": 88.0, "temp_c": 50.968, "power_w": 3.121}, None),
    # Xavier: rails without units
    ("xavier", {"util_pct": 63.0, "clock_mhz": 1377.0, "temp_c": 34.5, "power_w": 4.158}, 2133.0),
    # Nano (L4T 32)
    ("nano", {"util_pct": 12.0, "clock_mhz": 76.0, "temp_c": 32.0, "power_w": 0.081}, 1600.0),
])
def test_tegrastats_layouts(layout, gpu, emc):
    from edgebench.runner.telemetry.tegrastats import parse_line
    line = (FIXTURES / "tegrastats" / f"{layout}.txt").read_text().splitlines()[0]
    fragment = parse_line(line)
    assert fragment["gpu"] == {"tegrastats": gpu}
    assert fragment.get("emc_mhz") == emc


def test_tegrastats_line_without_a_gpu_reading_is_nothing():
    from edgebench.runner.telemetry.tegrastats import parse_line
    assert parse_line("RAM 1744/3956MB (lfb 85x4MB) SWAP 0/1978MB (cached 0MB) CPU [10%@102,3%@102]") == {}


def test_tegrastats_reads_the_gpu_where_devfreq_cannot(tmp_path):
    reader = discover("tegrastats", tmp_path, tegrastats=FAKE_TEGRASTATS)
    try:
        fragment = read_until(reader, "gpu")
    finally:
        reader.close()
    assert fragment["gpu"]["tegrastats"]["temp_c"] in (41.375, 48.781)
    assert "clock_max_mhz" not in fragment["gpu"]["tegrastats"]  # tegrastats prints no maximum


def test_tegrastats_is_not_needed_where_devfreq_reads_the_gpu():
    assert unavailable("tegrastats", FIXTURES / "jetson_orin_nano", tegrastats=FAKE_TEGRASTATS) == \
        "not needed: devfreq_gpu reads this GPU"


def test_tegrastats_missing_or_refused_is_unavailable(tmp_path, monkeypatch):
    assert unavailable("tegrastats", tmp_path, tegrastats="/nonexistent/tegrastats") == \
        "not present: /nonexistent/tegrastats"
    monkeypatch.setenv("FAKE_TEGRASTATS_DENIED", "1")
    assert unavailable("tegrastats", tmp_path, tegrastats=FAKE_TEGRASTATS) == \
        f"refused: {FAKE_TEGRASTATS}: Error: Could not open /sys/devices/gpu.0/load: Permission denied"


def test_the_sampler_stops_the_looping_tegrastats(tmp_path):
    def loops():
        return [c for c in psutil.Process().children() if FAKE_TEGRASTATS in " ".join(c.cmdline())]
    sampler = Sampler(str(tmp_path), 0.1, sources=["tegrastats"], tegrastats=FAKE_TEGRASTATS)
    assert sampler.availability() == {"tegrastats": "ok"} and loops() == []  # the probe has ended
    sampler.start()
    deadline = time.monotonic() + 10
    while not any("gpu" in r for r in sampler.records) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(loops()) == 1
    sampler.stop()
    assert loops() == []
    assert {r["gpu"]["tegrastats"]["clock_mhz"] for r in sampler.records if "gpu" in r} <= {305.0, 1300.0}


# ---- Adreno: kgsl ---------------------------------------------------------------------------------

def test_adreno_kgsl():
    gpu = discover("kgsl", FIXTURES / "termux_android").read()["gpu"]["kgsl-3d0"]
    assert gpu == {"clock_mhz": 441.6, "clock_max_mhz": 587.0, "clock_cap_mhz": 587.0, "throttle": [],
                   "util_pct": 18.0, "temp_c": 41.3}


def test_adreno_load_from_gpubusy_when_there_is_no_percentage(tmp_path):
    root = tmp_path / "root"
    shutil.copytree(FIXTURES / "termux_android", root)
    (root / "sys/class/kgsl/kgsl-3d0/gpu_busy_percentage").unlink()
    assert discover("kgsl", root).read()["gpu"]["kgsl-3d0"]["util_pct"] == pytest.approx(100 * 184320 / 1048576)
    # a sleeping GPU counts 0 of 0 cycles: no reading, not 0 %
    (root / "sys/class/kgsl/kgsl-3d0/gpubusy").write_text("0 0\n")
    assert "util_pct" not in discover("kgsl", root).read()["gpu"]["kgsl-3d0"]


def test_adreno_denied_by_selinux_is_unavailable(monkeypatch):
    real = base.open_file

    def selinux(path, *args, **kwargs):
        if "kgsl" in str(path):
            raise PermissionError(13, "Permission denied", path)
        return real(path, *args, **kwargs)
    monkeypatch.setattr(base, "open_file", selinux)
    assert unavailable("kgsl", FIXTURES / "termux_android") == "permission denied: sys/class/kgsl/kgsl-3d0/gpuclk"


def test_no_gpu_anywhere_leaves_every_gpu_key_out():
    record = Sampler(str(FIXTURES / "rpi5"), pid=4242, nvidia_smi="/nonexistent").snapshot()
    assert not {"gpu", "gpu_process_mib", "emc_mhz"} & set(record)
    window = summarize_window([record, dict(record, t=record["t"] + 1)], 10)
    assert [window[k] for k in ("peak_vram_mib", "max_gpu_temp_c", "min_gpu_clock_ratio", "gpu_power_w",
                                "gpu_j_per_token")] == [None] * 5


# ---- the window summary ------------------------------------------------------------------------------

def gpu_record(t, mib, temp, clock, watts, **extra):
    return dict({"t": t, "gpu_process_mib": mib, "gpu": {"nvidia0": {
        "temp_c": temp, "clock_mhz": clock, "clock_max_mhz": 2000, "power_w": watts, "util_pct": 90,
        "mem_used_mib": mib + 10, "mem_total_mib": 8188, "throttle": []}}}, **extra)


def test_gpu_window_summary():
    records = [gpu_record(0.0, 1200, 60, 2000, 100), gpu_record(1.0, 1500, 71, 1500, 200),
               gpu_record(2.0, 1400, 65, 1800, 100)]
    window = summarize_window(records, 300, t0=0.0, t1=2.0)
    assert window["peak_vram_mib"] == 1500 and window["max_vram_used_mib"] == 1510
    assert window["vram_total_mib"] == 8188 and window["max_gpu_temp_c"] == 71
    assert window["min_gpu_clock_ratio"] == 0.75 and window["gpu_util_pct"] == 90
    assert window["gpu_power_w"] == pytest.approx(400 / 3)
    assert window["gpu_energy_j"] == pytest.approx(300.0)  # trapezoids: 150 + 150
    assert window["gpu_j_per_token"] == pytest.approx(1.0)
    assert window["throttled"] is False


def test_jetson_gpu_temperature_and_power_come_from_its_zone_and_rail():
    records = [{"t": float(t), "thermal_c": {"cpu-thermal": 50.0, "gpu-thermal": 48.5 + t},
                "power_w": {"VDD_IN": 9.0, "VDD_CPU_GPU_CV": 3.0 + t, "VDD_SOC": 2.0},
                "gpu": {"17000000.gpu": {"clock_mhz": 612.0, "clock_max_mhz": 624.75}}} for t in range(3)]
    window = summarize_window(records, 60)
    assert window["max_gpu_temp_c"] == 50.5 and window["gpu_power_w"] == 4.0
    assert window["gpu_energy_j"] == pytest.approx(8.0)
    assert window["peak_vram_mib"] is None  # an integrated GPU shares RAM: see peak_rss_mib
