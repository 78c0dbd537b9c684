"""Everything a Raspberry Pi user does, on the emulated Arm board (tests/arm_board.py), through SSH:
install an engine cross-built here, check the device, run pp/tg/depth/ppl/kld on both engines, plan
against llama.cpp's own accounting run there, an OOM kill by the board's own kernel, ab and compare.

The board runs under emulation (about 1000x slower than this host natively): models are a few MB,
repetitions few, and only ratios are compared, never absolute speed. One engine install and one
run per engine serve the tests of this module. Engines run 2 threads, as many as this host has cores
for the board's 4 vCPUs: 4 spinning threads on 2 cores made tg16 20x slower (1.8 against 40 t/s).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgebench.results.aggregate import run_rows

pytestmark = [pytest.mark.board, pytest.mark.llama]

MODEL = "synthetic:tiny-qwen35@Q4_K_M"
BOARD_TIMEOUT_S = 1800


def edgebench(*args, cwd: Path, env: dict, timeout: float = BOARD_TIMEOUT_S) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgebench", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **env})


@pytest.fixture(scope="module")
def board_work(arm_board_session, tmp_path_factory):
    """A work directory whose devices/board.yaml is trusted, its own state and known_hosts, and the
    engine installed on the board with `install-engine -d board` (the cross-build is cached)."""
    work = tmp_path_factory.mktemp("board-work")
    (work / "devices").mkdir()
    (work / "devices" / "board.yaml").write_text(arm_board_session.device_yaml("board"))
    env = {"EDGEBENCH_KNOWN_HOSTS": str(work / "known_hosts"), "EDGEBENCH_STATE": str(work / "state")}
    trusted = edgebench("devices", "trust", "board", "--fingerprint", arm_board_session.fingerprint, cwd=work, env=env)
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr
    installed = edgebench("install-engine", "-d", "board", cwd=work, env=env)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return work, env, installed


def board_run(work: Path, env: dict, name: str, profile_text: str) -> tuple[subprocess.CompletedProcess, Path]:
    profile = work / f"{name}.yaml"
    profile.write_text(profile_text)
    out = work / "results" / name
    done = edgebench("run", profile, "-d", "board", "-o", out, cwd=work, env=env)
    runs = [p for p in out.iterdir() if p.is_dir()] if out.exists() else []
    assert len(runs) == 1, done.stdout + done.stderr
    return done, runs[0]


def test_install_engine_builds_for_the_boards_cpu_and_installs_both_engines(board_work, arm_board_session):
    work, env, first = board_work
    assert "aarch64 Linux (glibc" in first.stdout
    assert "dotprod" in first.stdout and "i8mm" in first.stdout  # from the board's Features line
    assert "llama-bench and llama.cpp (in-process)" in first.stdout
    again = edgebench("install-engine", "-d", "board", cwd=work, env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "already there" in again.stdout  # the archive is content-addressed: nothing is sent twice
    listed = arm_board_session.ssh("ls /root/.cache/edgebench/engine/bin/").stdout.split()
    assert {"llama-bench", "llama-perplexity", "llama-fit-params", "libllama.so"} <= set(listed)


def test_devices_check_finds_an_arm_cpu_with_2_gib_and_both_engines_pass_the_self_test(board_work):
    work, env, _ = board_work
    done = edgebench("devices", "check", "board", "--json", cwd=work, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    probe = json.loads(done.stdout)
    facts = probe["facts"]
    assert facts["arch"] == "aarch64"
    assert facts["cpu"]["features"]["asimddp"] and facts["cpu"]["features"]["i8mm"]
    assert facts["cpu"]["logical_cores"] == 4
    assert 1.7 * 2**30 < facts["memory"]["total_bytes"] <= 2 * 2**30
    assert probe["self_test"]["llama.cpp"]["ok"], probe["self_test"]
    assert probe["self_test"]["llama-bench"]["ok"], probe["self_test"]


@pytest.fixture(scope="module")
def board_runs(board_work):
    """One run per engine: pp, tg, a depth and ppl on both; kld where the engine has it (in-process)."""
    work, env, _ = board_work
    # llama-bench's ppl runs llama-perplexity over a text; the in-process engine scores the same text
    text = work / "text.txt"
    text.write_text("The board measures what the controller sends it, one cell at a time. " * 40)
    common = ("repetitions: 2\nwarmup: 0\ntimeout_s: 900\ntelemetry: {interval_s: 0.5}\n"
              f"quality: {{n_ctx: 64, chunks: 2, text: '{text}', reference: 'synthetic:tiny-qwen35@F16'}}\n")
    runs = {}
    for engine, tests in (("llama.cpp", "[pp32, tg8, pp16+tg4@d16, ppl, kld]"),
                          ("llama-bench", "[pp32, tg8, pp16+tg4@d16, ppl]")):
        text = f"models: [{MODEL}]\ntests: {tests}\nengine: {{name: {engine}, threads: 2}}\n{common}"
        runs[engine] = board_run(work, env, engine.replace(".", ""), text)
    return runs


@pytest.mark.parametrize("engine", ["llama.cpp", "llama-bench"])
def test_a_run_on_the_board_measures_every_test_with_the_installed_build(board_runs, engine):
    done, run = board_runs[engine]
    assert done.returncode == 0, done.stdout + done.stderr
    rows = run_rows(run)
    assert {r["status"] for r in rows} == {"done"}, [(r["test"], r["error"]) for r in rows]
    for row in rows:
        assert row["build_target"] == "aarch64-linux-gnu"
        assert "+dotprod" in row["build_flags"] or "dotprod" in row["build_flags"]
        assert row["system_info"] and "NEON = 1" in row["system_info"]
    quality = {r["test"]: r for r in rows if r["test"] in ("ppl", "kld")}
    assert quality["ppl"]["ppl"] > 1
    if engine == "llama.cpp":
        assert quality["kld"]["kld_mean"] >= 0


def test_the_boards_telemetry_says_what_it_lacks(board_runs):
    _, run = board_runs["llama.cpp"]
    probes = [json.loads(line) for line in (run / "devices.jsonl").read_text().splitlines() if line.strip()]
    telemetry = probes[-1]["runner"]["telemetry"]
    assert telemetry["memory"] == "ok"
    # the virt machine has no thermal zones and no cpufreq: unavailable, with the reason
    assert telemetry["thermal"] != "ok" and telemetry["thermal"]


# tiny-llama's KV cache is 2 KiB a token: 985,600 tokens need 1.88 GiB of it, anonymous memory llama.cpp
# clears when it creates the context, on a board with 1.94 GiB of RAM in all. One allocation under the RAM
# size, which the kernel grants (a larger one it refuses outright, and llama.cpp says so); touched, it
# outgrows what is free, and the kernel's OOM killer ends the engine.
TOO_DEEP_CTX = 985600
TOO_DEEP = f"pp8@d{TOO_DEEP_CTX - 8}"


def test_a_cell_too_big_for_the_board_is_killed_by_its_kernel_and_the_sweep_goes_on(board_work, arm_board_session):
    work, env, _ = board_work
    model = "synthetic:tiny-llama@Q4_K_M"
    plan = edgebench("plan", "--like", "tiny-llama", "--quant", "Q4_K_M", "-d", "board", "--ctx", str(TOO_DEEP_CTX),
                     "--json", cwd=work, env=env)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    (cell,) = json.loads(plan.stdout)["cells"]
    assert cell["fits"] is False
    done, run = board_run(work, env, "oom", f"models: [{model}]\ntests: [{TOO_DEEP}, pp8]\nrepetitions: 2\n"
                          "warmup: 0\ntimeout_s: 900\nengine: {name: llama.cpp, threads: 2}\n")
    assert done.returncode == 1, done.stdout + done.stderr
    rows = {r["test"]: r for r in run_rows(run)}
    assert rows[TOO_DEEP]["status"] == "failed"
    assert "killed by the kernel's out-of-memory killer" in rows[TOO_DEEP]["error"]
    assert rows["pp8"]["status"] == "done" and rows["pp8"]["n_samples"] == 2
    assert arm_board_session.ssh("echo up").stdout.strip() == "up"  # the board itself stayed up


def test_ab_and_compare_on_the_board(board_work):
    work, env, _ = board_work
    profile = work / "ab.yaml"
    profile.write_text("models: ['synthetic:tiny-llama@Q4_K_M?layers=1']\ntests: [pp32]\nwarmup: 0\n"
                       "timeout_s: 900\nengine: {name: llama.cpp, threads: 2}\ntelemetry: {enabled: false}\n")
    # one layer against four: work the gate must call slower, whatever emulation does to absolute speed
    # (more threads than the host has cores is no such change: under emulation 4 threads ran slower than 1)
    ab = edgebench("ab", profile, "-d", "board", "--b-model", "synthetic:tiny-llama@Q4_K_M", "--rounds", "8",
                   "--max-rounds", "8",
                   "--max-steal", "100", "--max-cpu-wait", "100", "-o", work / "results" / "ab", cwd=work, env=env)
    assert ab.returncode == 1, ab.stdout + ab.stderr
    assert "regressed" in ab.stdout
    runs = []
    for name in ("cmp-a", "cmp-b"):
        done, run = board_run(work, env, name, profile.read_text().replace("warmup: 0", "warmup: 0\nrepetitions: 3"))
        assert done.returncode == 0, done.stdout + done.stderr
        runs.append(run)
    compared = edgebench("compare", *runs, cwd=work, env=env)
    # judged, not refused (3): emulation's run-to-run spread (±20%) may call either verdict on the same build
    assert compared.returncode in (0, 1, 2), compared.stdout + compared.stderr
    assert "pp32" in compared.stdout and "board" in compared.stdout


@pytest.mark.parametrize("engine", ["llama.cpp", "llama-bench"])
def test_cpu_mask_pins_the_engines_threads_on_the_board(board_work, engine):
    work, env, _ = board_work
    # the board's last core; warm-up 1: an OpenMP llama-bench pins its threads from its second graph on
    text = (f"models: [{MODEL}]\ntests: [tg4]\nrepetitions: 2\nwarmup: 1\ntimeout_s: 900\n"
            f"telemetry: {{interval_s: 0.2}}\nengine: {{name: {engine}, threads: 2, cpu_mask: 0x8, cpu_strict: 1}}\n")
    done, run = board_run(work, env, f"mask-{engine.replace('.', '')}", text)
    assert done.returncode == 0, done.stdout + done.stderr
    (row,) = run_rows(run)
    assert (row["cpu_mask"], row["cpu_strict"], row["status"]) == ("0x8", True, "done")
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines() if line.strip()]
    seen = {s["window"]["engine_cpus"] for s in samples if s["window"].get("engine_cpus") is not None}
    assert seen == {"0x8"}, seen


def test_the_plan_matches_llama_cpps_own_accounting_run_on_the_board(board_work, arm_board_session):
    """Every memory item against llama-fit-params cross-built and run on the board: tests/perf/board.py's
    check, on a model large enough that Arm's repacking (Q6_K too, unlike x86) moves the weights' figure."""
    sys.path.insert(0, str(Path(__file__).parent / "perf"))
    from board import MEMORY_MODEL, memory

    work, env, _ = board_work
    edgebench("devices", "check", "board", "--no-self-test", cwd=work, env=env)  # the probe the plan reads
    items_met, _rss_met = memory(work, env, arm_board_session, MEMORY_MODEL, 512, 1)
    assert items_met


def test_a_build_whose_runtime_library_the_board_lacks_is_refused_and_the_engine_stays(board_work, arm_board_session,
                                                                                      tmp_path, monkeypatch):
    """Measured on this board before install-engine pushed it: `libgomp.so.1: cannot open shared object file`.
    The same build without it is refused in one sentence naming the library; nothing is switched."""
    from test_device_build import BOARD

    from edgebench.config import find_device
    from edgebench.toolchain.device_build import EngineBuild, build_engine
    from edgebench.transport import open_transport
    from edgebench.transport.engine_push import EngineCannotRun, install_engine

    work, env, _ = board_work
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    built = build_engine(BOARD, log=lambda text: None)
    copy = tmp_path / "no-openmp"
    shutil.copytree(built.directory, copy, ignore=shutil.ignore_patterns("libgomp*", "engine*.tar"))
    manifest = {**built.manifest, "key": "no-openmp"}
    before = arm_board_session.ssh("readlink /root/.cache/edgebench/engine").stdout.strip()
    with open_transport(find_device("board", str(work / "devices"))) as transport:
        with pytest.raises(EngineCannotRun, match=r"does not start there \(.*libgomp\.so\.1: cannot open shared"):
            install_engine(transport, EngineBuild(copy, "no-openmp", manifest["files"], manifest))
    assert arm_board_session.ssh("readlink /root/.cache/edgebench/engine").stdout.strip() == before
