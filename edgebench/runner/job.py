"""The job the controller sends: validated here because the runner trusts nothing it is sent."""

from __future__ import annotations

import json

from .protocol import RunnerFailure
from .telemetry import SOURCES
from .telemetry.battery import CURRENT_UNITS
from .telemetry.extra_power import UNITS as POWER_UNITS
from .testspec import FIELDS as TEST_KEYS
from .testspec import TestSpec

REQUIRED = {"engine": str, "model_path": str, "test": dict, "repetitions": int, "warmup": int,
            "engine_options": dict, "telemetry": dict}
# every telemetry setting a job may carry, with its default; null means the default too
TELEMETRY_DEFAULTS = {"enabled": True, "interval_s": 0.5, "root": "/", "extra_thermal_paths": [],
                      "extra_power_paths": [], "battery_current_unit": "uA", "sources": None}
# the settings the sources themselves read (Context and Sampler take them under these names)
SOURCE_OPTIONS = ("extra_thermal_paths", "extra_power_paths", "battery_current_unit")
POWER_PATH_DEFAULTS = {"path": None, "name": None, "unit": "uW", "total": True}


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
    try:
        TestSpec(**test)
    except ValueError as exc:  # a batch with a prompt or a depth
        raise RunnerFailure("job", "job.test: %s" % exc)
    if job["repetitions"] < 1 or job["warmup"] < 0:
        raise RunnerFailure("job", "job.repetitions must be >= 1 and job.warmup >= 0")
    job["telemetry"] = parse_telemetry(job["telemetry"], "job.telemetry")
    return job


def parse_telemetry(telemetry, where):
    """The telemetry settings checked, with defaults filled in.

    Checked here rather than left to the sources: a source given a bad setting
    only reports itself unavailable, and the run would go on quietly without it.
    Unknown keys are refused so that a setting the controller sends and this
    runner does not know fails loudly instead of being ignored.
    """
    if not isinstance(telemetry, dict):
        raise RunnerFailure("job", "%s must be an object" % where)
    unknown = sorted(set(telemetry) - set(TELEMETRY_DEFAULTS))
    if unknown:
        raise RunnerFailure("job", "%s has unknown keys %s; known: %s"
                            % (where, ", ".join(unknown), ", ".join(sorted(TELEMETRY_DEFAULTS))))
    out = dict(TELEMETRY_DEFAULTS)
    out.update((key, value) for key, value in telemetry.items() if value is not None)
    _require(isinstance(out["enabled"], bool), where + ".enabled", "must be true or false")
    _require(_number(out["interval_s"]) and out["interval_s"] > 0, where + ".interval_s",
             "must be a positive number")
    _require(_text(out["root"]), where + ".root", "must be a non-empty string")
    out["extra_thermal_paths"] = _thermal_paths(out["extra_thermal_paths"], where + ".extra_thermal_paths")
    out["extra_power_paths"] = _power_paths(out["extra_power_paths"], where + ".extra_power_paths")
    _require(_one_of(out["battery_current_unit"], CURRENT_UNITS), where + ".battery_current_unit",
             "must be one of %s" % ", ".join(CURRENT_UNITS), out["battery_current_unit"])
    out["sources"] = _sources(out["sources"], where + ".sources")
    return out


def source_options(telemetry):
    """The keyword arguments a Context or Sampler takes from checked telemetry settings."""
    return {key: telemetry[key] for key in SOURCE_OPTIONS}


def _thermal_paths(value, where):
    if isinstance(value, dict):
        for name, path in value.items():
            _require(_text(name) and _text(path), "%s.%s" % (where, name), "must map a name to a device path")
        return dict(value)
    _require(isinstance(value, list), where, "must be a list of device paths or a mapping of names to paths")
    for i, path in enumerate(value):
        _require(_text(path), "%s[%d]" % (where, i), "must be a device path", path)
    return list(value)


def _power_paths(value, where):
    _require(isinstance(value, list), where, "must be a list")
    entries = []
    for i, entry in enumerate(value):
        here = "%s[%d]" % (where, i)
        if _text(entry):
            entries.append(entry)
            continue
        _require(isinstance(entry, dict), here, "must be a device path or an object with a path", entry)
        unknown = sorted(set(entry) - set(POWER_PATH_DEFAULTS))
        _require(not unknown, here, "has unknown keys %s; known: %s"
                 % (", ".join(unknown), ", ".join(sorted(POWER_PATH_DEFAULTS))))
        spec = dict(POWER_PATH_DEFAULTS)
        spec.update((key, v) for key, v in entry.items() if v is not None)
        _require(_text(spec["path"]), here + ".path", "must be a device path", spec["path"])
        _require(spec["name"] is None or _text(spec["name"]), here + ".name", "must be a non-empty string",
                 spec["name"])
        _require(_one_of(spec["unit"], POWER_UNITS), here + ".unit", "must be one of %s" % ", ".join(POWER_UNITS),
                 spec["unit"])
        _require(isinstance(spec["total"], bool), here + ".total", "must be true or false", spec["total"])
        entries.append(spec)
    return entries


def _sources(value, where):
    if value is None:
        return None
    _require(isinstance(value, list) and value, where, "must be a non-empty list of source names")
    for i, name in enumerate(value):
        _require(_one_of(name, SOURCES), "%s[%d]" % (where, i), "must be one of %s" % ", ".join(SOURCES), name)
        _require(name not in value[:i], "%s[%d]" % (where, i), "repeats a source", name)
    return list(value)


def _require(ok, key, complaint, *got):
    if not ok:
        shown = "; got %s" % json.dumps(got[0], default=repr) if got else ""
        raise RunnerFailure("job", "%s %s%s" % (key, complaint, shown))


def _one_of(value, choices):
    return isinstance(value, str) and value in choices


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _text(value):
    return isinstance(value, str) and bool(value.strip())
