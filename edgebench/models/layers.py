"""Each layer of a model as llama.cpp sees it: its mixer (full, sliding-window or chunked attention,
a recurrent state, or both), its KV widths, its state size and its FFN (dense or experts).

Built from GGUF metadata and the tensor table with the per-architecture rules of arch_table.py;
the widths follow llama-hparams.cpp (n_embd_k_gqa, n_embd_v_gqa, n_embd_r, n_embd_s).
"""

from __future__ import annotations

from dataclasses import dataclass

from edgebench.models.arch_table import (
    ARCHS,
    ATTN_FULL,
    RECR_ALL,
    RECR_INTERVAL,
    RECR_NEMOTRON_H,
    RECR_NO_KV_HEADS,
    RECR_PARALLEL,
    STATE_RWKV,
    STATE_SHORTCONV,
    ArchRule,
)

# the generic rule for an architecture not in the table: kinds from the tensors each block holds
UNKNOWN_RULE = ArchRule()


@dataclass(frozen=True)
class LayerInfo:
    index: int
    attention: str          # ATTN_FULL / ATTN_SLIDING / ATTN_CHUNKED, "" when the layer has none
    window: int             # the sliding window or chunk, in tokens (0: full)
    recurrent: str          # the recurrent family (mamba2, rwkv7, gated-deltanet, ...), "" when none
    n_head: int
    n_head_kv: int
    n_embd_k_gqa: int       # K elements per token in this layer's cache
    n_embd_v_gqa: int       # V elements per token (0 for MLA: llama.cpp keeps no V cache)
    kv_shared: bool         # reuses an earlier layer's cache (gemma3n): holds none of its own
    r_size: int             # recurrent state elements per sequence (F32): conv / token shift
    s_size: int             #   and the SSM / WKV / delta-rule state
    n_ff: int               # dense FFN width (0 when the layer is MoE only)
    n_expert: int
    n_expert_used: int
    n_expert_shared: int
    n_ff_exp: int
    dense_bytes: int        # this block's tensors other than routed experts
    expert_bytes: int       # this block's routed-expert tensors (*_exps)
    expert_elements: int = 0

    @property
    def has_kv(self) -> bool:
        return bool(self.attention) and not self.kv_shared

    @property
    def kind(self) -> str:
        attention = {"full": "full attention", "sliding": "sliding-window", "chunked": "chunked attention"}
        if self.attention and self.recurrent:
            return f"{attention[self.attention]} + recurrent ({self.recurrent})"
        if self.recurrent:
            return f"recurrent ({self.recurrent})"
        return attention.get(self.attention, "no mixer")

    @property
    def active_fraction(self) -> float:
        """The share of this layer's routed experts one token uses: n_expert_used of n_expert."""
        return self.n_expert_used / self.n_expert if self.n_expert else 0.0

    def expert_bytes_active(self) -> float:
        return self.expert_bytes * self.active_fraction


def describe_layers(arch: str, meta: dict, by_name: dict, n_layer: int) -> tuple[tuple[LayerInfo, ...], bool]:
    """The layers, and whether the architecture is one llama.cpp's rules are known for."""
    rule = ARCHS.get(arch)
    known = rule is not None
    rule = rule or UNKNOWN_RULE

    def get(key, default=None):
        return meta.get(f"{arch}.{key}", default)

    n_embd = int(get("embedding_length") or 0)
    n_head = _per_layer(get("attention.head_count"), n_layer)
    # llama_model_base::load_hparams: head_count_kv defaults to head_count, layer by layer
    raw_kv = get("attention.head_count_kv")
    n_head_kv = n_head if raw_kv is None else _per_layer(raw_kv, n_layer)
    n_ff = _per_layer(get("feed_forward_length"), n_layer)
    head0 = n_head[0] if n_head else 0
    head_k = int(get("attention.key_length") or (n_embd // head0 if head0 else 0))
    head_v = int(get("attention.value_length") or (n_embd // head0 if head0 else 0))
    head_k_swa = int(get("attention.key_length_swa") or head_k)
    head_v_swa = int(get("attention.value_length_swa") or head_v)
    is_mla = bool(get("attention.key_length_mla")) and bool(get("attention.value_length_mla"))

    recurrent = _recurrent_layers(rule, meta, arch, by_name, n_layer, n_head_kv, n_ff, known)
    attention, window = _attention_layers(rule, get, n_layer, recurrent)
    r_size, s_size = _state_sizes(rule, get, n_embd, head0)

    n_expert = int(get("expert_count") or 0)
    used = _per_layer(get("expert_used_count"), n_layer)
    shared = int(get("expert_shared_count") or 0)
    n_ff_exp = _per_layer(get("expert_feed_forward_length"), n_layer)
    blocks = _block_bytes(by_name, n_layer)

    layers = []
    for il in range(n_layer):
        att = attention[il]
        swa = att not in ("", ATTN_FULL)
        dense, experts, expert_elements, has_shexp = blocks[il]
        layer_experts = n_expert if experts else 0
        layers.append(LayerInfo(
            index=il, attention=att, window=window if swa else 0, recurrent=recurrent[il],
            n_head=n_head[il], n_head_kv=n_head_kv[il] if att else 0,
            n_embd_k_gqa=(head_k_swa if swa else head_k) * n_head_kv[il] if att else 0,
            n_embd_v_gqa=0 if is_mla or not att else (head_v_swa if swa else head_v) * n_head_kv[il],
            kv_shared=bool(att) and bool(rule.kv_from_start) and il >= rule.kv_from_start,
            r_size=r_size if recurrent[il] else 0, s_size=s_size if recurrent[il] else 0,
            n_ff=n_ff[il] if not experts else 0, n_expert=layer_experts,
            n_expert_used=used[il] if layer_experts else 0,
            n_expert_shared=(shared or 1) if has_shexp else 0, n_ff_exp=n_ff_exp[il] if layer_experts else 0,
            dense_bytes=dense, expert_bytes=experts, expert_elements=expert_elements))
    return tuple(layers), known


def _recurrent_layers(rule: ArchRule, meta, arch, by_name, n_layer, n_head_kv, n_ff, known) -> list[str]:
    family = rule.family
    if not known:
        # only what the tensors show: a block with SSM tensors and no attention is recurrent
        return ["unknown" if _has_ssm(by_name, il) and not _has_attention(by_name, il) else ""
                for il in range(n_layer)]
    if rule.recurrent in (RECR_ALL, RECR_PARALLEL):
        return [family] * n_layer
    if rule.recurrent == RECR_NO_KV_HEADS:
        return [family if n_head_kv[il] == 0 else "" for il in range(n_layer)]
    if rule.recurrent == RECR_NEMOTRON_H:
        return [family if n_head_kv[il] == 0 and n_ff[il] == 0 else "" for il in range(n_layer)]
    if rule.recurrent == RECR_INTERVAL:
        # qwen35.cpp: the recurrent_layers array, else (i + 1) % full_attention_interval (default 4) != 0
        given = meta.get(f"{arch}.attention.recurrent_layers")
        if isinstance(given, list) and given:
            flags = _per_layer(given, n_layer)
            return [family if flags[il] else "" for il in range(n_layer)]
        interval = int(meta.get(f"{arch}.full_attention_interval") or 4)
        return [family if (il + 1) % interval != 0 else "" for il in range(n_layer)]
    return [""] * n_layer


def _attention_layers(rule: ArchRule, get, n_layer: int, recurrent: list[str]) -> tuple[list[str], int]:
    """Each layer's attention kind and the window, as load_swa_pattern / set_swa_pattern set is_swa."""
    parallel = rule.recurrent == RECR_PARALLEL
    has_attention = [parallel or not recurrent[il] for il in range(n_layer)]
    full = [ATTN_FULL if has_attention[il] else "" for il in range(n_layer)]
    swa = rule.swa
    if swa is None:
        return full, 0
    raw_window = get("attention.sliding_window")
    window = int(raw_window) if raw_window is not None else None
    if not swa.enabled(window, n_layer):
        return full, 0
    n_swa = swa.fixed_window or window or swa.default_window
    if swa.all_attention:
        flags = [True] * n_layer
    else:
        given = get("attention.sliding_window_pattern")
        if isinstance(given, list):
            flags = [bool(v) for v in _per_layer(given, n_layer)]
        elif swa.array_only:
            flags = [False] * n_layer
        else:
            pattern = int(given) if given is not None else swa.pattern
            flags = [_set_swa_pattern(pattern, swa.dense_first, il) for il in range(n_layer)]
    kinds = [(swa.kind if flags[il] else ATTN_FULL) if has_attention[il] else "" for il in range(n_layer)]
    return kinds, n_swa


def _set_swa_pattern(n_pattern: int, dense_first: bool, il: int) -> bool:
    # llama_hparams::set_swa_pattern (llama-hparams.cpp)
    if n_pattern == 0:
        return True
    if dense_first:
        return il % n_pattern != 0
    return il % n_pattern < n_pattern - 1


def _state_sizes(rule: ArchRule, get, n_embd: int, n_head: int) -> tuple[int, int]:
    """llama_hparams::n_embd_r() and n_embd_s() for the architecture's family."""
    if rule.state == STATE_RWKV:
        head_size = int(get("wkv.head_size") or 0)
        return int(get("token_shift_count") or 2) * n_embd, n_embd * head_size
    if rule.state == STATE_SHORTCONV:
        l_cache = int(get("shortconv.l_cache") or 0)
        return n_embd * max(l_cache - 1, 0), 0
    d_conv, d_inner = int(get("ssm.conv_kernel") or 0), int(get("ssm.inner_size") or 0)
    d_state, n_group = int(get("ssm.state_size") or 0), int(get("ssm.group_count") or 0)
    return max(d_conv - 1, 0) * (d_inner + 2 * n_group * d_state), d_state * d_inner


def _block_bytes(by_name: dict, n_layer: int) -> list[tuple[int, int, int, bool]]:
    """Per block: bytes of dense tensors, bytes and elements of routed experts, whether it has shared experts."""
    out = [[0, 0, 0, False] for _ in range(n_layer)]
    for name, t in by_name.items():
        if not name.startswith("blk."):
            continue
        index = name.split(".", 2)[1]
        if not index.isdigit() or int(index) >= n_layer:
            continue
        block = out[int(index)]
        if "_exps" in name:
            block[1] += t.n_bytes
            block[2] += t.n_elements
        else:
            block[0] += t.n_bytes
            block[3] = block[3] or "_shexp" in name
    return [tuple(b) for b in out]


def _has_attention(by_name: dict, il: int) -> bool:
    p = f"blk.{il}."
    return any(p + n in by_name for n in ("attn_k.weight", "attn_qkv.weight", "attn_kv_a_mqa.weight"))


def _has_ssm(by_name: dict, il: int) -> bool:
    p = f"blk.{il}.ssm_"
    return any(name.startswith(p) for name in by_name)


def _per_layer(value, n_layer: int) -> list[int]:
    """A key given once or per layer (llama_model_loader::get_key_or_arr), as one value per layer."""
    if isinstance(value, (list, tuple)):
        values = [int(v) for v in value[:n_layer]]
        return values + [0] * (n_layer - len(values))
    return [int(value or 0)] * n_layer
