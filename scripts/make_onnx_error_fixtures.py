#!/usr/bin/env python3
"""Models lesioneval must refuse with a clear error: fixtures/onnx/errors/.

Each is a small ONNX file that onnx can serialise but that uses something our
loader does not support (or that is malformed on purpose); `manifest.json`
lists, per file, the phrases the error message must contain (tests/infer_models.rs).
Deterministic bytes. Usage: python3 scripts/make_onnx_error_fixtures.py
"""
import sys
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _venv  # noqa: E402

_venv.ensure(venv=".venv-onnx", requirements="requirements-onnx.txt")

import numpy as np  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from _fixio import ANY_STRING, dump_stable  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "fixtures/onnx/errors"
F32 = TensorProto.FLOAT


def model(name, nodes, inits=(), opset=13, in_shape=(1, 1, 8, 8, 8)):
    g = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", F32, list(in_shape))],
        [helper.make_tensor_value_info("y", F32, None)],
        initializer=list(inits),
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="lesioneval-fixtures")
    m.ir_version = 8
    return m


def w(name, shape):
    return numpy_helper.from_array(np.ones(shape, dtype=np.float32), name=name)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    cases = []

    def add(fname, m, must):
        (OUT / fname).write_bytes(m.SerializeToString())
        cases.append({"file": fname, "must_contain": must})

    add("unsupported_op.onnx", model("e1", [helper.make_node("Erf", ["x"], ["y"], name="erf_1")]),
        ["node 'erf_1' (Erf)", "operator Erf is not supported"])
    add("grouped_conv.onnx",
        model("e2", [helper.make_node("Conv", ["x", "w"], ["y"], name="conv_g", group=2)], [w("w", (2, 1, 3, 3, 3))],
              in_shape=(1, 2, 8, 8, 8)),
        ["node 'conv_g' (Conv)", "attribute group"])
    add("maxpool_ceil.onnx",
        model("e3", [helper.make_node("MaxPool", ["x"], ["y"], name="pool_c", kernel_shape=[2, 2, 2], ceil_mode=1)]),
        ["node 'pool_c' (MaxPool)", "attribute ceil_mode"])
    add("unknown_attribute.onnx", model("e4", [helper.make_node("Relu", ["x"], ["y"], name="relu_x", flavour=3)]),
        ["node 'relu_x' (Relu)", "attribute flavour is not supported"])
    add("computed_shape.onnx",
        model("e5", [helper.make_node("Shape", ["x"], ["s"], name="shape_1"),
                     helper.make_node("Reshape", ["x", "s"], ["y"], name="reshape_1")]),
        ["node 'shape_1' (Shape)", "operator Shape is not supported"])
    ext = w("w", (1, 1, 3, 3, 3))
    ext.ClearField("raw_data")
    ext.data_location = TensorProto.EXTERNAL
    ext.external_data.add(key="location", value="weights.bin")
    add("external_weights.onnx",
        model("e6", [helper.make_node("Conv", ["x", "w"], ["y"], name="conv_e", pads=[1] * 6)], [ext]),
        ["tensor w", "external file"])
    add("truncated.onnx", model("e8", [helper.make_node("Relu", ["x"], ["y"], name="r")]), ["not a readable ONNX model"])
    data = (OUT / "truncated.onnx").read_bytes()
    (OUT / "truncated.onnx").write_bytes(data[: len(data) // 2])
    (OUT / "manifest.json").write_text(dump_stable(cases, strings=ANY_STRING))
    print(f"{len(cases)} error fixtures in {OUT}")


if __name__ == "__main__":
    main()
