"""Quality tests end to end through the CLI: real runner, real llama.cpp, real sshd."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_ssh import device_yaml, trust

from edgebench.models.synth.shapes import PRESETS
from edgebench.models.synth.writer import write_gguf
from edgebench.results.aggregate import run_rows

pytestmark = pytest.mark.llama

LADDER = ("Q8_0", "Q4_K_M", "Q3_K_S")
QUALITY = ("ppl", "ppl_stderr", "ppl_ratio", "kld_mean", "kld_median", "kld_p99", "kld_p99_9", "kld_max",
           "delta_p_rms", "same_top_p", "n_scored")


def edgebench(*args, cwd):
    return subprocess.run([sys.executable, "-m", "edgebench", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=600, env=dict(os.environ))


def ladder_profile(path: Path, models=LADDER, reference="synthetic:tiny-llama@F16", tests=("kld", "ppl")) -> Path:
    """The tiny-llama preset as it is: its seeded random weights give near-uniform logits (PPL near the
    vocabulary's 2048), yet the quants' KLD still differ by 5-15x from step to step."""
    names = [m if m.startswith("synthetic:") else f"synthetic:tiny-llama@{m}" for m in models]
    path.write_text(f"models: {json.dumps(names)}\nquality:\n  reference: {reference}\n  n_ctx: 128\n  chunks: 2\n"
                    f"tests: {json.dumps(list(tests))}\nengine: {{threads: 2}}\ntelemetry: {{enabled: false}}\n")
    return path


def run_dir(results: Path) -> Path:
    (found,) = [p for p in results.iterdir() if p.is_dir()]
    return found


def local_device(work: Path) -> None:
    (work / "devices").mkdir(exist_ok=True)
    (work / "devices" / "testbox.yaml").write_text(
        f"name: testbox\ntransport: local\nclass: desktop\nworkdir: {work / 'device'}\n")


@pytest.fixture(scope="module")
def ladder_run(tmp_path_factory, llama_cpp):
    work = tmp_path_factory.mktemp("ladder")
    local_device(work)
    profile = ladder_profile(work / "ladder.yaml", tests=("kld", "ppl", "tg4"))
    proc = edgebench("run", profile, "-d", "testbox", "-o", work / "results", cwd=work)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return work, run_dir(work / "results"), proc


def kld_by_model(rows) -> dict:
    return {row["model"].split("@")[1]: row for row in rows if row["test"] == "kld"}


def test_the_quant_ladder_orders_by_kld(ladder_run):
    _, results, _ = ladder_run
    rows = kld_by_model(run_rows(results))
    assert rows["Q8_0"]["kld_mean"] < rows["Q4_K_M"]["kld_mean"] < rows["Q3_K_S"]["kld_mean"]
    assert rows["Q8_0"]["same_top_p"] > rows["Q3_K_S"]["same_top_p"]
    for row in rows.values():
        assert row["status"] == "done" and row["n_scored"] == 2 * (128 - 1 - 64)
        assert all(row[field] is not None for field in QUALITY)
        assert row["kld_median"] <= row["kld_p99"] <= row["kld_p99_9"] <= row["kld_max"]


def test_ppl_rows_carry_ppl_only_and_agree_with_kld_rows(ladder_run):
    _, results, _ = ladder_run
    rows = run_rows(results)
    ppl = {r["model"]: r for r in rows if r["test"] == "ppl"}
    for row in rows:
        if row["test"] == "kld":  # both score the reference's tokens
            assert ppl[row["model"]]["ppl"] == pytest.approx(row["ppl"], rel=1e-9)
            assert ppl[row["model"]]["kld_mean"] is None


def test_show_puts_quality_beside_speed_and_memory(ladder_run):
    work, results, _ = ladder_run
    proc = edgebench("show", results, "--format", "md", cwd=work)
    assert proc.returncode == 0, proc.stderr
    header = proc.stdout.splitlines()[0]
    for column in ("t/s", "peak RSS MiB", "PPL", "KLD", "KLD 99.9%", "same top %"):
        assert f" {column} |" in header
    q3 = next(line for line in proc.stdout.splitlines() if "Q3_K_S" in line and "| kld |" in line)
    kld = kld_by_model(run_rows(results))["Q3_K_S"]["kld_mean"]
    assert f"{kld:.5f}" in q3


def test_report_draws_quality_against_speed_with_the_frontier_marked(ladder_run):
    work, results, _ = ladder_run
    out = work / "report.html"
    proc = edgebench("report", results, "-o", out, cwd=work)
    assert proc.returncode == 0, proc.stderr
    html = out.read_text()
    assert "Quality against speed" in html and "testbox: quality against speed" in html
    rows = run_rows(results)
    for quant in LADDER:
        assert 'class="point-label"' in html and f">tiny-llama@{quant}</text>" in html
    # Q8_0 has the lowest KLD, so nothing beats it on both axes: it is on the frontier whatever the speeds
    assert "best choices" in html and "tiny-llama@Q8_0" in html.split("best choices (nothing")[1].split("</div>")[0]
    fastest = max((r for r in rows if r["test"] == "tg4"), key=lambda r: r["avg_ts"])["model"]
    assert fastest in html.split("best choices (nothing")[1].split("</div>")[0]
    assert html.count('class="frontier"') >= 1


def test_jsonl_rows_use_the_quality_field_names(ladder_run):
    work, results, _ = ladder_run
    proc = edgebench("show", results, "--format", "jsonl", cwd=work)
    row = next(json.loads(line) for line in proc.stdout.splitlines() if json.loads(line)["test"] == "kld")
    assert set(QUALITY) <= set(row)


def test_a_kld_jump_is_a_regression_however_fast(ladder_run, tmp_path):
    """The candidate is the base's run as a miscompiled build would record it: twice the speed, ten times
    the KLD. `compare` says the KLD regressed and exits 1."""
    work, results, _ = ladder_run
    cand = tmp_path / "cand"
    shutil.copytree(results, cand)
    samples = cand / "samples.jsonl"
    lines = []
    for line in samples.read_text().splitlines():
        record = json.loads(line)
        if "kld_mean" in (record.get("quality") or {}):
            record["ts"] *= 2
            record["quality"]["kld_mean"] *= 10
        lines.append(json.dumps(record))
    samples.write_text("\n".join(lines) + "\n")
    proc = edgebench("compare", results, cand, cwd=work)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    verdicts = {line.split("|")[2].strip(): line.split("|")[-2].strip()
                for line in proc.stdout.splitlines() if "/kld/" in line}
    assert verdicts["kld_mean (KLD)"] == "regressed" and verdicts["ppl (PPL)"] == "same"
    assert "ts (t/s)" not in verdicts  # a quality cell's one timed pass is not gated


def test_models_with_different_tokenizers_fail_in_one_sentence(tmp_path, llama_cpp):
    """Every synthetic preset shares one minimal tokenizer; this model has half its vocabulary."""
    other = tmp_path / "other-vocab.gguf"
    write_gguf(dataclasses.replace(PRESETS["tiny-llama"], n_vocab=1024), other)
    local_device(tmp_path)
    profile = ladder_profile(tmp_path / "p.yaml", models=(), tests=("kld",))
    profile.write_text(profile.read_text().replace("models: []", f"models: [{json.dumps(str(other))}]"))
    proc = edgebench("run", profile, "-d", "testbox", "-o", tmp_path / "results", cwd=tmp_path)
    assert proc.returncode == 1
    (row,) = run_rows(run_dir(tmp_path / "results"))
    assert row["error"] == ("KLD cannot compare other-vocab with the reference tiny-llama@F16: "
                            "their tokenizers differ")
    assert "Traceback" not in proc.stderr


@pytest.mark.usefixtures("private_known_hosts")
def test_a_kld_run_over_ssh_gives_the_local_figures(ladder_run, sshd, tmp_path):
    _, local_results, _ = ladder_run
    (tmp_path / "devices").mkdir()
    (tmp_path / "devices" / "box.yaml").write_text(device_yaml(sshd))
    trust(sshd)
    profile = ladder_profile(tmp_path / "ladder.yaml", tests=("kld",))
    proc = edgebench("run", profile, "-d", "box", "-o", tmp_path / "results", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    remote = kld_by_model(run_rows(run_dir(tmp_path / "results")))
    local = kld_by_model(run_rows(local_results))
    # the reference was pushed like a model, into the device's content-addressed store
    assert len(list((Path(sshd.device_dir) / "models").iterdir())) == len(LADDER) + 1
    for quant in LADDER:
        assert remote[quant]["device"] == "box"
        for field in QUALITY:
            assert remote[quant][field] == pytest.approx(local[quant][field], rel=1e-9, abs=1e-12), (quant, field)


def test_the_engines_c_side_row_summary_is_the_pure_python_one(tiny_llama):
    """The argmax and log Σ exp llama.cpp's samplers give are what the stdlib fallback computes."""
    from edgebench.runner.engines.llama_cpp_engine import LlamaCppEngine
    from edgebench.runner.scoring.token_score import log_sum_exp

    engine = LlamaCppEngine()
    engine.open(str(tiny_llama), {"threads": 2})
    try:
        decoder = engine.chunk_decoder(16)
        checked = 0
        for _, _, row, (top, lse) in decoder.rows([list(range(40, 56)), list(range(300, 316))]):
            top_logit, python_lse = log_sum_exp(row)
            assert row[top] == top_logit and lse == pytest.approx(python_lse, abs=1e-6)
            checked += 1
        decoder.close()
    finally:
        engine.close()
    assert checked == 2 * (16 - 1 - 8)


def ppl_profile(path: Path, models, quality: str, engine: str = "llama.cpp") -> Path:
    path.write_text(f"models: {json.dumps(list(models))}\nquality:\n{quality}  n_ctx: 64\n  chunks: 3\n"
                    f"tests: [ppl]\nengine: {{name: {engine}, threads: 2}}\ntelemetry: {{enabled: false}}\n")
    return path


def ppl_rows(work: Path, profile: Path, device: str, results: str) -> dict:
    proc = edgebench("run", profile, "-d", device, "-o", work / results, cwd=work)
    rows = {row["model"]: row for row in run_rows(run_dir(work / results))}
    return proc, rows


def test_ppl_alone_scores_tokens_sampled_from_each_model_itself(tmp_path, llama_cpp):
    """No reference, no text: each model's PPL is over tokens the controller sampled from that model, the
    same stream whichever device scores it, pushed beside the model."""
    from edgebench.models.synth.build import cached_synthetic
    from edgebench.models.synth.spec import parse_synth_spec
    from edgebench.quality.text import sampled_tokens
    from edgebench.runner.engines.llama_cpp_engine import LlamaCppEngine
    from edgebench.runner.scoring.tokens_file import TokenStream, encode_tokens

    local_device(tmp_path)
    models = ("synthetic:tiny-llama@Q8_0", "synthetic:tiny-llama@Q3_K_S")
    proc, rows = ppl_rows(tmp_path, ppl_profile(tmp_path / "ppl.yaml", models, ""), "testbox", "results")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    for row in rows.values():
        assert row["status"] == "done" and row["n_scored"] == 3 * (64 - 1 - 32)
        assert row["ppl"] > 1 and row["ppl_stderr"] > 0 and row["kld_mean"] is None
    for model in models:  # what the model's own samples score, scored here: the row's figures
        engine = LlamaCppEngine()
        engine.open(str(cached_synthetic(parse_synth_spec(model.split(":", 1)[1]))), {"threads": 2})
        try:
            tokens = tmp_path / "own.tok"
            tokens.write_bytes(encode_tokens(TokenStream(64, 3, sampled_tokens(engine, 64, 3))))
            job = {"quality": {"n_ctx": 64, "chunks": 3, "reference": None, "text": None, "tokens": str(tokens)}}
            _, _, own = engine.measure_quality(job, "ppl", lambda: None)
        finally:
            engine.close()
        assert rows[model.split(":", 1)[1]]["ppl"] == pytest.approx(own["ppl"], rel=1e-9), model
    # deterministic: the same tokens (cached by content) give the same figures
    _, again = ppl_rows(tmp_path, tmp_path / "ppl.yaml", "testbox", "again")
    assert {m: r["ppl"] for m, r in again.items()} == {m: r["ppl"] for m, r in rows.items()}


@pytest.fixture(scope="module")
def short_text(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("text") / "text.txt"
    path.write_text((Path(__file__).parents[1] / "README.md").read_text()[:8000])
    return path


def test_ppl_through_llama_perplexity_is_the_in_process_engines(tmp_path, llama_cpp, llama_bench_binary,
                                                                  llama_perplexity_binary, short_text):
    """The llama-bench engine runs `ppl` with the device's llama-perplexity (by default the one beside its
    llama-bench): the same model, text, n_ctx and chunks give the in-process engine's PPL."""
    (tmp_path / "devices").mkdir()
    for name, extra in (("inproc", ""), ("beside", ""), ("named", f"llama_perplexity: {llama_perplexity_binary}\n"),
                        ("missing", f"llama_perplexity: {tmp_path / 'nowhere'}\n")):
        (tmp_path / "devices" / f"{name}.yaml").write_text(
            f"name: {name}\ntransport: local\nclass: desktop\nworkdir: {tmp_path / name}\n"
            f"llama_bench: {llama_bench_binary}\n{extra}")
    models = ("synthetic:tiny-llama@Q4_K_M",)
    quality = f"  text: {short_text}\n"
    proc, mine = ppl_rows(tmp_path, ppl_profile(tmp_path / "a.yaml", models, quality), "inproc", "a")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    ((_, mine),) = mine.items()
    binary_profile = ppl_profile(tmp_path / "b.yaml", models, quality, engine="llama-bench")
    for device in ("beside", "named"):
        proc, theirs = ppl_rows(tmp_path, binary_profile, device, f"results-{device}")
        assert proc.returncode == 0, proc.stderr + proc.stdout
        ((_, theirs),) = theirs.items()
        assert theirs["status"] == "done" and theirs["engine"] == "llama-bench"
        assert theirs["n_scored"] == mine["n_scored"] == 3 * (64 - 1 - 32)
        assert theirs["ppl"] == pytest.approx(mine["ppl"], rel=0.005)
        assert theirs["ppl_stderr"] == pytest.approx(mine["ppl_stderr"], rel=0.05)
        assert theirs["kld_mean"] is None and theirs["avg_ts"] > 0
    proc, failed = ppl_rows(tmp_path, binary_profile, "missing", "results-missing")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    ((_, failed),) = failed.items()
    assert failed["error"] == (f"llama-perplexity binary {tmp_path / 'nowhere'} is not an executable file "
                               f"(set llama_perplexity in the device profile)")
