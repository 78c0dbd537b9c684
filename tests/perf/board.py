#!/usr/bin/env python3
"""edgebench on the emulated Arm board (tests/arm_board.py) against llama.cpp's own tools, same pushed build.

    python tests/perf/board.py                  # boots the board, installs the engine, measures
    python tests/perf/board.py --rounds 4 --model synthetic:tiny-qwen35@Q4_K_M

Prints three tables:
- speed: the in-process engine against llama-bench (both from `install-engine -d`), in interleaved
  rounds, each round's paired ratio and their median. Emulation makes absolute speed meaningless;
  the ratio is what counts. Goal: within ±5%.
- memory: the plan's items (`edgebench plan -d board`, with the board's probed CPU features) against
  `llama-fit-params` run on the board. Goal: each within 2% or 8 MiB.
- peak RSS: the engine's measured peak in a run against the plan's. Goal: within max(10%, 100 MiB).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

TESTS = (("pp64", 64, 0), ("tg16", 0, 16))
# as many threads as this host has cores for the board's 4 vCPUs: more only adds the scheduler's noise
THREADS = 2
SPEED_GOAL = 0.05
MEMORY_MODEL = "synthetic:qwen3.5-0.8b@Q4_K_M?layers=4"
MIB = 2**20
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_paired_ratios  # noqa: E402


def edgebench(work: Path, env: dict, *args, timeout: float = 3600) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "edgebench", *map(str, args)], cwd=work, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **env})
    if done.returncode not in (0, 1):
        raise SystemExit(f"edgebench {' '.join(map(str, args))} failed ({done.returncode}):\n"
                         f"{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return done


def prepare(work: Path, board) -> dict:
    """devices/board.yaml, trusted, with the engine installed; the environment the commands share."""
    (work / "devices").mkdir(exist_ok=True)
    (work / "devices" / "board.yaml").write_text(board.device_yaml("board"))
    env = {"EDGEBENCH_KNOWN_HOSTS": str(work / "known_hosts"), "EDGEBENCH_STATE": str(work / "state")}
    edgebench(work, env, "devices", "trust", "board", "--fingerprint", board.fingerprint)
    print(edgebench(work, env, "install-engine", "-d", "board").stdout, flush=True)
    edgebench(work, env, "devices", "check", "board", "--no-self-test")  # keeps the probe for `plan`
    return env


def one_run(work: Path, env: dict, name: str, model: str, engine: str, tests, reps: int, extra: str = "") -> list:
    from edgebench.results.aggregate import run_rows

    profile = work / f"{name}.yaml"
    profile.write_text(f"models: ['{model}']\ntests: [{', '.join(tests)}]\nrepetitions: {reps}\nwarmup: 1\n"
                       f"timeout_s: 1800\nengine: {{name: {engine}, threads: {THREADS}}}\n{extra}")
    out = work / "results" / name
    edgebench(work, env, "run", profile, "-d", "board", "-o", out)
    run = max(p for p in out.iterdir() if p.is_dir())  # the newest: run directories are named by time
    return run_rows(run)


def speed(work: Path, env: dict, model: str, rounds: int, reps: int) -> bool:
    ours = {name: [] for name, *_ in TESTS}
    theirs = {name: [] for name, *_ in TESTS}
    names = [name for name, *_ in TESTS]
    for round_no in range(rounds):
        # alternate which engine goes first, so drift does not favour one of them
        order = ("llama.cpp", "llama-bench") if round_no % 2 == 0 else ("llama-bench", "llama.cpp")
        for engine in order:
            rows = one_run(work, env, f"speed-{round_no}-{engine.replace('.', '')}", model, engine, names, reps)
            for row in rows:
                (ours if engine == "llama.cpp" else theirs)[row["test"]].append(row["avg_ts"])
        print(f"round {round_no + 1}: " + ", ".join(f"{n} edgebench {ours[n][-1]:.2f} / llama-bench "
                                                    f"{theirs[n][-1]:.2f} t/s" for n in names), flush=True)
    print(f"\nspeed on the board, model {model}, {THREADS} threads, {rounds} interleaved rounds x {reps} reps\n")
    ok = print_paired_ratios(names, ours, theirs, SPEED_GOAL)
    return ok


def fit_params_on_board(board, remote_model: str, n_ctx: int) -> dict:
    """llama.cpp's dry run on the board: `Host <model> <context> <compute>` in whole MiB."""
    done = board.ssh(f"/root/.cache/edgebench/engine/bin/llama-fit-params -m {remote_model} -c {n_ctx} "
                     f"--fit-print on -t 4", timeout_s=900, check=False)
    words = done.stdout.split()
    if done.returncode != 0 or not words or words[0] != "Host":
        raise SystemExit(f"llama-fit-params failed on the board:\n{done.stderr[-2000:]}")
    model, context, compute = (float(x) for x in words[1:4])
    return {"weights": model, "context": context, "compute": compute}


def planned(work: Path, env: dict, model_file: Path, n_ctx: int) -> dict:
    plan = json.loads(edgebench(work, env, "plan", model_file, "-d", "board", "--ctx", n_ctx, "--json").stdout)
    cell = plan["cells"][0]
    allocated = cell["memory_allocated"]

    def mib(*names):
        return sum(allocated.get(n, 0) for n in names) / MIB
    return {"weights": mib("weights", "expert weights"),
            "context": mib("KV cache", "KV cache, sliding window", "recurrent state"),
            "compute": mib("compute buffer"), "peak_rss_mib": cell["peak_rss_bytes"] / MIB,
            "repacked": mib("repacked weights")}


def memory(work: Path, env: dict, board, model: str, n_ctx: int, reps: int) -> tuple[bool, bool]:
    """(every plan item within its goal of llama-fit-params, the peak RSS within its goal of the plan's)."""
    from edgebench.config import ModelRef
    from edgebench.file_hashes import sha256_file
    from edgebench.models.resolve import resolve_model
    from edgebench.models.synth.spec import parse_synth_spec

    spec = model.removeprefix("synthetic:")
    local = resolve_model(ModelRef(name=model, synthetic=parse_synth_spec(spec))).path
    # the cell's context is its prompt, generation and depth: n_ctx tokens, as the plan's
    rows = one_run(work, env, "memory", model, "llama.cpp", [f"pp16+tg4@d{n_ctx - 20}"], reps)
    remote = f"/root/.cache/edgebench/models/{sha256_file(local)}/{local.name}"
    theirs = fit_params_on_board(board, remote, n_ctx)
    ours = planned(work, env, local, n_ctx)
    print(f"\nmemory on the board, {local.name} at {n_ctx} tokens (plan repacks {ours['repacked']:.1f} MiB)\n")
    print("| item | plan MiB | llama-fit-params MiB | diff | goal 2% or 8 MiB |")
    print("|---|---:|---:|---:|---|")
    ok = True
    for item in ("weights", "context", "compute"):
        diff = ours[item] - theirs[item]
        met = abs(diff) <= max(0.02 * theirs[item], 8.0) + 1  # fit-params prints whole MiB
        ok &= met
        print(f"| {item} | {ours[item]:.1f} | {theirs[item]:.0f} | {diff:+.1f} | {'met' if met else 'MISSED'} |")
    measured = max(r["peak_rss_mib"] or 0 for r in rows)
    allowed = max(0.10 * ours["peak_rss_mib"], 100.0)
    met = abs(measured - ours["peak_rss_mib"]) <= allowed
    print(f"\n| peak RSS | plan {ours['peak_rss_mib']:.1f} MiB | measured {measured:.1f} MiB | "
          f"diff {measured - ours['peak_rss_mib']:+.1f} | goal ±{allowed:.0f} MiB: {'met' if met else 'MISSED'} |")
    return ok, met


def main() -> int:
    import arm_board

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="synthetic:tiny-qwen35@Q4_K_M")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds of the speed check")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per measurement")
    parser.add_argument("--ctx", type=int, default=512, help="context of the memory check")
    # large enough that whole MiB and the repacked types (Q6_K, Q8_0 on Arm) show
    parser.add_argument("--memory-model", default=MEMORY_MODEL, help="model of the memory check")
    parser.add_argument("--parts", default="speed,memory", help="speed, memory or both")
    parser.add_argument("--boot-timeout", type=float, default=600, help="seconds the board may take to boot "
                        "(emulation beside other work on the host's cores needs more)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="edgebench-board-perf-"))
    board = arm_board.Board(work / "board").start(timeout_s=args.boot_timeout,
                                                  log=lambda text: print(text, file=sys.stderr, flush=True))
    try:
        env = prepare(work, board)
        ok = True
        if "speed" in args.parts:
            ok &= speed(work, env, args.model, args.rounds, args.reps)
        if "memory" in args.parts:
            ok &= all(memory(work, env, board, args.memory_model, args.ctx, args.reps))
        return 0 if ok else 1
    finally:
        board.stop()


if __name__ == "__main__":
    sys.exit(main())
