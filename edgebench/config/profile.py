"""Benchmark profiles (`profiles/*.yaml`): which models, which engine settings, which tests, how often."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping

from edgebench.compare.thresholds import threshold_key, threshold_limit
from edgebench.config.fields import (
    Where,
    above,
    at_least,
    build,
    list_of,
    matches,
    not_blank,
    one_of,
    read_value,
    reject_unknown,
    section,
    setting,
    to_plain,
    yaml_keys,
)
from edgebench.config.yamlsource import Document, load_yaml, parse_yaml
from edgebench.errors import SynthError
from edgebench.models.synth.spec import PREFIX as SYNTH_PREFIX
from edgebench.models.synth.spec import SynthSpec, parse_synth_spec
from edgebench.runner.engines.llama_settings import FLASH_ATTN, KV_CACHE_TYPES
from edgebench.runner.engines.onnx_engine import OPTIMIZATION as GRAPH_OPTIMIZATION
from edgebench.runner.testspec import TestSpec, parse_test

# `sleep` is a test engine whose cells take a known time: it measures the controller, not a model
ENGINES = ("llama.cpp", "llama-bench", "onnxruntime", "sleep")


# ---- conversions (value, where) -> value ------------------------------------------------------

def _lower(value: str, where: Where) -> str:
    return value.strip().lower()


def _flash_attn(value: str | bool, where: Where) -> str:
    # YAML 1.1 reads bare on/off as booleans, so `flash_attn: on` arrives here as True
    return {True: "on", False: "off"}[value] if isinstance(value, bool) else value.strip().lower()


# an empty list is the default: as many threads as the device has physical cores
_thread_list = list_of(int, at_least(1), unique=True)


def _dims(value: dict, where: Where) -> Mapping[str, int]:
    return MappingProxyType({str(name): read_value(where.child(name), size, int, at_least(1))
                             for name, size in value.items()})


def _threads(value: int | list, where: Where) -> tuple[int, ...]:
    if isinstance(value, list):
        return _thread_list(value, where)
    return (read_value(where, value, int, at_least(1)),)


def _resolve_path(value: str, where: Where) -> str:
    if not value.strip():
        raise where.error("a model path must not be empty")
    # relative to the profile, not the working directory, so a profile works from anywhere
    base = Path(where.doc.file).parent if where.doc.file != "<string>" else Path.cwd()
    return os.path.abspath(base / os.path.expanduser(value.strip()))


def _synthetic(value: str, where: Where) -> SynthSpec:
    try:
        return parse_synth_spec(value.strip())
    except SynthError as exc:
        raise where.error(str(exc)) from None


def _vocabulary(parse: Callable[[Any], Any]) -> Callable[[Any, Where], Any]:
    """A conversion through a vocabulary's own parser, whose complaint becomes an error at the key."""
    def convert(value: Any, where: Where) -> Any:
        try:
            return parse(value)
        except ValueError as exc:
            raise where.error(str(exc)) from None
    return convert


_test = _vocabulary(parse_test)
_threshold_key = _vocabulary(threshold_key)
_threshold_limit = _vocabulary(threshold_limit)


def _thresholds(value: dict, where: Where) -> Mapping[str, float]:
    return MappingProxyType({_threshold_key(key, where.child(key)):
                             read_value(where.child(key), limit, (str, float), convert=_threshold_limit)
                             for key, limit in value.items()})


# ---- sections --------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class EngineOptions:
    """Engine settings, named and defaulted as llama-bench names and defaults them."""

    name: str = setting("llama.cpp", str, check=one_of(*ENGINES))
    # empty: let the runner use the device's physical core count; several values make a sweep
    threads: tuple[int, ...] = setting((), (int, list), convert=_threads)
    # 0: as large as each test needs
    n_ctx: int = setting(0, int, check=at_least(0))
    n_batch: int = setting(2048, int, check=at_least(1))
    n_ubatch: int = setting(512, int, check=at_least(1))
    type_k: str = setting("f16", str, convert=_lower, check=one_of(*KV_CACHE_TYPES))
    type_v: str = setting("f16", str, convert=_lower, check=one_of(*KV_CACHE_TYPES))
    flash_attn: str = setting("auto", (str, bool), convert=_flash_attn, check=one_of(*FLASH_ATTN))
    # -1: offload every layer (llama-cpp-python's convention; llama-bench users write 99)
    n_gpu_layers: int = setting(0, int, check=at_least(-1))
    use_mmap: bool = setting(True, bool)
    # llama-bench's --repack (llama.cpp's use_extra_bufts): weights in repacked/AMX layouts. Off avoids
    # extra-buffer kernels a CPU or VM advertises but cannot run
    repack: bool = setting(True, bool)
    binary: str | None = setting(None, str, check=not_blank)
    # the `sleep` test engine only: the speed it pretends to run at (it sleeps, it does not compute)
    simulate_ts: float = setting(1000.0, float, check=above(0))
    # onnxruntime only: session options, and sizes for a model's named dynamic dimensions
    providers: tuple[str, ...] = setting(("CPUExecutionProvider",), list,
                                         convert=list_of(str, not_blank, nonempty=True, unique=True))
    inter_op_threads: int = setting(0, int, check=at_least(0))
    graph_optimization: str = setting("all", str, convert=_lower, check=one_of(*GRAPH_OPTIMIZATION))
    dims: Mapping[str, int] = setting(types=dict, convert=_dims, factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, kw_only=True)
class TelemetryOptions:
    enabled: bool = setting(True, bool)
    interval_s: float = setting(0.5, float, check=above(0))


@dataclass(frozen=True, kw_only=True)
class CooldownOptions:
    """Waiting between cells so that each starts from a comparable thermal state.
    All unset means no waiting."""

    # wait until the device's hottest zone is at or below this, at most max_wait_s
    target_c: float | None = setting(None, float, check=above(0))
    max_wait_s: float = setting(300.0, float, check=above(0))
    # the wait on a device without a thermal sensor (or without target_c)
    fixed_delay_s: float = setting(0.0, float, check=at_least(0))
    # measure a throttled cell once more after a longer cool-down (target 5 °C lower, twice the waits)
    rerun_throttled: bool = setting(False, bool)

    @property
    def active(self) -> bool:
        return self.target_c is not None or self.fixed_delay_s > 0

    def longer(self) -> "CooldownOptions":
        return CooldownOptions(target_c=None if self.target_c is None else max(1.0, self.target_c - 5),
                               max_wait_s=2 * self.max_wait_s, fixed_delay_s=2 * self.fixed_delay_s)


@dataclass(frozen=True, kw_only=True)
class ModelRef:
    """One model to benchmark: a file (`path`) or a synthetic model built on demand."""

    # empty: derived from the file stem or the synthetic spec
    name: str = setting("", str, check=not_blank)
    path: str | None = setting(None, str, convert=_resolve_path)
    synthetic: SynthSpec | None = setting(None, str, convert=_synthetic)
    sha256: str | None = setting(None, str, convert=_lower,
                                 check=matches(r"[0-9a-f]{64}", "sha256 must be 64 hex digits"))

    def __post_init__(self) -> None:
        if (self.path is None) == (self.synthetic is None):
            raise ValueError("a model needs exactly one of path and synthetic")
        if not self.name:
            default = Path(self.path).stem if self.path else self.synthetic.canonical()
            object.__setattr__(self, "name", default)


def _model(value: str | dict, where: Where) -> ModelRef:
    if isinstance(value, str):
        if value.strip().startswith(SYNTH_PREFIX):
            return ModelRef(synthetic=_synthetic(value, where))
        return ModelRef(path=_resolve_path(value, where))
    # unknown keys first: `pth:` deserves "did you mean 'path'", not "needs path or synthetic"
    reject_unknown(where, value, yaml_keys(ModelRef))
    given = [key for key in ("path", "synthetic") if value.get(key) is not None]
    if len(given) != 1:
        problem = "give either `path` or `synthetic`, not both" if given else "needs `path` or `synthetic`"
        raise (where.child(given[-1]) if given else where).error(problem)
    return build(ModelRef, where, value)


def _models(value: list, where: Where) -> tuple[ModelRef, ...]:
    models = list_of((str, dict), convert=_model, nonempty=True)(value, where)
    first: dict[str, int] = {}
    for i, model in enumerate(models):
        if model.name in first:
            raise where.child(i).error(f"duplicate model name {model.name!r} (also models[{first[model.name]}]); "
                                       f"give one of them a `name:`")
        first[model.name] = i
    return models


@dataclass(frozen=True, kw_only=True)
class BenchProfile:
    name: str = setting(types=str, check=not_blank)
    description: str | None = setting(None, str)
    models: tuple[ModelRef, ...] = setting(types=list, convert=_models)
    engine: EngineOptions = section(EngineOptions)
    tests: tuple[TestSpec, ...] = setting(types=list, convert=list_of(str, convert=_test, nonempty=True,
                                                                       unique=True))
    repetitions: int = setting(5, int, check=at_least(1))
    warmup: int = setting(1, int, check=at_least(0))
    timeout_s: float = setting(600.0, float, check=above(0))
    # transient SSH failures (connection lost, unreachable) are retried this often, waiting
    # retry_backoff_s, then twice that, and so on
    retries: int = setting(2, int, check=at_least(0))
    retry_backoff_s: float = setting(2.0, float, check=at_least(0))
    telemetry: TelemetryOptions = section(TelemetryOptions)
    cooldown: CooldownOptions = section(CooldownOptions)
    # metric (`tg`, `pp`, a test name, ...) -> allowed regression as a fraction (0.03 = 3%)
    thresholds: Mapping[str, float] = setting(types=dict, convert=_thresholds,
                                              factory=lambda: MappingProxyType({}))

    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, under the YAML keys; model paths are the resolved absolute paths."""
        return to_plain(self)


def load_profile_file(path: str | Path) -> BenchProfile:
    return profile_from(load_yaml(path))


def parse_profile(text: str, file: str = "<string>") -> BenchProfile:
    return profile_from(parse_yaml(text, file))


def profile_from(doc: Document) -> BenchProfile:
    where = Where(doc)
    profile = build(BenchProfile, where, doc.data, name=Path(doc.file).stem, source=doc.file)
    _check_context(profile, where)
    return profile


def _check_context(profile: BenchProfile, where: Where) -> None:
    n_ctx = profile.engine.n_ctx
    for i, test in enumerate(profile.tests):
        if test.batch and profile.engine.name not in ("onnxruntime", "sleep"):
            raise where.child("tests").child(i).error(
                f"{test.name} is a batch test for generic ONNX models; engine {profile.engine.name} runs "
                f"LLM tests (pp/tg)")
        if n_ctx and test.n_tokens > n_ctx:
            raise where.child("engine").child("n_ctx").error(
                f"n_ctx {n_ctx} is too small for test {test.name}, which needs {test.n_tokens} tokens; "
                f"raise it or use 0 (as large as each test needs)")
