"""The run job, declared once: `make_job` builds it (the controller, sweep/device_worker.py, and the scripts in
tests/perf/), and `parse_job` checks what the runner is sent against the same declaration, because the runner
trusts nothing it is sent."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from .protocol import RunnerFailure
from .telemetry import declared_settings, source_settings
from .telemetry.settings import Invalid
from .testspec import FIELDS as TEST_KEYS
from .testspec import TestSpec

_REQUIRED = object()


class JobKey(NamedTuple):
    name: str
    kind: type
    # what a job without the key means; _REQUIRED: every job has it
    default: Any = _REQUIRED


# every key of a run job; the optional ones: a job for a test of another kind leaves `quality` out, and a
# controller before thermal limits sent no `limits`
JOB_KEYS = (
    JobKey("engine", str), JobKey("model_path", str), JobKey("test", dict), JobKey("repetitions", int),
    JobKey("warmup", int), JobKey("engine_options", dict), JobKey("telemetry", dict),
    JobKey("limits", dict, {}), JobKey("quality", dict, None),
)
# the device's limits the telemetry summaries judge a window by: thermal, max_temp_c (null: none)
LIMIT_KEYS = ("max_temp_c",)


def make_job(engine, model_path, test, repetitions, warmup, engine_options, telemetry, limits=None, quality=None):
    """The run job for a test (a TestSpec, or anything with its fields), every key explicit: the runner's
    defaults for what older controllers left out are not relied on. `quality`, a quality test's files
    and settings (quality/measure.py's JOB_KEYS), goes only into a quality test's job."""
    job = {"engine": engine, "model_path": model_path, "test": {k: getattr(test, k) for k in TEST_KEYS},
           "repetitions": repetitions, "warmup": warmup, "engine_options": dict(engine_options),
           "telemetry": dict(telemetry), "limits": {k: (limits or {}).get(k) for k in LIMIT_KEYS}}
    if quality is not None:
        job["quality"] = quality
    return job
# every telemetry setting a job may carry, with its default; null means the default too
TELEMETRY_DEFAULTS = {s.name: s.default for s in declared_settings()}


def parse_json_object(text):
    try:
        job = json.loads(text)
    except ValueError as exc:
        raise RunnerFailure("job", "job is not valid JSON: %s" % exc)
    if not isinstance(job, dict):
        raise RunnerFailure("job", "job must be a JSON object")
    return job


def parse_job(text):
    job = parse_json_object(text)
    unknown = sorted(set(job) - set(key.name for key in JOB_KEYS))
    if unknown:
        raise RunnerFailure("job", "job has unknown keys %s; known: %s"
                            % (", ".join(unknown), ", ".join(key.name for key in JOB_KEYS)))
    for key in JOB_KEYS:
        if key.name not in job and key.default is not _REQUIRED:
            job[key.name] = key.default
        elif not isinstance(job.get(key.name), key.kind):
            raise RunnerFailure("job", "job.%s must be %s" % (key.name, key.kind.__name__))
    _check_limits(job["limits"])
    test = job["test"]
    test.setdefault("batch", 0)  # controllers before generic models did not send it
    test.setdefault("quality", "")  # nor before quality tests
    counts = [k for k in TEST_KEYS if k != "quality"]
    if sorted(test) != sorted(TEST_KEYS) or not all(isinstance(test[k], int) and test[k] >= 0 for k in counts):
        raise RunnerFailure("job", "job.test needs non-negative integers %s and a quality kind"
                            % ", ".join(counts))
    if not (test["n_prompt"] or test["n_gen"] or test["batch"] or test["quality"]):
        raise RunnerFailure("job", "job.test must prompt or generate at least one token, run a batch or "
                            "measure quality")
    try:
        TestSpec(**test)
    except ValueError as exc:  # a batch with a prompt or a depth
        raise RunnerFailure("job", "job.test: %s" % exc)
    if job["repetitions"] < 1 or job["warmup"] < 0:
        raise RunnerFailure("job", "job.repetitions must be >= 1 and job.warmup >= 0")
    job["telemetry"] = parse_telemetry(job["telemetry"], "job.telemetry")
    return job


def _check_limits(limits):
    unknown = sorted(set(limits) - set(LIMIT_KEYS))
    if unknown:
        raise RunnerFailure("job", "job.limits has unknown keys %s; known: %s" % (", ".join(unknown),
                                                                                 ", ".join(LIMIT_KEYS)))
    for name, value in limits.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise RunnerFailure("job", "job.limits.%s must be a number or null" % name)


def parse_telemetry(telemetry, where):
    """The telemetry settings checked against their declarations, with defaults filled in.

    Checked here rather than left to the sources: a source given a bad setting
    only reports itself unavailable, and the run would go on quietly without it.
    Unknown keys are refused so that a setting the controller sends and this
    runner does not know fails loudly instead of being ignored.
    """
    if not isinstance(telemetry, dict):
        raise RunnerFailure("job", "%s must be an object" % where)
    declared = declared_settings()
    known = sorted(s.name for s in declared)
    unknown = sorted(set(telemetry) - set(known))
    if unknown:
        raise RunnerFailure("job", "%s has unknown keys %s; known: %s" % (where, ", ".join(unknown), ", ".join(known)))
    try:
        return {s.name: s.read(telemetry.get(s.name), "%s.%s" % (where, s.name)) for s in declared}
    except Invalid as invalid:
        raise RunnerFailure("job", str(invalid))


def source_options(telemetry):
    """The sources' settings from checked telemetry settings, as a Context or Sampler takes them."""
    return {s.name: telemetry[s.name] for s in source_settings()}
