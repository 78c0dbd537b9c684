"""Engine registry. An engine module is imported only when a job names it,
so a device without llama-cpp-python can still run llama-bench jobs."""

from __future__ import annotations

import importlib

from ..protocol import RunnerFailure

# engine name -> module (relative to this package) that defines `ENGINE`
_MODULES = {
    "llama.cpp": ".llama_cpp_engine",
    "llama-bench": ".llama_bench_engine",
    "sleep": ".sleep_engine",
    "onnxruntime": ".onnx_engine",
}


def names():
    return sorted(_MODULES)


def load_engine(name: str, options=None):
    """Return the engine class for `name`, or raise RunnerFailure saying why it cannot run here."""
    if name not in _MODULES:
        raise RunnerFailure("job", "unknown engine %r; known: %s" % (name, ", ".join(names())))
    module = importlib.import_module(_MODULES[name], __name__)
    engine_cls = module.ENGINE
    missing = engine_cls.missing(options)
    if missing:
        raise RunnerFailure("engine-missing", "engine %s is not usable on this device: %s" % (name, missing))
    return engine_cls


def available(options=None) -> dict:
    """name -> "ok" or the reason it is missing; used by device probes. `options`: the device's
    engine settings (llama-bench's binary), so the probe answers for what a job would use."""
    found = {}
    for name in names():
        try:
            module = importlib.import_module(_MODULES[name], __name__)
            found[name] = module.ENGINE.missing(options) or "ok"
        except Exception as exc:  # a broken engine module must not hide the others
            found[name] = "error: %s" % exc
    return found
