"""The job the controller sends: validated here because the runner trusts nothing it is sent."""

from __future__ import annotations

import json

from .protocol import RunnerFailure
from .telemetry import declared_settings, source_settings
from .telemetry.settings import Invalid
from .testspec import FIELDS as TEST_KEYS
from .testspec import TestSpec

REQUIRED = {"engine": str, "model_path": str, "test": dict, "repetitions": int, "warmup": int,
            "engine_options": dict, "telemetry": dict}
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
    for key, kind in REQUIRED.items():
        if not isinstance(job.get(key), kind):
            raise RunnerFailure("job", "job.%s must be %s" % (key, kind.__name__))
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
