"""Shape-faithful random-weight GGUF models, so a model's speed can be measured without its weights."""

from edgebench.models.synth.build import build_synthetic, cache_path, cached_synthetic
from edgebench.models.synth.quantize import quantize
from edgebench.models.synth.shapes import PRESETS, ModelShape
from edgebench.models.synth.spec import QUANTS, SynthSpec, parse_synth_spec
from edgebench.models.synth.writer import WRITER_VERSION, write_gguf

__all__ = [
    "PRESETS", "QUANTS", "WRITER_VERSION", "ModelShape", "SynthSpec", "build_synthetic",
    "cache_path", "cached_synthetic", "parse_synth_spec", "quantize", "write_gguf",
]
