"""The engine self-test of `devices check`: a short pp and tg on a few-MB synthetic model, on the
device, through the real runner, so a broken engine (an instruction set the VM cannot run, a
library that does not load) is found before a night's sweep and not in its first cell.

pp is batched (it goes through the matrix-matrix kernels and repacked weights, where AMX faults
were met); tg is one token at a time (the matrix-vector kernels). A K-quant exercises both.
"""

from __future__ import annotations

from edgebench.errors import EdgebenchError
from edgebench.runner.job import make_job
from edgebench.runner.testspec import TestSpec
from edgebench.transport.remote_store import push_model
from edgebench.transport.runner_session import run_runner

MODEL_SPEC = "tiny-llama@Q4_K_M"
TESTS = (TestSpec(n_prompt=64), TestSpec(n_gen=16))
# generous: an emulated or slow board takes seconds to start Python and load even a tiny model
TIMEOUT_S = 300


def _job(engine: str, model_path: str, test: TestSpec, device) -> dict:
    return make_job(engine, model_path, test, 1, 0, {"binary": device.llama_bench}, {"enabled": False})


def engines_to_test(runner_capabilities: dict, device) -> list[str]:
    """The llama.cpp engines this device could run, as its runner found them: in-process when its Python
    has llama-cpp-python or an installed engine brought the bindings, llama-bench when a binary is
    configured, installed (install-engine -d) or on PATH."""
    found = (runner_capabilities or {}).get("engines") or {}
    return [engine for engine in ("llama.cpp", "llama-bench") if found.get(engine) == "ok"]


def self_test(transport, runner: str, engines: list[str], progress=None) -> dict:
    """engine -> {"ok", "pp_ts", "tg_ts", "system_info"} or {"ok": False, "error"}."""
    from edgebench.config import ModelRef
    from edgebench.models.resolve import resolve_model
    from edgebench.models.synth.spec import parse_synth_spec

    if not engines:
        return {}
    model = resolve_model(ModelRef(name=MODEL_SPEC, synthetic=parse_synth_spec(MODEL_SPEC)), progress=progress)
    remote = push_model(transport, str(model.path), model.sha256, runner=runner).path
    results = {}
    for engine in engines:
        outcome = {"ok": True, "model": MODEL_SPEC}
        for test in TESTS:
            seen: dict = {}
            try:
                run_runner(transport, runner, "run", _job(engine, remote, test, transport.device), TIMEOUT_S,
                           lambda event, seen=seen: seen.setdefault(event["event"], event))
            except EdgebenchError as error:
                outcome = {"ok": False, "model": MODEL_SPEC, "test": test.name, "error": str(error)}
                break
            outcome[f"{test.kind}_ts"] = round(seen["sample"]["ts"], 1) if "sample" in seen else None
            outcome["system_info"] = ((seen.get("start") or {}).get("info") or {}).get("system_info")
        results[engine] = outcome
    return results


def summary(result: dict) -> str:
    if not result.get("ok"):
        return f"FAILED in {result.get('test')}: {result.get('error')}"
    speeds = ", ".join(f"{test.name} {result.get(f'{test.kind}_ts')} t/s" for test in TESTS)
    return f"ok: {speeds} ({result.get('model')})"
