"""The runner zipapp as the controller sees it: one job in, JSON-lines events out, structured failures."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edgebench.toolchain.runner_zipapp import runner_bytes, runner_sha256, write_runner
from edgebench.transport.runner_session import run_runner


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    return write_runner(tmp_path_factory.mktemp("runner"))


def run(runner, job, mode="run"):
    text = job if isinstance(job, str) else json.dumps(job)
    proc = subprocess.run([sys.executable, str(runner), mode], input=text, capture_output=True, text=True,
                          timeout=120)
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    return proc.returncode, events, proc.stderr


def job(**overrides):
    base = {"engine": "llama.cpp", "model_path": "/nonexistent.gguf",
            "test": {"n_prompt": 8, "n_gen": 0, "n_depth": 0}, "repetitions": 1, "warmup": 0,
            "engine_options": {}, "telemetry": {"enabled": False}}
    base.update(overrides)
    return base


def test_zipapp_is_reproducible_and_named_by_its_hash(tmp_path):
    first = write_runner(tmp_path)
    assert first.parent.name == runner_sha256()
    assert first.read_bytes() == runner_bytes()
    assert first.read_bytes().startswith(b"#!/usr/bin/env python3\n")


@pytest.mark.parametrize("text, fragment", [
    ("not json", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    (json.dumps(job(repetitions=0)), "repetitions"),
    (json.dumps(job(test={"n_prompt": 0, "n_gen": 0, "n_depth": 0})), "at least one token"),
    # a batch is a generic model's test: no prompt beside it (TestSpec's rule, which the runner shares)
    (json.dumps(job(test={"n_prompt": 8, "n_gen": 0, "n_depth": 0, "batch": 4})), "job.test: invalid test"),
    (json.dumps({k: v for k, v in job().items() if k != "engine"}), "job.engine"),
    (json.dumps(job(cooldown={"target_c": 50})), "job has unknown keys cooldown; known: engine, model_path"),
    (json.dumps(job(limits={"max_temp": 80})), "job.limits has unknown keys max_temp; known: max_temp_c"),
    (json.dumps(job(limits={"max_temp_c": "hot"})), "job.limits.max_temp_c must be a number or null"),
])
def test_bad_jobs_are_refused_with_a_structured_error(runner, text, fragment):
    code, events, _ = run(runner, text)
    assert code == 1
    assert [e["event"] for e in events] == ["hello", "error"]
    assert events[1]["kind"] == "job" and fragment in events[1]["message"]


def test_the_controllers_job_is_built_once_with_every_declared_key_and_passes_the_runners_check(tmp_path):
    """One declaration (runner/job.py's JOB_KEYS): the controller's builder fills every key (no runner default
    for an older controller is relied on), and the runner's parser accepts what it built unchanged."""
    from edgebench.config import parse_device, parse_profile
    from edgebench.runner.job import JOB_KEYS, parse_job
    from edgebench.sweep.cells import plan_cells
    from edgebench.sweep.device_worker import cell_job

    profile = parse_profile("models: [m.gguf]\ntests: [pp8, tg4@d16, ppl]\nengine: {threads: 2}\n")
    device = parse_device("name: box\ntransport: local\nlimits: {max_temp_c: 80}\n")
    quality = {"n_ctx": 128, "chunks": 1, "reference": None, "text": "/t.txt", "tokens": None}
    for cell in plan_cells(profile, [device]):
        built = cell_job(profile, cell, "/m.gguf", quality if cell.test.quality else None)
        optional = {key.name for key in JOB_KEYS if key.name == "quality" and not cell.test.quality}
        assert set(built) == {key.name for key in JOB_KEYS} - optional, cell.test.name
        assert built["limits"] == {"max_temp_c": 80} and built["engine_options"]["threads"] == 2
        sent = json.loads(json.dumps(built))
        parsed = parse_job(json.dumps(sent))
        assert {k: parsed[k] for k in sent if k != "telemetry"} == {k: v for k, v in sent.items() if k != "telemetry"}


def test_unknown_engine(runner):
    code, events, _ = run(runner, job(engine="tensorrt"))
    assert code == 1 and events[-1]["kind"] == "job" and "tensorrt" in events[-1]["message"]


def test_missing_model_file(runner, llama_cpp):
    code, events, _ = run(runner, job())
    assert code == 1 and events[-1]["kind"] == "model-file" and "/nonexistent.gguf" in events[-1]["message"]


def test_foreign_file_is_not_a_gguf(runner, tmp_path, llama_cpp):
    foreign = tmp_path / "model.gguf"
    foreign.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    code, events, _ = run(runner, job(model_path=str(foreign)))
    assert code == 1 and events[-1]["kind"] == "model-file" and "not a GGUF file" in events[-1]["message"]


def test_truncated_gguf_is_reported_by_the_engine_as_a_model_file_error(runner, tmp_path, tiny_qwen35):
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(tiny_qwen35.read_bytes()[: tiny_qwen35.stat().st_size // 2])
    code, events, _ = run(runner, job(model_path=str(truncated)))
    assert code == 1 and events[-1]["kind"] == "model-file" and "could not load" in events[-1]["message"]


def test_header_only_file_is_truncated(runner, tmp_path):
    stub = tmp_path / "stub.gguf"
    stub.write_bytes(b"GGUF\x03\x00")
    code, events, _ = run(runner, job(model_path=str(stub), engine="llama-bench",
                                      engine_options={"binary": sys.executable}))
    assert code == 1 and events[-1]["kind"] == "model-file" and "truncated" in events[-1]["message"]


def test_llama_bench_engine_without_binary(runner, tiny_qwen35, tmp_path):
    code, events, _ = run(runner, job(engine="llama-bench", model_path=str(tiny_qwen35),
                                      engine_options={"binary": str(tmp_path / "no-such-llama-bench")}))
    assert code == 1 and events[-1]["kind"] == "engine-missing"


def test_capabilities_lists_engines_and_telemetry(runner):
    code, events, _ = run(runner, "", mode="capabilities")
    assert code == 0
    info = events[-1]["info"]
    assert set(info["engines"]) == {"llama.cpp", "llama-bench", "onnxruntime", "sleep"}
    assert "memory" in info["telemetry"]


# -- one declaration of the protocol, read by both sides ------------------------------------------

def test_every_event_the_runner_emits_is_declared():
    import re
    from pathlib import Path

    from edgebench.runner.protocol import EVENTS
    source = Path(__file__).resolve().parent.parent / "edgebench" / "runner"
    emitted = {name for path in source.rglob("*.py")
               for name in re.findall(r"""\bemit\(\s*["']([a-z_]+)["']""", path.read_text())}
    assert {"hello", "start", "sample", "cooling", "done", "error"} <= emitted
    assert emitted <= set(EVENTS), emitted - set(EVENTS)


def test_the_runner_refuses_to_emit_an_undeclared_event():
    import io

    from edgebench.runner.protocol import Emitter
    with pytest.raises(ValueError, match="undeclared runner event 'warming'"):
        Emitter(io.StringIO()).emit("warming", temp_c=50)


def fake_runner(tmp_path, lines):
    script = tmp_path / "runner.py"
    script.write_text("import sys\n" + "".join(f"print({json.dumps(line)})\n" for line in lines))
    return str(script)


def local_transport(tmp_path):
    from edgebench.config import parse_device
    from edgebench.transport.local import LocalTransport
    return LocalTransport(parse_device(f"name: box\nworkdir: {tmp_path / 'work'}\n"))


@pytest.mark.parametrize("lines, fragment", [
    (['{"event":"hello","protocol":1,"pid":1}', '{"event":"done","ok":true}'],
     "the runner on the device speaks protocol 1 but this controller speaks 2"),
    (['{"event":"done","ok":true}'], "runner did not start with a hello event"),
    (['{"event":"hello","protocol":2,"pid":1}', '{"event":"warming"}'], "runner sent an undeclared event 'warming'"),
])
def test_the_controller_checks_the_runners_protocol(tmp_path, lines, fragment):
    from edgebench.errors import RunnerError
    with pytest.raises(RunnerError, match=fragment) as caught:
        run_runner(local_transport(tmp_path), fake_runner(tmp_path, lines), "run", {}, 30, lambda event: None)
    assert caught.value.kind == "protocol"


def test_a_runner_of_this_protocol_is_read(tmp_path):
    from edgebench.runner import PROTOCOL_VERSION
    lines = [json.dumps({"event": "hello", "protocol": PROTOCOL_VERSION, "pid": 1}), '{"event":"done","ok":true}']
    done = run_runner(local_transport(tmp_path), fake_runner(tmp_path, lines), "run", {}, 30, lambda event: None)
    assert done["ok"] is True
