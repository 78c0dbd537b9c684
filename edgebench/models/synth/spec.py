"""The `synthetic:` model spec: `<preset>[@<QUANT>][?layers=N]`, e.g. `qwen3.5-4b@Q4_K_M?layers=8`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from edgebench.errors import SynthError

QUANTS = ("F16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q3_K_S")
PREFIX = "synthetic:"

_SPEC = re.compile(r"^(?P<preset>[A-Za-z0-9._-]+)(?:@(?P<quant>[A-Za-z0-9_]+))?(?:\?(?P<query>.*))?$")


@dataclass(frozen=True)
class SynthSpec:
    preset: str
    quant: str = "F16"
    layers: int | None = None

    def canonical(self) -> str:
        text = f"{self.preset}@{self.quant}"
        if self.layers is not None:
            text += f"?layers={self.layers}"
        return text

    def file_name(self) -> str:
        suffix = f"-L{self.layers}" if self.layers is not None else ""
        return f"{self.preset}{suffix}-{self.quant}.gguf"

    def __str__(self) -> str:
        return PREFIX + self.canonical()


def parse_synth_spec(text: str) -> SynthSpec:
    """Parse a spec with or without the `synthetic:` prefix; raise SynthError naming what is wrong."""
    from edgebench.models.synth.shapes import PRESETS

    body = text[len(PREFIX):] if text.startswith(PREFIX) else text
    match = _SPEC.match(body.strip())
    if not match:
        raise SynthError(f"cannot parse synthetic spec {text!r}; expected <preset>[@QUANT][?layers=N]")
    preset = match["preset"]
    if preset not in PRESETS:
        raise SynthError(f"unknown synthetic preset {preset!r}; known: {', '.join(sorted(PRESETS))}")
    quant = (match["quant"] or "F16").upper()
    if quant not in QUANTS:
        raise SynthError(f"unknown quant {quant!r} in {text!r}; choose one of {', '.join(QUANTS)}")
    layers = None
    for part in filter(None, (match["query"] or "").split("&")):
        key, _, value = part.partition("=")
        if key != "layers":
            raise SynthError(f"unknown option {key!r} in {text!r}; only 'layers' is supported")
        if not value.isdigit() or int(value) < 1:
            raise SynthError(f"layers must be a positive integer in {text!r}, got {value!r}")
        layers = int(value)
    if layers is not None:
        PRESETS[preset].with_layers(layers)  # says why a depth is refused (too deep, or no attention layer)
    return SynthSpec(preset=preset, quant=quant, layers=layers)
