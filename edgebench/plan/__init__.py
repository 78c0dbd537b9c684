"""Capacity planning: will model M at quant Q and context C fit device D, and how fast will it run?
(What a model is comes from edgebench.models.gguf_info.)

    memory.py      the memory model: affine in context, hybrid-aware (KV on attention layers only)
    speed.py       rooflines: tg from bandwidth, pp from compute
    calibrate.py   efficiency factors measured from stored results
    fit.py         devices' budgets, fit / max context / recommendation, the plan rows
    render.py      tables and JSON
"""
