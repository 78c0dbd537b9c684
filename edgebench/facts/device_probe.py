"""The device probe: what a device is and can run, from the fact script (one shell round trip) and the
runner's `capabilities` mode; a run stores it in devices.jsonl, `devices check` prints it."""

from __future__ import annotations

from edgebench.errors import TransportError
from edgebench.facts import fact_command, parse_fact_output
from edgebench.transport import open_transport
from edgebench.transport.remote_store import install_runner
from edgebench.transport.runner_session import run_runner

PROBE_TIMEOUT_S = 120


def probe_with(transport, runner: str | None = None, timeout_s: float = PROBE_TIMEOUT_S) -> dict:
    """Facts from one shell round trip, then the runner's view (engines, telemetry sources)."""
    # the interpreter the runner will use (the device's `python`), not whichever python3 is on PATH; bounded
    # like the capabilities call below: a hung interpreter must not hold the run for the shell's default wait
    code, out, err = transport.run_shell(fact_command(transport.device.workdir, python=transport.python),
                                         timeout_s=timeout_s)
    if code != 0 and not out:
        raise TransportError(f"{transport.device.name}: probe failed (exit {code}): {err.strip()}")
    facts = parse_fact_output(out)
    runner = runner or install_runner(transport)
    # the engines are judged with the device's own settings: llama-bench is "ok" only with a binary
    request = {"engine_options": {"binary": transport.device.llama_bench}}
    done = run_runner(transport, runner, "capabilities", request, timeout_s, lambda event: None)
    runner_info = done.get("info") or {}
    return {"device": transport.device.name, "transport": transport.device.transport, "facts": facts,
            "runner": runner_info}


def probe_device(device, engine_self_test: bool = False) -> dict:
    from edgebench.facts.stored import remember
    from edgebench.results.records import now_iso

    with open_transport(device) as transport:
        runner = install_runner(transport)  # once, for the probe and the self-test
        facts = probe_with(transport, runner)
        # kept, so a plan for this device knows its CPU and RAM without a profile's `facts:`
        remember(device.name, facts["facts"], now_iso())
        if engine_self_test:
            from edgebench.facts.selftest import engines_to_test, self_test
            facts["self_test"] = self_test(transport, runner, engines_to_test(facts["runner"], device))
        return facts


# engines that measure edgebench itself, not a model: ready everywhere, so they prove nothing about a device
TEST_ENGINES = ("sleep",)


def runnable_engines(probe: dict) -> list[str]:
    """The engines the runner found ready on the device to measure a model."""
    engines = (probe.get("runner") or {}).get("engines") or {}
    return [name for name, state in engines.items() if state == "ok" and name not in TEST_ENGINES]


def self_test_failed(probe: dict) -> bool:
    """A failed engine, or a self-test that found no engine at all: a device that can run nothing."""
    if "self_test" not in probe:
        return False
    tested = probe["self_test"] or {}
    return any(not result.get("ok") for result in tested.values()) or not (tested or runnable_engines(probe))


def _short(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_short(v)}" for k, v in value.items() if v not in (None, False, {}, []))
    if isinstance(value, list):
        return "; ".join(_short(v) for v in value)
    return "" if value is None else str(value)


def facts_rows(probe: dict) -> list[list[str]]:
    """One row per fact for the terminal; --json keeps the full structure."""
    rows = [[name, _short(value)] for name, value in probe["facts"].items()]
    runner = probe.get("runner") or {}
    rows.append(["engines", _short(runner.get("engines"))])
    rows.append(["telemetry", _short(runner.get("telemetry"))])
    if "self_test" in probe:
        from edgebench.facts.selftest import summary
        tested = probe["self_test"] or {}
        for engine, result in tested.items():
            rows.append([f"self-test {engine}", summary(result)])
            if result.get("system_info"):
                rows.append([f"{engine} build", result["system_info"]])
        if not tested:
            rows.append(["self-test", _nothing_tested(probe)])
    return rows


def _nothing_tested(probe: dict) -> str:
    others = runnable_engines(probe)
    if others:
        return f"no llama.cpp engine on this device to test (it can run {', '.join(others)})"
    return ("FAILED: no engine can run on this device (see engines above: install llama-cpp-python in the "
            "device's python, or set llama_bench in its profile)")
