"""What an ONNX model file is made of: the external-data files it names, checked on the controller.

Large ONNX models keep their weights in separate files named by the initializers.
They are found here (without loading the weights) so that they are pushed with
the model, and a missing one is reported before anything reaches a device.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from edgebench.errors import ModelFileError


def _onnx():
    try:
        import onnx
    except ImportError as exc:
        raise ModelFileError("reading ONNX models needs the onnx package: pip install 'edgebench[onnx]'") from exc
    return onnx


def load_structure(path: Path):
    """The model's graph without its external weights; a clear error for anything that is not ONNX."""
    onnx = _onnx()
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and onnx's own errors alike
        raise ModelFileError(f"{path} is not a readable ONNX model: {str(exc).strip()[:300] or type(exc).__name__}") \
            from exc


def _tensors(graph):
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            for sub in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                yield from _tensors(sub)


def external_data_files(path: Path) -> tuple[Path, ...]:
    onnx = _onnx()
    model = load_structure(path)
    names = set()
    for tensor in _tensors(model.graph):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            entries = {e.key: e.value for e in tensor.external_data}
            location = entries.get("location", "")
            pure = PurePosixPath(location)
            # a model names files beside it; anything else would push files it has no business reading
            if not location or pure.is_absolute() or ".." in pure.parts or len(pure.parts) != 1:
                raise ModelFileError(f"{path}: tensor {tensor.name!r} names external data {location!r}; only a file "
                                     f"in the model's own directory is accepted")
            names.add(location)
    files = tuple(path.parent / name for name in sorted(names))
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise ModelFileError(f"{path}: external-data file {', '.join(missing)} is missing (it must sit beside the "
                             f"model)")
    return files


def _dims(value_info) -> list:
    shape = value_info.type.tensor_type.shape
    return [d.dim_param or (d.dim_value if d.HasField("dim_value") else "?") for d in shape.dim]


def describe(path: Path) -> dict:
    """`edgebench inspect` for ONNX: signature, opsets, weight bytes by type, external data."""
    onnx = _onnx()
    model = load_structure(path)
    graph = model.graph
    by_type: dict[str, int] = {}
    params = 0
    for tensor in graph.initializer:
        count = 1
        for d in tensor.dims:
            count *= d
        params += count
        name = onnx.TensorProto.DataType.Name(tensor.data_type).lower()
        size = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize * count
        by_type[name] = by_type.get(name, 0) + size
    weights = {i.name for i in graph.initializer}

    def signature(items):
        return [{"name": v.name, "type": onnx.TensorProto.DataType.Name(v.type.tensor_type.elem_type).lower(),
                 "dims": _dims(v)} for v in items if v.name not in weights]
    external = external_data_files(path)
    names = {i["name"] for i in signature(graph.input)}
    return {"file": str(path), "format": "onnx", "ir_version": model.ir_version,
            "producer": f"{model.producer_name} {model.producer_version}".strip(),
            "opsets": {o.domain or "ai.onnx": o.version for o in model.opset_import},
            "inputs": signature(graph.input), "outputs": signature(graph.output),
            "kind": "decoder LLM (past_key_values)" if "input_ids" in names and any(
                n.startswith("past_key_values") for n in names) else "generic",
            "nodes": len(graph.node), "params": params, "initializer_bytes": by_type,
            "external_data": [{"file": f.name, "bytes": f.stat().st_size} for f in external],
            "file_bytes": path.stat().st_size + sum(f.stat().st_size for f in external)}
