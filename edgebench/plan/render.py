"""Plan and inspect output: terminal/markdown tables and JSON."""

from __future__ import annotations

from edgebench.models.gguf_info import ModelInfo, type_bpw
from edgebench.plan.fit import DeviceBudget, PlanCell
from edgebench.plan.memory import MIB, total
from edgebench.plan.render_calibration import calibration_json

GIB = 1 << 30


def size(n: float | None) -> str:
    if n is None:
        return "?"
    return f"{n / GIB:.2f} GiB" if abs(n) >= GIB else f"{n / MIB:.1f} MiB"


def ctx_text(n: int | None) -> str:
    if n is None:
        return "?"
    return f"{n // 1024}K" if n and n % 1024 == 0 else str(n)


def _ts(v: float | None, between: tuple[float, float] | None = None) -> str:
    if between is not None:
        return f"{_ts(between[0])}–{_ts(between[1])}"
    return "?" if v is None else f"{v:.1f}" if v < 100 else f"{v:.0f}"


# -- inspect -------------------------------------------------------------------------------------

def layer_summary(info: ModelInfo) -> str:
    """`18 = 15 sliding-window (window 512) + 3 full attention [5, 11, 17]`: the kinds, the rarest
    one's layer numbers."""
    groups: dict[str, list[int]] = {}
    for layer in info.layers:
        label = layer.kind + (f" (window {layer.window})" if layer.window else "")
        groups.setdefault(label, []).append(layer.index)
    parts = sorted(groups.items(), key=lambda kv: -len(kv[1]))
    text = f"{info.n_layer} = " + " + ".join(f"{len(ix)} {label}" for label, ix in parts)
    if len(parts) > 1:
        text += f" {parts[-1][1]}"
    shared = [x.index for x in info.layers if x.kv_shared]
    if shared:
        text += f"; layers {shared[0]}-{shared[-1]} reuse earlier layers' KV cache"
    return text


def inspect_rows(info: ModelInfo) -> list[list[str]]:
    rows = [
        ["file", info.source],
        ["architecture", info.arch],
        ["name", info.name],
        ["parameters", f"{info.n_params / 1e9:.3f} B ({info.n_params})"],
        ["file type", info.file_type],
        ["size", f"{size(info.file_size)} file, {size(info.weight_bytes)} of tensors" if info.file_size
         else f"{size(info.weight_bytes)} of tensors"],
        ["bits per weight", f"{info.bpw:.2f}"],
        ["layers", layer_summary(info)],
        ["attention", _attention_text(info)],
        ["embedding / FFN", f"{info.n_embd} / {info.n_ff}"],
        ["context length", str(info.context_length)],
        ["vocabulary", str(info.n_vocab)],
        ["tied embeddings", "yes" if info.tied_embeddings else "no"],
    ]
    if info.unknown_arch:
        rows.insert(2, ["warning", info.unknown_arch])
    if info.unrunnable:
        rows.append(["warning", info.unrunnable])
    if info.n_swa:
        rows.append(["sliding window", f"{info.n_swa} tokens on "
                                       f"{sum(1 for x in info.layers if x.window)} layers"])
    if info.is_mla:
        rows.append(["MLA", f"KV compressed to {info.kv_lora_rank} + rope: cache width "
                            f"{info.layers[0].n_embd_k_gqa} per token and layer (K only); heads "
                            f"{info.key_length_mla} K / {info.value_length_mla} V"])
    if info.expert_bytes:
        rows.append(["experts", f"{info.n_expert} per MoE layer, {info.n_expert_used} used per token, "
                                f"{info.n_expert_shared} shared"])
        rows.append(["expert / dense bytes", f"{size(info.expert_bytes)} routed experts, "
                                             f"{size(info.weight_bytes - info.expert_bytes)} dense; a token "
                                             f"reads {size(info.active_expert_bytes)} of the experts"])
    if info.n_recurrent_layers:
        layer = next(x for x in info.layers if x.recurrent)
        rows.append(["recurrent state", f"{size(_state_bytes(info))} per sequence (F32): r {layer.r_size} + "
                                        f"s {layer.s_size} elements per layer; conv kernel {info.ssm_conv_kernel}, "
                                        f"inner {info.ssm_inner_size}, state {info.ssm_state_size}, "
                                        f"groups {info.ssm_group_count}"])
    for kind, n_bytes in info.bytes_by_type().items():
        rows.append([f"tensors {kind}", f"{size(n_bytes)} ({type_bpw(kind):.2f} bpw, "
                                        f"{100 * n_bytes / max(info.weight_bytes, 1):.1f}%)"])
    return rows


def _attention_text(info: ModelInfo) -> str:
    heads_kv = sorted({x.n_head_kv for x in info.layers if x.attention})
    kv = "/".join(str(h) for h in heads_kv) or "0"
    return f"{info.n_head} heads, {kv} KV heads, head dim {info.key_length}"


def _state_bytes(info: ModelInfo) -> int:
    from edgebench.plan.memory import recurrent_state_bytes
    return recurrent_state_bytes(info)


def inspect_json(info: ModelInfo) -> dict:
    return {
        "file": info.source, "arch": info.arch, "arch_known": info.arch_known, "unknown_arch": info.unknown_arch,
        "name": info.name, "n_params": info.n_params,
        "file_type": info.file_type, "file_size": info.file_size, "tensor_bytes": info.weight_bytes,
        "bpw": round(info.bpw, 4), "bytes_by_type": info.bytes_by_type(),
        "n_layer": info.n_layer, "n_attention_layers": info.n_attention_layers,
        "n_recurrent_layers": info.n_recurrent_layers, "layer_kinds": list(info.layer_kinds),
        "layer_summary": layer_summary(info), "n_swa": info.n_swa,
        "layers": [_layer_json(x) for x in info.layers],
        "n_head": info.n_head, "n_head_kv": info.n_head_kv, "head_dim": info.key_length,
        "n_embd": info.n_embd, "n_ff": info.n_ff, "context_length": info.context_length,
        "n_vocab": info.n_vocab, "tied_embeddings": info.tied_embeddings, "unrunnable": info.unrunnable,
        "ssm": {"conv_kernel": info.ssm_conv_kernel, "inner_size": info.ssm_inner_size,
                "state_size": info.ssm_state_size, "group_count": info.ssm_group_count},
        "recurrent_state_bytes": _state_bytes(info),
        "mla": {"kv_lora_rank": info.kv_lora_rank, "key_length_mla": info.key_length_mla,
                "value_length_mla": info.value_length_mla} if info.is_mla else None,
        "moe": {"n_expert": info.n_expert, "n_expert_used": info.n_expert_used,
                "n_expert_shared": info.n_expert_shared, "expert_bytes": info.expert_bytes,
                "dense_bytes": info.weight_bytes - info.expert_bytes,
                "active_expert_bytes": int(info.active_expert_bytes)} if info.expert_bytes else None,
    }


def _layer_json(x) -> dict:
    return {"index": x.index, "kind": x.kind, "attention": x.attention or None, "window": x.window,
            "recurrent": x.recurrent or None, "n_head": x.n_head, "n_head_kv": x.n_head_kv,
            "n_embd_k_gqa": x.n_embd_k_gqa, "n_embd_v_gqa": x.n_embd_v_gqa, "kv_shared": x.kv_shared,
            "n_embd_r": x.r_size, "n_embd_s": x.s_size, "n_ff": x.n_ff, "n_expert": x.n_expert,
            "n_expert_used": x.n_expert_used, "n_expert_shared": x.n_expert_shared, "n_ff_exp": x.n_ff_exp,
            "dense_bytes": x.dense_bytes, "expert_bytes": x.expert_bytes}


# -- plan ----------------------------------------------------------------------------------------

PLAN_HEADER = ["device", "model", "bpw", "ctx", "weights", "KV", "state", "other", "total", "usable",
               "fits", "max ctx", "tg t/s", "tg t/s full", "pp t/s"]


def _item(cell: PlanCell, *names: str) -> int:
    """The named items' bytes at the cell's context (an item the model lacks counts 0)."""
    return sum(i.at(cell.n_ctx) for i in cell.items if i.name in names)


WEIGHT_ITEMS = ("weights", "expert weights", "repacked weights")
KV_ITEMS = ("KV cache", "KV cache, sliding window")


def plan_rows(cells: list[PlanCell]) -> list[list[str]]:
    rows = []
    for c in cells:
        weights = _item(c, *WEIGHT_ITEMS)
        kv, state = _item(c, *KV_ITEMS), _item(c, "recurrent state")
        fits = "?" if c.fits is None else ("yes" if c.fits else "no")
        if c.recommended:
            fits += " ★"
        rows.append([c.device, c.model.name, f"{c.model.bpw:.2f}", ctx_text(c.n_ctx), size(weights), size(kv),
                     size(state), size(c.total_bytes - weights - kv - state), size(c.total_bytes),
                     size(c.usable_bytes), fits, "?" if c.max_ctx is None else str(c.max_ctx),
                     _ts(c.tg_ts, c.tg_range), _ts(c.tg_ts_full, c.tg_range_full), _ts(c.pp_ts)])
    return rows


def breakdown_rows(cells: list[PlanCell]) -> tuple[list[str], list[list[str]]]:
    """Memory items (rows) by context (columns) for the first device's cells of one model."""
    header = ["item"] + [ctx_text(c.n_ctx) for c in cells] + ["note"]
    rows = []
    for index, item in enumerate(cells[0].items):
        rows.append([item.name] + [size(c.items[index].at(c.n_ctx)) for c in cells] + [item.note])
    rows.append(["total"] + [size(c.total_bytes) for c in cells] + ["what must fit in RAM"])
    rows.append(["peak RSS"] + [size(total(c.items, rss=True).at(c.n_ctx)) for c in cells]
                + ["what the process shows, reclaimable included"])
    return header, rows


def reads_line(cell: PlanCell) -> str:
    """What a generated token reads, against the file: a MoE model reads a fraction of it."""
    info = cell.model
    line = (f"a generated token reads {size(cell.weights_read)} of weights "
            f"({100 * cell.weights_read / max(info.weight_bytes, 1):.0f}% of its {size(info.weight_bytes)} of tensors)")
    if info.expert_bytes:
        line += (f": the dense part plus {info.n_expert_used} of {info.n_expert} experts"
                 + (f" and {info.n_expert_shared} shared" if info.n_expert_shared else ""))
    return line


def budget_lines(budgets: list[DeviceBudget]) -> list[str]:
    lines = []
    for b in budgets:
        bw = "?" if b.bandwidth.value is None else f"{b.bandwidth.value / 1e9:.1f} GB/s"
        fl = "?" if b.flops.value is None else f"{b.flops.value / 1e9:.1f} GFLOP/s"
        eta_tg = "?" if b.eta_tg.value is None else f"{b.eta_tg.value:.2f}"
        eta_pp = "?" if b.eta_pp.value is None else f"{b.eta_pp.value:.2f}"
        cores = "?" if b.cores.value is None else b.cores.value
        lines.append(f"{b.name}: RAM {size(b.ram.value)} ({b.ram.source}), reserve {size(b.reserve.value)} "
                     f"({b.reserve.source}); tg: {bw} effective, eta {eta_tg} ({b.bandwidth.source}); "
                     f"pp: {fl} effective, eta {eta_pp} ({b.flops.source}); CPU {b.cpu_arch.value} "
                     f"({b.cpu_arch.source}), {cores} cores ({b.cores.source})")
    return lines


def gpu_budget_lines(gpus: dict) -> list[str]:
    lines = []
    for name, g in gpus.items():
        bw = "?" if g.bandwidth.value is None else f"{g.bandwidth.value / 1e9:.1f} GB/s"
        lines.append(f"{name} GPU: {'unified memory' if g.unified else 'VRAM'} {size(g.vram.value)} "
                     f"({g.vram.source}), GPU runtime {size(g.runtime.value)} ({g.runtime.source}); "
                     f"tg: {bw} effective ({g.bandwidth.source})")
    return lines


def recommendation_lines(cells: list[PlanCell]) -> list[str]:
    lines = []
    # a device whose RAM is unknown has no fit to recommend by: say so, and how to give the RAM
    unknown_ram = list(dict.fromkeys(c.device for c in cells if c.fits is None))
    groups: dict[tuple, list[PlanCell]] = {}
    for c in cells:
        groups.setdefault((c.model.family(), c.device, c.n_ctx), []).append(c)
    for group in groups.values():
        if len(group) < 2 or group[0].device in unknown_ram:
            continue
        best = next((c for c in group if c.recommended), None)
        head = f"{group[0].device} at {ctx_text(group[0].n_ctx)}"
        if best:
            lines.append(f"{head}: {best.model.name} ({best.model.bpw:.2f} bpw) is the best quant that fits")
        else:
            lines.append(f"{head}: none of {', '.join(c.model.name for c in group)} fits")
    for device in unknown_ram:
        lines.append(f"{device}: whether a model fits is unknown, because its RAM is unknown; give it in the "
                     f"device's file (facts: ram_gb: N), or plan for this machine with -d local, which is probed")
    return lines


def cell_json(c: PlanCell) -> dict:
    return {
        "device": c.device, "model": c.model.name, "source": c.model.source, "file_type": c.model.file_type,
        "bpw": round(c.model.bpw, 4), "n_ctx": c.n_ctx,
        "memory": {i.name: i.at(c.n_ctx) for i in c.items},
        "memory_notes": {i.name: i.note for i in c.items},
        "total_bytes": c.total_bytes, "peak_rss_bytes": total(c.items, rss=True).at(c.n_ctx),
        "usable_bytes": c.usable_bytes, "fits": c.fits, "max_ctx": c.max_ctx,
        "memory_allocated": {i.name: i.allocated(c.n_ctx) for i in c.items},
        "weights_read_per_token": int(c.weights_read),
        "swa_full": c.runtime.swa_full if c.runtime else False,
        "n_cpu_moe": c.runtime.n_cpu_moe if c.runtime else 0,
        "tg_ts": c.tg_ts, "tg_ts_full_ctx": c.tg_ts_full, "pp512_ts": c.pp_ts,
        # where the runs that calibrated the device cannot tell this model's tg: [low, high] instead
        "tg_ts_range": list(c.tg_range) if c.tg_range else None,
        "tg_ts_full_ctx_range": list(c.tg_range_full) if c.tg_range_full else None,
        "recommended": c.recommended, "notes": c.notes,
        "gpu": gpu_json(c) if c.gpu else None,
    }


def budget_json(b: DeviceBudget, gpu=None) -> dict:
    def fig(f):
        return {"value": f.value, "source": f.source}
    out = {"device": b.name, "ram_bytes": fig(b.ram), "reserve_bytes": fig(b.reserve),
           "usable_bytes": b.usable, "effective_bandwidth_bytes_s": fig(b.bandwidth),
           "effective_flops": fig(b.flops), "eta_tg": fig(b.eta_tg), "eta_pp": fig(b.eta_pp),
           "cpu_arch": fig(b.cpu_arch), "cores": fig(b.cores),
           "calibration": calibration_json(b.calibration)}
    if gpu is not None:
        out["gpu"] = {"vram_bytes": fig(gpu.vram), "unified": gpu.unified, "runtime_bytes": fig(gpu.runtime),
                      "effective_bandwidth_bytes_s": fig(gpu.bandwidth), "margin_bytes": gpu.margin}
    return out


# -- GPU offload ---------------------------------------------------------------------------------

GPU_HEADER = ["device", "model", "ctx", "n_gpu_layers", "VRAM", "host RAM", "fits", "most layers that fit",
              "max ctx, all layers", "host share of reads", "tg t/s"]


def gpu_rows(cells: list[PlanCell]) -> list[list[str]]:
    rows = []
    for c in cells:
        g = c.gpu
        every = c.model.n_layer + 1
        most = "none" if g.max_layers is None else f"{g.max_layers}" + (" (all)" if g.max_layers == every else "")
        rows.append([c.device, c.model.name, ctx_text(c.n_ctx),
                     f"{g.n_gpu_layers}" + (" (all)" if g.n_gpu_layers == every else ""),
                     size(g.vram_bytes), size(g.host_bytes), "yes" if g.fits else "no", most,
                     ctx_text(g.max_ctx_all_layers) if g.max_ctx_all_layers else "none",
                     f"{100 * g.host_share:.0f}%", _ts(g.tg_ts)])
    return rows


def gpu_json(c: PlanCell) -> dict:
    g = c.gpu
    return {"n_gpu_layers": g.n_gpu_layers, "vram_bytes": g.vram_bytes, "host_bytes": g.host_bytes,
            "vram": {i.name: i.allocated(c.n_ctx) for i in g.items}, "fits": g.fits,
            "max_gpu_layers": g.max_layers, "max_ctx_all_layers": g.max_ctx_all_layers,
            "host_share_of_reads": g.host_share, "tg_ts": g.tg_ts}
