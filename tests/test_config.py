"""Benchmark profiles, the YAML loader, and the example files shipped in devices/ and profiles/."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
from conftest import assert_at

from edgebench.cli import EXIT_ERROR, main
from edgebench.config import BenchProfile, EngineOptions, ModelRef, TestSpec, load_device, load_profile, parse_profile
from edgebench.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
DEVICE_FILES = sorted((REPO / "devices").glob("*.yaml"))
PROFILE_FILES = sorted((REPO / "profiles").glob("*.yaml"))
SHA = "ab" * 32


def write(tmp_path: Path, text: str, name: str = "bench.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def profile_error(tmp_path: Path, text: str) -> tuple[ConfigError, Path]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_profile(path)
    return info.value, path


# ---- the shipped examples -------------------------------------------------------------------

def test_examples_exist():
    assert {p.stem for p in DEVICE_FILES} >= {"local", "rpi5", "pixel8", "jetson-orin-nano", "laptop"}
    assert {p.stem for p in PROFILE_FILES} >= {"quickstart", "qwen35-quant-sweep", "ci-smoke"}


@pytest.mark.parametrize("path", DEVICE_FILES, ids=lambda p: p.name)
def test_every_example_device_parses_and_serialises(path):
    device = load_device(path)
    assert device.name == path.stem
    assert device.source == str(path)
    json.dumps(device.to_dict())


@pytest.mark.parametrize("path", PROFILE_FILES, ids=lambda p: p.name)
def test_every_example_profile_parses_and_serialises(path):
    profile = load_profile(path)
    assert profile.name == path.stem
    assert profile.models and profile.tests
    json.dumps(profile.to_dict())


def test_quickstart_contents():
    profile = load_profile(REPO / "profiles" / "quickstart.yaml")
    assert [t.name for t in profile.tests] == ["pp512", "tg128", "pp512+tg128"]
    assert (profile.repetitions, profile.warmup) == (3, 1)
    (model,) = profile.models
    assert model.synthetic is not None and model.synthetic.canonical() == "qwen3.5-0.8b@Q4_K_M" and model.path is None


def test_quant_sweep_contents():
    profile = load_profile(REPO / "profiles" / "qwen35-quant-sweep.yaml")
    assert [m.synthetic.quant for m in profile.models] == ["Q3_K_S", "Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0"]
    assert {m.synthetic.layers for m in profile.models} == {8}
    assert profile.tests[-1] == TestSpec(n_prompt=512, n_gen=128, n_depth=4096)


def test_ci_smoke_thresholds_are_fractions():
    profile = load_profile(REPO / "profiles" / "ci-smoke.yaml")
    assert dict(profile.thresholds) == {"tg": pytest.approx(0.03), "pp": pytest.approx(0.05)}
    assert [t.name for t in profile.tests] == ["tg32", "pp64"]
    assert profile.repetitions == 5


# ---- values and defaults --------------------------------------------------------------------

MINIMAL = "models: [synthetic:tiny-qwen35]\ntests: [tg16]\n"


def test_defaults(tmp_path):
    profile = load_profile(write(tmp_path, MINIMAL, "my-bench.yaml"))
    assert profile.name == "my-bench"
    assert profile.engine == EngineOptions()
    engine = profile.engine
    assert (engine.name, engine.threads, engine.n_ctx, engine.n_batch, engine.n_ubatch) == \
        ("llama.cpp", (), 0, 2048, 512)
    assert (engine.type_k, engine.type_v, engine.flash_attn, engine.n_gpu_layers, engine.use_mmap) == \
        ("f16", "f16", "auto", 0, True)
    assert (profile.repetitions, profile.warmup, profile.timeout_s) == (5, 1, 600.0)
    assert (profile.telemetry.enabled, profile.telemetry.interval_s) == (True, 0.5)
    assert profile.cooldown.target_c is None and dict(profile.thresholds) == {}
    assert profile.models[0].name == "tiny-qwen35@F16"


@pytest.mark.parametrize("text, expected", [
    ("4", (4,)), ("[1, 2, 4]", (1, 2, 4)), ("", ()), ("null", ()),
])
def test_threads_normalised_to_tuple(text, expected):
    profile = parse_profile(MINIMAL + f"engine:\n  threads: {text}\n")
    assert profile.engine.threads == expected


@pytest.mark.parametrize("text, expected", [
    ("on", "on"), ("off", "off"), ("true", "on"), ("false", "off"), ("auto", "auto"), ("'ON'", "on"),
])
def test_flash_attn_accepts_booleans(text, expected):
    assert parse_profile(MINIMAL + f"engine: {{flash_attn: {text}}}\n").engine.flash_attn == expected


def test_kv_types_case_insensitive_and_ints_are_fine_as_floats():
    profile = parse_profile(MINIMAL + "engine: {type_k: Q8_0, type_v: IQ4_NL}\ntimeout_s: 60\n")
    assert (profile.engine.type_k, profile.engine.type_v) == ("q8_0", "iq4_nl")
    assert profile.timeout_s == 60.0 and isinstance(profile.timeout_s, float)


def test_model_entries(tmp_path):
    (tmp_path / "sub").mkdir()
    path = write(tmp_path / "sub", f"""\
models:
  - ../models/Qwen3.5-4B-Q4_K_M.gguf
  - /abs/other.gguf
  - name: pinned
    path: m.gguf
    sha256: {SHA.upper()}
  - synthetic: qwen3.5-4b@Q4_K_M?layers=8
  - {{name: tiny, synthetic: "synthetic:tiny-llama@Q8_0"}}
tests: [pp64]
""")
    models = load_profile(path).models
    assert [m.name for m in models] == ["Qwen3.5-4B-Q4_K_M", "other", "pinned", "qwen3.5-4b@Q4_K_M?layers=8",
                                        "tiny"]
    assert models[0].path == str(tmp_path / "models" / "Qwen3.5-4B-Q4_K_M.gguf")
    assert models[1].path == "/abs/other.gguf"
    assert models[2].path == str(tmp_path / "sub" / "m.gguf") and models[2].sha256 == SHA
    assert models[3].synthetic.layers == 8 and models[3].path is None
    assert models[4].synthetic.preset == "tiny-llama"


def test_thresholds(tmp_path):
    profile = parse_profile(MINIMAL + "thresholds: {tg: 3%, pp: '2.5 %', ttft: 0.1}\n")
    assert dict(profile.thresholds) == pytest.approx({"tg": 0.03, "pp": 0.025, "ttft": 0.1})


# every key that threshold_for can ever look up: the metrics, the test kinds, and test names
@pytest.mark.parametrize("key", ["ts", "ttft", "peak_rss", "j_per_token", "pp", "tg", "pp+tg", "b", "tg128",
                                 "pp512+tg128@d4096", "b8"])
def test_every_key_a_threshold_applies_to_is_accepted(key):
    assert dict(parse_profile(MINIMAL + f"thresholds: {{{key}: 3%}}\n").thresholds) == {key: pytest.approx(0.03)}


def test_to_dict_round_trips_through_json(tmp_path):
    path = write(tmp_path, MINIMAL + "thresholds: {tg: 3%}\nengine: {threads: [2, 4]}\n")
    data = json.loads(json.dumps(load_profile(path).to_dict()))
    assert data["tests"] == ["tg16"]
    assert data["models"][0]["synthetic"] == "synthetic:tiny-qwen35@F16"
    assert data["engine"]["threads"] == [2, 4]
    assert data["thresholds"] == {"tg": 0.03}
    assert data["source"] == str(path)


def test_objects_are_frozen():
    profile = parse_profile(MINIMAL + "thresholds: {tg: 3%}\n")
    for obj, attr, value in [(profile, "repetitions", 1), (profile.engine, "threads", (1,)),
                             (profile.models[0], "name", "x"),
                             (profile.telemetry, "enabled", False), (profile.cooldown, "target_c", 1.0)]:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, attr, value)
    with pytest.raises(AttributeError):  # a TestSpec is the runner's named tuple
        profile.tests[0].n_gen = 1
    with pytest.raises(TypeError):
        profile.thresholds["tg"] = 0.5
    assert isinstance(profile.models, tuple) and isinstance(profile.tests, tuple)


# ---- errors: each names file, line and key --------------------------------------------------

def test_malformed_yaml(tmp_path):
    err, path = profile_error(tmp_path, "models: [synthetic:tiny-qwen35]\ntests:\n  - pp512\n - tg128\n")
    assert_at(err, path, 4, None, "malformed YAML")


def test_malformed_yaml_mapping_value(tmp_path):
    err, path = profile_error(tmp_path, "models: [synthetic:tiny-qwen35]\ntests: [pp512]\nrepetitions: 5: 6\n")
    assert_at(err, path, 3, None, "malformed YAML", "mapping values are not allowed")


def test_wrong_type_string_for_int(tmp_path):
    err, path = profile_error(tmp_path, MINIMAL + "# how many\nrepetitions: \"five\"\n")
    assert_at(err, path, 4, "repetitions", "expected an integer", "got a string ('five')")


def test_wrong_type_bool_is_not_an_int(tmp_path):
    err, path = profile_error(tmp_path, MINIMAL + "engine:\n  n_batch: 512\n  threads: true\n")
    assert_at(err, path, 5, "engine.threads", "expected an integer or a list", "got a boolean (true)")


def test_wrong_type_float_for_int(tmp_path):
    err, path = profile_error(tmp_path, MINIMAL + "warmup: 1.5\n")
    assert_at(err, path, 3, "warmup", "expected an integer, got a number (1.5)")


def test_wrong_type_in_list(tmp_path):
    err, path = profile_error(tmp_path, MINIMAL + "engine:\n  threads:\n    - 2\n    - four\n")
    assert_at(err, path, 6, "engine.threads[1]", "expected an integer")


def test_out_of_range(tmp_path):
    err, path = profile_error(tmp_path, MINIMAL + "repetitions: 0\n")
    assert_at(err, path, 3, "repetitions", "at least 1", "got 0")


def test_out_of_range_nested(tmp_path):
    err, path = profile_error(tmp_path, MINIMAL + "telemetry:\n  interval_s: 0\n")
    assert_at(err, path, 4, "telemetry.interval_s", "greater than 0")


def test_unknown_key_with_suggestion(tmp_path):
    err, path = profile_error(tmp_path, MINIMAL + "repetitons: 3\n")
    assert_at(err, path, 3, "repetitons", "unknown key 'repetitons'", "did you mean 'repetitions'?",
              "allowed keys: cooldown, description, engine, models")


def test_unknown_nested_key(tmp_path):
    err, path = profile_error(tmp_path, MINIMAL + "engine:\n  threads: 4\n\n  nctx: 4096\n")
    assert_at(err, path, 6, "engine.nctx", "unknown key 'nctx'", "did you mean 'n_ctx'?")


def test_unknown_key_in_model_entry(tmp_path):
    err, path = profile_error(tmp_path, "tests: [pp64]\nmodels:\n  - pth: a.gguf\n")
    assert_at(err, path, 3, "models[0].pth", "did you mean 'path'?")


def test_bad_choice_suggests(tmp_path):
    err, path = profile_error(tmp_path, MINIMAL + "engine:\n  type_k: q8\n")
    assert_at(err, path, 4, "engine.type_k", "must be one of f16, bf16", "did you mean 'q8_0'?")


def test_missing_required_key(tmp_path):
    err, path = profile_error(tmp_path, "# no tests here\n\nmodels: [synthetic:tiny-qwen35]\n")
    assert_at(err, path, 3, "tests", "required key 'tests' is missing")


def test_required_key_set_to_null(tmp_path):
    err, path = profile_error(tmp_path, "models:\ntests: [pp64]\n")
    assert_at(err, path, 1, "models", "required key 'models' is null")


def test_empty_lists_rejected(tmp_path):
    err, path = profile_error(tmp_path, "models: [synthetic:tiny-qwen35]\ntests: []\n")
    assert_at(err, path, 2, "tests", "must not be empty")


def test_bad_test_spec(tmp_path):
    err, path = profile_error(tmp_path, "models: [synthetic:tiny-qwen35]\ntests:\n  - pp512\n  - pp0\n")
    assert_at(err, path, 4, "tests[1]", "not a test: 'pp0'", "pp512+tg128@d4096")


def test_duplicate_test(tmp_path):
    err, path = profile_error(tmp_path, "models: [synthetic:tiny-qwen35]\ntests: [tg16, pp64, tg16]\n")
    assert_at(err, path, 2, "tests[2]", "duplicate entry tg16")


def test_bad_sha256(tmp_path):
    err, path = profile_error(tmp_path, f"""\
tests: [pp64]
models:
  - path: a.gguf
    sha256: {SHA}
  - path: b.gguf
    sha256: {SHA[:-1]}z
""")
    assert_at(err, path, 6, "models[1].sha256", "64 hex digits")


def test_both_path_and_synthetic(tmp_path):
    err, path = profile_error(tmp_path, "tests: [pp64]\nmodels:\n  - path: a.gguf\n    synthetic: tiny-llama\n")
    assert_at(err, path, 4, "models[0].synthetic", "either `path` or `synthetic`, not both")


def test_neither_path_nor_synthetic(tmp_path):
    err, path = profile_error(tmp_path, f"tests: [pp64]\nmodels:\n  - synthetic: tiny-llama\n  - sha256: {SHA}\n")
    assert_at(err, path, 4, "models[1]", "needs `path` or `synthetic`")


def test_unknown_synthetic_preset_string_entry(tmp_path):
    err, path = profile_error(tmp_path, "tests: [pp64]\nmodels:\n  - synthetic:tiny-qwen35\n"
                                        "  - synthetic:qwen9-7b@Q4_K_M\n")
    assert_at(err, path, 4, "models[1]", "unknown synthetic preset 'qwen9-7b'", "tiny-qwen35")


def test_unknown_synthetic_preset_mapping_entry(tmp_path):
    err, path = profile_error(tmp_path, "tests: [pp64]\nmodels:\n  - name: x\n    synthetic: nope@Q8_0\n")
    assert_at(err, path, 4, "models[0].synthetic", "unknown synthetic preset 'nope'")


def test_bad_synthetic_quant(tmp_path):
    err, path = profile_error(tmp_path, "tests: [pp64]\nmodels: [synthetic:tiny-llama@Q2_K]\n")
    assert_at(err, path, 2, "models[0]", "unknown quant 'Q2_K'")


def test_duplicate_model_names(tmp_path):
    err, path = profile_error(tmp_path, "tests: [pp64]\nmodels:\n  - a/m.gguf\n  - b/m.gguf\n")
    assert_at(err, path, 4, "models[1]", "duplicate model name 'm'", "models[0]")


def test_threshold_bare_number_is_a_fraction(tmp_path):
    err, path = profile_error(tmp_path, MINIMAL + "thresholds:\n  tg: 3\n")
    assert_at(err, path, 4, "thresholds.tg", "0.03 means 3%", "'3%'")


def test_threshold_bad_text(tmp_path):
    err, path = profile_error(tmp_path, MINIMAL + "thresholds:\n  tg: three percent\n")
    assert_at(err, path, 4, "thresholds.tg", "percentage such as '3%'")


def test_threshold_unknown_key(tmp_path):
    # `tgg` used to be kept and never looked up: a gate silently ran on the default
    err, path = profile_error(tmp_path, MINIMAL + "thresholds:\n  tg: 3%\n  tgg: 3%\n")
    assert_at(err, path, 5, "thresholds.tgg", "unknown threshold key 'tgg'", "did you mean 'tg'?",
              "a test kind (pp, tg, pp+tg, b, ppl, kld)", "tg128")


def test_threshold_unknown_key_stops_a_run_before_anything_runs(tmp_path, capsys):
    path = write(tmp_path, "models: [missing.gguf]\ntests: [tg16]\nthresholds:\n  peak_rsss: 2%\n")
    assert main(["run", str(path), "-o", str(tmp_path / "results")]) == EXIT_ERROR
    assert f"{path}:4: thresholds.peak_rsss: unknown threshold key 'peak_rsss' (did you mean 'peak_rss'?)" \
        in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


def test_n_ctx_too_small_for_a_test(tmp_path):
    err, path = profile_error(tmp_path, "models: [synthetic:tiny-qwen35]\ntests: [pp512, pp512+tg128@d4096]\n"
                                        "engine:\n  n_ctx: 2048\n")
    assert_at(err, path, 4, "engine.n_ctx", "pp512+tg128@d4096", "4736 tokens")


def test_empty_file(tmp_path):
    err, path = profile_error(tmp_path, "")
    assert_at(err, path, 1, None, "empty")


def test_comment_only_file_is_empty(tmp_path):
    err, path = profile_error(tmp_path, "# nothing yet\n")
    assert_at(err, path, 1, None, "empty")


def test_top_level_must_be_mapping(tmp_path):
    err, path = profile_error(tmp_path, "\n- pp512\n- tg128\n")
    assert_at(err, path, 2, None, "top level must be a mapping", "got a list")


def test_duplicate_top_level_key(tmp_path):
    err, path = profile_error(tmp_path, MINIMAL + "repetitions: 3\nwarmup: 0\nrepetitions: 10\n")
    assert_at(err, path, 5, "repetitions", "duplicate key 'repetitions'", "first set on line 3")


def test_duplicate_nested_key(tmp_path):
    err, path = profile_error(tmp_path, MINIMAL + "engine:\n  n_ctx: 1\n  n_ctx: 2\n")
    assert_at(err, path, 5, "engine.n_ctx", "duplicate key", "line 4")


def test_yaml_boolean_key_is_rejected(tmp_path):
    err, path = profile_error(tmp_path, MINIMAL + "engine:\n  on: 1\n")
    assert_at(err, path, 4, "engine", "not a string", "quote it")


def test_profile_file_not_found(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_profile(missing)
    assert str(missing) in str(info.value) and "not found" in str(info.value)


def test_model_ref_needs_exactly_one_source():
    with pytest.raises(ValueError):
        ModelRef(name="x")
    assert ModelRef(path=os.path.abspath("dir/model.gguf")).name == "model"


def test_bench_profile_is_a_plain_dataclass():
    assert dataclasses.is_dataclass(BenchProfile)
    names = {f.name for f in dataclasses.fields(BenchProfile)}
    assert {"name", "description", "models", "engine", "tests", "repetitions", "warmup", "timeout_s",
            "telemetry", "cooldown", "quality", "thresholds", "retries", "retry_backoff_s", "source"} == names


def test_value_that_yaml_cannot_construct(tmp_path):
    err, path = profile_error(tmp_path, MINIMAL + "description: 2001-13-45\n")
    assert_at(err, path, 3, "description", "cannot read value '2001-13-45'", "quote it")


def test_multiple_documents_rejected(tmp_path):
    err, path = profile_error(tmp_path, MINIMAL + "---\nwarmup: 0\n")
    assert_at(err, path, 3, None, "malformed YAML", "single document")


# -- the quality: block --------------------------------------------------------------------------

QUALITY = "models: [synthetic:tiny-llama@Q4_K_M]\n"


def test_quality_block_defaults_as_llama_perplexity(tmp_path):
    profile = load_profile(write(tmp_path, QUALITY + "quality:\n  reference: synthetic:tiny-llama@F16\ntests: [kld]\n"))
    quality = profile.quality
    assert (quality.n_ctx, quality.chunks, quality.text) == (512, 16, None)
    assert quality.reference.synthetic.canonical() == "tiny-llama@F16"
    assert profile.tests[0].kind == "kld"
    with pytest.raises(dataclasses.FrozenInstanceError):
        quality.n_ctx = 1


def test_quality_text_path_is_relative_to_the_profile(tmp_path):
    (tmp_path / "corpus.txt").write_text("some text\n")
    profile = load_profile(write(tmp_path, QUALITY + "quality:\n  text: corpus.txt\ntests: [ppl]\n"))
    assert profile.quality.text == str(tmp_path / "corpus.txt")


def test_ppl_alone_needs_no_reference_and_no_text(tmp_path):
    profile = load_profile(write(tmp_path, QUALITY + "tests: [ppl]\n"))
    assert (profile.quality.reference, profile.quality.text, profile.tests[0].kind) == (None, None, "ppl")


def test_the_llama_bench_engine_takes_ppl_over_a_text(tmp_path):
    (tmp_path / "corpus.txt").write_text("some text\n")
    profile = load_profile(write(tmp_path, QUALITY + "quality:\n  text: corpus.txt\ntests: [ppl]\n"
                                 "engine: {name: llama-bench}\n"))
    assert profile.engine.name == "llama-bench" and profile.tests[0].kind == "ppl"


@pytest.mark.parametrize("text, line, key, fragment", [
    ("quality:\n  n_ctx: 4\ntests: [ppl]\n", 3, "quality.n_ctx", "at least 8"),
    ("quality:\n  chunks: 0\ntests: [ppl]\n", 3, "quality.chunks", "at least 1"),
    ("quality:\n  text: missing.txt\ntests: [ppl]\n", 3, "quality.text", "text file not found"),
    ("quality:\n  refrence: a.gguf\ntests: [ppl]\n", 3, "quality.refrence", "reference"),
    ("tests: [kld]\n", 2, "tests[0]", "kld needs a reference"),
    ("quality:\n  reference: synthetic:tiny-llama@F16\ntests: [kld]\nengine: {name: llama-bench}\n", 4, "tests[0]",
     "engine llama-bench does not run kld: llama-perplexity needs its full-distribution base file"),
    ("tests: [ppl]\nengine: {name: llama-bench}\n", 2, "tests[0]",
     "engine llama-bench scores ppl over a text file only, not over sampled tokens: add quality.text"),
])
def test_quality_block_errors_name_file_line_and_key(tmp_path, text, line, key, fragment):
    err, path = profile_error(tmp_path, QUALITY + text)
    assert_at(err, path, line, key, fragment)
