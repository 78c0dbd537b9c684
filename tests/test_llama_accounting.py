"""The plan's memory items against llama.cpp's own accounting (tests/llama_accounting.py).

Each item within 2% or 8 MiB of what llama.cpp allocates, at two contexts and two KV types. A new
architecture is one more entry in MODELS (a synth spec llama.cpp loads).
"""

from __future__ import annotations

import pytest

from edgebench.models.gguf_info import read_gguf
from edgebench.models.synth.build import cached_synthetic
from edgebench.models.synth.spec import parse_synth_spec
from edgebench.plan.memory import MIB, Runtime, memory_items
from tests.llama_accounting import Setting, accounting, fit_params_host

pytestmark = pytest.mark.llama

MODELS = [
    "tiny-llama@Q8_0",
    "tiny-qwen35@Q8_0",
    "qwen3.5-0.8b@Q4_K_M?layers=8",
    "tiny-gemma3@Q4_K_M",
    "gemma-3-270m@Q4_K_M?layers=6",
    "tiny-qwen3moe@Q4_K_M",
    "tiny-lfm2@Q4_K_M",
    "tiny-deepseek2@Q4_K_M",
]
SETTINGS = [Setting(n, kv) for n in (4096, 32768) for kv in ("f16", "q8_0")] + [Setting(8192, "f16", swa_full=True)]
# plan item -> llama.cpp's figure
ITEMS = {
    "KV cache": "kv_full_mib",
    "KV cache, sliding window": "kv_swa_mib",
    "recurrent state": "recurrent_mib",
    "output buffer": "output_mib",
    "compute buffer": "compute_mib",
}


def within(planned_mib: float, actual_mib: float) -> bool:
    return abs(planned_mib - actual_mib) <= max(0.02 * actual_mib, 8.0)


@pytest.fixture(scope="module", params=MODELS)
def accounted(request, llama_cpp):
    path = cached_synthetic(parse_synth_spec(request.param))
    return read_gguf(path), accounting(path, SETTINGS)


def test_plan_items_match_llama_cpp(accounted):
    info, figures = accounted
    misses = []
    for setting, actual in figures.items():
        runtime = Runtime(kv_type=setting.kv_type, n_ubatch=setting.n_ubatch, swa_full=setting.swa_full,
                          cpu_arch="x86_64")
        items = {i.name: i for i in memory_items(info, runtime)}
        for name, key in ITEMS.items():
            planned = items[name].allocated(setting.n_ctx) / MIB if name in items else 0.0
            if not within(planned, actual[key]):
                misses.append(f"{setting}: {name} planned {planned:.2f} MiB, llama.cpp {actual[key]:.2f} MiB")
        # the weights: llama.cpp maps every tensor (CPU_Mapped) and copies the repackable ones (CPU_REPACK)
        mapped = sum(items[n].allocated(setting.n_ctx) for n in ("weights", "expert weights", "mapped originals")
                     if n in items) / MIB
        repacked = items["repacked weights"].allocated(setting.n_ctx) / MIB
        buffers = actual["model_buffers_mib"]
        for name, planned, key in (("mapped weights", mapped, "CPU_Mapped"), ("repacked", repacked, "CPU_REPACK")):
            if not within(planned, buffers.get(key, 0.0)):
                misses.append(f"{setting}: {name} planned {planned:.2f} MiB, llama.cpp {buffers.get(key, 0.0):.2f} MiB")
    assert not misses, "\n".join(misses)


def test_kv_matches_exactly_where_llama_cpp_is_exact(accounted):
    """KV and recurrent state have exact formulas: no tolerance needed beyond the log's rounding."""
    info, figures = accounted
    for setting, actual in figures.items():
        items = {i.name: i for i in memory_items(info, Runtime(kv_type=setting.kv_type))}
        assert items["KV cache"].allocated(setting.n_ctx) / MIB == pytest.approx(actual["kv_full_mib"], abs=0.01)
        assert items["recurrent state"].allocated(setting.n_ctx) / MIB == pytest.approx(
            actual["recurrent_mib"], abs=0.01)


@pytest.mark.parametrize("spec", MODELS)
@pytest.mark.parametrize("n_ctx, kv", [(4096, "f16"), (32768, "q8_0")])
def test_plan_totals_match_llama_fit_params(llama_fit_params_binary, spec, n_ctx, kv):
    """llama.cpp's own dry run agrees with the plan's items (see fit_params_host)."""
    path = cached_synthetic(parse_synth_spec(spec))
    host = fit_params_host(llama_fit_params_binary, path, n_ctx, kv)
    model, context, compute = host["model_mib"], host["context_mib"], host["compute_mib"]
    items = {i.name: i for i in memory_items(read_gguf(path), Runtime(kv_type=kv, cpu_arch="x86_64"))}

    def planned(*names):
        return sum(items[n].allocated(n_ctx) for n in names if n in items) / MIB

    # the dry run counts repacked weights under CPU_REPACK, not Host; its figures are whole MiB
    for what, mine, theirs in (("weights", planned("weights", "expert weights"), model),
                               ("context", planned("KV cache", "KV cache, sliding window", "recurrent state"), context),
                               ("compute", planned("compute buffer"), compute)):
        assert abs(mine - theirs) <= max(0.02 * theirs, 8.0) + 1, f"{what}: plan {mine:.1f} MiB, llama.cpp {theirs}"
