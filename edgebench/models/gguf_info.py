"""What a model is, for planning: from a GGUF file's metadata and tensor table, or from a synth preset.

Both paths produce the same `ModelInfo`, so a plan for `--like qwen3.5-4b --quant Q4_K_M` and a
plan for the file `edgebench synth` writes from that spec are computed by the same code.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

from edgebench.errors import ModelFileError, PlanError
from edgebench.models.gguf_quants import bits_per_element, tensor_types, type_bytes
from edgebench.models.layers import LayerInfo, describe_layers

LAYER_ATTENTION, LAYER_RECURRENT = "attention", "recurrent"


@dataclass(frozen=True)
class TensorInfo:
    name: str
    type: str          # ggml type name, e.g. Q4_K
    n_elements: int
    n_bytes: int
    rows: int          # ne1: llama.cpp repacks a tensor only when its row count suits the kernel


@dataclass(frozen=True)
class ModelInfo:
    name: str
    source: str                     # the file, or `preset qwen3.5-4b@Q4_K_M (no file)`
    arch: str
    file_type: str                  # Q4_K_M, ... ("unknown" when the file does not say)
    n_params: int
    weight_bytes: int               # tensor data, what llama.cpp maps or loads
    file_size: int | None
    n_vocab: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    key_length: int
    value_length: int
    context_length: int
    layers: tuple[LayerInfo, ...]
    tied_embeddings: bool
    arch_known: bool = True         # False: llama.cpp's rules for this architecture are not in arch_table
    # recurrent (Gated DeltaNet / Mamba-style) layers
    ssm_conv_kernel: int = 0
    ssm_inner_size: int = 0
    ssm_state_size: int = 0
    ssm_group_count: int = 0
    # MLA (deepseek2-style): the compressed KV width and the heads' decompressed widths
    kv_lora_rank: int = 0
    key_length_mla: int = 0
    value_length_mla: int = 0
    tensors: tuple[TensorInfo, ...] = field(default=(), repr=False)

    @property
    def n_layer(self) -> int:
        return len(self.layers)

    @property
    def layer_kinds(self) -> tuple[str, ...]:
        """Attention or recurrent per layer (a parallel hybrid's layer counts as attention)."""
        return tuple(LAYER_ATTENTION if layer.attention else LAYER_RECURRENT for layer in self.layers)

    @property
    def n_attention_layers(self) -> int:
        return sum(1 for layer in self.layers if layer.attention)

    @property
    def n_recurrent_layers(self) -> int:
        return sum(1 for layer in self.layers if layer.recurrent)

    @property
    def n_swa(self) -> int:
        return max((layer.window for layer in self.layers), default=0)

    @property
    def is_mla(self) -> bool:
        return bool(self.key_length_mla and self.value_length_mla)

    @property
    def n_expert(self) -> int:
        return max((layer.n_expert for layer in self.layers), default=0)

    @property
    def n_expert_used(self) -> int:
        return max((layer.n_expert_used for layer in self.layers), default=0)

    @property
    def n_expert_shared(self) -> int:
        return max((layer.n_expert_shared for layer in self.layers), default=0)

    @property
    def expert_bytes(self) -> int:
        """Routed-expert tensor bytes (what n_cpu_moe keeps on the CPU); the rest is dense."""
        return sum(layer.expert_bytes for layer in self.layers)

    @property
    def active_expert_bytes(self) -> float:
        """Routed-expert bytes one token reads (n_expert_used of n_expert in each MoE layer)."""
        return sum(layer.expert_bytes_active() for layer in self.layers)

    @property
    def active_params(self) -> float:
        """Parameters one token multiplies by: all but the routed experts it does not use."""
        return self.n_params - sum(layer.expert_elements * (1 - layer.active_fraction) for layer in self.layers)

    @property
    def unknown_arch(self) -> str | None:
        """One sentence when llama.cpp's layer rules for this architecture are not known here."""
        if self.arch_known:
            return None
        return (f"unknown architecture {self.arch}: edgebench does not know how llama.cpp lays out its layers, "
                f"so its layer kinds, KV cache and state are guessed from the tensors")

    @property
    def unrunnable(self) -> str | None:
        """Why llama.cpp cannot run this model, when that shows in its layout (None: nothing known)."""
        if self.layer_kinds and not self.n_attention_layers and self.n_recurrent_layers and self.arch == "qwen35":
            return (f"{self.name} has no full-attention layer; llama.cpp aborts on a {self.arch} model without "
                    f"one (make it with at least 4 layers)")
        return None

    @property
    def bpw(self) -> float:
        return self.weight_bytes * 8 / self.n_params if self.n_params else 0.0

    def bytes_by_type(self) -> dict[str, int]:
        totals: Counter[str] = Counter()
        for t in self.tensors:
            totals[t.type] += t.n_bytes
        return dict(totals.most_common())

    def family(self) -> tuple:
        """Models that differ only in quantization: candidates for one recommendation."""
        return (self.arch, self.n_layer, self.n_embd, self.n_ff, self.n_vocab, self.n_params)


# -- from a synth preset -------------------------------------------------------------------------

def info_from_preset(preset: str, quant: str, layers: int | None = None) -> ModelInfo:
    """The model `edgebench synth --like PRESET --quant QUANT [--layers N]` would write."""
    from edgebench.errors import SynthError
    from edgebench.models.synth.shapes import shape_for
    from edgebench.models.synth.spec import parse_synth_spec

    text = f"{preset}@{quant}" + (f"?layers={layers}" if layers is not None else "")
    try:
        spec = parse_synth_spec(text)
    except SynthError as exc:
        raise PlanError(str(exc)) from None
    return info_from_shape(shape_for(spec), spec.quant, source=f"preset {spec.canonical()} (no file)")


def info_from_shape(shape, quant: str, source: str) -> ModelInfo:
    """The same parser as for a file, over the metadata and tensor table synth would write."""
    tensors = tuple(
        TensorInfo(t.name, kind.name, t.n_elements, type_bytes(kind, t.n_elements),
                   t.shape[0] if len(t.shape) > 1 else 1)
        for t, kind in tensor_types(shape, quant))
    meta = {"general.architecture": shape.arch, **shape.gguf_metadata()}
    name = f"{shape.name}@{quant}" + (f"?layers={shape.n_layer}" if shape.n_layer != _preset_layers(shape) else "")
    info = info_from_metadata(meta, tensors, name=name, source=source, file_size=None)
    return replace(info, file_type=quant)


def _preset_layers(shape) -> int:
    from edgebench.models.synth.shapes import PRESETS
    preset = PRESETS.get(shape.name)
    return preset.n_layer if preset else shape.n_layer


# -- from a GGUF file ----------------------------------------------------------------------------

def read_gguf(path: str | os.PathLike[str]) -> ModelInfo:
    """Read a GGUF file's header and tensor table (no tensor data) into a ModelInfo.

    Raises ModelFileError naming the file when it is missing, not GGUF, truncated, or lacks
    what a plan needs.
    """
    import gguf

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    size = path.stat().st_size
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"GGUF" and path.suffix.lower() == ".onnx":
        raise ModelFileError(f"{path} is an ONNX model: plan sizes GGUF models (weights, KV cache, recurrent "
                             f"state); `edgebench inspect {path}` shows an ONNX model's inputs, outputs and "
                             f"weight bytes")
    if magic != b"GGUF":
        raise ModelFileError(f"{path}: not a GGUF file (it starts with {magic!r}, not b'GGUF')")
    try:
        reader = gguf.GGUFReader(path)
    except Exception as exc:  # gguf raises ValueError, IndexError, struct errors on a cut header
        raise ModelFileError(f"{path}: cannot read the GGUF header, the file is truncated or corrupt "
                             f"({type(exc).__name__}: {exc})") from None
    tensors = []
    end = reader.data_offset
    for t in reader.tensors:
        n_bytes = int(t.n_bytes)
        end = max(end, int(t.data_offset) + n_bytes)
        ne = [int(d) for d in t.shape]
        tensors.append(TensorInfo(t.name, t.tensor_type.name, int(t.n_elements), n_bytes,
                                  ne[1] if len(ne) > 1 else 1))
    if end > size:
        raise ModelFileError(f"{path}: truncated: its tensors need {end} bytes but the file has {size}")
    return _info_from_reader(path, size, reader, tuple(tensors))


def _info_from_reader(path: Path, size: int, reader, tensors: tuple[TensorInfo, ...]) -> ModelInfo:
    meta = {}
    for key, fld in reader.fields.items():
        if key.startswith("tokenizer.ggml.") and key not in ("tokenizer.ggml.model",):
            continue  # 250K strings: slow to decode and not needed
        try:
            meta[key] = fld.contents()
        except Exception:  # an odd value type should not stop a plan
            continue
    return info_from_metadata(meta, tensors, name=str(meta.get("general.name") or path.stem), source=str(path),
                              file_size=size)


def info_from_metadata(meta: dict, tensors: tuple[TensorInfo, ...], *, name: str, source: str,
                       file_size: int | None) -> ModelInfo:
    """A model from its GGUF key/values and tensor table: the one parser for files and presets.
    `source` names the file (or preset) in errors."""
    path = source
    arch = meta.get("general.architecture")
    if not isinstance(arch, str):
        raise ModelFileError(f"{path}: GGUF file without general.architecture")

    def get(key, default=None):
        return meta.get(f"{arch}.{key}", default)

    by_name = {t.name: t for t in tensors}
    block_count = int(get("block_count") or 0)
    n_layer = block_count - int(get("nextn_predict_layers") or 0)
    if n_layer <= 0:
        raise ModelFileError(f"{path}: {arch}.block_count is missing; cannot plan for this model")
    n_embd = int(get("embedding_length") or 0)
    n_head = _first(get("attention.head_count")) or 1
    n_head_kv = _max(get("attention.head_count_kv")) or n_head
    key_length = int(get("attention.key_length") or (n_embd // n_head if n_head else 0))
    value_length = int(get("attention.value_length") or (n_embd // n_head if n_head else 0))
    embd = by_name.get("token_embd.weight")
    n_vocab = int(get("vocab_size") or 0)
    if not n_vocab and embd is not None:
        n_vocab = embd.rows
    layers, known = describe_layers(arch, meta, by_name, n_layer)
    file_type = meta.get("general.file_type")
    return ModelInfo(
        name=name, source=source, arch=arch,
        file_type=_file_type_name(file_type), n_params=sum(t.n_elements for t in tensors),
        weight_bytes=sum(t.n_bytes for t in tensors), file_size=file_size, n_vocab=n_vocab, n_embd=n_embd,
        n_ff=_max(get("feed_forward_length")) or 0, n_head=n_head, n_head_kv=n_head_kv,
        key_length=key_length, value_length=value_length,
        context_length=int(get("context_length") or 0), layers=layers, arch_known=known,
        tied_embeddings="output.weight" not in by_name,
        ssm_conv_kernel=int(get("ssm.conv_kernel") or 0), ssm_inner_size=int(get("ssm.inner_size") or 0),
        ssm_state_size=int(get("ssm.state_size") or 0), ssm_group_count=int(get("ssm.group_count") or 0),
        kv_lora_rank=int(get("attention.kv_lora_rank") or 0), key_length_mla=int(get("attention.key_length_mla") or 0),
        value_length_mla=int(get("attention.value_length_mla") or 0), tensors=tensors)


def _file_type_name(value) -> str:
    import gguf
    try:
        name = gguf.LlamaFileType(int(value)).name
    except (TypeError, ValueError):
        return "unknown"
    return name.removeprefix("MOSTLY_").removeprefix("ALL_")


def _first(value) -> int:
    if isinstance(value, list):
        return int(value[0]) if value else 0
    return int(value or 0)


def _max(value) -> int:
    # per-layer arrays (e.g. head_count_kv of some hybrids): the largest layer is the one to budget
    if isinstance(value, list):
        return int(max(value)) if value else 0
    return int(value or 0)


def type_bpw(type_name: str) -> float:
    import gguf
    return bits_per_element(gguf.GGMLQuantizationType[type_name])
