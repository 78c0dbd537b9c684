"""Real tiny ONNX models, built with the `onnx` package for the tests and benchmark scripts.

- `mlp`: a two-layer perceptron with a dynamic batch dimension (a generic model).
- `decoder`: a small transformer-like decoder in the optimum / ORT-GenAI layout: `input_ids`,
  `attention_mask`, `past_key_values.N.key|value` in, `logits` and `present.N.key|value` out. Each
  layer appends its new keys and values to the past and attends over all of them, so a step costs
  more as the context grows, as in a real decoder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _weight(name: str, shape, rng) -> onnx.TensorProto:
    return numpy_helper.from_array((rng.standard_normal(shape) * 0.05).astype(np.float32), name)


def _save(model: onnx.ModelProto, path: Path, external_data: bool) -> Path:
    onnx.checker.check_model(model)
    if external_data:
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=path.name + ".data", size_threshold=1024)
    else:
        onnx.save_model(model, str(path))
    return path


def mlp(path: Path, features: int = 64, hidden: int = 256, classes: int = 10, external_data: bool = False) -> Path:
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Add", ["h", "b1"], ["hb"]),
             helper.make_node("Relu", ["hb"], ["r"]), helper.make_node("MatMul", ["r", "w2"], ["y"])]
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", classes])],
        [_weight("w1", (features, hidden), rng), _weight("b1", (hidden,), rng), _weight("w2", (hidden, classes), rng)])
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]), path, external_data)


def decoder(path: Path, layers: int = 2, heads: int = 2, head_dim: int = 16, vocab: int = 64,
            external_data: bool = False) -> Path:
    rng = np.random.default_rng(1)
    hidden = heads * head_dim
    inits = [_weight("embed", (vocab, hidden), rng), _weight("lm_head", (hidden, vocab), rng),
             numpy_helper.from_array(np.array([0, 0, heads, head_dim], dtype=np.int64), "split_heads"),
             numpy_helper.from_array(np.array([0, 0, hidden], dtype=np.int64), "merge_heads"),
             numpy_helper.from_array(np.array(head_dim ** -0.5, dtype=np.float32), "scale")]
    nodes = [helper.make_node("Gather", ["embed", "input_ids"], ["h0"])]
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
              helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "total"])]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "seq", vocab])]
    h = "h0"
    for i in range(layers):
        inits += [_weight(f"wq{i}", (hidden, hidden), rng), _weight(f"wk{i}", (hidden, hidden), rng),
                  _weight(f"wv{i}", (hidden, hidden), rng), _weight(f"wo{i}", (hidden, hidden), rng)]
        for kind in ("q", "k", "v"):
            nodes += [helper.make_node("MatMul", [h, f"w{kind}{i}"], [f"{kind}{i}_flat"]),
                      helper.make_node("Reshape", [f"{kind}{i}_flat", "split_heads"], [f"{kind}{i}_split"]),
                      helper.make_node("Transpose", [f"{kind}{i}_split"], [f"{kind}{i}_new"], perm=[0, 2, 1, 3])]
        past_k, past_v = f"past_key_values.{i}.key", f"past_key_values.{i}.value"
        present_k, present_v = f"present.{i}.key", f"present.{i}.value"
        nodes += [helper.make_node("Concat", [past_k, f"k{i}_new"], [present_k], axis=2),
                  helper.make_node("Concat", [past_v, f"v{i}_new"], [present_v], axis=2),
                  helper.make_node("Transpose", [present_k], [f"kt{i}"], perm=[0, 1, 3, 2]),
                  helper.make_node("MatMul", [f"q{i}_new", f"kt{i}"], [f"scores{i}"]),
                  helper.make_node("Mul", [f"scores{i}", "scale"], [f"scaled{i}"]),
                  helper.make_node("Softmax", [f"scaled{i}"], [f"attn{i}"], axis=-1),
                  helper.make_node("MatMul", [f"attn{i}", present_v], [f"ctx{i}"]),
                  helper.make_node("Transpose", [f"ctx{i}"], [f"ctx{i}_t"], perm=[0, 2, 1, 3]),
                  helper.make_node("Reshape", [f"ctx{i}_t", "merge_heads"], [f"ctx{i}_m"]),
                  helper.make_node("MatMul", [f"ctx{i}_m", f"wo{i}"], [f"o{i}"]),
                  helper.make_node("Add", [h, f"o{i}"], [f"h{i + 1}"])]
        cache = ["batch", heads, "past", head_dim]
        inputs += [helper.make_tensor_value_info(past_k, TensorProto.FLOAT, cache),
                   helper.make_tensor_value_info(past_v, TensorProto.FLOAT, cache)]
        grown = ["batch", heads, "total", head_dim]
        outputs += [helper.make_tensor_value_info(present_k, TensorProto.FLOAT, grown),
                    helper.make_tensor_value_info(present_v, TensorProto.FLOAT, grown)]
        h = f"h{i + 1}"
    nodes.append(helper.make_node("MatMul", [h, "lm_head"], ["logits"]))
    graph = helper.make_graph(nodes, "tiny-decoder", inputs, outputs, inits)
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]), path, external_data)
