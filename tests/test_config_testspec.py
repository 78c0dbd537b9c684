"""Test names: pp<N>, tg<N>, pp<N>+tg<N>, optional @d<depth>, and b<N>; one definition that the profile,
the controller's jobs and the runner all read."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import onnx_models
import pytest

from edgebench.config import TestSpec, parse_device, parse_profile, parse_test
from edgebench.runner.testspec import KINDS
from edgebench.sweep.cells import Cell
from edgebench.sweep.device_worker import cell_job
from edgebench.toolchain.runner_zipapp import write_runner


@pytest.mark.parametrize("text, spec, kind", [
    ("pp512", TestSpec(512, 0, 0), "pp"),
    ("tg128", TestSpec(0, 128, 0), "tg"),
    ("pp512+tg128", TestSpec(512, 128, 0), "pp+tg"),
    ("pp512@d4096", TestSpec(512, 0, 4096), "pp"),
    ("tg128@d4096", TestSpec(0, 128, 4096), "tg"),
    ("pp512+tg128@d4096", TestSpec(512, 128, 4096), "pp+tg"),
    ("tg1", TestSpec(0, 1, 0), "tg"),
    ("b8", TestSpec(batch=8), "b"),
    ("ppl", TestSpec(quality="ppl"), "ppl"),
    ("kld", TestSpec(quality="kld"), "kld"),
])
def test_parse_and_round_trip(text, spec, kind):
    parsed = parse_test(text)
    assert parsed == spec
    assert parsed.name == text == str(parsed)
    assert parsed.kind == kind


@pytest.mark.parametrize("text", [
    "pp0", "tg0", "pp512+tg0", "pp512@d0", "pp0512", "pp", "tg", "pp-1", "pp512tg128", "tg128+pp512",
    "+tg128", "pp512+", "@d4096", "pp512@4096", "pp512@d", "PP512", "pp 512", "512", "", "junk", "pp1.5",
])
def test_rejects(text):
    with pytest.raises(ValueError, match="not a test"):
        parse_test(text)


def test_n_tokens_counts_depth():
    assert parse_test("pp512+tg128@d4096").n_tokens == 4736


def test_frozen_and_validated():
    with pytest.raises(AttributeError):
        parse_test("pp512").n_prompt = 1
    with pytest.raises(ValueError):
        TestSpec(0, 0, 0)
    with pytest.raises(ValueError):
        TestSpec(-1, 5, 0)


# every kind, with and without depth; small counts so that a real runner measures each in milliseconds
EVERY_KIND = ["pp16", "tg8", "pp16+tg8", "pp16@d32", "tg8@d32", "pp16+tg8@d32", "b8"]


# quality tests need a real model and the in-process engine: tests/test_quality_run.py sends them to the runner
QUALITY_TESTS = ["ppl", "kld"]


def test_every_kind_is_covered():
    assert {parse_test(name).kind for name in EVERY_KIND + QUALITY_TESTS} == set(KINDS)


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    return write_runner(tmp_path_factory.mktemp("runner"))


def _profile_and_model(tmp_path, name):
    if parse_test(name).batch:
        model, engine = onnx_models.mlp(tmp_path / "mlp.onnx"), "{name: onnxruntime, threads: 1}"
    else:  # the sleep engine takes a known time and never reads the model
        model, engine = tmp_path / "model.bin", "{name: sleep, simulate_ts: 100000}"
        model.write_bytes(random.Random(0).randbytes(4096))
    return parse_profile(f"models: [{json.dumps(str(model))}]\ntests: [{name}]\nengine: {engine}\n"
                         f"repetitions: 2\nwarmup: 0\ntelemetry: {{enabled: false}}\n"), str(model)


@pytest.mark.parametrize("name", EVERY_KIND)
def test_a_test_name_means_the_same_to_the_controller_and_the_runner(runner, tmp_path, name):
    profile, model = _profile_and_model(tmp_path, name)
    spec = profile.tests[0]
    assert spec.name == name == str(parse_test(spec.name))
    # the job as the controller sends it, to the real runner zipapp: it names the test and counts its items
    # (t/s = items / time) exactly as the controller does
    job = cell_job(profile, Cell(parse_device("name: box\ntransport: local\n"), profile.models[0], spec, None), model)
    proc = subprocess.run([sys.executable, str(runner), "run"], input=json.dumps(job), capture_output=True,
                          text=True, timeout=120)
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert proc.returncode == 0, events[-1]
    assert next(e for e in events if e["event"] == "start")["test"] == name
    samples = [e for e in events if e["event"] == "sample"]
    assert len(samples) == 2
    for sample in samples:
        assert sample["ts"] * sample["t_ns"] / 1e9 == pytest.approx(spec.n_items)
