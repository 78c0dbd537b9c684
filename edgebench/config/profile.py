"""Benchmark profiles (`profiles/*.yaml`): which models, which engine settings, which tests, how often."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping

from edgebench.compare.thresholds import threshold_key, threshold_limit
from edgebench.config.engine import EngineOptions, read_engine
from edgebench.config.fields import (
    Where,
    above,
    at_least,
    build,
    list_of,
    matches,
    not_blank,
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
from edgebench.runner.testspec import TestSpec, parse_test

# what a test of a kind is, where an engine that does not run it is named
_KIND_WORDS = {"b": "a batch test for generic ONNX models",
               "ppl": "a quality test (perplexity, as llama-perplexity)",
               "kld": "a quality test (KL divergence against the reference, as llama-perplexity)"}


# ---- conversions (value, where) -> value ------------------------------------------------------

def _lower(value: str, where: Where) -> str:
    return value.strip().lower()


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


def _text_path(value: str, where: Where) -> str:
    path = _resolve_path(value, where)
    if not os.path.isfile(path):
        raise where.error(f"text file not found: {path}")
    return path


@dataclass(frozen=True, kw_only=True)
class QualityOptions:
    """The `quality:` block, what `ppl` and `kld` tests measure over, as llama-perplexity's options."""

    # what the models are judged against: a path or a `synthetic:` spec, as a model is written
    reference: ModelRef | None = setting(None, (str, dict), convert=_model)
    # a text file, tokenized by each model's own tokenizer; none: tokens sampled from the reference
    text: str | None = setting(None, str, convert=_text_path)
    n_ctx: int = setting(512, int, check=at_least(8))  # llama-perplexity's -c
    chunks: int = setting(16, int, check=at_least(1))  # llama-perplexity's --chunks


@dataclass(frozen=True, kw_only=True)
class BenchProfile:
    name: str = setting(types=str, check=not_blank)
    description: str | None = setting(None, str)
    models: tuple[ModelRef, ...] = setting(types=list, convert=_models)
    engine: EngineOptions = setting(EngineOptions(), dict, convert=read_engine)
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
    quality: QualityOptions = section(QualityOptions)
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
    engine = profile.engine
    kinds = engine.declaration.test_kinds
    # an engine without n_ctx sizes its context itself
    n_ctx = engine.get("n_ctx") or 0
    for i, test in enumerate(profile.tests):
        why_not = dict(engine.declaration.refused_kinds).get(test.kind)
        if why_not:
            raise where.child("tests").child(i).error(f"engine {engine.name} does not run {test.name}: {why_not}")
        if test.kind not in kinds:
            what = _KIND_WORDS.get(test.kind, f"a {test.kind} test")
            raise where.child("tests").child(i).error(
                f"{test.name} is {what}; engine {engine.name} runs {'/'.join(kinds)} tests")
        if test.kind == "kld" and profile.quality.reference is None:
            raise where.child("tests").child(i).error(
                "kld needs a reference to judge the models against: add quality.reference (a path or synthetic: spec)")
        if test.quality and engine.declaration.quality_text_only and profile.quality.text is None:
            raise where.child("tests").child(i).error(
                f"engine {engine.name} scores {test.name} over a text file only, not over sampled tokens: "
                f"add quality.text (or use engine llama.cpp)")
        if n_ctx and test.n_tokens > n_ctx:
            raise where.child("engine").child("n_ctx").error(
                f"n_ctx {n_ctx} is too small for test {test.name}, which needs {test.n_tokens} tokens; "
                f"raise it or use 0 (as large as each test needs)")
