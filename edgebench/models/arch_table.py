"""What llama.cpp knows about each architecture that the GGUF metadata alone does not say.

One table keyed by `general.architecture`, read from the vendored llama.cpp (llama-cpp-python
0.3.36): src/models/<arch>.cpp `load_arch_hparams` (sliding-window defaults, which layers are
recurrent), src/llama-arch.cpp `llm_arch_is_recurrent` / `llm_arch_is_hybrid`, and
src/llama-model.cpp `create_memory`. An architecture missing here is reported as unknown, never
assumed to be plain attention.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

ATTN_FULL, ATTN_SLIDING, ATTN_CHUNKED = "full", "sliding", "chunked"

# how a recurrent layer's state is sized (llama-hparams.cpp n_embd_r / n_embd_s)
STATE_SSM, STATE_RWKV, STATE_SHORTCONV = "ssm", "rwkv", "shortconv"

# which layers of a recurrent or hybrid architecture are recurrent
RECR_ALL = "all"                      # llm_arch_is_recurrent: every layer
RECR_NO_KV_HEADS = "no_kv_heads"      # is_recr = head_count_kv[il] == 0 (lfm2, jamba, granite-hybrid, plamo2)
RECR_NEMOTRON_H = "nemotron_h"        # head_count_kv[il] == 0 and feed_forward_length[il] == 0
RECR_INTERVAL = "interval"            # recurrent_layers array, else (il + 1) % full_attention_interval != 0
RECR_PARALLEL = "parallel"            # falcon-h1: every layer has both attention and an SSM


@dataclass(frozen=True)
class SwaRule:
    """llama_model_base::load_swa_pattern(ml, pattern, dense_first) as an architecture calls it."""

    pattern: int = 0             # n_pattern default; 0 with `array_only`: the GGUF must give the array
    dense_first: bool = False    # True: layer il is full when il % pattern == 0; else the last of each group
    default_window: int = 0      # n_swa when <arch>.attention.sliding_window is absent
    kind: str = ATTN_SLIDING
    # when the architecture turns SWA on: given (window from the file or None, n_layer)
    enabled: Callable[[Optional[int], int], bool] = lambda window, n_layer: True
    array_only: bool = False
    fixed_window: int = 0        # llama.cpp overrides the file's window with this (llama4, smallthinker)
    all_attention: bool = False  # lfm2: every non-recurrent layer is SWA


@dataclass(frozen=True)
class ArchRule:
    swa: SwaRule | None = None
    recurrent: str = ""          # RECR_* rule, "" for attention-only architectures
    state: str = STATE_SSM       # how the recurrent state is sized
    family: str = ""             # the recurrent layer's name in inspect: mamba2, rwkv7, gated-deltanet, ...
    kv_from_start: int = 0       # gemma3n: only the first N layers own a KV cache, the rest reuse it


def _if_window(window, n_layer):
    return bool(window)


def _unless_zero(window, n_layer):
    return window is None or window != 0


_ATTENTION_ONLY = (
    "llama", "llama-embed", "deci", "falcon", "grok", "gpt2", "gptj", "gptneox", "mpt", "baichuan", "starcoder",
    "refact", "bloom", "stablelm", "qwen", "qwen2", "qwen2moe", "qwen2vl", "qwen3", "qwen3moe", "qwen3vl",
    "qwen3vlmoe", "phi2", "phi3", "phimoe", "plamo", "codeshell", "orion", "internlm2", "minicpm", "minicpm3",
    "gemma", "starcoder2", "xverse", "command-r", "dbrx", "olmo", "olmoe", "openelm", "arctic", "deepseek",
    "deepseek2", "chatglm", "glm4", "glm4moe", "bitnet", "jais", "jais2", "nemotron", "exaone", "granite",
    "granitemoe", "chameleon", "plm", "bailingmoe", "bailingmoe2", "dots1", "arcee", "ernie4_5", "ernie4_5-moe",
    "hunyuan-moe", "hunyuan-dense", "smollm3", "seed_oss", "grovemoe", "apertus", "minimax-m2", "mistral3",
    "mistral4", "maincoder", "pangu-embedded", "talkie",
)

_STANDARD_4 = SwaRule(pattern=4)

ARCHS: dict[str, ArchRule] = {
    **{name: ArchRule() for name in _ATTENTION_ONLY},
    # phi3.cpp: a sliding_window key is read and then ignored ("Phi SWA is currently disabled")
    "gemma2": ArchRule(swa=SwaRule(pattern=2, default_window=4096)),           # gemma2.cpp: n_swa = 4096, pattern 2
    "gemma3": ArchRule(swa=SwaRule(pattern=6, enabled=_if_window)),            # gemma3.cpp: il % 6 < 5 when n_swa > 0
    "gemma3n": ArchRule(swa=SwaRule(pattern=5), kv_from_start=20),            # gemma3n.cpp: n_layer_kv_from_start = 20
    "cohere2": ArchRule(swa=_STANDARD_4),                                      # cohere2.cpp: pattern 4
    "cohere2moe": ArchRule(swa=SwaRule(pattern=4, dense_first=True)),
    "gpt-oss": ArchRule(swa=SwaRule(pattern=2)),                               # openai-moe.cpp: pattern 2
    "llama4": ArchRule(swa=SwaRule(pattern=4, kind=ATTN_CHUNKED, fixed_window=8192,
                                   enabled=_unless_zero)),                     # llama4.cpp: chunked 8192, 3:1
    "exaone4": ArchRule(swa=SwaRule(pattern=4, default_window=4096,
                                    enabled=lambda window, n_layer: n_layer == 64)),  # exaone4.cpp: the 32B only
    "exaone-moe": ArchRule(swa=SwaRule(pattern=4, default_window=128)),
    "afmoe": ArchRule(swa=SwaRule(pattern=4, enabled=_if_window)),
    "olmo2": ArchRule(swa=SwaRule(pattern=4, enabled=_if_window)),
    "mellum": ArchRule(swa=SwaRule(pattern=4, enabled=_if_window)),
    "muse-glimmer": ArchRule(swa=_STANDARD_4),
    "plamo3": ArchRule(swa=SwaRule(pattern=8, enabled=_if_window)),
    "smallthinker": ArchRule(swa=SwaRule(pattern=4, dense_first=True, fixed_window=4096, enabled=_if_window)),
    "laguna": ArchRule(swa=SwaRule(pattern=4, dense_first=True, enabled=_if_window)),
    "gemma4": ArchRule(swa=SwaRule(array_only=True)),
    "granite_swa": ArchRule(swa=SwaRule(array_only=True)),
    "mimo2": ArchRule(swa=SwaRule(array_only=True)),
    "step35": ArchRule(swa=SwaRule(array_only=True)),
    "maple": ArchRule(swa=SwaRule(array_only=True)),
    "spark2_5": ArchRule(swa=SwaRule(array_only=True)),
    "dots3note": ArchRule(swa=SwaRule(array_only=True)),
    # recurrent (llm_arch_is_recurrent)
    "mamba": ArchRule(recurrent=RECR_ALL, family="mamba"),
    "mamba2": ArchRule(recurrent=RECR_ALL, family="mamba2"),
    "rwkv6": ArchRule(recurrent=RECR_ALL, state=STATE_RWKV, family="rwkv6"),
    "rwkv6qwen2": ArchRule(recurrent=RECR_ALL, state=STATE_RWKV, family="rwkv6"),
    "rwkv7": ArchRule(recurrent=RECR_ALL, state=STATE_RWKV, family="rwkv7"),
    "arwkv7": ArchRule(recurrent=RECR_ALL, state=STATE_RWKV, family="rwkv7"),
    # hybrids (llm_arch_is_hybrid)
    "jamba": ArchRule(recurrent=RECR_NO_KV_HEADS, family="mamba"),
    "falcon-h1": ArchRule(recurrent=RECR_PARALLEL, family="mamba2"),
    "plamo2": ArchRule(recurrent=RECR_NO_KV_HEADS, family="mamba2"),
    "granitehybrid": ArchRule(recurrent=RECR_NO_KV_HEADS, family="mamba2"),
    "nemotron_h": ArchRule(recurrent=RECR_NEMOTRON_H, family="mamba2"),
    "nemotron_h_moe": ArchRule(recurrent=RECR_NEMOTRON_H, family="mamba2"),
    # lfm2.cpp: with a sliding_window > 0 every attention layer is SWA
    "lfm2": ArchRule(swa=SwaRule(all_attention=True, enabled=_if_window), recurrent=RECR_NO_KV_HEADS,
                     state=STATE_SHORTCONV, family="lfm2 short conv"),
    # lfm2moe.cpp sets no sliding window
    "lfm2moe": ArchRule(recurrent=RECR_NO_KV_HEADS, state=STATE_SHORTCONV, family="lfm2 short conv"),
    "qwen3next": ArchRule(recurrent=RECR_INTERVAL, family="gated-deltanet"),
    "qwen35": ArchRule(recurrent=RECR_INTERVAL, family="gated-deltanet"),
    "qwen35moe": ArchRule(recurrent=RECR_INTERVAL, family="gated-deltanet"),
}
