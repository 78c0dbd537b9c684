"""Cheap checks that a model file is what it claims, before an engine gets a chance to crash on it."""

from __future__ import annotations

import os
import struct

from .protocol import RunnerFailure

GGUF_MAGIC = b"GGUF"
# magic, version, tensor count, metadata count
GGUF_HEADER = struct.Struct("<4sIQQ")


def check_model_file(path):
    if not os.path.isfile(path):
        raise RunnerFailure("model-file", "model file not found on the device: %s" % path)
    with open(path, "rb") as f:
        head = f.read(GGUF_HEADER.size)
    if path.endswith(".gguf") or head.startswith(GGUF_MAGIC):
        _check_gguf_header(path, head, os.path.getsize(path))


def _check_gguf_header(path, head, size):
    if len(head) < GGUF_HEADER.size:
        raise RunnerFailure("model-file", "%s is truncated (%d bytes): not a complete GGUF file" % (path, size))
    magic, version, _tensors, _kv = GGUF_HEADER.unpack(head)
    if magic != GGUF_MAGIC:
        raise RunnerFailure("model-file", "%s is not a GGUF file (magic %r)" % (path, magic))
    if version not in (2, 3):
        raise RunnerFailure("model-file", "%s has unsupported GGUF version %d" % (path, version))
