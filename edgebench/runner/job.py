"""The job the controller sends: validated here because the runner trusts nothing it is sent."""

from __future__ import annotations

import json

from .protocol import RunnerFailure

REQUIRED = {"engine": str, "model_path": str, "test": dict, "repetitions": int, "warmup": int,
            "engine_options": dict, "telemetry": dict}
TEST_KEYS = ("n_prompt", "n_gen", "n_depth", "batch")


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
    if sorted(test) != sorted(TEST_KEYS) or not all(isinstance(test[k], int) and test[k] >= 0 for k in TEST_KEYS):
        raise RunnerFailure("job", "job.test needs non-negative integers %s" % ", ".join(TEST_KEYS))
    if not (test["n_prompt"] or test["n_gen"] or test["batch"]):
        raise RunnerFailure("job", "job.test must prompt or generate at least one token, or run a batch")
    if job["repetitions"] < 1 or job["warmup"] < 0:
        raise RunnerFailure("job", "job.repetitions must be >= 1 and job.warmup >= 0")
    job["telemetry"].setdefault("enabled", True)
    job["telemetry"].setdefault("interval_s", 0.5)
    return job
