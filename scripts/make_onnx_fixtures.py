#!/usr/bin/env python3
"""ONNX inference reference fixtures (onnxruntime as the oracle).

Writes
  fixtures/onnx/ops/     one tiny model per operator case + inputs (.inN.npy) and the
                         onnxruntime output (.out.npy); manifest.json lists them.
  fixtures/onnx/models/  two random-weight 3-D U-Nets (a tf2onnx-style Keras U-Net in
                         NDHWC and an nnU-Net-like NCDHW net with dynamic spatial dims),
                         each with a batch-2 single-patch reference.
  fixtures/onnx/sw/      sliding-window inference references (numpy re-implementation of
                         MONAI's `sliding_window_inference`, plus nnU-Net window placement),
                         images as .nii.gz and expected foreground probabilities as .npy.

onnxruntime runs on the CPU execution provider with graph optimisations disabled and one
thread, so outputs are reproducible.  All random numbers come from seeded numpy
Generators and the models have fixed producer fields, so a re-run writes byte-identical
files.  Run: python3 scripts/make_onnx_fixtures.py
"""
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # keep scripts/ free of __pycache__
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _venv  # noqa: E402

if __name__ == "__main__":
    _venv.ensure(venv=".venv-onnx", requirements="requirements-onnx.txt")

import math  # noqa: E402
import shutil  # noqa: E402

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from _fixio import ANY_STRING, dump_stable, save_nifti  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fixtures" / "onnx"
OPS = OUT / "ops"
MODELS = OUT / "models"
SW = OUT / "sw"

IR_VERSION = 8
PRODUCER = "lesioneval-make_onnx_fixtures"
PRODUCER_VERSION = "1"
F32 = TensorProto.FLOAT


# ----------------------------------------------------------------------------- helpers


def f32(a):
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32))


def init(name, arr, dtype=None):
    arr = np.asarray(arr) if dtype is None else np.asarray(arr, dtype=dtype)
    return numpy_helper.from_array(np.ascontiguousarray(arr), name=name)


def vinfo(name, shape):
    return helper.make_tensor_value_info(name, F32, list(shape) if shape is not None else None)


def make_model(name, nodes, inputs, outputs, inits, opset=13):
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=inits)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset)],
        producer_name=PRODUCER,
        producer_version=PRODUCER_VERSION,
    )
    model.ir_version = IR_VERSION
    if any(not o.type.tensor_type.HasField("shape") for o in model.graph.output):
        # fill in graph output shapes from ONNX shape inference (intermediates stay untyped)
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        for o, io in zip(model.graph.output, inferred.graph.output):
            if not o.type.tensor_type.HasField("shape"):
                o.CopyFrom(io)
    onnx.checker.check_model(model, full_check=True)
    return model


def session(model):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def run1(sess, feeds):
    out = sess.run(None, feeds)
    assert len(out) == 1
    return f32(out[0])


def save_npy(path, arr):
    arr = np.asarray(arr)
    assert arr.dtype == np.float32 and arr.dtype.byteorder in ("=", "<", "|")
    np.save(path, np.ascontiguousarray(arr.astype("<f4")), allow_pickle=False)


def save_model(path, model):
    Path(path).write_bytes(model.SerializeToString())


def he(rng, shape, fan_in):
    return f32(rng.normal(0.0, math.sqrt(2.0 / fan_in), size=shape))


def small(rng, shape, sd=0.05):
    return f32(rng.normal(0.0, sd, size=shape))


# ----------------------------------------------------------------------------- 1. single ops


class OpCases:
    def __init__(self, seed=20240601):
        self.rng = np.random.default_rng(seed)
        self.manifest = []

    def x(self, shape, lo=-2.0, hi=2.0):
        return f32(self.rng.uniform(lo, hi, size=shape))

    def w(self, shape):
        fan_in = int(np.prod(shape[1:]))
        return he(self.rng, shape, fan_in)

    def b(self, n):
        return f32(self.rng.normal(0.0, 0.3, size=(n,)))

    def add(self, case, op, nodes, inputs, inits, out_shape=None, opset=13, out_name="y", note=None):
        """inputs: list of (name, array)."""
        model = make_model(
            case,
            nodes,
            [vinfo(n, a.shape) for n, a in inputs],
            [vinfo(out_name, out_shape)],
            inits,
            opset=opset,
        )
        sess = session(model)
        y = run1(sess, {n: a for n, a in inputs})
        if out_shape is not None:
            assert list(y.shape) == list(out_shape), (case, y.shape, out_shape)
        assert np.all(np.isfinite(y)), case
        save_model(OPS / f"{case}.onnx", model)
        files = []
        for i, (_, a) in enumerate(inputs):
            fn = f"{case}.in{i}.npy"
            save_npy(OPS / fn, a)
            files.append(fn)
        save_npy(OPS / f"{case}.out.npy", y)
        entry = {
            "case": case,
            "model": f"{case}.onnx",
            "inputs": files,
            "output": f"{case}.out.npy",
            "op": op,
            "opset": opset,
            "output_shape": [int(s) for s in y.shape],
        }
        if note:
            entry["note"] = note
        self.manifest.append(entry)
        return y

    # --- convolutions
    def conv(self, case, xshape, cout, kernel, out_shape, bias=True, op="Conv", **attrs):
        cin = xshape[1]
        X = self.x(xshape)
        W = self.w((cout, cin, *kernel))
        inits = [init("W", W)]
        ins = ["x", "W"]
        if bias:
            inits.append(init("B", self.b(cout)))
            ins.append("B")
        node = helper.make_node("Conv", ins, ["y"], kernel_shape=list(kernel), **attrs)
        self.add(case, op, [node], [("x", X)], inits, out_shape)

    def convt(self, case, xshape, cout, kernel, out_shape, bias=True, **attrs):
        cin = xshape[1]
        X = self.x(xshape)
        # fan_in = products summed into one output voxel = cin * prod(kernel / stride)
        strides = attrs.get("strides", [1] * len(kernel))
        W = he(self.rng, (cin, cout, *kernel), cin * np.prod(kernel) / np.prod(strides))
        inits = [init("W", W)]
        ins = ["x", "W"]
        if bias:
            inits.append(init("B", self.b(cout)))
            ins.append("B")
        node = helper.make_node("ConvTranspose", ins, ["y"], kernel_shape=list(kernel), **attrs)
        self.add(case, "ConvTranspose", [node], [("x", X)], inits, out_shape)

    def bn_params(self, c, prefix=""):
        r = self.rng
        return [
            init(prefix + "scale", f32(r.uniform(0.5, 1.5, size=c))),
            init(prefix + "bias", f32(r.normal(0.0, 0.5, size=c))),
            init(prefix + "mean", f32(r.normal(0.0, 0.5, size=c))),
            init(prefix + "var", f32(r.uniform(0.3, 2.0, size=c))),
        ]

    def unary(self, case, op, xshape, lo=-3.0, hi=3.0, inits=(), extra_inputs=(), **attrs):
        X = self.x(xshape, lo, hi)
        node = helper.make_node(op, ["x", *extra_inputs], ["y"], **attrs)
        return self.add(case, op, [node], [("x", X)], list(inits), None)

    def build(self):
        S = (1, 3, 7, 6, 5)
        S2 = (1, 3, 9, 8, 7)
        # Conv
        self.conv("conv3d_basic", S, 4, (3, 3, 3), [1, 4, 7, 6, 5], pads=[1] * 6)
        self.conv("conv3d_stride2_nopad", S2, 4, (3, 3, 3), [1, 4, 4, 3, 3], bias=False, strides=[2, 2, 2])
        self.conv("conv3d_dilation2", S2, 4, (3, 3, 3), [1, 4, 9, 8, 7], dilations=[2, 2, 2], pads=[2] * 6)
        self.conv("conv3d_asym_pads", S, 4, (3, 2, 3), [1, 4, 6, 6, 6], pads=[0, 1, 2, 1, 0, 1])
        self.conv("conv3d_same_upper", S, 4, (3, 3, 3), [1, 4, 4, 3, 3], auto_pad="SAME_UPPER", strides=[2, 2, 2])
        self.conv("conv3d_same_lower", S, 4, (3, 3, 3), [1, 4, 4, 3, 3], auto_pad="SAME_LOWER", strides=[2, 2, 2])
        self.conv("conv3d_valid", S, 4, (3, 3, 3), [1, 4, 5, 4, 3], auto_pad="VALID")
        self.conv("conv3d_1x1", S, 4, (1, 1, 1), [1, 4, 7, 6, 5])
        self.conv("conv3d_batch2", (2, 3, 7, 6, 5), 4, (3, 3, 3), [2, 4, 7, 6, 5], pads=[1] * 6)
        self.conv("conv2d_basic", (1, 3, 9, 7), 4, (3, 3), [1, 4, 9, 7], pads=[1] * 4, strides=[1, 1])
        self.conv("conv2d_stride2", (1, 3, 9, 8), 4, (3, 3), [1, 4, 5, 4], pads=[1] * 4, strides=[2, 2])
        # ConvTranspose
        T = (1, 4, 4, 3, 5)
        self.convt("convtranspose3d_k2s2", T, 3, (2, 2, 2), [1, 3, 8, 6, 10], strides=[2, 2, 2])
        self.convt(
            "convtranspose3d_k3s2_pads",
            T,
            3,
            (3, 3, 3),
            [1, 3, 8, 6, 10],
            strides=[2, 2, 2],
            pads=[1] * 6,
            output_padding=[1, 1, 1],
        )
        self.convt("convtranspose3d_k3s1", T, 3, (3, 3, 3), [1, 3, 4, 3, 5], strides=[1, 1, 1], pads=[1] * 6)
        # BatchNormalization (inference form, opset 13 = BatchNormalization-9)
        X = self.x(S)
        bn = self.bn_params(3)
        node = helper.make_node(
            "BatchNormalization", ["x", "scale", "bias", "mean", "var"], ["y"], epsilon=1e-3
        )
        self.add("batchnorm", "BatchNormalization", [node], [("x", X)], bn, list(S))
        X = self.x(S)
        W = self.w((4, 3, 3, 3, 3))
        conv = helper.make_node("Conv", ["x", "W", "B"], ["c"], kernel_shape=[3, 3, 3], pads=[1] * 6)
        bn = self.bn_params(4, "bn_")
        bnn = helper.make_node(
            "BatchNormalization", ["c", "bn_scale", "bn_bias", "bn_mean", "bn_var"], ["y"], epsilon=1e-3
        )
        self.add(
            "conv_batchnorm",
            "BatchNormalization",
            [conv, bnn],
            [("x", X)],
            [init("W", W), init("B", self.b(4)), *bn],
            [1, 4, 7, 6, 5],
            note="Conv followed by BatchNormalization (epsilon 1e-3); reference is the unfused graph",
        )
        # InstanceNormalization: per-channel offsets so the normalisation matters
        X = self.x(S) * f32([0.5, 2.0, 4.0]).reshape(1, 3, 1, 1, 1) + f32([3.0, -1.0, 0.5]).reshape(1, 3, 1, 1, 1)
        X = f32(X)
        node = helper.make_node("InstanceNormalization", ["x", "scale", "bias"], ["y"], epsilon=1e-5)
        inits = [init("scale", f32(self.rng.uniform(0.5, 1.5, 3))), init("bias", f32(self.rng.normal(0, 0.5, 3)))]
        self.add("instancenorm", "InstanceNormalization", [node], [("x", X)], inits, list(S))
        # activations
        self.unary("relu", "Relu", S)
        self.unary("leakyrelu", "LeakyRelu", S, alpha=0.01)
        self.unary("leakyrelu_alpha02", "LeakyRelu", S, alpha=0.2)
        slope = init("slope", f32(self.rng.uniform(0.05, 0.5, size=(3, 1, 1, 1))))
        self.unary("prelu", "PRelu", S, inits=[slope], extra_inputs=["slope"])
        self.unary("sigmoid", "Sigmoid", S, lo=-20.0, hi=20.0)
        self.unary("softmax_axis1", "Softmax", S, lo=-5.0, hi=5.0, axis=1)
        self.unary("softmax_axis_last", "Softmax", (1, 7, 6, 5, 3), lo=-5.0, hi=5.0, axis=-1)
        # pooling
        self.unary("maxpool3d", "MaxPool", S, kernel_shape=[2, 2, 2], strides=[2, 2, 2])
        self.unary("maxpool3d_k3s1p1", "MaxPool", S, kernel_shape=[3, 3, 3], strides=[1, 1, 1], pads=[1] * 6)
        self.unary("averagepool3d", "AveragePool", S, kernel_shape=[2, 2, 2], strides=[2, 2, 2])
        self.unary(
            "averagepool3d_k3s1p1_exclude",
            "AveragePool",
            S,
            kernel_shape=[3, 3, 3],
            strides=[1, 1, 1],
            pads=[1] * 6,
            count_include_pad=0,
        )
        self.unary(
            "averagepool3d_k3s1p1_include",
            "AveragePool",
            S,
            kernel_shape=[3, 3, 3],
            strides=[1, 1, 1],
            pads=[1] * 6,
            count_include_pad=1,
        )
        # Resize (opset 13: inputs X, roi, scales, sizes)
        R = (1, 2, 4, 3, 5)
        scales2 = init("scales", f32([1, 1, 2, 2, 2]))
        self.unary(
            "resize_nearest_scales2",
            "Resize",
            R,
            inits=[scales2],
            extra_inputs=["", "scales"],
            mode="nearest",
            coordinate_transformation_mode="asymmetric",
            nearest_mode="floor",
        )
        self.unary(
            "resize_nearest_sizes",
            "Resize",
            R,
            inits=[init("sizes", np.array([1, 2, 7, 5, 8], dtype=np.int64))],
            extra_inputs=["", "", "sizes"],
            mode="nearest",
        )
        self.manifest[-1]["note"] = (
            "coordinate_transformation_mode and nearest_mode attributes absent: defaults half_pixel, round_prefer_floor"
        )
        self.unary(
            "resize_linear_scales2_align",
            "Resize",
            R,
            inits=[scales2],
            extra_inputs=["", "scales"],
            mode="linear",
            coordinate_transformation_mode="align_corners",
        )
        self.unary(
            "resize_linear_scales2_halfpixel",
            "Resize",
            R,
            inits=[scales2],
            extra_inputs=["", "scales"],
            mode="linear",
            coordinate_transformation_mode="half_pixel",
        )
        self.unary(
            "resize_linear_sizes_pytorch_half_pixel",
            "Resize",
            R,
            inits=[init("sizes", np.array([1, 2, 7, 5, 9], dtype=np.int64))],
            extra_inputs=["", "", "sizes"],
            mode="linear",
            coordinate_transformation_mode="pytorch_half_pixel",
        )
        # Upsample (deprecated op; opset 9: scales input, opset 7: scales attribute)
        U = (1, 2, 4, 3, 5)
        X = self.x(U)
        node = helper.make_node("Upsample", ["x", "scales"], ["y"], mode="nearest")
        self.add("upsample_nearest_opset9", "Upsample", [node], [("x", X)], [init("scales", f32([1, 1, 2, 2, 2]))], [1, 2, 8, 6, 10], opset=9)
        X = self.x(U)
        node = helper.make_node("Upsample", ["x"], ["y"], mode="nearest", scales=[1.0, 1.0, 2.0, 2.0, 2.0])
        self.add("upsample_nearest_opset7", "Upsample", [node], [("x", X)], [], [1, 2, 8, 6, 10], opset=7)
        X = self.x(U)
        node = helper.make_node("Upsample", ["x", "scales"], ["y"], mode="linear")
        self.add("upsample_linear_opset9", "Upsample", [node], [("x", X)], [init("scales", f32([1, 1, 2, 2, 2]))], [1, 2, 8, 6, 10], opset=9)
        # Concat
        A, B = self.x((1, 2, 7, 6, 5)), self.x(S)
        node = helper.make_node("Concat", ["a", "b"], ["y"], axis=1)
        self.add("concat_axis1", "Concat", [node], [("a", A), ("b", B)], [], [1, 5, 7, 6, 5])
        A, B = self.x((1, 7, 6, 5, 2)), self.x((1, 7, 6, 5, 3))
        node = helper.make_node("Concat", ["a", "b"], ["y"], axis=-1)
        self.add("concat_axis_last", "Concat", [node], [("a", A), ("b", B)], [], [1, 7, 6, 5, 5])
        # elementwise
        self.unary("add_broadcast", "Add", S, inits=[init("c", self.x((3, 1, 1, 1)))], extra_inputs=["c"])
        A, B = self.x(S), self.x(S)
        self.add("add_same", "Add", [helper.make_node("Add", ["a", "b"], ["y"])], [("a", A), ("b", B)], [], list(S))
        self.unary("mul_broadcast", "Mul", S, inits=[init("c", f32(-1.75))], extra_inputs=["c"])
        A, B = self.x(S), self.x(S)
        self.add("mul_same", "Mul", [helper.make_node("Mul", ["a", "b"], ["y"])], [("a", A), ("b", B)], [], list(S))
        # layout / shape
        self.unary("transpose_ncdhw_to_ndhwc", "Transpose", S, perm=[0, 2, 3, 4, 1])
        self.unary("transpose_ndhwc_to_ncdhw", "Transpose", (1, 7, 6, 5, 3), perm=[0, 4, 1, 2, 3])
        self.unary(
            "reshape",
            "Reshape",
            S,
            inits=[init("shape", np.array([0, -1, 6, 5], dtype=np.int64))],
            extra_inputs=["shape"],
        )
        assert self.manifest[-1]["output_shape"] == [1, 21, 6, 5]
        self.unary("identity", "Identity", S)
        self.unary("dropout", "Dropout", S)
        X = self.x(S)
        cval = helper.make_tensor("cval", F32, [1, 3, 1, 6, 1], self.x((1, 3, 1, 6, 1)).ravel().tolist())
        nodes = [
            helper.make_node("Constant", [], ["c"], value=cval),
            helper.make_node("Add", ["x", "c"], ["y"]),
        ]
        self.add("constant", "Constant", nodes, [("x", X)], [], list(S))
        # tf2onnx-like NDHWC chain
        X = self.x((1, 7, 6, 5, 3))
        nodes = [
            helper.make_node("Transpose", ["x"], ["t"], perm=[0, 4, 1, 2, 3]),
            helper.make_node("Conv", ["t", "W", "B"], ["c"], kernel_shape=[3, 3, 3], pads=[1] * 6),
            helper.make_node("Relu", ["c"], ["r"]),
            helper.make_node("Transpose", ["r"], ["t2"], perm=[0, 2, 3, 4, 1]),
            helper.make_node("Softmax", ["t2"], ["y"], axis=-1),
        ]
        inits = [init("W", self.w((2, 3, 3, 3, 3))), init("B", self.b(2))]
        self.add("chain_keras_style", "Softmax", nodes, [("x", X)], inits, [1, 7, 6, 5, 2])


# ----------------------------------------------------------------------------- 2. U-Nets


class NetBuilder:
    def __init__(self, rng):
        self.rng = rng
        self.nodes = []
        self.inits = []
        self.n = 0

    def name(self, prefix):
        self.n += 1
        return f"{prefix}_{self.n}"

    def node(self, op, inputs, **attrs):
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def param(self, prefix, arr):
        nm = self.name(prefix)
        self.inits.append(init(nm, arr))
        return nm

    def conv(self, x, cin, cout, k=3, stride=1, pad=None, gain=1.0):
        pad = (k // 2) if pad is None else pad
        W = self.param("W", f32(gain * he(self.rng, (cout, cin, k, k, k), cin * k**3)))
        B = self.param("B", small(self.rng, (cout,)))
        return self.node("Conv", [x, W, B], kernel_shape=[k] * 3, strides=[stride] * 3, pads=[pad] * 6)

    def convt(self, x, cin, cout):
        # k2 s2: every output voxel receives exactly cin products -> fan_in = cin
        W = self.param("W", he(self.rng, (cin, cout, 2, 2, 2), cin))
        B = self.param("B", small(self.rng, (cout,)))
        return self.node("ConvTranspose", [x, W, B], kernel_shape=[2, 2, 2], strides=[2, 2, 2])

    def bn(self, x, c):
        r = self.rng
        g = self.param("bn_gamma", f32(r.uniform(0.8, 1.2, c)))
        b = self.param("bn_beta", f32(r.normal(0.0, 0.1, c)))
        m = self.param("bn_mean", f32(r.normal(0.0, 0.1, c)))
        v = self.param("bn_var", f32(r.uniform(0.5, 1.5, c)))
        return self.node("BatchNormalization", [x, g, b, m, v], epsilon=1e-3)

    def inorm(self, x, c):
        r = self.rng
        g = self.param("in_gamma", f32(r.uniform(0.8, 1.2, c)))
        b = self.param("in_beta", f32(r.normal(0.0, 0.1, c)))
        return self.node("InstanceNormalization", [x, g, b], epsilon=1e-5)


def keras_unet(seed=1101):
    nb = NetBuilder(np.random.default_rng(seed))

    def block(x, cin, cout):
        return nb.node("Relu", [nb.bn(nb.conv(x, cin, cout), cout)])

    x = nb.node("Transpose", ["input_1"], perm=[0, 4, 1, 2, 3])
    e1 = block(block(x, 1, 16), 16, 16)
    p1 = nb.node("MaxPool", [e1], kernel_shape=[2, 2, 2], strides=[2, 2, 2])
    e2 = block(block(p1, 16, 32), 32, 32)
    p2 = nb.node("MaxPool", [e2], kernel_shape=[2, 2, 2], strides=[2, 2, 2])
    bott = block(block(p2, 32, 64), 64, 64)
    u2 = nb.node("Concat", [nb.convt(bott, 64, 32), e2], axis=1)
    d2 = block(block(u2, 64, 32), 32, 32)
    u1 = nb.node("Concat", [nb.convt(d2, 32, 16), e1], axis=1)
    d1 = block(block(u1, 32, 16), 16, 16)
    # head scaled down (x0.25) so the softmax is not saturated almost everywhere
    logits = nb.conv(d1, 16, 2, k=1, gain=0.25)
    t = nb.node("Transpose", [logits], perm=[0, 2, 3, 4, 1])
    nb.nodes.append(helper.make_node("Softmax", [t], ["output"], name="softmax_out", axis=-1))
    model = make_model(
        "keras_unet",
        nb.nodes,
        [helper.make_tensor_value_info("input_1", F32, ["N", 32, 32, 32, 1])],
        [helper.make_tensor_value_info("output", F32, ["N", 32, 32, 32, 2])],
        nb.inits,
    )
    return model


def nnunet_like(seed=2202):
    nb = NetBuilder(np.random.default_rng(seed))

    def block(x, cin, cout, stride=1):
        return nb.node("LeakyRelu", [nb.inorm(nb.conv(x, cin, cout, stride=stride), cout)], alpha=0.01)

    s0 = block(block("input", 1, 8), 8, 8)
    s1 = block(block(s0, 8, 16, stride=2), 16, 16)
    s2 = block(block(s1, 16, 32, stride=2), 32, 32)
    u1 = nb.node("Concat", [nb.convt(s2, 32, 16), s1], axis=1)
    d1 = block(block(u1, 32, 16), 16, 16)
    u0 = nb.node("Concat", [nb.convt(d1, 16, 8), s0], axis=1)
    d0 = block(block(u0, 16, 8), 8, 8)
    W = nb.param("W", he(nb.rng, (1, 8, 1, 1, 1), 8))
    B = nb.param("B", small(nb.rng, (1,)))
    nb.nodes.append(helper.make_node("Conv", [d0, W, B], ["logits"], name="conv_out", kernel_shape=[1, 1, 1]))
    model = make_model(
        "nnunet_like",
        nb.nodes,
        [helper.make_tensor_value_info("input", F32, ["N", 1, "D", "H", "W"])],
        [helper.make_tensor_value_info("logits", F32, ["N", 1, "D", "H", "W"])],
        nb.inits,
    )
    return model


# ----------------------------------------------------------------------------- 3. sliding window


def zscore(img):
    x = np.asarray(img, dtype=np.float64)
    mean = x.mean()
    std = x.std()  # population (ddof 0)
    x = x - mean
    if std != 0:
        x = x / std
    return x.astype(np.float32)


def monai_gaussian_map(roi, sigma_scale=0.125):
    """monai.data.utils.compute_importance_map(mode='gaussian') in float32."""
    m = None
    for i, p in enumerate(roi):
        sigma = p * sigma_scale
        x = np.arange(-(p - 1) / 2.0, (p - 1) / 2.0 + 1, dtype=np.float32)
        assert len(x) == p
        g = np.exp(x**2 / np.float32(-2 * sigma**2)).astype(np.float32)
        m = g if i == 0 else (m[..., None] * g[(None,) * i]).astype(np.float32)
    min_non_zero = max(float(m.min()), 1e-3)
    return np.maximum(m, np.float32(min_non_zero)).astype(np.float32)


def importance_map(roi, blend):
    if blend == "constant":
        return np.ones(roi, dtype=np.float32)
    if blend == "gaussian":
        return monai_gaussian_map(roi)
    raise ValueError(blend)


def monai_starts(size, roi, overlap):
    if roi == size:
        interval = roi
    else:
        interval = max(int(roi * (1 - overlap)), 1)
    n = math.ceil((size - roi) / interval) + 1
    return [min(i * interval, size - roi) for i in range(n)]


def nnunet_starts(size, roi, step=0.5):
    target = roi * step
    n = int(np.ceil((size - roi) / target)) + 1
    if n > 1:
        actual = (size - roi) / (n - 1)
        return [int(np.round(actual * i)) for i in range(n)]
    return [0]


class Predictor:
    """Runs one patch at a time (batch 1); returns (C, d, h, w) float32 raw model outputs."""

    def __init__(self, model, layout):
        self.sess = session(model)
        self.inp = model.graph.input[0].name
        self.layout = layout
        self.last_op = model.graph.node[-1].op_type
        self.calls = 0

    def __call__(self, patch):
        self.calls += 1
        if self.layout == "ndhwc":
            y = run1(self.sess, {self.inp: patch[None, ..., None]})[0]
            return np.moveaxis(y, -1, 0)
        y = run1(self.sess, {self.inp: patch[None, None]})[0]
        return y


def sigmoid(x):
    x = np.asarray(x, dtype=np.float32)
    return (np.float32(1.0) / (np.float32(1.0) + np.exp(-x))).astype(np.float32)


def softmax0(x):
    x = np.asarray(x, dtype=np.float32)
    e = np.exp(x - x.max(axis=0, keepdims=True))
    return (e / e.sum(axis=0, keepdims=True)).astype(np.float32)


def sliding_window(img, pred, roi, overlap, blend, blend_on, placement, cls=1):
    """Foreground probability (X, Y, Z) float32; see sw/README.md for the exact semantics."""
    x = zscore(img)
    shape = x.shape
    pads = []
    for s, r in zip(shape, roi):
        diff = max(r - s, 0)
        pads.append((diff // 2, diff - diff // 2))
    x = np.pad(x, pads, mode="constant", constant_values=0.0)
    size = x.shape
    if placement == "monai":
        starts = [monai_starts(s, r, overlap) for s, r in zip(size, roi)]
    elif placement == "nnunet":
        starts = [nnunet_starts(s, r) for s, r in zip(size, roi)]
    else:
        raise ValueError(placement)
    w = importance_map(roi, blend)
    if pred.last_op in ("Softmax", "Sigmoid"):
        activation = "none"
    else:
        activation = None  # decided from the channel count
    out = None
    count = np.zeros(size, dtype=np.float32)
    for sx in starts[0]:
        for sy in starts[1]:
            for sz in starts[2]:
                sl = (slice(sx, sx + roi[0]), slice(sy, sy + roi[1]), slice(sz, sz + roi[2]))
                y = pred(np.ascontiguousarray(x[sl]))
                if activation is None:
                    activation = "sigmoid" if y.shape[0] == 1 else "softmax"
                if blend_on == "probs" and activation != "none":
                    y = sigmoid(y) if activation == "sigmoid" else softmax0(y)
                if out is None:
                    out = np.zeros((y.shape[0], *size), dtype=np.float32)
                out[(slice(None), *sl)] += (y * w).astype(np.float32)
                count[sl] += w
    out = (out / count).astype(np.float32)
    if blend_on == "logits" and activation != "none":
        out = sigmoid(out) if activation == "sigmoid" else softmax0(out)
    crop = tuple(slice(b, b + s) for (b, _), s in zip(pads, shape))
    out = out[(slice(None), *crop)]
    fg = out[0] if out.shape[0] == 1 else out[cls]
    return np.ascontiguousarray(fg, dtype=np.float32), activation, starts


def smooth1d(a, axis, sigma):
    r = int(math.ceil(3 * sigma))
    t = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    k /= k.sum()
    return np.apply_along_axis(lambda v: np.convolve(v, k, mode="same"), axis, a)


def make_image(shape, seed):
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, 1.0, size=shape)
    for ax in range(3):
        noise = smooth1d(noise, ax, 1.5)
    noise /= noise.std()
    img = 100.0 + 15.0 * noise + 3.0 * rng.normal(0.0, 1.0, size=shape)
    grid = np.meshgrid(*[np.arange(s, dtype=np.float64) for s in shape], indexing="ij")
    for _ in range(4):
        c = [rng.uniform(0.15 * s, 0.85 * s) for s in shape]
        rad = rng.uniform(2.0, 4.5)
        amp = rng.uniform(60.0, 120.0)
        d2 = sum((g - ci) ** 2 for g, ci in zip(grid, c))
        img += amp * np.exp(-d2 / (2 * rad**2))
    return np.ascontiguousarray(img.astype(np.float32))


# ----------------------------------------------------------------------------- main


def reset(d):
    """Empty a generated folder, keeping its hand-written README.md."""
    d.mkdir(parents=True, exist_ok=True)
    for p in d.iterdir():
        if p.name == "README.md":
            continue
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    # 1. ops
    reset(OPS)
    cases = OpCases()
    cases.build()
    (OPS / "manifest.json").write_text(dump_stable(cases.manifest, strings=ANY_STRING))
    print(f"ops: {len(cases.manifest)} cases")

    # 2. models
    reset(MODELS)
    keras = keras_unet()
    nnu = nnunet_like()
    rng = np.random.default_rng(3303)
    models = {}
    for name, model, shape in [
        ("keras_unet", keras, (2, 32, 32, 32, 1)),
        ("nnunet_like", nnu, (2, 1, 16, 24, 20)),
    ]:
        save_model(MODELS / f"{name}.onnx", model)
        xin = f32(rng.normal(0.0, 1.0, size=shape))
        y = run1(session(model), {model.graph.input[0].name: xin})
        save_npy(MODELS / f"{name}.patch_in.npy", xin)
        save_npy(MODELS / f"{name}.patch_out.npy", y)
        models[name] = model
        print(f"{name}: out {y.shape} min {y.min():.4f} max {y.max():.4f} mean {y.mean():.4f} std {y.std():.4f}")

    # 3. sliding window
    reset(SW)
    affine = np.diag([0.8, 0.9, 1.5, 1.0])
    images = {
        "keras": ("keras_gauss_o50.image.nii.gz", make_image((45, 38, 20), 4404)),
        "nnunet": ("nnunet_gauss_o50.image.nii.gz", make_image((37, 29, 41), 5505)),
    }
    for fn, img in images.values():
        save_nifti(SW / fn, img, affine)
        back = np.asarray(nib.load(SW / fn).dataobj)
        assert back.dtype == np.float32 and np.array_equal(back, img), fn
    sw_cases = [
        ("keras_gauss_o50", "keras_unet", "keras", "ndhwc", (32, 32, 32), 0.5, "gaussian", "logits", "monai"),
        ("keras_const_o25", "keras_unet", "keras", "ndhwc", (32, 32, 32), 0.25, "constant", "logits", "monai"),
        ("nnunet_gauss_o50", "nnunet_like", "nnunet", "ncdhw", (16, 24, 20), 0.5, "gaussian", "logits", "monai"),
        ("nnunet_steps", "nnunet_like", "nnunet", "ncdhw", (16, 24, 20), 0.5, "gaussian", "logits", "nnunet"),
        ("nnunet_probs_blend", "nnunet_like", "nnunet", "ncdhw", (16, 24, 20), 0.5, "constant", "probs", "monai"),
    ]
    manifest = []
    for case, mname, img_key, layout, roi, overlap, blend, blend_on, placement in sw_cases:
        pred = Predictor(models[mname], layout)
        fn, img = images[img_key]
        prob, activation, starts = sliding_window(img, pred, roi, overlap, blend, blend_on, placement)
        assert prob.shape == img.shape and np.all(np.isfinite(prob))
        save_npy(SW / f"{case}.prob.npy", prob)
        manifest.append(
            {
                "case": case,
                "model": f"../models/{mname}.onnx",
                "image": fn,
                "expected": f"{case}.prob.npy",
                "patch": list(roi),
                "overlap": overlap,
                "blend": blend,
                "blend_on": blend_on,
                "placement": placement,
                "normalize": "zscore",
                "activation": activation,
                "class": 1,
                "window_starts": [[int(s) for s in ax] for ax in starts],
                "windows": pred.calls,
            }
        )
        print(
            f"{case}: windows {pred.calls} starts {starts} act {activation} "
            f"prob min {prob.min():.4f} max {prob.max():.4f} mean {prob.mean():.4f} >0.5 {(prob > 0.5).mean():.3f}"
        )
    (SW / "manifest.json").write_text(dump_stable(manifest, strings=ANY_STRING))


if __name__ == "__main__":
    main()
