"""edgebench: deploy quantized LLMs to edge devices and benchmark them there."""

__version__ = "0.1.0"
