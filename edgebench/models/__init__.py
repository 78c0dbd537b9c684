"""Model files on the controller: resolve a profile's model reference to a file with a known hash,
read what a model is, and make models.

    resolve.py        a model reference -> a local file (built, if synthetic), its sha256 and what travels with it
    gguf_info.py      what a GGUF model is (layers, sizes, types), from its file or from a synth preset
    gguf_quants.py    which ggml type llama.cpp's quantizer gives each tensor, and ggml type sizes
    onnx_files.py     an ONNX model's structure and its external-data files
    onnx_quantize.py  a dynamic int8 variant of an ONNX model
    synth/            shape-faithful random-weight GGUF models (`synthetic:` references)
"""
