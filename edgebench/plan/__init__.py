"""Capacity planning: will model M at quant Q and context C fit device D, and how fast will it run?

    gguf_info.py   what a model is (from a GGUF file, or from a synth preset and a quant)
    quants.py      llama.cpp's per-tensor type choice for each quant, and ggml type sizes
    memory.py      the memory model: affine in context, hybrid-aware (KV on attention layers only)
    speed.py       rooflines: tg from bandwidth, pp from compute
    calibrate.py   efficiency factors measured from stored results
    fit.py         devices' budgets, fit / max context / recommendation, the plan rows
    render.py      tables and JSON
"""
