"""Engine registry. Engine NAME lives in `<NAME, with . and - as _>_engine.py` in this folder, which
declares it (`DECLARATION`, see declaration.py) beside its engine class (`ENGINE`): adding that file
adds the engine, to the runner and to the controller alike.

A module is imported only when its engine is asked for, and no engine module imports its engine's
library at import time: a device without llama-cpp-python still runs llama-bench jobs, and the
controller reads every declaration without onnxruntime installed.
"""

from __future__ import annotations

import importlib

from ..protocol import RunnerFailure

_SUFFIX = "_engine"


def module_name(engine: str) -> str:
    return engine.replace(".", "_").replace("-", "_") + _SUFFIX


def _module(engine: str):
    """The engine's module, or None when there is no such engine."""
    if not isinstance(engine, str) or not module_name(engine).replace("_", "").isalnum():
        return None
    full = "%s.%s" % (__name__, module_name(engine))
    try:
        module = importlib.import_module(full)
    except ModuleNotFoundError as exc:
        if exc.name != full:
            raise  # the module exists and lacks something it imports
        return None
    return module if module.DECLARATION.name == engine else None


def _engine_modules():
    """(file name, module or the exception importing it) for each engine file here, by file name."""
    import pkgutil  # only here: a runner measuring a cell never lists the engines

    for info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
        if info.name.endswith(_SUFFIX):
            try:
                yield info.name, importlib.import_module("%s.%s" % (__name__, info.name))
            except Exception as exc:  # a broken engine module must not hide the others
                yield info.name, exc


def names():
    """Every engine in this folder."""
    return sorted(module.DECLARATION.name for _, module in _engine_modules() if not isinstance(module, Exception))


def declared(name: str):
    """The engine's EngineDeclaration, or None when there is no such engine."""
    module = _module(name)
    return module.DECLARATION if module else None


def declarations() -> dict:
    """name -> EngineDeclaration, for every engine."""
    return {name: declared(name) for name in names()}


def load_engine(name: str, options=None):
    """Return the engine class for `name`, or raise RunnerFailure saying why it cannot run here."""
    module = _module(name)
    if module is None:
        raise RunnerFailure("job", "unknown engine %r; known: %s" % (name, ", ".join(names())))
    engine_cls = module.ENGINE
    missing = engine_cls.missing(options)
    if missing:
        raise RunnerFailure("engine-missing", "engine %s is not usable on this device: %s" % (name, missing))
    return engine_cls


def available(options=None) -> dict:
    """name -> "ok" or the reason it is missing; used by device probes. `options`: the device's
    engine settings (llama-bench's binary), so the probe answers for what a job would use."""
    found = {}
    for file_name, module in _engine_modules():
        if isinstance(module, Exception):
            found[file_name[:-len(_SUFFIX)]] = "error: %s" % module
            continue
        try:
            found[module.DECLARATION.name] = module.ENGINE.missing(options) or "ok"
        except Exception as exc:
            found[module.DECLARATION.name] = "error: %s" % exc
    return dict(sorted(found.items()))
