"""Cores on phones: the cpu fact's clusters from sysfs, `cpu_mask`/`cpu_strict` in both llama engines, and
`cores: fastest` placed by the controller from the device's probe.

The fact runs as a real shell command against fixture trees (tests/fixtures/sysfs/: a 4+3+1 phone and an
8-core board of one core type). The engines run tiny_qwen35 in the real runner, and the runner's affinity
source reads where the engine's threads may run while it measures (proc/<pid>/task/*/status), so a mask
that was not applied shows in every sample. PINNED_CPU picks the CPU the runs pin to; a board with more
cores (the emulated Arm board) runs the same tests.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import assert_at, require

from edgebench.config import parse_profile
from edgebench.errors import ConfigError
from edgebench.facts import FACTS
from edgebench.facts.cpu_clusters import fastest_cpus
from edgebench.results.aggregate import run_rows
from edgebench.runner.engines.cpu_mask import cpus_mask, mask_cpus
from edgebench.runner.engines.llama_bench_engine import LlamaBenchEngine
from edgebench.runner.testspec import parse_test
from edgebench.sweep.cores import CoresError, place_on_cores
from edgebench.toolchain.runner_zipapp import write_runner

SYSFS = Path(__file__).parent / "fixtures" / "sysfs"
SHELLS = {"sh": ["sh"], "dash": ["dash"], "mksh": ["mksh"], "busybox": ["busybox", "sh"]}
REPO = Path(__file__).resolve().parent.parent


def _cluster(part, name, cpus, capacity, max_khz, fastest):
    return {"part": part, "implementer": "0x41", "name": name, "description": name, "count": len(cpus),
            "cpus": list(cpus), "capacity": capacity, "max_khz": max_khz, "fastest": fastest}


TREES = {
    "phone_4_3_1": ("4x Cortex-A55 + 3x Cortex-A78 + 1x Cortex-X1", [
        _cluster("0xd05", "Cortex-A55", range(0, 4), 160, 1804800, False),
        _cluster("0xd41", "Cortex-A78", range(4, 7), 650, 2419200, False),
        _cluster("0xd44", "Cortex-X1", [7], 1024, 2841600, True)]),
    "sbc_8_uniform": ("8x Cortex-A78AE", [_cluster("0xd42", "Cortex-A78AE", range(8), 1024, 1984000, True)]),
}


def probe_cpu(tree: str, shell=("sh",)) -> dict:
    """The cpu fact's real command, run by a real shell with its root at a fixture tree."""
    require(shutil.which(shell[0]) is not None, f"the {shell[0]} shell (.ci/run installs it)")
    command = FACTS["cpu"].command_for(str(SYSFS / tree))
    done = subprocess.run([*shell, "-c", command], capture_output=True, text=True, timeout=60)
    return FACTS["cpu"].parse(done.stdout, done.returncode)


# ---------------------------------------------------------------- the probe


@pytest.mark.parametrize("shell", sorted(SHELLS))
@pytest.mark.parametrize("tree", sorted(TREES))
def test_cpu_fact_reads_clusters_from_sysfs(tree, shell):
    cpu = probe_cpu(tree, SHELLS[shell])
    model, clusters = TREES[tree]
    assert cpu["model"] == model
    assert cpu["clusters"] == clusters
    assert cpu["logical_cores"] == sum(c["count"] for c in clusters)


def test_fastest_is_the_prime_core_on_a_phone_and_every_core_on_a_uniform_board():
    assert fastest_cpus(probe_cpu("phone_4_3_1")) == [7]
    assert fastest_cpus(probe_cpu("sbc_8_uniform")) == list(range(8))


CPUINFO = "".join(f"processor\t: {n}\nCPU implementer\t: 0x41\nCPU part\t: {part}\n\n"
                  for n, part in enumerate(["0xd80"] * 2 + ["0xd81"] * 3 + ["0xd82"]))


def test_one_part_at_two_speeds_is_two_clusters_and_an_unreadable_capacity_falls_back_to_frequency():
    # a Snapdragon 8 Gen 3-like 2+3+1 where SELinux hides cpu_capacity: the max frequencies still rank them
    denied = "cat: /sys/devices/system/cpu/cpu{n}/cpu_capacity: Permission denied"
    khz = [2265600] * 2 + [2956800, 3148800, 3148800] + [3302400]
    sysfs = "".join(f"sysfs cpu{n} cpu_capacity {denied.format(n=n)}\nsysfs cpu{n} cpuinfo_max_freq {k}\n"
                    for n, k in enumerate(khz))
    cpu = FACTS["cpu"].parse("nproc=6\n" + sysfs + CPUINFO, 0)
    assert [(c["name"], c["cpus"], c["max_khz"], c["fastest"]) for c in cpu["clusters"]] == [
        ("Cortex-A520", [0, 1], 2265600, False), ("Cortex-A720", [2], 2956800, False),
        ("Cortex-A720", [3, 4], 3148800, False), ("Cortex-X4", [5], 3302400, True)]
    assert cpu["clusters"][0]["capacity"] == "unavailable: permission denied"


def test_clusters_whose_speeds_cannot_be_read_are_not_ranked():
    sysfs = "".join(f"sysfs cpu{n} cpu_capacity cat: x: Permission denied\n" for n in range(6))
    cpu = FACTS["cpu"].parse("nproc=6\n" + sysfs + CPUINFO, 0)
    assert {c["fastest"] for c in cpu["clusters"]} == {None}
    with pytest.raises(ValueError, match="cannot rank"):
        fastest_cpus(cpu)


def test_a_probe_from_before_sysfs_has_clusters_without_speeds():
    cpu = FACTS["cpu"].parse("nproc=6\n" + CPUINFO, 0)
    assert [c["count"] for c in cpu["clusters"]] == [2, 3, 1]
    assert "fastest" not in cpu["clusters"][0]
    with pytest.raises(ValueError, match="no per-core speeds"):
        fastest_cpus(cpu)


# ---------------------------------------------------------------- cores: fastest, per device


@pytest.mark.parametrize("tree, threads, mask, n_threads", [
    ("phone_4_3_1", None, "0x80", 1),
    ("phone_4_3_1", 2, "0x80", 2),  # a thread count given is kept (two threads on the X1)
    ("sbc_8_uniform", None, "0xff", 8),
])
def test_cores_fastest_becomes_the_clusters_mask_and_thread_count(tree, threads, mask, n_threads):
    options, placed_threads = place_on_cores({"cores": "fastest", "cpu_mask": "0x0"}, threads, probe_cpu(tree),
                                             "phone")
    assert options["cpu_mask"] == mask and placed_threads == n_threads


def test_cores_all_leaves_the_options_alone():
    options = {"cores": "all", "cpu_mask": "0x3"}
    assert place_on_cores(options, None, None, "box") == (options, None)


@pytest.mark.parametrize("cpu, why", [
    (None, "its probe has no CPU fact (missing)"),
    ("unavailable: permission denied", "its probe has no CPU fact (permission denied)"),
    ({"clusters": None}, "its probe has no per-core speeds"),
])
def test_cores_fastest_without_clusters_is_one_sentence(cpu, why):
    with pytest.raises(CoresError) as caught:
        place_on_cores({"cores": "fastest"}, None, cpu, "pixel")
    message = str(caught.value)
    assert message.startswith(f"device pixel: engine.cores: fastest cannot be placed because {why}")
    assert "edgebench devices check pixel" in message and message.count(". ") == 0


# ---------------------------------------------------------------- the profile


@pytest.mark.parametrize("written, mask", [("0xF0", "0xf0"), ('"0xF0"', "0xf0"), ('"f0"', "0xf0"), ("0x0", "0x0")])
def test_cpu_mask_is_read_in_one_spelling(written, mask):
    profile = parse_profile(f"models: [m.gguf]\ntests: [tg4]\nengine:\n  cpu_mask: {written}\n  cpu_strict: 1\n")
    assert profile.engine.cpu_mask == mask and profile.engine.cpu_strict is True


@pytest.mark.parametrize("engine, line, key, fragment", [
    ("  cpu_mask: 0xZZ", 4, "engine.cpu_mask", "expected a hex CPU mask like 0xF0"),
    ("  cpu_strict: 2", 4, "engine.cpu_strict", "expected true or false (or 0 or 1), got 2"),
    ("  cores: big", 4, "engine.cores", "must be one of all, fastest"),
    ("  cores: fastest\n  cpu_mask: 0xF0", 5, "engine.cpu_mask", "cores: fastest and cpu_mask both choose the CPUs"),
])
def test_bad_cpu_settings_name_file_line_and_key(tmp_path, engine, line, key, fragment):
    path = tmp_path / "p.yaml"
    path.write_text(f"models: [m.gguf]\ntests: [tg4]\nengine:\n{engine}\n")
    with pytest.raises(ConfigError) as caught:
        parse_profile(path.read_text(), str(path))
    assert_at(caught.value, path, line, key, fragment)


# ---------------------------------------------------------------- the engines, for real

# the CPU the runs pin to: the last one this process may use (on a board whose CPU 0 takes interrupts,
# not the first one the OS would pick anyway)
PINNED_CPU = max(os.sched_getaffinity(0))
PINNED = cpus_mask([PINNED_CPU])
EVERY_CPU = cpus_mask(os.sched_getaffinity(0))


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    return write_runner(tmp_path_factory.mktemp("runner"))


def run_job(runner, model, engine, **options):
    # short: two threads polling on one CPU take turns of a scheduler slice at every graph barrier. A warm-up,
    # because an OpenMP build pins its threads in its first graph: without one, that graph starts unpinned
    job = {"engine": engine, "model_path": str(model), "test": {"n_prompt": 0, "n_gen": 4, "n_depth": 0},
           "repetitions": 2, "warmup": 1, "engine_options": {"threads": 2, **options},
           "telemetry": {"enabled": True, "interval_s": 0.02}}
    proc = subprocess.run([sys.executable, str(runner), "run"], input=json.dumps(job), capture_output=True,
                          text=True, timeout=300)
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert proc.returncode == 0, (proc.stderr, events[-1:])
    return events


def seen_cpus(windows) -> set:
    """The masks the engine's threads were allowed while measured, over the windows that read one (a short
    repetition may fall between two telemetry readings)."""
    return {w["engine_cpus"] for w in windows if w.get("engine_cpus") is not None}


def sample_windows(events) -> list:
    return [e["window"] for e in events if e["event"] == "sample"]


@pytest.fixture(params=["llama.cpp", "llama-bench"])
def engine(request):
    """Each engine with the options it needs on this machine."""
    if request.param == "llama-bench":
        return request.param, {"binary": request.getfixturevalue("llama_bench_binary")}
    return request.param, {}


@pytest.mark.parametrize("strict", [True, False])
def test_cpu_mask_pins_the_engines_threads_while_they_measure(runner, tiny_qwen35, engine, strict):
    name, options = engine
    # two threads on one CPU: pinned, they cannot spread over the machine as they otherwise would
    assert seen_cpus(sample_windows(run_job(runner, tiny_qwen35, name, cpu_mask=PINNED,
                                                            cpu_strict=strict, **options))) == {PINNED}


def test_without_a_mask_the_engines_threads_run_anywhere(runner, tiny_qwen35, engine):
    name, options = engine
    assert seen_cpus(sample_windows(run_job(runner, tiny_qwen35, name, **options))) == {EVERY_CPU}


def test_llama_bench_is_given_the_mask_and_strictness(tiny_qwen35, llama_bench_binary):
    engine = LlamaBenchEngine()
    engine.open(str(tiny_qwen35), {"binary": llama_bench_binary, "cpu_mask": "0xf0", "cpu_strict": True})
    command = engine.command(parse_test("tg4"), 2, 1)
    assert command[command.index("-C") + 1] == "0xf0"
    assert command[command.index("--cpu-strict") + 1] == "1"
    engine.open(str(tiny_qwen35), {"binary": llama_bench_binary})
    assert "-C" not in engine.command(parse_test("tg4"), 2, 1)  # llama-bench's own default, 0x0


def test_masks_read_as_llama_cpp_reads_them():
    assert mask_cpus("0xF0") == mask_cpus("f0") == [4, 5, 6, 7]
    assert mask_cpus("0x0") == []
    assert cpus_mask([0, 7]) == "0x81"
    with pytest.raises(ValueError):
        mask_cpus("0xg")


# ---------------------------------------------------------------- through the controller


def edgebench(*args, cwd):
    return subprocess.run([sys.executable, "-m", "edgebench", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


def run_with_engine(tmp_path: Path, model: Path, engine: str) -> tuple[dict, set]:
    """One tg cell on the local device through `edgebench run`: its row, and the masks its samples saw."""
    device = tmp_path / "devices" / "testbox.yaml"
    device.parent.mkdir(exist_ok=True)
    device.write_text(f"name: testbox\ntransport: local\nworkdir: {tmp_path / 'work'}\n")
    profile = tmp_path / "p.yaml"
    profile.write_text(f"models: [{model}]\ntests: [tg4]\nrepetitions: 2\nwarmup: 1\n"
                       f"telemetry: {{interval_s: 0.02}}\nengine: {engine}\n")
    results = tmp_path / "results"
    shutil.rmtree(results, ignore_errors=True)
    proc = edgebench("run", profile, "-d", "testbox", "-o", results, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    (run,) = [p for p in results.iterdir() if p.is_dir()]
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    (row,) = run_rows(run)
    return row, seen_cpus(s["window"] for s in samples)


def test_a_runs_row_records_the_mask_its_cell_ran_with(tmp_path, tiny_qwen35):
    row, seen = run_with_engine(tmp_path, tiny_qwen35, f"{{threads: 2, cpu_mask: {PINNED}, cpu_strict: 1}}")
    assert (row["cpu_mask"], row["cpu_strict"], row["n_threads"], row["status"]) == (PINNED, True, 2, "done")
    assert seen == {PINNED}


def test_cores_fastest_is_placed_from_the_devices_probe(tmp_path, tiny_qwen35):
    # this machine's cores are of one kind (one cluster), so fastest is all of them, one thread each
    probe = subprocess.run(["sh", "-c", FACTS["cpu"].command_for("")], capture_output=True, text=True)
    expected = fastest_cpus(FACTS["cpu"].parse(probe.stdout, probe.returncode))
    row, seen = run_with_engine(tmp_path, tiny_qwen35, "{cores: fastest}")
    assert (row["cpu_mask"], row["n_threads"], row["status"]) == (cpus_mask(expected), len(expected), "done")
    assert seen == {cpus_mask(expected)}
