"""edgebench's quality tests against llama-perplexity, on the same files, text, n_ctx and chunks.

    python tests/perf/quality_fidelity.py [--like tiny-llama] [--quants Q8_0,Q4_K_M,Q3_K_S]
                                          [--text README.md] [--n-ctx 512] [--chunks 16] [--threads N]

llama-perplexity is $EDGEBENCH_LLAMA_PERPLEXITY (`tests/perf/build_llama_bench.sh llama-perplexity`
builds it from the llama.cpp the engine vendors, with its flags). The reference is the F16 file of the
synthetic preset, judged quants are the others. Prints, per quant, both sides' mean KLD, 99.9% KLD,
same-top p and PPL with the goals (mean KLD within 2% or 1e-4, same-top within 0.3 points, PPL
within 0.5%); the size of edgebench's reference against llama-perplexity's base file (goal <= 2%);
and the time each takes on the device, here this machine (goal <= 1.2x): edgebench's runner process
and llama-perplexity's, each loading the quant and scoring every chunk. Exit 1 if a goal is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, local_transport

from edgebench.config.profile import ModelRef, QualityOptions
from edgebench.models.resolve import file_model
from edgebench.models.synth.build import cached_synthetic
from edgebench.models.synth.spec import parse_synth_spec
from edgebench.quality.prepare import build_reference
from edgebench.runner.job import make_job
from edgebench.runner.testspec import TestSpec
from edgebench.transport.remote_store import install_runner
from edgebench.transport.runner_session import run_runner

_LLAMA = {"ppl": r"Mean PPL\(Q\)\s*:\s*([0-9.]+)", "kld_mean": r"Mean\s+KLD:\s*(-?[0-9.]+)",
          "kld_p99_9": r"99\.9%\s+KLD:\s*(-?[0-9.]+)", "same_top_p": r"Same top p:\s*([0-9.]+)"}


def llama_perplexity(binary, args, threads):
    """(its log text, wall seconds). Its plain console log loses the last lines when piped (this build);
    --log-jsonl keeps every line, each message in its own JSON object."""
    start = time.perf_counter()
    proc = subprocess.run([binary, *map(str, args), "-t", str(threads), "--log-jsonl"], capture_output=True,
                          text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"llama-perplexity failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    messages = []
    for line in (proc.stdout + proc.stderr).splitlines():
        try:
            messages.append(json.loads(line).get("msg") or "")
        except ValueError:
            messages.append(line + "\n")
    return "".join(messages), elapsed


def parse_llama(text):
    found = {}
    for key, pattern in _LLAMA.items():
        match = re.search(pattern, text)
        found[key] = float(match.group(1)) if match else None
    if found["same_top_p"] is not None:
        found["same_top_p"] /= 100
    return found


def edgebench_kld(transport, runner, model, reference, n_ctx, chunks, threads):
    samples = []
    job = make_job("llama.cpp", str(model), TestSpec(quality="kld"), 1, 0, {"threads": threads}, {"enabled": False},
                   quality={"n_ctx": n_ctx, "chunks": chunks, "reference": str(reference), "text": None,
                            "tokens": None})
    start = time.perf_counter()
    run_runner(transport, runner, "run", job, 3600, lambda e: samples.append(e) if e["event"] == "sample" else None)
    return samples[0]["quality"], time.perf_counter() - start, samples[0]["t_ns"] / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--like", default="tiny-llama", help="synthetic preset (its F16 file is the reference)")
    parser.add_argument("--quants", default="Q8_0,Q4_K_M,Q3_K_S")
    parser.add_argument("--reference", help="a GGUF file as the reference instead of the preset's F16")
    parser.add_argument("--models", help="comma-separated GGUF files to judge instead of the preset's quants")
    parser.add_argument("--text", default=str(REPO / "README.md"))
    parser.add_argument("--n-ctx", type=int, default=512)
    parser.add_argument("--chunks", type=int, default=16)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--rounds", type=int, default=3, help="back-to-back timings of each side; the median "
                        "of the per-round ratios is reported (the scores are the same every round)")
    args = parser.parse_args()
    binary = os.environ.get("EDGEBENCH_LLAMA_PERPLEXITY") or subprocess.run(
        [str(REPO / "tests/perf/build_llama_bench.sh"), "llama-perplexity"], capture_output=True, text=True,
        check=True).stdout.strip()
    reference_model = Path(args.reference or cached_synthetic(parse_synth_spec(f"{args.like}@F16")))
    if args.models:
        quants = {Path(m).stem: Path(m) for m in args.models.split(",")}
    else:
        quants = {q: Path(cached_synthetic(parse_synth_spec(f"{args.like}@{q}"))) for q in args.quants.split(",")}

    work = tempfile.TemporaryDirectory(prefix="edgebench-quality-")  # the base file can be gigabytes
    base = Path(work.name) / "base.kld"
    output, _ = llama_perplexity(binary, ["-m", reference_model, "-f", args.text, "-c", args.n_ctx,
                                          "--chunks", args.chunks, "--kl-divergence-base", base], args.threads)
    n_chunk = int(re.search(r"calculating perplexity over (\d+) chunks", output).group(1))
    options = QualityOptions(reference=ModelRef(path=str(reference_model)), text=args.text, n_ctx=args.n_ctx,
                             chunks=args.chunks)
    reference = build_reference(file_model(reference_model), options, threads=args.threads)

    transport = local_transport()
    runner = install_runner(transport)
    print(f"reference {reference_model.name}, text {args.text}, n_ctx {args.n_ctx}, {n_chunk} chunks, "
          f"{args.threads} threads")
    print("| quant | mean KLD eb / lp | 99.9% KLD eb / lp | same top % eb / lp | PPL eb / lp | "
          "median time s eb / lp (median ratio) |")
    print("|---|---|---|---|---|---|")
    missed = []
    for quant, path in quants.items():
        ratios, walls, lp_walls = [], [], []
        for _ in range(args.rounds):
            mine, wall, _pass_s = edgebench_kld(transport, runner, path, reference, args.n_ctx, args.chunks,
                                                args.threads)
            output, lp_wall = llama_perplexity(binary, ["-m", path, "--kl-divergence-base", base, "--kl-divergence",
                                                        "-c", args.n_ctx, "--chunks", args.chunks], args.threads)
            ratios.append(wall / lp_wall)
            walls.append(wall)
            lp_walls.append(lp_wall)
        wall, lp_wall = statistics.median(walls), statistics.median(lp_walls)
        theirs = parse_llama(output)
        if None in theirs.values():
            sys.exit(f"llama-perplexity printed no final statistics for {quant}:\n{output[-1500:]}")
        ratio = statistics.median(ratios)
        print(f"| {quant} | {mine['kld_mean']:.6f} / {theirs['kld_mean']:.6f} | {mine['kld_p99_9']:.5f} / "
              f"{theirs['kld_p99_9']:.5f} | {100 * mine['same_top_p']:.2f} / {100 * theirs['same_top_p']:.2f} | "
              f"{mine['ppl']:.4f} / {theirs['ppl']:.4f} | {wall:.2f} / {lp_wall:.2f} ({ratio:.2f}x) |")
        kld_err = abs(mine["kld_mean"] - theirs["kld_mean"])
        if kld_err > max(0.02 * abs(theirs["kld_mean"]), 1e-4):
            missed.append(f"{quant}: mean KLD off by {kld_err:.2g}")
        top_err = abs(mine["same_top_p"] - theirs["same_top_p"])
        if top_err > 0.003:
            missed.append(f"{quant}: same-top p off by {100 * top_err:.2f} points")
        if abs(mine["ppl"] / theirs["ppl"] - 1) > 0.005:
            missed.append(f"{quant}: PPL off by {100 * abs(mine['ppl'] / theirs['ppl'] - 1):.2f}%")
        if ratio > 1.2:
            missed.append(f"{quant}: {ratio:.2f}x llama-perplexity's time")
    size, base_size = reference.stat().st_size, base.stat().st_size
    print(f"reference: edgebench {size} B, llama-perplexity's base file {base_size} B "
          f"({100 * size / base_size:.2f}%)")
    if size > 0.02 * base_size:
        missed.append(f"reference {100 * size / base_size:.2f}% of the base file")
    print("goals: " + ("all met" if not missed else "missed: " + "; ".join(missed)))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
