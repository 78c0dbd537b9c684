"""Shape-faithful random-weight GGUF models, so a model's speed can be measured without its weights.

The package imports nothing itself: a plan for `--like PRESET` reads shapes.py alone, without the
writer (numpy, gguf) and the quantizer (llama.cpp).
"""
