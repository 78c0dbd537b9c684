"""Plan and inspect output: terminal/markdown tables and JSON."""

from __future__ import annotations

from edgebench.models.gguf_info import ModelInfo, type_bpw
from edgebench.plan.fit import DeviceBudget, PlanCell
from edgebench.plan.memory import MIB, total

GIB = 1 << 30


def size(n: float | None) -> str:
    if n is None:
        return "?"
    return f"{n / GIB:.2f} GiB" if abs(n) >= GIB else f"{n / MIB:.1f} MiB"


def ctx_text(n: int | None) -> str:
    if n is None:
        return "?"
    return f"{n // 1024}K" if n and n % 1024 == 0 else str(n)


def _ts(v: float | None) -> str:
    return "?" if v is None else f"{v:.1f}" if v < 100 else f"{v:.0f}"


# -- inspect -------------------------------------------------------------------------------------

def inspect_rows(info: ModelInfo) -> list[list[str]]:
    kinds = info.layer_kinds
    pattern = "".join("A" if k == "attention" else "R" for k in kinds)
    rows = [
        ["file", info.source],
        ["architecture", info.arch],
        ["name", info.name],
        ["parameters", f"{info.n_params / 1e9:.3f} B ({info.n_params})"],
        ["file type", info.file_type],
        ["size", f"{size(info.file_size)} file, {size(info.weight_bytes)} of tensors" if info.file_size
         else f"{size(info.weight_bytes)} of tensors"],
        ["bits per weight", f"{info.bpw:.2f}"],
        ["layers", f"{info.n_layer}: {info.n_attention_layers} attention, {info.n_recurrent_layers} recurrent"],
        ["layer pattern", pattern + " (A attention, R recurrent)"],
        ["attention", f"{info.n_head} heads, {info.n_head_kv} KV heads, head dim {info.key_length}"],
        ["embedding / FFN", f"{info.n_embd} / {info.n_ff}"],
        ["context length", str(info.context_length)],
        ["vocabulary", str(info.n_vocab)],
        ["tied embeddings", "yes" if info.tied_embeddings else "no"],
    ]
    if info.unrunnable:
        rows.append(["warning", info.unrunnable])
    if info.n_recurrent_layers:
        rows.append(["recurrent state", f"conv kernel {info.ssm_conv_kernel}, inner {info.ssm_inner_size}, "
                                        f"state {info.ssm_state_size}, groups {info.ssm_group_count}"])
    for kind, n_bytes in info.bytes_by_type().items():
        rows.append([f"tensors {kind}", f"{size(n_bytes)} ({type_bpw(kind):.2f} bpw, "
                                        f"{100 * n_bytes / max(info.weight_bytes, 1):.1f}%)"])
    return rows


def inspect_json(info: ModelInfo) -> dict:
    return {
        "file": info.source, "arch": info.arch, "name": info.name, "n_params": info.n_params,
        "file_type": info.file_type, "file_size": info.file_size, "tensor_bytes": info.weight_bytes,
        "bpw": round(info.bpw, 4), "bytes_by_type": info.bytes_by_type(),
        "n_layer": info.n_layer, "n_attention_layers": info.n_attention_layers,
        "n_recurrent_layers": info.n_recurrent_layers, "layer_kinds": list(info.layer_kinds),
        "n_head": info.n_head, "n_head_kv": info.n_head_kv, "head_dim": info.key_length,
        "n_embd": info.n_embd, "n_ff": info.n_ff, "context_length": info.context_length,
        "n_vocab": info.n_vocab, "tied_embeddings": info.tied_embeddings, "unrunnable": info.unrunnable,
        "ssm": {"conv_kernel": info.ssm_conv_kernel, "inner_size": info.ssm_inner_size,
                "state_size": info.ssm_state_size, "group_count": info.ssm_group_count},
    }


# -- plan ----------------------------------------------------------------------------------------

PLAN_HEADER = ["device", "model", "bpw", "ctx", "weights", "KV", "state", "other", "total", "usable",
               "fits", "max ctx", "tg t/s", "tg t/s full", "pp t/s"]


def _item(cell: PlanCell, name: str) -> int:
    item = next(i for i in cell.items if i.name == name)
    return item.at(cell.n_ctx)


def plan_rows(cells: list[PlanCell]) -> list[list[str]]:
    rows = []
    for c in cells:
        weights = _item(c, "weights") + _item(c, "repacked weights")
        kv, state = _item(c, "KV cache"), _item(c, "recurrent state")
        fits = "?" if c.fits is None else ("yes" if c.fits else "no")
        if c.recommended:
            fits += " ★"
        rows.append([c.device, c.model.name, f"{c.model.bpw:.2f}", ctx_text(c.n_ctx), size(weights), size(kv),
                     size(state), size(c.total_bytes - weights - kv - state), size(c.total_bytes),
                     size(c.usable_bytes), fits, "?" if c.max_ctx is None else str(c.max_ctx),
                     _ts(c.tg_ts), _ts(c.tg_ts_full), _ts(c.pp_ts)])
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
        "tg_ts": c.tg_ts, "tg_ts_full_ctx": c.tg_ts_full, "pp512_ts": c.pp_ts,
        "recommended": c.recommended, "notes": c.notes,
    }


def budget_json(b: DeviceBudget) -> dict:
    def fig(f):
        return {"value": f.value, "source": f.source}
    return {"device": b.name, "ram_bytes": fig(b.ram), "reserve_bytes": fig(b.reserve),
            "usable_bytes": b.usable, "effective_bandwidth_bytes_s": fig(b.bandwidth),
            "effective_flops": fig(b.flops), "eta_tg": fig(b.eta_tg), "eta_pp": fig(b.eta_pp),
            "cpu_arch": fig(b.cpu_arch), "cores": fig(b.cores)}
